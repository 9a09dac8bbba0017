// SPDX-License-Identifier: MIT
// slab and extendable_slab against the bare free list (the floor) and the
// peers: a fixed 64 B allocate+touch+free pair; batches of 1,000 blocks freed
// in LIFO, FIFO and random order; and the pair on 1 and 2 threads sharing one
// extendable_slab. Memory overhead (bytes_reserved / (slots x 64)) is reported
// as the counter `overhead` on the strata batch benchmarks; every contender's
// footprint with a batch live goes to the memory column of the report.
// foonathan-memory's memory_pool runs behind pmr (foonathan_pool) and called
// directly (foonathan_pool_direct) when meson found it; mimalloc is called
// directly too (mimalloc_direct: mi_malloc gives 16-byte alignment).
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

#include <strata/allocator.hpp>
#include <strata/chunk_provider.hpp>
#include <strata/extendable_slab.hpp>
#include <strata/page_resource.hpp>
#include <strata/slab.hpp>

#include "support/foonathan.hpp"
#include "support/peers.hpp"
#if STRATA_BENCH_FOONATHAN
#include <foonathan/memory/std_allocator.hpp>
#endif

namespace {

using strata::bench::opaque;

constexpr std::size_t block = 64;
constexpr std::size_t alignment = 16;
constexpr std::size_t batch = 1000;

// The typed path's value type: one 64 B block aligned as the pmr rows ask.
struct alignas(alignment) node64 {
  std::byte bytes[block];
};

/// boost::pool's UserAllocator over operator new that counts the bytes the
/// pool holds (a header keeps each block's size; one thread only).
struct counting_user_allocator {
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  static inline std::size_t outstanding = 0;
  static char* malloc(size_type bytes) {
    auto* p = static_cast<char*>(::operator new(bytes + header, std::nothrow));
    if (p == nullptr) return nullptr;
    *reinterpret_cast<size_type*>(p) = bytes;
    outstanding += bytes;
    return p + header;
  }
  static void free(char* p) {
    outstanding -= *reinterpret_cast<size_type*>(p - header);
    ::operator delete(p - header);
  }
  static constexpr std::size_t header = alignof(std::max_align_t);
};

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
  boost::pool<counting_user_allocator> pool_;
};

// One allocate+touch+free pair per iteration, after one checked block.
template <class Allocate, class Deallocate>
void pair_loop(benchmark::State& state, Allocate allocate, Deallocate deallocate) {
  strata::bench::validation checks;
  void* check = allocate();  // validation, outside the timed loop
  checks.block(check, block, alignment);
  deallocate(check);
  for (auto _ : state) {
    void* p = allocate();
    static_cast<char*>(p)[0] = 1;
    benchmark::DoNotOptimize(p);
    deallocate(p);
  }
  checks.finish(state);
  state.SetItemsProcessed(state.iterations());
}

void pair_pmr(benchmark::State& state, std::pmr::memory_resource* r) {
  pair_loop(
      state, [r] { return r->allocate(block, alignment); },
      [r](void* p) { r->deallocate(p, block, alignment); });
}

enum class order { lifo, fifo, random };

