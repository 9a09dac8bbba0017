// SPDX-License-Identifier: MIT
// arena against its floors and the peers:
//
//   mixed/8-512B_live10000/*      one thread replaces a random block of a 10,000-block
//                                 live set with one of a random size in 8..512 B
//   mixed_threads/8-512B_live10000/*  the same on 1 and 2 threads, each with its own
//                                 live set, on one shared arena (wall-clock scaling)
//   producer_consumer/8-512B/*    one thread allocates, the other frees everything
//                                 (all frees cross-thread), through a ring of 1024
//
// Contenders: "floor" (bare_size_class_lists, or the local+remote free list
// below), "strata", every peer behind pmr, and "mimalloc_direct" (mi_malloc /
// mi_free called through function pointers, no pmr), libstdc++'s and
// Boost.Container's pools and foonathan-memory's memory_pool_collection. Every block is checked for
// alignment and written in an untimed pass of the same sequence before the
// timed loop (a misaligned contender is measured and flagged), and the
// footprint with the live set in place is read then.
//
//   build-release/bench/arena_bench --benchmark_repetitions=5
//       --benchmark_enable_random_interleaving=true --benchmark_format=json > out.json
//   python3 bench/report.py --out /tmp/report.md out.json

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <strata/arena.hpp>
#include <strata/page_resource.hpp>

#include "support/boost_container.hpp"
#include "support/foonathan.hpp"
#include "support/peers.hpp"

namespace {

using strata::bench::opaque;

constexpr std::size_t live_count = 10'000;
constexpr std::size_t pattern_size = 1 << 16;  // precomputed sizes and slots, a power of two
// What a pmr container of n-byte objects asks for: alignof(T) for a T of that
// size, at most the fundamental alignment. mi_malloc guarantees the same.
constexpr std::size_t alignment_for(std::size_t bytes) noexcept {
  return bytes >= alignof(std::max_align_t) ? alignof(std::max_align_t) : std::bit_floor(bytes);
}

// Spins briefly, then yields: the two threads share two cores with whatever
// else runs on the machine, and a descheduled partner must get the core back.
template <class Ready>
void wait_until(Ready ready) {
  for (int spins = 0; !ready(); ++spins) {
    if (spins > 64) std::this_thread::yield();
  }
}

struct pattern {
  std::vector<std::uint32_t> sizes;  // 8..512
  std::vector<std::uint32_t> slots;  // 0..live_count-1
  explicit pattern(unsigned seed) {
    std::mt19937 rng(seed);
    for (std::size_t i = 0; i < pattern_size; ++i) {
      sizes.push_back(8 + static_cast<std::uint32_t>(rng() % 505));
      slots.push_back(static_cast<std::uint32_t>(rng() % live_count));
    }
  }
};

// ------------------------------------------------------------------ floor

/// The floor for all-cross-thread workloads: per 16-byte class (up to 512 B),
/// each thread pops from its own local list and pushes frees onto its own
/// remote list; a remote list of batch blocks is handed to a per-class
/// shared stack under a mutex, from which an empty local list takes a whole
/// batch. Fresh blocks come from one buffer by an atomic bump. It checks
/// nothing and counts nothing. One instance per thread-local state: a new
/// instance resets a thread's lists through an id compare.
class bare_local_remote_lists final : public std::pmr::memory_resource {
 public:
  explicit bare_local_remote_lists(std::size_t capacity = std::size_t{256} << 20)
      : id_(next_id().fetch_add(1) + 1),
        buffer_(static_cast<std::byte*>(::operator new (capacity, std::align_val_t{4096}))),
        end_(buffer_ + capacity) {}
  ~bare_local_remote_lists() override { ::operator delete (buffer_, std::align_val_t{4096}); }

