// SPDX-License-Identifier: MIT
// What checking costs: tracking_resource over new_delete against new_delete alone.

#include <benchmark/benchmark.h>

#include <memory_resource>
#include <vector>

#include <strata/tracking_resource.hpp>

namespace {

// Allocates a batch of 64-byte blocks, then frees them in order.
void batch_64(benchmark::State& state, std::pmr::memory_resource* r) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  std::vector<void*> blocks(batch);
  benchmark::DoNotOptimize(r);
  for (auto _ : state) {
    for (auto& p : blocks) p = r->allocate(64, 8);
    for (void* p : blocks) r->deallocate(p, 64, 8);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}

void bm_tracking_resource_batch_64(benchmark::State& state) {
  strata::tracking_resource checked{std::pmr::new_delete_resource()};
  batch_64(state, &checked);
}

void bm_new_delete_batch_64(benchmark::State& state) { batch_64(state, std::pmr::new_delete_resource()); }

}  // namespace

BENCHMARK(bm_tracking_resource_batch_64)->Arg(1)->Arg(1000);
BENCHMARK(bm_new_delete_batch_64)->Arg(1)->Arg(1000);
BENCHMARK_MAIN();
