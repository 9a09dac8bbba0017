// SPDX-License-Identifier: MIT
// page_resource against the default operator new for whole-chunk blocks: the
// cost a chunk cache saves by keeping chunks instead of going to the OS.

#include <benchmark/benchmark.h>

#include <memory_resource>

#include <strata/page_resource.hpp>

namespace {

// Allocates, touches one byte per page, and frees a block of state.range(0)
// bytes aligned to state.range(1).
void acquire_touch_release(benchmark::State& state, std::pmr::memory_resource* r) {
  const auto bytes = static_cast<std::size_t>(state.range(0));
  const auto alignment = static_cast<std::size_t>(state.range(1));
  benchmark::DoNotOptimize(r);  // keep the virtual call: no devirtualization
  for (auto _ : state) {
    auto* p = static_cast<char*>(r->allocate(bytes, alignment));
    for (std::size_t i = 0; i < bytes; i += 4096) p[i] = 1;
    benchmark::DoNotOptimize(p);
    r->deallocate(p, bytes, alignment);
  }
}

void bm_page_resource_acquire_release(benchmark::State& state) {
  strata::page_resource pages;
  acquire_touch_release(state, &pages);
}

void bm_new_delete_acquire_release(benchmark::State& state) {
  acquire_touch_release(state, std::pmr::new_delete_resource());
}

void sizes(benchmark::internal::Benchmark* b) {
  b->Args({64 << 10, 64})->Args({64 << 10, 64 << 10})->Args({1 << 20, 64})->Args({1 << 20, 1 << 20});
}

}  // namespace

BENCHMARK(bm_page_resource_acquire_release)->Apply(sizes);
BENCHMARK(bm_new_delete_acquire_release)->Apply(sizes);
BENCHMARK_MAIN();
