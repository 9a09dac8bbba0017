// SPDX-License-Identifier: MIT
// What checking costs: tracking_resource over new_delete against new_delete
// alone. No DESIGN.md target: tracking_resource is a test and debug tool.

#include <benchmark/benchmark.h>

#include <memory_resource>
#include <string>
#include <vector>

#include <strata/tracking_resource.hpp>

#include "support/peers.hpp"

namespace {

// Allocates a batch of 64-byte blocks, then frees them in order.
void batch_64(benchmark::State& state, std::pmr::memory_resource* r, std::size_t batch) {
  std::vector<void*> blocks(batch);
  for (auto _ : state) {
    for (auto& p : blocks) p = r->allocate(64, 8);
    for (void* p : blocks) r->deallocate(p, 64, 8);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (std::size_t batch : {std::size_t{1}, std::size_t{1000}}) {
    const std::string shape = "batch_64B/" + std::to_string(batch) + "_blocks/";
    strata::bench::add(shape + "strata_tracking_resource", [=](benchmark::State& s) {
      strata::tracking_resource checked{std::pmr::new_delete_resource()};
      batch_64(s, strata::bench::opaque(&checked), batch);
    });
    strata::bench::add(shape + "new_delete",
                       [=](benchmark::State& s) { batch_64(s, std::pmr::new_delete_resource(), batch); });
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
