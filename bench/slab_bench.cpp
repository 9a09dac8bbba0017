// SPDX-License-Identifier: MIT
// slab and extendable_slab against the bare free list (the floor) and the
// peers: a fixed 64 B allocate+touch+free pair; batches of 1,000 blocks freed
// in LIFO, FIFO and random order; and the pair on 1 and 2 threads sharing one
// extendable_slab. Memory overhead (bytes_reserved / (slots x 64)) is reported
// as the counter `overhead` on the strata batch benchmarks.
//
//   build-release/bench/slab_bench --benchmark_repetitions=5
//       --benchmark_enable_random_interleaving=true --benchmark_format=json > out.json
//   python3 bench/report.py --out /tmp/report.md out.json

#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <memory_resource>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <boost/pool/pool.hpp>

#include <strata/chunk_provider.hpp>
#include <strata/extendable_slab.hpp>
#include <strata/page_resource.hpp>
#include <strata/slab.hpp>

#include "support/peers.hpp"

namespace {

using strata::bench::opaque;

constexpr std::size_t block = 64;
constexpr std::size_t alignment = 16;
constexpr std::size_t batch = 1000;

/// boost::pool (one block size, no thread safety) behind the pmr virtual call.
class boost_pool_resource final : public std::pmr::memory_resource {
 public:
  explicit boost_pool_resource(std::size_t size) : pool_(size) {}

 private:
  void* do_allocate(std::size_t, std::size_t) override {
    void* p = pool_.malloc();
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void do_deallocate(void* p, std::size_t, std::size_t) override { pool_.free(p); }
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }
  boost::pool<> pool_;
};

// One allocate+touch+free pair per iteration.
void pair_loop(benchmark::State& state, std::pmr::memory_resource* r) {
  void* check = r->allocate(block, alignment);  // validation, outside the timed loop
  const bool ok = strata::bench::aligned(state, check, alignment);
  r->deallocate(check, block, alignment);
  if (!ok) return;
  for (auto _ : state) {
    void* p = r->allocate(block, alignment);
    static_cast<char*>(p)[0] = 1;
    benchmark::DoNotOptimize(p);
    r->deallocate(p, block, alignment);
  }
  state.SetItemsProcessed(state.iterations());
}

enum class order { lifo, fifo, random };

// Allocates and touches `batch` blocks, then frees them in the given order.
void batch_loop(benchmark::State& state, std::pmr::memory_resource* r, order how) {
  std::vector<void*> blocks(batch);
  std::vector<std::size_t> free_order(batch);
  std::iota(free_order.begin(), free_order.end(), std::size_t{0});
  if (how == order::lifo) std::reverse(free_order.begin(), free_order.end());
  if (how == order::random) std::shuffle(free_order.begin(), free_order.end(), std::mt19937{42});
  for (auto _ : state) {
    for (void*& p : blocks) {
      p = r->allocate(block, alignment);
      static_cast<char*>(p)[0] = 1;
    }
    benchmark::DoNotOptimize(blocks.data());
    for (std::size_t i : free_order) r->deallocate(blocks[i], block, alignment);
  }
  for (void*& p : blocks) {  // alignment check of every block, outside the timed loop
    p = r->allocate(block, alignment);
    strata::bench::aligned(state, p, alignment);
  }
  for (void* p : blocks) r->deallocate(p, block, alignment);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
}

strata::chunk_provider& chunks() {
  static strata::chunk_provider provider{strata::system_pages()};
  return provider;
}

strata::extendable_slab& shared_slab() {
  static strata::extendable_slab slab{{.slot_size = block}, &chunks()};
  return slab;
}

constexpr strata::slab::options slab_options{.slot_size = block, .slot_alignment = alignment, .capacity = 4096};

// Runs body(resource) for every contender of a workload.
template <class Body>
void register_contenders(const std::string& workload, Body body, bool report_overhead = false) {
  strata::bench::add(workload + "/floor", [=](benchmark::State& s) {
    strata::bench::bare_free_list floor{block};
    body(s, opaque(&floor));
  });
  strata::bench::add(workload + "/strata_slab", [=](benchmark::State& s) {
    strata::slab slab{slab_options, &chunks()};
    body(s, opaque(&slab));
    if (report_overhead) {
      s.counters["overhead"] = static_cast<double>(slab.stats().bytes_reserved) /
                               static_cast<double>(slab.capacity() * block);
    }
  });
  strata::bench::add(workload + "/strata_extendable_slab", [=](benchmark::State& s) {
    strata::extendable_slab slab{{.slot_size = block}, &chunks()};
    body(s, opaque(&slab));
    if (report_overhead) {
      s.counters["overhead"] = static_cast<double>(slab.stats().bytes_reserved) /
                               static_cast<double>(slab.segment_count() * slab.get_options().slots_per_segment * block);
    }
  });
  strata::bench::add(workload + "/boost_pool", [=](benchmark::State& s) {
    boost_pool_resource pool{block};
    body(s, opaque(&pool));
  });
  strata::bench::add(workload + "/std_unsync_pool", [=](benchmark::State& s) {
    std::pmr::unsynchronized_pool_resource pool{std::pmr::new_delete_resource()};
    body(s, opaque(&pool));
  });
  strata::bench::add(workload + "/std_sync_pool", [=](benchmark::State& s) {
    std::pmr::synchronized_pool_resource pool{std::pmr::new_delete_resource()};
    body(s, opaque(&pool));
  });
  for (const strata::bench::peer& p : strata::bench::peers()) {
    strata::bench::add(workload + "/" + p.name,
                                 [=](benchmark::State& s) { body(s, p.resource); });
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  register_contenders("slab_pair/64B", [](benchmark::State& s, std::pmr::memory_resource* r) { pair_loop(s, r); });
  const std::pair<const char*, order> orders[] = {
      {"lifo", order::lifo}, {"fifo", order::fifo}, {"random", order::random}};
  for (const auto& [name, how] : orders) {
    register_contenders(
        std::string("slab_batch/64B_") + name,
        [how = how](benchmark::State& s, std::pmr::memory_resource* r) { batch_loop(s, r, how); }, true);
  }
  // Scaling: each thread runs its own pairs on one shared extendable_slab.
  for (int threads : {1, 2}) {
    strata::bench::add("slab_pair_threads/64B/strata_extendable_slab", [](benchmark::State& s) {
      pair_loop(s, opaque(&shared_slab()));
    })->Threads(threads)->UseRealTime();
    strata::bench::add("slab_pair_threads/64B/new_delete", [](benchmark::State& s) {
      pair_loop(s, std::pmr::new_delete_resource());
    })->Threads(threads)->UseRealTime();
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