 private:
  static constexpr std::size_t class_count = 33;
  static constexpr std::uint32_t batch = 256;
  struct thread_lists {
    std::uint64_t owner = 0;
    void* local[class_count]{};
    void* remote[class_count]{};
    std::uint32_t remote_count[class_count]{};
  };
  struct shared_stack {
    std::mutex mutex;
    void* batches = nullptr;  // linked through each batch head's second word
  };
  static std::atomic<std::uint64_t>& next_id() {
    static std::atomic<std::uint64_t> id{0};
    return id;
  }
  thread_lists& mine() {
    static thread_local thread_lists lists;
    if (lists.owner != id_) [[unlikely]]
      lists = thread_lists{id_};
    return lists;
  }
  void* do_allocate(std::size_t bytes, std::size_t) override {
    const std::size_t cls = (bytes + 15) >> 4;
    thread_lists& t = mine();
    if (void* p = t.local[cls]; p != nullptr) [[likely]] {
      t.local[cls] = *static_cast<void**>(p);
      return p;
    }
    {
      std::lock_guard lock(shared_[cls].mutex);
      if (void* head = shared_[cls].batches; head != nullptr) {
        shared_[cls].batches = static_cast<void**>(head)[1];
        t.local[cls] = *static_cast<void**>(head);
        return head;
      }
    }
    const std::size_t size = cls == 0 ? 16 : cls << 4;
    std::byte* p = fresh_.fetch_add(size, std::memory_order_relaxed) + buffer_;
    if (p + size > end_) throw std::bad_alloc();
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t) override {
    const std::size_t cls = (bytes + 15) >> 4;
    thread_lists& t = mine();
    *static_cast<void**>(p) = t.remote[cls];
    t.remote[cls] = p;
    if (++t.remote_count[cls] == batch) [[unlikely]] {
      // The last pushed block heads the batch; its list ends in nullptr.
      std::lock_guard lock(shared_[cls].mutex);
      static_cast<void**>(p)[1] = shared_[cls].batches;
      shared_[cls].batches = p;
      t.remote[cls] = nullptr;
      t.remote_count[cls] = 0;
    }
  }
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }

  std::uint64_t id_;
  std::byte* buffer_;
  std::byte* end_;
  std::atomic<std::size_t> fresh_{0};
  shared_stack shared_[class_count];
};

// ---------------------------------------------------------- mixed, 1 thread

// The per-iteration work: free a random live block, allocate one of a random size, touch it.
// Before the timed loop, untimed: the live set is built and the same
// sequence run once, every block checked, and the footprint read.
template <class Allocate, class Deallocate>
void mixed_loop(benchmark::State& state, unsigned seed, Allocate allocate, Deallocate deallocate,
                const strata::bench::meter& memory = {}) {
  const pattern pat(seed);
  strata::bench::validation checks;
  std::vector<std::byte*> live(live_count);
  std::vector<std::uint32_t> live_size(live_count);
  std::size_t requested = 0;
  for (std::size_t i = 0; i < live_count; ++i) {
    live_size[i] = pat.sizes[(i * 7) & (pattern_size - 1)];
    live[i] = static_cast<std::byte*>(allocate(live_size[i]));
    checks.block(live[i], live_size[i], alignment_for(live_size[i]));
    requested += live_size[i];
  }
  for (std::size_t i = 0; i < pattern_size; ++i) {
    const std::uint32_t slot = pat.slots[i];
    deallocate(live[slot], live_size[slot]);
    requested -= live_size[slot];
    live_size[slot] = pat.sizes[i];
    live[slot] = static_cast<std::byte*>(allocate(live_size[slot]));
    checks.block(live[slot], live_size[slot], alignment_for(live_size[slot]));
    requested += live_size[slot];
  }
  memory.sample(checks, requested, live);
  std::size_t i = 0;
  for (auto _ : state) {
    const std::uint32_t slot = pat.slots[i];
    deallocate(live[slot], live_size[slot]);
    live_size[slot] = pat.sizes[i];
    live[slot] = static_cast<std::byte*>(allocate(live_size[slot]));
    live[slot][0] = std::byte{1};
    i = (i + 1) & (pattern_size - 1);
  }
  for (std::size_t s = 0; s < live_count; ++s) deallocate(live[s], live_size[s]);
  checks.finish(state);
  state.SetItemsProcessed(state.iterations());
}

void mixed_pmr(benchmark::State& state, std::pmr::memory_resource* r, const strata::bench::meter& memory = {},
               unsigned seed = 1) {
  mixed_loop(
      state, seed, [r](std::size_t n) { return r->allocate(n, alignment_for(n)); },
      [r](void* p, std::size_t n) { r->deallocate(p, n, alignment_for(n)); }, memory);
}