// Allocates and touches `batch` blocks, then frees them in the given order.
// Afterwards, untimed: one more batch, every block checked, and the memory
// footprint read with the whole batch live.
void batch_loop(benchmark::State& state, std::pmr::memory_resource* r, order how,
                const strata::bench::meter& memory) {
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
  strata::bench::validation checks;
  for (void*& p : blocks) {
    p = r->allocate(block, alignment);
    checks.block(p, block, alignment);
  }
  memory.sample(checks, batch * block, blocks);
  for (std::size_t i : free_order) r->deallocate(blocks[i], block, alignment);
  checks.finish(state);
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

constexpr strata::slab::options slab_options{
    .slot_size = block, .slot_alignment = alignment, .capacity = 4096};

strata::bench::meter stats_meter(const strata::resource& r) {
  return {"stats", [&r] { return r.stats().bytes_reserved; }};
}

// Runs body(state, resource, meter) for every contender of a workload.
template <class Body>
void register_contenders(const std::string& workload, Body body, bool report_overhead = false) {
  namespace sb = strata::bench;
  sb::add(workload + "/floor", [=](benchmark::State& s) {
    sb::bare_free_list floor{block};
    body(s, opaque(&floor), sb::meter{"carved", [&floor] { return floor.carved(); }});
  });
  sb::add(workload + "/strata_slab", [=](benchmark::State& s) {
    strata::slab slab{slab_options, &chunks()};
    body(s, opaque(&slab), stats_meter(slab));
    if (report_overhead) {
      s.counters["overhead"] =
          static_cast<double>(slab.stats().bytes_reserved) / static_cast<double>(slab.capacity() * block);
    }
  });
  sb::add(workload + "/strata_extendable_slab", [=](benchmark::State& s) {
    strata::extendable_slab slab{{.slot_size = block}, &chunks()};
    body(s, opaque(&slab), stats_meter(slab));
    if (report_overhead) {
      s.counters["overhead"] =
          static_cast<double>(slab.stats().bytes_reserved) /
          static_cast<double>(slab.segment_count() * slab.get_options().slots_per_segment * block);
    }
  });
  sb::add(workload + "/boost_pool", [=](benchmark::State& s) {
    boost_pool_resource pool{block};
    body(s, opaque(&pool), sb::meter{"upstream", [] { return counting_user_allocator::outstanding; }});
  });
  sb::add(workload + "/std_unsync_pool", [=](benchmark::State& s) {
    sb::counting_upstream upstream;
    std::pmr::unsynchronized_pool_resource pool{&upstream};
    body(s, opaque(&pool), upstream.peak_meter());
  });
  sb::add(workload + "/std_sync_pool", [=](benchmark::State& s) {
    sb::counting_upstream upstream;
    std::pmr::synchronized_pool_resource pool{&upstream};
    body(s, opaque(&pool), upstream.peak_meter());
  });
#if STRATA_BENCH_FOONATHAN
  sb::add(workload + "/foonathan_pool", [=](benchmark::State& s) {
    sb::foonathan::pool_resource pool{block};
    body(s, opaque(&pool), sb::foonathan::heap_meter());
  });
#endif
  for (const sb::peer& p : sb::peers()) {
    sb::add(workload + "/" + p.name, [=](benchmark::State& s) { body(s, p.resource, p.memory); });
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  register_contenders("slab_pair/64B",
                      [](benchmark::State& s, std::pmr::memory_resource* r, const auto&) { pair_pmr(s, r); });
  // The floor with its virtual call devirtualized and inlined (bare_free_list
  // is final and called through its own type): what the pmr call itself
  // costs, for reference. Never a peer (report.py skips floor_* names).
  strata::bench::add("slab_pair/64B/floor_inlined", [](benchmark::State& s) {
    strata::bench::bare_free_list floor{block};
    pair_loop(
        s, [&floor] { return floor.allocate(block, alignment); },
        [&floor](void* p) { floor.deallocate(p, block, alignment); });
  });
  // The typed path (issue 15): strata::allocator inlines the slab's fast path
  // into the loop, with no virtual call; the target is 1.2x floor_inlined.
  strata::bench::add("slab_pair/64B/strata_slab_typed", [](benchmark::State& s) {
    strata::slab slab{slab_options, &chunks()};
    strata::allocator<node64, strata::slab> typed{&slab};
    pair_loop(
        s, [&typed] { return typed.allocate(1); },
        [&typed](void* p) { typed.deallocate(static_cast<node64*>(p), 1); });
  });
  if (strata::bench::mi_direct().malloc != nullptr) {  // DESIGN.md lists it among this workload's peers
    strata::bench::add("slab_pair/64B/mimalloc_direct", [](benchmark::State& s) {
      const auto& f = strata::bench::mi_direct();
      pair_loop(
          s, [&f] { return f.malloc(block); }, [&f](void* p) { f.free(p); });
    });
  }
#if STRATA_BENCH_FOONATHAN
  // foonathan's pool called directly (no pmr, no virtual call), as mimalloc_direct is elsewhere.
  strata::bench::add("slab_pair/64B/foonathan_pool_direct", [](benchmark::State& s) {
    strata::bench::foonathan::pool pool{block, strata::bench::foonathan::pool::min_block_size(block, 4096)};
    pair_loop(
        s, [&pool] { return pool.allocate_node(); }, [&pool](void* p) { pool.deallocate_node(p); });
  });
  // foonathan's own typed allocator (std_allocator over the same pool), the
  // peer of strata_slab_typed.
  strata::bench::add("slab_pair/64B/foonathan_pool_typed", [](benchmark::State& s) {
    using pool = strata::bench::foonathan::pool;
    pool nodes{block, pool::min_block_size(block, 4096)};
    ::foonathan::memory::std_allocator<node64, pool> typed{nodes};
    pair_loop(
        s, [&typed] { return typed.allocate(1); },
        [&typed](void* p) { typed.deallocate(static_cast<node64*>(p), 1); });
  });
#endif
  const std::pair<const char*, order> orders[] = {
      {"lifo", order::lifo}, {"fifo", order::fifo}, {"random", order::random}};
  for (const auto& [name, how] : orders) {
    register_contenders(
        std::string("slab_batch/64B_") + name,
        [how = how](benchmark::State& s, std::pmr::memory_resource* r, const strata::bench::meter& m) {
          batch_loop(s, r, how, m);
        },
        true);
  }
  // Scaling: each thread runs its own pairs on one shared extendable_slab.
  for (int threads : {1, 2}) {
    strata::bench::add("slab_pair_threads/64B/strata_extendable_slab",
                       [](benchmark::State& s) { pair_pmr(s, opaque(&shared_slab())); })
        ->Threads(threads)
        ->UseRealTime();
    strata::bench::add("slab_pair_threads/64B/new_delete",
                       [](benchmark::State& s) { pair_pmr(s, std::pmr::new_delete_resource()); })
        ->Threads(threads)
        ->UseRealTime();
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
