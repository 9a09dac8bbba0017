// SPDX-License-Identifier: MIT
// chunk_provider against the bare chunk stack (the floor) and the peers, on
// acquire+release pairs of 64 KiB and 1 MiB chunks (also aligned to 64 KiB),
// and the same pair on 1 and 2 threads sharing one provider.
//
//   build-release/bench/chunk_provider_bench --benchmark_repetitions=5
//       --benchmark_enable_random_interleaving=true --benchmark_format=json > out.json
//   python3 bench/report.py --out /tmp/report.md out.json

#include <benchmark/benchmark.h>

#include <string>

#include <strata/chunk_provider.hpp>
#include <strata/page_resource.hpp>

#include "support/peers.hpp"

namespace {

using strata::bench::opaque;

// One acquire+release pair per iteration, touching the chunk's first byte,
// after one chunk checked (written whole, alignment checked) untimed.
void pair_loop(benchmark::State& state, std::pmr::memory_resource* r, std::size_t bytes,
               std::size_t alignment) {
  strata::bench::validation checks;
  void* check = r->allocate(bytes, alignment);
  checks.block(check, bytes, alignment);
  r->deallocate(check, bytes, alignment);
  for (auto _ : state) {
    void* p = r->allocate(bytes, alignment);
    static_cast<char*>(p)[0] = 1;
    benchmark::DoNotOptimize(p);
    r->deallocate(p, bytes, alignment);
  }
  checks.finish(state);
  state.SetItemsProcessed(state.iterations());
}

strata::chunk_provider& shared_provider() {
  static strata::chunk_provider provider{strata::system_pages()};
  return provider;
}

std::string label(std::size_t bytes, std::size_t alignment) {
  const auto unit = [](std::size_t n) {
    return n >= (1u << 20) ? std::to_string(n >> 20) + "MiB" : std::to_string(n >> 10) + "KiB";
  };
  return unit(bytes) + "_align" + (alignment >= 1024 ? unit(alignment) : std::to_string(alignment));
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const std::pair<std::size_t, std::size_t> shapes[] = {
      {64 << 10, 16}, {64 << 10, 64 << 10}, {1 << 20, 16}, {1 << 20, 64 << 10}};
  // Named copies, not structured bindings: clang 14 cannot capture bindings in lambdas.
  for (const auto& shape_pair : shapes) {
    const std::size_t bytes = shape_pair.first;
    const std::size_t alignment = shape_pair.second;
    const std::string workload = "chunk_pair/" + label(bytes, alignment) + "/";
    strata::bench::add(workload + "floor", [=](benchmark::State& s) {
      strata::bench::bare_chunk_stack floor;
      pair_loop(s, opaque(&floor), bytes, alignment);
    });
    strata::bench::add(workload + "strata", [=](benchmark::State& s) {
      strata::chunk_provider chunks{strata::system_pages()};
      pair_loop(s, opaque(&chunks), bytes, alignment);
    });
    for (const strata::bench::peer& p : strata::bench::peers()) {
      strata::bench::add(workload + p.name,
                         [=](benchmark::State& s) { pair_loop(s, p.resource, bytes, alignment); });
    }
  }
  // Scaling: each thread runs its own pairs on one shared provider.
  for (int threads : {1, 2}) {
    strata::bench::add("chunk_pair_threads/64KiB/strata",
                       [](benchmark::State& s) { pair_loop(s, opaque(&shared_provider()), 64 << 10, 16); })
        ->Threads(threads)
        ->UseRealTime();
    strata::bench::add(
        "chunk_pair_threads/64KiB/new_delete",
        [](benchmark::State& s) { pair_loop(s, std::pmr::new_delete_resource(), 64 << 10, 16); })
        ->Threads(threads)
        ->UseRealTime();
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