strata::arena& shared_arena() {
  static strata::arena heap{{.capacity = std::size_t{256} << 20}, strata::system_pages()};
  return heap;
}

// ------------------------------------------------------- producer/consumer

struct ring {
  static constexpr std::size_t capacity = 1024;
  struct item {
    void* p;
    std::size_t bytes;
  };
  item items[capacity];
  alignas(64) std::atomic<std::size_t> head{0};  // written by the producer
  alignas(64) std::atomic<std::size_t> tail{0};  // written by the consumer
};

ring& the_ring() {
  static ring r;
  return r;
}

// Thread 0 allocates and pushes; thread 1 pops and frees: every free is cross-thread.
void producer_consumer(benchmark::State& state, std::pmr::memory_resource* r) {
  static const pattern pat(3);
  ring& q = the_ring();
  if (state.thread_index() == 0) {
    q.head.store(0);
    q.tail.store(0);
    // Untimed: the sizes this run uses, each block checked, on one thread.
    strata::bench::validation checks;
    std::vector<std::pair<void*, std::size_t>> check;
    for (std::size_t i = 0; i < 4096; ++i) {
      void* p = r->allocate(pat.sizes[i], alignment_for(pat.sizes[i]));
      check.emplace_back(p, pat.sizes[i]);
      checks.block(p, pat.sizes[i], alignment_for(pat.sizes[i]));
    }
    for (auto [p, n] : check) r->deallocate(p, n, alignment_for(n));
    checks.finish(state);
  }
  // The benchmark's start barrier orders the reset above before either loop.
  std::size_t i = 0;
  if (state.thread_index() == 0) {
    for (auto _ : state) {
      const std::size_t bytes = pat.sizes[i & (pattern_size - 1)];
      void* p = r->allocate(bytes, alignment_for(bytes));
      static_cast<std::byte*>(p)[0] = std::byte{1};
      const std::size_t h = q.head.load(std::memory_order_relaxed);
      wait_until([&] { return h - q.tail.load(std::memory_order_acquire) != ring::capacity; });
      q.items[h % ring::capacity] = {p, bytes};
      q.head.store(h + 1, std::memory_order_release);
      ++i;
    }
  } else {
    for (auto _ : state) {
      const std::size_t t = q.tail.load(std::memory_order_relaxed);
      wait_until([&] { return q.head.load(std::memory_order_acquire) != t; });
      const ring::item it = q.items[t % ring::capacity];
      q.tail.store(t + 1, std::memory_order_release);
      r->deallocate(it.p, it.bytes, alignment_for(it.bytes));
    }
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const auto& peers = strata::bench::peers();
  const auto& mi = strata::bench::mi_direct();

  // Internal waste from class spacing: the worst block size over request
  // size, as the arena rounds (block_size_for, what allocate uses), over
  // 129 B..256 KiB (DESIGN.md's <= 12.5 %) and over 64..512 B (issue 15's row;
  // docs/design/arena.md says why the 16 B quantum stays below 128 B).
  namespace sb = strata::bench;
  sb::add("class_spacing/8B-256KiB/strata", [](benchmark::State& s) {
    const auto worst = [](std::size_t low, std::size_t high) {
      double w = 1.0;
      for (std::size_t n = low; n <= high; ++n) {
        w = std::max(w, static_cast<double>(strata::arena::block_size_for(n, alignment_for(n))) /
                            static_cast<double>(n));
      }
      return w;
    };
    std::size_t n = 8;
    for (auto _ : s) {
      benchmark::DoNotOptimize(strata::arena::block_size_for(n, 16));
      n = n == 512 ? 8 : n + 1;
    }
    s.counters["worst_above_128B"] = worst(129, strata::detail::arena_max_small);
    s.counters["worst_64_512B"] = worst(64, 512);
  });

  // mixed, one thread
  sb::add("mixed/8-512B_live10000/floor", [](benchmark::State& s) {
    sb::bare_size_class_lists floor;
    mixed_pmr(s, opaque(&floor), {"carved", [&floor] { return floor.carved(); }});
  });
  sb::add("mixed/8-512B_live10000/strata", [](benchmark::State& s) {
    strata::arena heap{{.capacity = std::size_t{64} << 20}, strata::system_pages()};
    // The region is reserved whole at construction; what the workload used
    // of it is what was carved (the region less what was never carved).
    mixed_pmr(s, opaque(&heap), {"carved", [&heap] {
                                   const auto d = heap.details();
                                   return d.capacity - d.remaining;
                                 }});
  });
  if (mi.malloc != nullptr) {
    sb::add("mixed/8-512B_live10000/mimalloc_direct", [](benchmark::State& s) {
      const auto& f = sb::mi_direct();
      mixed_loop(
          s, 1, [&f](std::size_t n) { return f.malloc(n); }, [&f](void* p, std::size_t) { f.free(p); },
          f.memory());
    });
  }
  // libstdc++'s pools: the DESIGN.md note on misaligned blocks comes from these.
  sb::add("mixed/8-512B_live10000/std_unsync_pool", [](benchmark::State& s) {
    sb::counting_upstream upstream;
    std::pmr::unsynchronized_pool_resource pool{&upstream};
    mixed_pmr(s, opaque(&pool), upstream.peak_meter());
  });
  sb::add("mixed/8-512B_live10000/std_sync_pool", [](benchmark::State& s) {
    sb::counting_upstream upstream;
    std::pmr::synchronized_pool_resource pool{&upstream};
    mixed_pmr(s, opaque(&pool), upstream.peak_meter());
  });
#if STRATA_BENCH_BOOST_CONTAINER
  sb::add("mixed/8-512B_live10000/boost_unsync_pool", [](benchmark::State& s) {
    sb::boost_container::unsync_pool_resource pool;
    mixed_pmr(s, opaque(&pool), pool.memory());
  });
#endif
#if STRATA_BENCH_FOONATHAN
  sb::add("mixed/8-512B_live10000/foonathan_pool_collection", [](benchmark::State& s) {
    sb::foonathan::pool_collection_resource pools{512};
    mixed_pmr(s, opaque(&pools), sb::foonathan::heap_meter());
  });
#endif
  for (const sb::peer& p : peers) {
    sb::add("mixed/8-512B_live10000/" + p.name,
            [r = p.resource, m = p.memory](benchmark::State& s) { mixed_pmr(s, r, m); });
  }

  // mixed, 1 and 2 threads on one shared arena, each thread with its own live set
  for (int threads : {1, 2}) {
    strata::bench::add("mixed_threads/8-512B_live10000/strata",
                       [](benchmark::State& s) {
                         mixed_pmr(s, opaque(&shared_arena()), {},
                                   1 + static_cast<unsigned>(s.thread_index()));
                       })
        ->Threads(threads)
        ->UseRealTime();
    if (mi.malloc != nullptr) {
      strata::bench::add("mixed_threads/8-512B_live10000/mimalloc_direct",
                         [](benchmark::State& s) {
                           const auto& f = strata::bench::mi_direct();
                           mixed_loop(
                               s, 1 + static_cast<unsigned>(s.thread_index()),
                               [&f](std::size_t n) { return f.malloc(n); },
                               [&f](void* p, std::size_t) { f.free(p); });
                         })
          ->Threads(threads)
          ->UseRealTime();
    }
  }

  // producer/consumer, two threads
  strata::bench::add("producer_consumer/8-512B/floor",
                     [](benchmark::State& s) {
                       static bare_local_remote_lists* floor = nullptr;
                       if (s.thread_index() == 0) floor = new bare_local_remote_lists;
                       // Both threads need the same instance: wait for thread 0 to publish it.
                       static std::atomic<int> arrived{0};
                       arrived.fetch_add(1);
                       wait_until([] { return arrived.load() == 2; });
                       producer_consumer(s, opaque(floor));
                       if (arrived.fetch_sub(1) == 1) {
                         delete floor;
                         floor = nullptr;
                       } else {
                         wait_until([] { return arrived.load() == 0; });
                       }
                     })
      ->Threads(2)
      ->UseRealTime();
  strata::bench::add("producer_consumer/8-512B/strata",
                     [](benchmark::State& s) { producer_consumer(s, opaque(&shared_arena())); })
      ->Threads(2)
      ->UseRealTime();
  for (const strata::bench::peer& p : peers) {
    strata::bench::add("producer_consumer/8-512B/" + p.name,
                       [r = p.resource](benchmark::State& s) { producer_consumer(s, r); })
        ->Threads(2)
        ->UseRealTime();
  }

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
