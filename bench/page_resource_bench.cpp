// SPDX-License-Identifier: MIT
// page_resource against the default operator new for whole-chunk blocks: the
// cost a chunk cache saves by keeping chunks instead of going to the OS.
// No DESIGN.md target: page_resource belongs under a cache, and this shows why.

#include <benchmark/benchmark.h>

#include <memory_resource>
#include <string>

#include <strata/page_resource.hpp>

#include "support/peers.hpp"

namespace {

// Allocates, touches one byte per page, and frees a block.
void acquire_touch_release(benchmark::State& state, std::pmr::memory_resource* r, std::size_t bytes,
                           std::size_t alignment) {
  for (auto _ : state) {
    auto* p = static_cast<char*>(r->allocate(bytes, alignment));
    for (std::size_t i = 0; i < bytes; i += 4096) p[i] = 1;
    benchmark::DoNotOptimize(p);
    r->deallocate(p, bytes, alignment);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const std::pair<std::size_t, std::size_t> shapes[] = {
      {64 << 10, 64}, {64 << 10, 64 << 10}, {1 << 20, 64}, {1 << 20, 1 << 20}};
  // Named copies, not structured bindings: clang 14 cannot capture bindings in lambdas.
  for (const auto& shape_pair : shapes) {
    const std::size_t bytes = shape_pair.first;
    const std::size_t alignment = shape_pair.second;
    const std::string shape =
        "page_block/" + std::to_string(bytes >> 10) + "KiB_align" + std::to_string(alignment) + "/";
    strata::bench::add(shape + "strata_page_resource", [=](benchmark::State& s) {
      strata::page_resource pages;
      acquire_touch_release(s, strata::bench::opaque(&pages), bytes, alignment);
    });
    strata::bench::add(shape + "new_delete", [=](benchmark::State& s) {
      acquire_touch_release(s, std::pmr::new_delete_resource(), bytes, alignment);
    });
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
