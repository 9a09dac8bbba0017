// SPDX-License-Identifier: MIT
// What the checks cost: each resource with a checked mode, with default
// options and with that mode on, in the same run, on the fixed 64 B
// allocate+touch+free pair and a batch of 1,000 blocks freed LIFO
// (chunk_provider: the 64 KiB acquire+release pair). The checked mode is
// `hardened = true`, except monotonic_arena's `check_owner_thread = true` (it
// has no hardened field); slab also runs "unchecked", `detect_double_free =
// false`, to show what its default double-free check costs. Names are
// hardening/<resource>/<workload>/{default,hardened,unchecked}, so the report
// can print mode / default per resource and workload; docs/hardening.md
// points to that table in docs/benchmarks.md.
//
//   build-release/bench/hardening_bench --benchmark_repetitions=5
//       --benchmark_enable_random_interleaving=true --benchmark_format=json > out.json
//   python3 bench/report.py --out /tmp/report.md out.json
//
// "default" means the options' defaults with the checked mode forced off, so a
// build with -Dhardening=true still measures both modes.

#include <benchmark/benchmark.h>

#include <cstddef>
#include <memory>
#include <memory_resource>
#include <string>
#include <vector>

#include <strata/arena.hpp>
#include <strata/chunk_provider.hpp>
#include <strata/extendable_slab.hpp>
#include <strata/monotonic_arena.hpp>
#include <strata/page_resource.hpp>
#include <strata/slab.hpp>

#include "support/peers.hpp"

namespace {

using strata::bench::opaque;

constexpr std::size_t block = 64;
constexpr std::size_t alignment = 16;
constexpr std::size_t batch = 1000;
constexpr std::size_t chunk = std::size_t{64} << 10;

// One allocate+touch+free pair of bytes per iteration.
void pair_loop(benchmark::State& state, std::pmr::memory_resource* r, std::size_t bytes) {
  void* check = r->allocate(bytes, alignment);  // validation, outside the timed loop
  const bool ok = strata::bench::aligned(state, check, alignment);
  r->deallocate(check, bytes, alignment);
  if (!ok) return;
  for (auto _ : state) {
    void* p = r->allocate(bytes, alignment);
    static_cast<char*>(p)[0] = 1;
    benchmark::DoNotOptimize(p);
    r->deallocate(p, bytes, alignment);
  }
  state.SetItemsProcessed(state.iterations());
}

// Allocates and touches `batch` 64 B blocks, then frees them newest first.
void batch_lifo_loop(benchmark::State& state, std::pmr::memory_resource* r) {
  std::vector<void*> blocks(batch);
  for (auto _ : state) {
    for (void*& p : blocks) {
      p = r->allocate(block, alignment);
      static_cast<char*>(p)[0] = 1;
    }
    benchmark::DoNotOptimize(blocks.data());
    for (std::size_t i = batch; i-- != 0;) r->deallocate(blocks[i], block, alignment);
  }
  for (void*& p : blocks) {  // alignment check of every block, outside the timed loop
    p = r->allocate(block, alignment);
    strata::bench::aligned(state, p, alignment);
  }
  for (void* p : blocks) r->deallocate(p, block, alignment);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}

// The upstream of slab and extendable_slab, as in slab_bench.
strata::chunk_provider& chunks() {
  static strata::chunk_provider provider{strata::system_pages()};
  return provider;
}

// Registers body(state, resource) as hardening/<resource>/<workload>/<mode>
// for each mode; make(mode) builds a fresh resource inside the benchmark.
template <class Make, class Body>
void register_modes(const std::string& resource, const std::string& workload, Make make, Body body,
                    std::vector<std::string> modes = {"default", "hardened"}) {
  for (const std::string& mode : modes) {
    strata::bench::add("hardening/" + resource + "/" + workload + "/" + mode, [=](benchmark::State& s) {
      auto r = make(mode);
      body(s, opaque(r.get()));
    });
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const auto pair64 = [](benchmark::State& s, std::pmr::memory_resource* r) { pair_loop(s, r, block); };
  const auto lifo = [](benchmark::State& s, std::pmr::memory_resource* r) { batch_lifo_loop(s, r); };

  const auto make_slab = [](const std::string& mode) {
    return std::make_unique<strata::slab>(strata::slab::options{.slot_size = block,
                                                                .slot_alignment = alignment,
                                                                .capacity = 4096,
                                                                .detect_double_free = mode != "unchecked",
                                                                .hardened = mode == "hardened"},
                                          &chunks());
  };
  const auto make_extendable_slab = [](const std::string& mode) {
    return std::make_unique<strata::extendable_slab>(
        strata::extendable_slab::options{.slot_size = block, .hardened = mode == "hardened"}, &chunks());
  };
  const auto make_arena = [](const std::string& mode) {
    return std::make_unique<strata::arena>(
        strata::arena::options{.capacity = 64 << 20, .hardened = mode == "hardened"}, strata::system_pages());
  };
  const auto make_chunk_provider = [](const std::string& mode) {
    return std::make_unique<strata::chunk_provider>(
        strata::chunk_provider::options{.hardened = mode == "hardened"}, strata::system_pages());
  };
  // Every free here is of the latest block, so it rolls back and the arena
  // never grows past its first chunk.
  const auto make_monotonic_arena = [](const std::string& mode) {
    return std::make_unique<strata::monotonic_arena>(
        strata::monotonic_arena::options{.check_owner_thread = mode == "hardened"}, &chunks());
  };

  const std::vector<std::string> slab_modes = {"default", "hardened", "unchecked"};
  register_modes("slab", "pair_64B", make_slab, pair64, slab_modes);
  register_modes("slab", "batch_64B_lifo", make_slab, lifo, slab_modes);
  register_modes("extendable_slab", "pair_64B", make_extendable_slab, pair64);
  register_modes("extendable_slab", "batch_64B_lifo", make_extendable_slab, lifo);
  register_modes("arena", "pair_64B", make_arena, pair64);
  register_modes("arena", "batch_64B_lifo", make_arena, lifo);
  register_modes("chunk_provider", "pair_64KiB", make_chunk_provider,
                 [](benchmark::State& s, std::pmr::memory_resource* r) { pair_loop(s, r, chunk); });
  register_modes("monotonic_arena", "pair_64B", make_monotonic_arena, pair64);
  register_modes("monotonic_arena", "batch_64B_lifo", make_monotonic_arena, lifo);

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
