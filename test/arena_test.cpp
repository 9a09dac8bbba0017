// SPDX-License-Identifier: MIT
#include <strata/arena.hpp>
#include <strata/detail/sanitizer.hpp>

// Concerns:
// 1. The class table: 96 classes from 16 B to 256 KiB, each request gets the
//    smallest class that holds it (class edges +-1), and spacing wastes at most
//    1/9 of a block above 128 B (<= 12.5 % of the request).
// 2. Every power-of-two alignment up to 4096 is honoured for every size, by a
//    class aligned enough; larger alignments are honoured by the large path.
// 3. Freed small blocks are reused by the same class; large blocks are
//    tracked, reused by later requests that fit, and coalesce.
// 4. Exhaustion throws allocation_failure (capacity), is counted, and the
//    arena stays usable; impossible sizes throw size_overflow.
// 5. The region comes from upstream once and goes back at destruction.
// 6. Threads: a thread that exits hands its cached blocks to the central
//    pool; an arena destroyed before its threads exit loses nothing; several
//    arenas live at once in one thread; frees on another thread are counted
//    as remote and handed back in batches; concurrent use never hands out a
//    block twice.
// 7. Misuse: foreign pointers and bad large frees are counted in every mode;
//    hardened mode also catches double free and size/alignment mismatch; none
//    corrupts state.
// 8. stats() is exact single-threaded; details() adds up.
// 9. Invalid options and alignments give clear errors.
// 10. The conformance kit passes, including concurrent use.

#define BOOST_TEST_MODULE arena
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/mman.h>

#include <strata/detail/extent_map.hpp>
#include <strata/page_resource.hpp>
#include <strata/tracking_resource.hpp>

#include "conformance.hpp"
#include "counting_resource.hpp"
#include "fixtures.hpp"

namespace {

constexpr std::size_t kib = 1024;
constexpr std::size_t mib = 1024 * kib;

struct arena_factory {
  static constexpr bool has_upstream = true;
  static constexpr bool thread_safe = true;
  std::unique_ptr<strata::resource> make(std::pmr::memory_resource* upstream) const {
    // The kit holds a few hundred blocks up to 64 KiB aligned up to 4096.
    return std::make_unique<strata::arena>(strata::arena::options{.capacity = 32 * mib}, upstream);
  }
};

// An upstream whose blocks are aligned to 4096 and never to 8192.
class page_only_resource final : public std::pmr::memory_resource {
  void* do_allocate(std::size_t bytes, std::size_t) override {
    return static_cast<std::byte*>(::operator new (bytes + 4096, std::align_val_t{8192})) + 4096;
  }
  void do_deallocate(void* p, std::size_t, std::size_t) override {
    ::operator delete (static_cast<std::byte*>(p) - 4096, std::align_val_t{8192});
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
};

std::size_t total_central(const strata::arena::details_type& d) {
  std::size_t n = 0;
  for (const auto& c : d.classes) n += c.central_blocks;
  return n;
}

std::size_t total_cached(const strata::arena::details_type& d) {
  std::size_t n = 0;
  for (const auto& c : d.classes) n += c.cached_blocks;
  return n;
}

std::size_t cached_bytes(const strata::arena::details_type& d) {
  std::size_t n = 0;
  for (const auto& c : d.classes) n += c.cached_blocks * c.block_size;
  return n;
}

// A block a soak holds: its words 0 and last carry its size.
struct block {
  std::uint64_t* p;
  std::size_t bytes;
};

// What a soak's threads share: live-byte books, failure and corruption
// counts, one mailbox per thread for cross-thread frees, a phase barrier.
struct soak_state {
  explicit soak_state(int threads)
      : mailbox(static_cast<std::size_t>(threads)),
        mailbox_mutex(static_cast<std::size_t>(threads)),
        sync(threads + 1) {}
  void raise_peak(std::size_t now) {
    for (std::size_t peak = peak_live.load(); now > peak && !peak_live.compare_exchange_weak(peak, now);) {
    }
  }
  std::atomic<std::size_t> live_bytes{0};
  std::atomic<std::size_t> peak_live{0};
  std::atomic<int> failures{0};
  std::atomic<int> corrupted{0};
  std::vector<std::vector<block>> mailbox;
  std::vector<std::mutex> mailbox_mutex;
  std::barrier<> sync;
};

// Pages of [p, p + bytes) resident in memory, by mincore(2): the region's
// own pages, not the whole process's RSS. p is page-aligned.
std::size_t resident_pages(void* p, std::size_t bytes) {
  std::vector<unsigned char> in(bytes / 4096);
  BOOST_REQUIRE(::mincore(p, bytes, in.data()) == 0);
  return static_cast<std::size_t>(
      std::count_if(in.begin(), in.end(), [](unsigned char c) { return (c & 1) != 0; }));
}

// A log-uniform size in [low, high], a multiple of 8 (the soaks' request mix).
std::size_t log_uniform_size(std::mt19937_64& rng, std::size_t low, std::size_t high) {
  const double span = std::log(static_cast<double>(high) / static_cast<double>(low));
  return static_cast<std::size_t>(static_cast<double>(low) *
                                  std::exp(span * static_cast<double>(rng() % 1000) / 999.0)) &
         ~std::size_t{7};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(arena)

STRATA_CONFORMANCE_SUITE(arena_factory)

BOOST_AUTO_TEST_CASE(each_request_gets_the_smallest_class_that_holds_it) {
  using strata::detail::arena_class_size;
  std::size_t previous = 0;
  for (unsigned cls = 0; cls < strata::detail::arena_class_count; ++cls) {
    const std::size_t size = arena_class_size(cls);
    BOOST_TEST(size > previous);
    BOOST_TEST(size % 16 == 0u);
    // Class edges: the size itself and one below stay in the class, one above moves on.
    BOOST_TEST(strata::arena::block_size_for(size, 8) == size);
    BOOST_TEST(strata::arena::block_size_for(size - 1, 8) == size);
    BOOST_TEST(strata::arena::block_size_for(previous + 1, 8) == size);
    if (cls + 1 < strata::detail::arena_class_count) {
      BOOST_TEST(strata::arena::block_size_for(size + 1, 8) == arena_class_size(cls + 1));
    }
    previous = size;
  }
  for (std::size_t bytes = 0; bytes <= 4 * kib; ++bytes) {  // the lookup table agrees with the arithmetic
    BOOST_TEST(strata::detail::arena_size_class(bytes) == strata::detail::arena_size_class_computed(bytes));
  }
  BOOST_TEST(arena_class_size(0) == 16u);
  BOOST_TEST(previous == 256 * kib);
  BOOST_TEST(strata::arena::block_size_for(0, 1) == 16u);
  BOOST_TEST(strata::arena::block_size_for(256 * kib + 1, 8) == 0u);  // large path
  BOOST_TEST(strata::arena::block_size_for(16, 8192) == 0u);          // large path
  BOOST_TEST(strata::arena::block_size_for(23, 16) == 32u);
  BOOST_TEST(strata::arena::block_size_for(100, 64) == 128u);  // 112 is aligned only to 16
  BOOST_TEST(strata::arena::block_size_for(1, 4096) == 4096u);
}

BOOST_AUTO_TEST_CASE(class_spacing_wastes_at_most_one_ninth_above_128_bytes) {
  // Worst case is one byte above a class edge; measured over every size.
  double worst = 0;
  double sum = 0;
  std::size_t counted = 0;
  for (std::size_t bytes = 129; bytes <= 256 * kib; ++bytes) {
    const std::size_t block = strata::arena::block_size_for(bytes, 8);
    const double waste = static_cast<double>(block - bytes) / static_cast<double>(block);
    worst = std::max(worst, waste);
    sum += waste;
    ++counted;
  }
  BOOST_TEST_MESSAGE("worst waste above 128 B: " << worst * 100 << " %, mean " << sum / counted * 100
                                                 << " %");
  BOOST_TEST(worst <= 1.0 / 9 + 1e-12);
  BOOST_TEST(worst <= 0.125);
  for (std::size_t bytes = 1; bytes <= 128; ++bytes) {
    BOOST_TEST(strata::arena::block_size_for(bytes, 8) - bytes < 16u);  // the 16 B quantum below
  }
}

BOOST_AUTO_TEST_CASE(every_alignment_is_honoured_for_every_class_edge) {
  strata::arena heap{{.capacity = 64 * mib}, strata::system_pages()};
  std::vector<std::tuple<void*, std::size_t, std::size_t>> live;
  for (std::size_t alignment = 1; alignment <= 64 * kib; alignment *= 2) {
    for (unsigned cls = 0; cls < strata::detail::arena_class_count; cls += 5) {
      const std::size_t size = strata::detail::arena_class_size(cls);
      for (std::size_t bytes : {size - 1, size, size + 1}) {
        void* p = heap.allocate(bytes, alignment);
        BOOST_TEST(reinterpret_cast<std::uintptr_t>(p) % alignment == 0u,
                   bytes << " aligned to " << alignment);
        std::memset(p, 0xab, bytes);
        live.emplace_back(p, bytes, alignment);
      }
    }
    // The libstdc++ pool case: 23 bytes aligned to 16 must not come back at 8 mod 16.
    void* p = heap.allocate(23, 16);
    BOOST_TEST(reinterpret_cast<std::uintptr_t>(p) % 16 == 0u);
    heap.deallocate(p, 23, 16);
  }
  for (auto [p, bytes, alignment] : live) heap.deallocate(p, bytes, alignment);
  BOOST_TEST(heap.stats().bytes_in_use == 0u);
  BOOST_TEST(heap.stats().misuse_detected == 0u);
}

BOOST_AUTO_TEST_CASE(freed_small_blocks_are_reused_by_their_class) {
  strata::arena heap{{.capacity = 4 * mib}, strata::system_pages()};
  void* p = heap.allocate(100, 8);
  heap.deallocate(p, 100, 8);
  BOOST_TEST(heap.allocate(100, 8) == p);  // LIFO in this thread's bin
  heap.deallocate(p, 100, 8);
  void* q = heap.allocate(110, 16);  // same class (112 B)
  BOOST_TEST(q == p);
  heap.deallocate(q, 110, 16);
  const std::size_t remaining = heap.details().remaining;
  for (int round = 0; round < 1000; ++round) {
    void* r = heap.allocate(64, 8);
    heap.deallocate(r, 64, 8);
  }
  BOOST_TEST(heap.details().remaining <= remaining);
  BOOST_TEST(heap.details().remaining >= remaining - 64 * kib);  // one run of the 64 B class
}

BOOST_AUTO_TEST_CASE(large_blocks_are_tracked_reused_and_coalesced) {
  strata::arena heap{{.capacity = 16 * mib}, strata::system_pages()};
  BOOST_TEST(heap.details().free_extents == 1u);  // the whole region
  void* a = heap.allocate(300 * kib, 64);
  void* b = heap.allocate(500 * kib, 64);
  void* c = heap.allocate(300 * kib, 64);  // keeps b's extent apart from the rest
  auto d = heap.details();
  BOOST_TEST(d.large_live == 3u);
  BOOST_TEST(d.large_live_bytes == 1100 * kib);
  BOOST_TEST(d.remaining == 16 * mib - 1100 * kib);
  heap.deallocate(b, 500 * kib, 64);
  d = heap.details();
  BOOST_TEST(d.free_extents == 2u);  // b's, and the rest of the region
  BOOST_TEST(d.remaining == 16 * mib - 600 * kib);
  void* e = heap.allocate(400 * kib, 16);  // best fit: b's extent
  BOOST_TEST(e == b);
  heap.deallocate(e, 400 * kib, 16);
  heap.deallocate(a, 300 * kib, 64);  // coalesces with the extent after it
  d = heap.details();
  BOOST_TEST(d.free_extents == 2u);
  void* f = heap.allocate(800 * kib, 4096);  // the coalesced extent fits exactly
  BOOST_TEST(f == a);
  heap.deallocate(f, 800 * kib, 4096);
  heap.deallocate(c, 300 * kib, 64);  // everything coalesces into one extent
  d = heap.details();
  BOOST_TEST(d.free_extents == 1u);
  BOOST_TEST(d.largest_free_extent == d.capacity);
  BOOST_TEST(d.remaining == d.capacity);
  BOOST_TEST(heap.stats().bytes_in_use == 0u);
}

BOOST_AUTO_TEST_CASE(alignments_above_a_page_are_honoured_by_the_large_path) {
  // Regression: offsets were once aligned instead of addresses, which is
  // wrong when the upstream aligns the region only to a page.
  page_only_resource page_aligned;
  strata::arena heap{{.capacity = 16 * mib}, &page_aligned};
  for (std::size_t alignment : {8 * kib, 64 * kib, 2 * mib}) {
    void* p = heap.allocate(24, alignment);
    BOOST_TEST(reinterpret_cast<std::uintptr_t>(p) % alignment == 0u);
    BOOST_TEST(heap.details().large_live == 1u);
    heap.deallocate(p, 24, alignment);
  }
  BOOST_TEST(heap.details().large_live == 0u);
  BOOST_TEST(heap.stats().misuse_detected == 0u);
}

BOOST_AUTO_TEST_CASE(exhaustion_throws_capacity_and_the_arena_stays_usable) {
  strata::arena heap{{.capacity = 1 * mib, .refill_bytes = 4 * kib, .cache_bytes_per_class = 8 * kib},
                     strata::system_pages()};
  std::vector<void*> blocks;
  bool failed = false;
  try {
    for (;;) blocks.push_back(heap.allocate(1000, 8));
  } catch (const strata::allocation_failure& e) {
    failed = true;
    BOOST_TEST((e.reason() == strata::failure_reason::capacity));
    BOOST_TEST(e.resource_name() == "arena");
  }
  BOOST_TEST(failed);
  BOOST_TEST(blocks.size() > 900u);  // nearly the whole region went to the 1024 B class
  BOOST_TEST(heap.stats().failed_allocations == 1u);
  BOOST_CHECK_THROW(static_cast<void>(heap.allocate(300 * kib, 8)), strata::allocation_failure);
  BOOST_TEST(heap.stats().failed_allocations == 2u);
  // Usable again once blocks come back: they are reused, nothing new is carved.
  heap.deallocate(blocks.back(), 1000, 8);
  blocks.pop_back();
  void* again = heap.allocate(1000, 8);
  blocks.push_back(again);
  for (void* p : blocks) heap.deallocate(p, 1000, 8);
  const strata::resource_stats s = heap.stats();
  BOOST_TEST(s.bytes_in_use == 0u);
  BOOST_TEST(s.allocations == s.deallocations);
  BOOST_TEST(s.misuse_detected == 0u);
}

BOOST_AUTO_TEST_CASE(large_requests_reuse_freed_extents_before_failing) {
  strata::arena heap{{.capacity = 2 * mib}, strata::system_pages()};
  void* a = heap.allocate(1 * mib, 8);
  void* b = heap.allocate(1 * mib, 8);
  BOOST_CHECK_THROW(static_cast<void>(heap.allocate(1 * mib, 8)), strata::allocation_failure);
  heap.deallocate(a, 1 * mib, 8);
  void* c = heap.allocate(1 * mib, 8);  // the freed extent, not more capacity
  BOOST_TEST(c == a);
  heap.deallocate(c, 1 * mib, 8);
  heap.deallocate(b, 1 * mib, 8);
  BOOST_TEST(heap.details().remaining == 2 * mib);
}

BOOST_AUTO_TEST_CASE(impossible_sizes_throw_size_overflow_or_capacity) {
  strata::arena heap{{.capacity = 1 * mib}, strata::system_pages()};
  try {
    volatile std::size_t huge = SIZE_MAX - 10;  // opaque, so the compiler does not reject the call itself
    static_cast<void>(heap.allocate(huge, 8));
    BOOST_FAIL("no throw");
  } catch (const strata::allocation_failure& e) {
    BOOST_TEST((e.reason() == strata::failure_reason::size_overflow));
  }
  try {
    static_cast<void>(heap.allocate(2 * mib, 8));
    BOOST_FAIL("no throw");
  } catch (const strata::allocation_failure& e) {
    BOOST_TEST((e.reason() == strata::failure_reason::capacity));
  }
  BOOST_TEST(heap.stats().failed_allocations == 2u);
}

BOOST_AUTO_TEST_CASE(the_region_is_taken_once_and_returned_at_destruction) {
  strata::test::counting_resource upstream;
  {
    strata::arena heap{{.capacity = 4 * mib + 1}, &upstream};  // rounded up to a page
    BOOST_TEST(upstream.allocations() == 1u);
    BOOST_TEST(upstream.bytes_outstanding() == 4 * mib + 4096);
    BOOST_TEST(heap.stats().bytes_reserved == 4 * mib + 4096);
    for (int i = 0; i < 1000; ++i) static_cast<void>(heap.allocate(static_cast<std::size_t>(i), 8));
    static_cast<void>(heap.allocate(300 * kib, 8));
    BOOST_TEST(upstream.allocations() == 1u);  // never again
  }                                            // destroyed with blocks live
  BOOST_TEST(upstream.bytes_outstanding() == 0u);
  BOOST_TEST(upstream.deallocations() == 1u);
}

BOOST_AUTO_TEST_CASE(stats_are_exact_on_one_thread) {
  strata::arena heap{{.capacity = 8 * mib}, strata::system_pages()};
  void* a = heap.allocate(10, 8);
  void* b = heap.allocate(1000, 64);
  void* c = heap.allocate(400 * kib, 8);
  strata::resource_stats s = heap.stats();
  BOOST_TEST(s.bytes_in_use == 10 + 1000 + 400 * kib);
  BOOST_TEST(s.peak_bytes_in_use == s.bytes_in_use);
  BOOST_TEST(s.allocations == 3u);
  BOOST_TEST(s.upstream_allocations == 1u);
  BOOST_TEST(s.bytes_reserved == 8 * mib);
  heap.deallocate(c, 400 * kib, 8);
  heap.deallocate(a, 10, 8);
  s = heap.stats();
  BOOST_TEST(s.bytes_in_use == 1000u);
  BOOST_TEST(s.peak_bytes_in_use == 10 + 1000 + 400 * kib);
  BOOST_TEST(s.deallocations == 2u);
  heap.reset_peak();
  BOOST_TEST(heap.stats().peak_bytes_in_use == 1000u);
  heap.deallocate(b, 1000, 64);
  BOOST_TEST(heap.stats().bytes_in_use == 0u);
}

BOOST_AUTO_TEST_CASE(foreign_pointers_and_bad_large_frees_are_counted_not_obeyed) {
  strata::test::misuse_recorder recorder;
  strata::arena heap{{.capacity = 2 * mib}, strata::system_pages()};
  alignas(16) static std::byte outside[64];
  heap.deallocate(outside, 64, 16);  // foreign
  void* big = heap.allocate(300 * kib, 8);
  heap.deallocate(big, 300 * kib, 8);
  heap.deallocate(big, 300 * kib, 8);  // second free of a large block
  void* small = heap.allocate(64, 8);
  heap.deallocate(static_cast<std::byte*>(small) + 64 * kib, 400 * kib, 8);  // not a large block
  heap.deallocate(small, 64, 3);                                             // non-power-of-two alignment
  const auto reports = recorder.taken();
  BOOST_TEST(reports.size() == 4u);
  BOOST_TEST(heap.stats().misuse_detected == 4u);
  BOOST_TEST((reports.at(0).kind == strata::misuse_kind::unknown_pointer));
  BOOST_TEST((reports.at(3).kind == strata::misuse_kind::alignment_mismatch));
  // Nothing was corrupted: no large block is live, and the small block is still ours.
  BOOST_TEST(heap.details().large_live == 0u);
  void* again = heap.allocate(300 * kib, 8);
  BOOST_TEST(heap.details().large_live == 1u);
  heap.deallocate(again, 300 * kib, 8);
  BOOST_TEST(heap.stats().misuse_detected == 4u);
  heap.deallocate(small, 64, 8);
  BOOST_TEST(heap.stats().bytes_in_use == 0u);
}

BOOST_AUTO_TEST_CASE(hardened_mode_detects_double_free_and_mismatches) {
  strata::test::misuse_recorder recorder;
  strata::arena heap{{.capacity = 2 * mib, .hardened = true}, strata::system_pages()};
  void* p = heap.allocate(40, 8);
  void* q = heap.allocate(40, 8);
  heap.deallocate(p, 48, 8);   // same class, wrong size
  heap.deallocate(p, 40, 16);  // wrong alignment
  heap.deallocate(p, 40, 8);   // right
  heap.deallocate(p, 40, 8);   // double free
  void* big = heap.allocate(300 * kib, 8);
  heap.deallocate(big, 300 * kib, 8);
  heap.deallocate(big, 300 * kib, 8);  // double free on the large path
  const auto reports = recorder.taken();
  BOOST_TEST(reports.size() == 4u);
  BOOST_TEST((reports.at(0).kind == strata::misuse_kind::size_mismatch));
  BOOST_TEST((reports.at(1).kind == strata::misuse_kind::alignment_mismatch));
  BOOST_TEST((reports.at(2).kind == strata::misuse_kind::double_free));
  BOOST_TEST((reports.at(3).kind == strata::misuse_kind::double_free));
  BOOST_TEST(heap.stats().misuse_detected == 4u);
  // The double free did not put p on a free list twice: two allocations differ.
  void* r1 = heap.allocate(40, 8);
  void* r2 = heap.allocate(40, 8);
  BOOST_TEST(r1 != r2);
  BOOST_TEST(r1 != q);
  BOOST_TEST(r2 != q);
  for (void* r : {r1, r2, q}) heap.deallocate(r, 40, 8);
  BOOST_TEST(heap.stats().bytes_in_use == 0u);
  BOOST_TEST(heap.stats().misuse_detected == 4u);
}

BOOST_AUTO_TEST_CASE(hardened_defaults_to_the_build_switch) {
  BOOST_TEST(strata::arena::options{}.hardened == strata::hardened_by_default);
}

BOOST_AUTO_TEST_CASE(hardened_mode_detects_foreign_and_interior_pointers) {
  strata::test::misuse_recorder recorder;
  strata::arena heap{{.capacity = 2 * mib, .hardened = true}, strata::system_pages()};
  void* a = heap.allocate(64, 8);
  alignas(64) static std::byte outside[64];
  heap.deallocate(outside, 64, 8);                          // outside the region
  heap.deallocate(static_cast<std::byte*>(a) + 16, 48, 8);  // inside, never handed out
  const auto reports = recorder.taken();
  BOOST_TEST_REQUIRE(reports.size() == 2u);
  for (const auto& r : reports) BOOST_TEST((r.kind == strata::misuse_kind::unknown_pointer));
  BOOST_TEST(heap.stats().misuse_detected == 2u);
  // The interior pointer did not enter a free list.
  void* b = heap.allocate(48, 8);
  BOOST_TEST(b != static_cast<void*>(static_cast<std::byte*>(a) + 16));
  heap.deallocate(b, 48, 8);
  heap.deallocate(a, 64, 8);
  BOOST_TEST(heap.stats().bytes_in_use == 0u);
  BOOST_TEST(heap.stats().misuse_detected == 2u);
}

BOOST_AUTO_TEST_CASE(hardened_links_are_encoded_in_the_block) {
  strata::arena heap{{.capacity = 2 * mib, .hardened = true}, strata::system_pages()};
  void* keep = heap.allocate(64, 8);  // the run stays in use, so it is not recycled
  void* a = heap.allocate(64, 8);
  void* b = heap.allocate(64, 8);
  heap.deallocate(a, 64, 8);
  heap.deallocate(b, 64, 8);  // the run's free list: b -> a
  strata::detail::unpoison_memory(b, sizeof(void*));
  std::uintptr_t stored = 0;
  std::memcpy(&stored, b, sizeof stored);
  strata::detail::poison_memory(b, sizeof(void*));
  BOOST_TEST(stored != reinterpret_cast<std::uintptr_t>(a));  // not the plain next pointer
  // And the list still works: both come back, distinct.
  void* x = heap.allocate(64, 8);
  void* y = heap.allocate(64, 8);
  BOOST_TEST(x == b);
  BOOST_TEST(y == a);
  heap.deallocate(x, 64, 8);
  heap.deallocate(y, 64, 8);
  heap.deallocate(keep, 64, 8);
  BOOST_TEST(heap.stats().misuse_detected == 0u);
}

BOOST_AUTO_TEST_CASE(hardened_mode_catches_a_corrupted_free_list_link) {
  strata::test::misuse_recorder recorder;
  strata::arena heap{{.capacity = 2 * mib, .hardened = true}, strata::system_pages()};
  void* a = heap.allocate(64, 8);
  void* b = heap.allocate(64, 8);
  void* c = heap.allocate(64, 8);
  heap.deallocate(a, 64, 8);
  heap.deallocate(b, 64, 8);  // the class's loose list: b -> a
  // A use-after-free writes a pointer to live block c into b's link.
  strata::detail::unpoison_memory(b, sizeof(void*));
  std::memcpy(b, &c, sizeof(void*));
  strata::detail::poison_memory(b, sizeof(void*));
  BOOST_TEST(heap.allocate(64, 8) == b);  // b was validated when it was freed
  const auto reports = recorder.taken();
  BOOST_TEST_REQUIRE(reports.size() == 1u);
  BOOST_TEST((reports[0].kind == strata::misuse_kind::unknown_pointer));
  BOOST_TEST(reports[0].pointer != c);  // the plain pointer decodes to something else
  BOOST_TEST(heap.stats().misuse_detected == 1u);
  // The list was cut: neither live c nor a (behind the bad link) comes back.
  void* d = heap.allocate(64, 8);
  BOOST_TEST(d != c);
  BOOST_TEST(d != a);
  for (void* p : {b, c, d}) heap.deallocate(p, 64, 8);
  BOOST_TEST(heap.stats().misuse_detected == 1u);
}

// Regression: hardened mode took one block of a run carved from a free large
// extent and dropped the rest, so the region filled a page per small block.
BOOST_AUTO_TEST_CASE(hardened_mode_uses_all_of_a_run_carved_from_a_free_extent) {
  strata::arena heap{{.capacity = 1 * mib, .hardened = true}, strata::system_pages()};
  void* first = heap.allocate(300 * kib, 8);
  void* second = heap.allocate(300 * kib, 8);
  heap.deallocate(first, 300 * kib, 8);  // a free extent away from the never-carved end
  std::vector<void*> blocks;
  try {
    for (;;) blocks.push_back(heap.allocate(64, 8));
  } catch (const std::bad_alloc&) {
  }
  // 1 MiB less the live large block is 181 pages, in two extents (75 and
  // 106 pages) that hold 4 + 6 runs of 16 pages (1,024 blocks of 64 B each);
  // one block per page of the free extent, the old defect, would give 6,784 + 75.
  BOOST_TEST(blocks.size() >= 10240u);
  BOOST_TEST(std::set<void*>(blocks.begin(), blocks.end()).size() == blocks.size());
  for (void* p : blocks) heap.deallocate(p, 64, 8);
  heap.deallocate(second, 300 * kib, 8);
  BOOST_TEST(heap.stats().bytes_in_use == 0u);
  BOOST_TEST(heap.stats().misuse_detected == 0u);
}

// Issue 17: the region test is contains(), as on slab; owns() stays one
// release as a deprecated alias and must keep answering the same.
#if defined(STRATA_HAS_ASAN)
constexpr bool built_with_asan = true;
#else
constexpr bool built_with_asan = false;
#endif

// The inline paths leave poisoning to the slow paths when a memory tool is
// present (they make no call, issue 15): a block that goes back to this
// thread's bin, and every block of a batch, is still poisoned while free and
// unpoisoned when handed out again.
BOOST_AUTO_TEST_CASE(blocks_in_this_threads_bin_are_poisoned_under_asan,
                     *boost::unit_test::enable_if<built_with_asan>()) {
#if defined(STRATA_HAS_ASAN)
  strata::arena heap{{.capacity = 1 * mib}, strata::system_pages()};
  std::vector<std::byte*> blocks;
  for (int i = 0; i < 4; ++i) blocks.push_back(static_cast<std::byte*>(heap.allocate(48, 16)));
  for (std::byte* b : blocks) BOOST_TEST(__asan_address_is_poisoned(b + 47) == 0);
  for (std::byte* b : blocks) heap.deallocate(b, 48, 16);
  for (std::byte* b : blocks) {
    BOOST_TEST(__asan_address_is_poisoned(b) != 0);
    BOOST_TEST(__asan_address_is_poisoned(b + 47) != 0);
  }
  std::byte* again = static_cast<std::byte*>(heap.allocate(48, 16));
  BOOST_TEST((std::find(blocks.begin(), blocks.end(), again) != blocks.end()));  // from the bin
  BOOST_TEST(__asan_address_is_poisoned(again) == 0);
  BOOST_TEST(__asan_address_is_poisoned(again + 47) == 0);
  heap.deallocate(again, 48, 16);
#endif
}

BOOST_AUTO_TEST_CASE(contains_answers_for_the_region_and_the_old_owns_agrees) {
  strata::arena heap{{.capacity = 1 * mib}, strata::system_pages()};
  void* p = heap.allocate(48, 16);
  int outside = 0;
  BOOST_TEST(heap.contains(p));
  BOOST_TEST(heap.contains(static_cast<std::byte*>(p) + 47));
  BOOST_TEST(!heap.contains(&outside));
  BOOST_TEST(!heap.contains(nullptr));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  BOOST_TEST(heap.owns(p));
  BOOST_TEST(!heap.owns(&outside));
#pragma GCC diagnostic pop
  heap.deallocate(p, 48, 16);
}

BOOST_AUTO_TEST_CASE(several_arenas_live_at_once_in_one_thread) {
  std::vector<std::unique_ptr<strata::arena>> heaps;
  for (int i = 0; i < 3; ++i) {
    heaps.push_back(
        std::make_unique<strata::arena>(strata::arena::options{.capacity = 1 * mib}, strata::system_pages()));
  }
  std::vector<std::pair<int, void*>> live;
  for (int round = 0; round < 3000; ++round) {
    const int h = round % 3;  // alternate, so the thread's most recent cache keeps changing
    void* p = heaps[h]->allocate(32 + 16 * static_cast<std::size_t>(h), 8);
    BOOST_REQUIRE(heaps[h]->contains(p));
    live.emplace_back(h, p);
    if (round % 4 == 3) {
      auto [g, q] = live[live.size() / 2];
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(live.size() / 2));
      heaps[g]->deallocate(q, 32 + 16 * static_cast<std::size_t>(g), 8);
    }
  }
  heaps[1].reset();  // one dies while the thread still holds caches of all three
  std::erase_if(live, [](const auto& e) { return e.first == 1; });
  for (auto [h, p] : live) heaps[h]->deallocate(p, 32 + 16 * static_cast<std::size_t>(h), 8);
  for (int h : {0, 2}) {
    BOOST_TEST(heaps[h]->stats().bytes_in_use == 0u);
    BOOST_TEST(heaps[h]->stats().allocations == 1000u);
    BOOST_TEST(heaps[h]->stats().misuse_detected == 0u);
  }
  strata::arena fresh{{.capacity = 1 * mib}, strata::system_pages()};  // may reuse the dead one's address
  void* p = fresh.allocate(32, 8);
  fresh.deallocate(p, 32, 8);
  BOOST_TEST(fresh.stats().allocations == 1u);
}

BOOST_AUTO_TEST_CASE(invalid_options_and_alignments_are_rejected) {
  const auto message = [](strata::arena::options o) {
    try {
      strata::arena heap{o, strata::system_pages()};
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  BOOST_TEST(message({.capacity = 100}).find("capacity") != std::string::npos);
  BOOST_TEST(message({.refill_bytes = 8}).find("refill_bytes") != std::string::npos);
  BOOST_TEST(
      message({.refill_bytes = 64 * kib, .cache_bytes_per_class = 32 * kib}).find("cache_bytes_per_class") !=
      std::string::npos);
  BOOST_TEST(message({.decay_period = std::chrono::milliseconds{-1}}).find("decay_period") !=
             std::string::npos);
  BOOST_CHECK_THROW(strata::arena(nullptr), std::invalid_argument);
  strata::arena heap{{.capacity = 1 * mib}, strata::system_pages()};
  BOOST_CHECK_THROW(static_cast<void>(heap.allocate(16, 48)), std::invalid_argument);
  BOOST_CHECK_THROW(static_cast<void>(heap.allocate(16, 0)), std::invalid_argument);
  BOOST_TEST(heap.stats().failed_allocations == 0u);
}

BOOST_AUTO_TEST_CASE(requests_outside_the_inline_fast_path_use_the_same_bins_and_checks) {
  // The inline paths take sizes up to 1 KiB aligned to 1..16; the rest go out
  // of line. With this thread's cache already armed, both must agree on the
  // class, count exactly, and reject bad alignments.
  strata::test::misuse_recorder recorder;
  strata::arena heap{{.capacity = 8 * mib, .hardened = false}, strata::system_pages()};
  heap.deallocate(heap.allocate(64, 8), 64, 8);  // arms the fast path
  const std::size_t sizes[] = {1, 16, 1023, 1024, 1025, 1040, 4096, 100 * kib, 256 * kib};
  const std::size_t alignments[] = {1, 2, 4, 8, 16, 32, 64, 4096};
  std::size_t calls = 0;
  for (std::size_t bytes : sizes) {
    for (std::size_t alignment : alignments) {
      void* p = heap.allocate(bytes, alignment);
      BOOST_TEST(strata::detail::is_aligned(p, alignment));
      heap.deallocate(p, bytes, alignment);
      void* again = heap.allocate(bytes, alignment);  // the same class's bin gave it back
      BOOST_TEST(again == p);
      heap.deallocate(again, bytes, alignment);
      calls += 2;
    }
  }
  for (std::size_t bad : {std::size_t{0}, std::size_t{3}, std::size_t{5}, std::size_t{6}, std::size_t{7},
                          std::size_t{12}, std::size_t{15}, std::size_t{17}}) {
    BOOST_CHECK_THROW(static_cast<void>(heap.allocate(64, bad)), std::invalid_argument);
  }
  void* p = heap.allocate(64, 16);
  heap.deallocate(p, 64, 12);  // refused: the block stays the caller's
  const auto reports = recorder.taken();
  BOOST_TEST(reports.size() == 1u);
  BOOST_TEST((reports.at(0).kind == strata::misuse_kind::alignment_mismatch));
  heap.deallocate(p, 64, 16);
  const strata::resource_stats s = heap.stats();
  BOOST_TEST(s.allocations == calls + 2);
  BOOST_TEST(s.deallocations == calls + 2);  // the refused one is misuse only
  BOOST_TEST(s.bytes_in_use == 0u);
  BOOST_TEST(s.failed_allocations == 0u);
}

BOOST_AUTO_TEST_CASE(a_thread_hands_its_cache_to_the_central_pool_at_exit,
                     *boost::unit_test::label("threaded")) {
  // Thread caches exist only when not hardened (-Dhardening=true makes that the default).
  strata::arena heap{{.capacity = 4 * mib, .hardened = false}, strata::system_pages()};
  std::thread([&] {
    std::vector<void*> blocks;
    for (int i = 0; i < 100; ++i) blocks.push_back(heap.allocate(200, 8));
    for (void* p : blocks) heap.deallocate(p, 200, 8);
    const auto d = heap.details();
    BOOST_TEST(d.threads_attached == 1u);
    BOOST_TEST(total_cached(d) > 0u);
  }).join();
  const auto d = heap.details();
  BOOST_TEST(d.threads_attached == 0u);
  BOOST_TEST(total_cached(d) == 0u);
  BOOST_TEST(total_central(d) > 0u);
  // This thread now gets those blocks back instead of carving new ones.
  const std::size_t remaining = d.remaining;
  void* p = heap.allocate(200, 8);
  BOOST_TEST(heap.details().remaining == remaining);
  heap.deallocate(p, 200, 8);
  BOOST_TEST(heap.stats().allocations == 101u);
  BOOST_TEST(heap.stats().bytes_in_use == 0u);
}

BOOST_AUTO_TEST_CASE(an_arena_destroyed_before_its_threads_exit_loses_nothing,
                     *boost::unit_test::label("threaded")) {
  strata::tracking_resource upstream{strata::system_pages()};
  std::atomic<int> stage{0};
  auto heap = std::make_unique<strata::arena>(strata::arena::options{.capacity = 1 * mib}, &upstream);
  std::thread worker([&] {
    void* p = heap->allocate(64, 8);
    heap->deallocate(p, 64, 8);  // cached in this thread
    stage = 1;
    while (stage.load() != 2) std::this_thread::yield();
    // The arena is gone; this thread's stale cache entry must not be touched.
    strata::arena other{{.capacity = 1 * mib}, &upstream};
    void* q = other.allocate(64, 8);
    other.deallocate(q, 64, 8);
  });
  while (stage.load() != 1) std::this_thread::yield();
  heap.reset();
  BOOST_TEST(upstream.live_blocks() == 0u);
  stage = 2;
  worker.join();
  BOOST_TEST(upstream.live_blocks() == 0u);
  BOOST_TEST(upstream.stats().misuse_detected == 0u);
}

// Hardened mode has no thread caches, so every call is counted on the
// arena's lock-free cacheless counters. Two threads allocating at once must
// lose no count and no byte, and the peak must cover what both held.
BOOST_AUTO_TEST_CASE(hardened_counters_from_two_threads_add_up, *boost::unit_test::label("threaded")) {
  strata::arena heap{{.capacity = 8 * mib, .hardened = true}, strata::system_pages()};
  constexpr int per_thread = 2000;
  std::barrier phase(3);  // the two workers and this thread
  std::atomic<std::uint64_t> requested{0};
  auto work = [&](unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<std::pair<void*, std::size_t>> held;
    std::uint64_t mine = 0;
    for (int i = 0; i < per_thread; ++i) {
      const std::size_t bytes = 8 + rng() % 500;
      held.emplace_back(heap.allocate(bytes, 8), bytes);
      mine += bytes;
    }
    requested += mine;
    phase.arrive_and_wait();  // both hold everything
    phase.arrive_and_wait();  // the main thread has read the stats
    for (auto [p, bytes] : held) heap.deallocate(p, bytes, 8);
  };
  std::thread a(work, 1u);
  std::thread b(work, 2u);
  phase.arrive_and_wait();
  const strata::resource_stats held = heap.stats();
  phase.arrive_and_wait();
  a.join();
  b.join();
  BOOST_TEST(held.allocations == 2u * per_thread);
  BOOST_TEST(held.deallocations == 0u);
  BOOST_TEST(held.bytes_in_use == requested.load());
  BOOST_TEST(held.peak_bytes_in_use >= requested.load());
  const strata::resource_stats s = heap.stats();
  BOOST_TEST(s.allocations == 2u * per_thread);
  BOOST_TEST(s.deallocations == 2u * per_thread);
  BOOST_TEST(s.bytes_in_use == 0u);
  BOOST_TEST(s.peak_bytes_in_use >= requested.load());
  BOOST_TEST(s.misuse_detected == 0u);
}

BOOST_AUTO_TEST_CASE(frees_on_another_thread_are_remote_and_come_back_in_batches,
                     *boost::unit_test::label("threaded")) {
  strata::arena heap{
      {.capacity = 8 * mib, .refill_bytes = 1 * kib, .cache_bytes_per_class = 2 * kib, .hardened = false},
      strata::system_pages()};
  constexpr int count = 2000;
  std::vector<void*> blocks;
  for (int i = 0; i < count; ++i) blocks.push_back(heap.allocate(64, 8));
  const std::size_t used_once = heap.details().remaining;
  std::thread([&] {
    for (void* p : blocks) heap.deallocate(p, 64, 8);  // every free is cross-thread
    const auto d = heap.details();
    // The consumer's bin keeps at most cache_bytes_per_class and hands the rest back in batches.
    BOOST_TEST(d.classes[3].cached_blocks <= 2 * kib / 64);
  }).join();
  const auto d = heap.details();
  BOOST_TEST(d.remote_frees >= std::uint64_t{count});
  BOOST_TEST(heap.stats().bytes_in_use == 0u);
  // The blocks went back to their runs (the consumer's cache at its exit),
  // and the emptied runs to the region: allocating the same again takes no
  // more of the region than the first time.
  BOOST_TEST(d.classes[3].cached_blocks <= 2 * kib / 64);  // the producer's own bin, at most
  std::vector<void*> again;
  for (int i = 0; i < count; ++i) again.push_back(heap.allocate(64, 8));
  BOOST_TEST(heap.details().remaining >= used_once);
  for (void* p : again) heap.deallocate(p, 64, 8);
}

// Issue 15: a consumer's full bin hands whole batches to the class's
// transfer cache, and the producer's next refill takes one whole (O(1)),
// instead of every block going through its run both ways. The cache is
// bounded, and trim() (as decay and exhaustion) empties it into the runs.
BOOST_AUTO_TEST_CASE(full_bins_hand_whole_batches_to_the_next_refill, *boost::unit_test::label("threaded")) {
  // 64 B blocks (class 3): batches of 16, bins of 64, at most 4 batches in transfer.
  strata::arena heap{{.capacity = 8 * mib, .refill_bytes = 1 * kib, .cache_bytes_per_class = 4 * kib},
                     strata::system_pages()};
  std::vector<void*> blocks;
  for (int i = 0; i < 200; ++i) blocks.push_back(heap.allocate(64, 8));
  std::thread([&] {
    for (void* p : blocks) heap.deallocate(p, 64, 8);  // every free is cross-thread
  }).join();
  auto d = heap.details();
  BOOST_TEST(d.classes[3].transfer_blocks ==
             4u * 16u);  // the first four batches; the rest went to their runs
  BOOST_TEST(d.classes[3].cached_blocks == 13u * 16u - 200u);  // this thread's: 13 refills of 16
  // This thread's bin has what is left of its last refill; then it refills from the transfer cache.
  const std::size_t left_in_bin = d.classes[3].cached_blocks;
  std::vector<void*> again;
  for (std::size_t i = 0; i < left_in_bin + 1; ++i) again.push_back(heap.allocate(64, 8));
  d = heap.details();
  BOOST_TEST(d.classes[3].transfer_blocks == 3u * 16u);
  BOOST_TEST((std::find(blocks.begin(), blocks.end(), again.back()) != blocks.end()));
  for (void* p : again) heap.deallocate(p, 64, 8);
  BOOST_TEST(heap.stats().bytes_in_use == 0u);
  BOOST_TEST(heap.stats().allocations == heap.stats().deallocations);
  static_cast<void>(heap.trim());
  d = heap.details();
  BOOST_TEST(d.classes[3].transfer_blocks == 0u);
  BOOST_TEST(d.classes[3].cached_blocks == 0u);
  BOOST_TEST(d.classes[3].runs == 0u);  // every run emptied and went back to the region
  BOOST_TEST(heap.stats().misuse_detected == 0u);
}

BOOST_AUTO_TEST_CASE(four_threads_with_cross_thread_frees_never_share_a_live_block,
                     *boost::unit_test::label("threaded")) {
  strata::tracking_resource upstream{strata::system_pages()};
  // Room for the worst interleaving: a thread that finished early no longer
  // drains its mailbox, so its neighbour's frees (large blocks among them)
  // pile up there until the end; with 32 MiB, release builds sometimes ran
  // out of capacity (small runs stay in their class and fragment the region).
  strata::arena heap{{.capacity = 128 * mib, .refill_bytes = 2 * kib, .cache_bytes_per_class = 4 * kib},
                     &upstream};
  constexpr int thread_count = 4;
  constexpr int rounds = 20000;
  std::atomic<int> corrupted{0};
  struct block {
    std::uint64_t* p;
    std::size_t bytes;
    std::size_t alignment;
  };
  std::vector<std::vector<block>> mailbox(thread_count);
  std::vector<std::mutex> mailbox_mutex(thread_count);
  const auto check_and_free = [&](const block& b) {
    const std::size_t words = b.bytes / 8;
    if (b.p[0] != b.p[words - 1]) ++corrupted;  // a second live owner overwrote one end
    heap.deallocate(b.p, b.bytes, b.alignment);
  };
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < thread_count; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(t) + 1);
        std::vector<block> mine;
        for (int i = 0; i < rounds; ++i) {
          const std::size_t bytes = 8 * (1 + rng() % (i % 100 == 0 ? 40000 : 64));  // some large
          const std::size_t alignment = std::size_t{8} << (rng() % 4);
          auto* p = static_cast<std::uint64_t*>(heap.allocate(bytes, alignment));
          if (reinterpret_cast<std::uintptr_t>(p) % alignment != 0) ++corrupted;
          const std::uint64_t tag = (std::uint64_t(t) << 32) | std::uint64_t(i);
          p[0] = tag;
          p[bytes / 8 - 1] = tag;
          mine.push_back({p, bytes, alignment});
          if (mine.size() > 32) {
            const block b = mine[rng() % mine.size()];
            std::erase_if(mine, [&](const block& x) { return x.p == b.p; });
            if (rng() % 2 == 0) {
              check_and_free(b);
            } else {
              std::lock_guard lock(mailbox_mutex[(t + 1) % thread_count]);
              mailbox[(t + 1) % thread_count].push_back(b);
            }
          }
          std::vector<block> inbox;
          {
            std::lock_guard lock(mailbox_mutex[t]);
            inbox.swap(mailbox[t]);
          }
          for (const block& b : inbox) check_and_free(b);  // freed on a thread that did not allocate it
        }
        for (const block& b : mine) check_and_free(b);
      });
    }
  }
  for (auto& box : mailbox) {
    for (const block& b : box) check_and_free(b);
  }
  BOOST_TEST(corrupted.load() == 0);
  const strata::resource_stats s = heap.stats();
  BOOST_TEST(s.bytes_in_use == 0u);
  BOOST_TEST(s.allocations == std::uint64_t(thread_count) * rounds);
  BOOST_TEST(s.deallocations == s.allocations);
  BOOST_TEST(s.misuse_detected == 0u);
  BOOST_TEST(s.failed_allocations == 0u);
  const auto d = heap.details();
  BOOST_TEST(d.large_live == 0u);
  if (!heap.get_options().hardened) BOOST_TEST(d.remote_frees > 0u);  // hardened mode has no caches
  BOOST_TEST(upstream.stats().allocations == 1u);                     // the region, nothing more
}

// Regression (found by review in chunk_provider, same scheme here): a free from
// a thread_local destructor that runs after the thread's cache list was
// destroyed wrote into that list.
BOOST_AUTO_TEST_CASE(frees_from_thread_local_destructors_are_safe, *boost::unit_test::label("threaded")) {
  strata::tracking_resource upstream{strata::system_pages()};
  {
    strata::arena a{{.capacity = std::size_t{4} << 20}, &upstream};
    std::thread([&] {
      thread_local std::pmr::vector<char> late{&a};  // built before this thread allocates
      std::pmr::vector<char> now{&a};
      now.resize(5000);
      late.resize(9000);  // freed by late's destructor, after the thread's caches were handed back
    }).join();
    BOOST_TEST(a.stats().bytes_in_use == 0u);
    void* p = a.allocate(9000, 8);  // still usable
    a.deallocate(p, 9000, 8);
  }
  BOOST_TEST(upstream.live_blocks() == 0u);
}

// Regression (issue 18): calls from thread_local destructors that ran after
// the thread's exit hook attached caches that no hook handed back. 1000 short
// threads alternating two arenas left threads_attached at 1000, and the
// blocks stranded in those caches made two empty 4 MiB arenas fail 64 B
// requests. Such calls now take the cache-less path (the central pools).
namespace {
struct late_arena_user {
  strata::arena* arenas[2] = {nullptr, nullptr};
  std::atomic<int>* failures = nullptr;
  ~late_arena_user() {
    if (failures == nullptr) return;
    for (int round = 0; round < 4; ++round) {
      for (strata::arena* a : arenas) {
        try {
          void* p = a->allocate(64, 8);
          std::memset(p, 0x5a, 64);
          a->deallocate(p, 64, 8);
        } catch (const std::bad_alloc&) {
          failures->fetch_add(1);
        }
      }
    }
  }
};
thread_local late_arena_user late_user;
}  // namespace

BOOST_AUTO_TEST_CASE(calls_from_late_thread_local_destructors_leave_no_cache_behind,
                     *boost::unit_test::label("threaded")) {
  strata::arena a{{.capacity = std::size_t{4} << 20}, strata::system_pages()};
  strata::arena b{{.capacity = std::size_t{4} << 20}, strata::system_pages()};
  std::atomic<int> failures{0};
  for (int i = 0; i < 1000; ++i) {
    std::thread([&] {
      late_user.failures = &failures;  // constructed before the arenas' exit hook: destroyed after it
      late_user.arenas[0] = &a;
      late_user.arenas[1] = &b;
      void* p = a.allocate(64, 8);  // attaches caches, whose exit hook then runs first
      a.deallocate(p, 64, 8);
      p = b.allocate(64, 8);
      b.deallocate(p, 64, 8);
    }).join();
  }
  BOOST_TEST(failures.load() == 0);
  BOOST_TEST(a.details().threads_attached == 0u);
  BOOST_TEST(b.details().threads_attached == 0u);
  for (strata::arena* r : {&a, &b}) {
    const strata::resource_stats s = r->stats();
    BOOST_TEST(s.bytes_in_use == 0u);
    BOOST_TEST(s.allocations == s.deallocations);
    BOOST_TEST(s.allocations == 1000u * 5u);
    // Every class's runs went back to the region when they emptied: the
    // empty 4 MiB arena serves a 1 MiB block (issue 13).
    void* p = nullptr;
    BOOST_CHECK_NO_THROW(p = r->allocate(1 * mib, 8));
    if (p != nullptr) r->deallocate(p, 1 * mib, 8);
  }
}

// ------------------------------------------------ issue 13 and 18 regressions

// Regression (issue 13, reproduction 1): freed small blocks never left their
// size class, so an arena filled with 64 B blocks and emptied again refused
// 200 B, 700 B and 1 MiB requests (allocation_failure, capacity).
BOOST_AUTO_TEST_CASE(an_emptied_arena_serves_every_class_and_the_large_path) {
  for (const bool hardened : {false, true}) {
    strata::arena heap{{.capacity = 16 * mib, .hardened = hardened}, strata::system_pages()};
    std::vector<void*> blocks;
    try {
      for (;;) {
        void* p = heap.allocate(64, 8);
        std::memset(p, 0x11, 64);
        blocks.push_back(p);
      }
    } catch (const strata::allocation_failure&) {
    }
    BOOST_TEST(blocks.size() > 16 * mib / 64 * 9 / 10);
    for (void* p : blocks) heap.deallocate(p, 64, 8);
    BOOST_TEST(heap.stats().bytes_in_use == 0u);
    for (std::size_t bytes : {std::size_t{200}, std::size_t{700}, 1 * mib, 4 * mib}) {
      void* p = nullptr;
      BOOST_CHECK_NO_THROW(p = heap.allocate(bytes, 8));
      if (p == nullptr) continue;
      std::memset(p, 0x22, bytes);
      heap.deallocate(p, bytes, 8);
    }
    const strata::resource_stats s = heap.stats();
    BOOST_TEST(s.allocations == s.deallocations);
    BOOST_TEST(s.misuse_detected == 0u);
  }
}

// Regression (issue 18): a correct random program on a hardened arena was
// reported as misuse (misuse_detected 1, allocations - deallocations off by
// one) once a freed large extent was carved into a small-class run: the side
// table still held the large block's record at that address. Compared with
// a model of the live blocks after every step.
BOOST_AUTO_TEST_CASE(a_correct_random_program_on_a_hardened_arena_reports_no_misuse) {
  strata::test::misuse_recorder recorder;
  for (unsigned seed = 1; seed <= 12; ++seed) {
    strata::arena heap{{.capacity = 1 * mib, .hardened = true}, strata::system_pages()};
    std::mt19937 rng(seed);
    struct live_block {
      unsigned char* p;
      std::size_t bytes;
      std::size_t alignment;
      unsigned char tag;
    };
    std::vector<live_block> live;
    std::uint64_t allocated = 0;
    std::uint64_t freed = 0;
    bool intact = true;
    for (int step = 0; step < 5000; ++step) {
      // Mostly allocations until 300 blocks are live: the region fills, so
      // runs are carved from freed large extents too.
      if (live.empty() || (live.size() < 300 && rng() % 3 != 0)) {
        const unsigned kind = rng() % 16;
        const std::size_t bytes = kind == 0  ? 200 * kib + rng() % (400 * kib)
                                  : kind < 3 ? 1 + rng() % (40 * kib)
                                  : kind < 6 ? 1 + rng() % 5000
                                             : 1 + rng() % 300;
        const std::size_t alignment = std::size_t{1} << (rng() % 8 == 0 ? 12 + rng() % 3 : rng() % 7);
        try {
          auto* p = static_cast<unsigned char*>(heap.allocate(bytes, alignment));
          const auto tag = static_cast<unsigned char>(step);
          std::memset(p, tag, bytes);
          live.push_back({p, bytes, alignment, tag});
          ++allocated;
        } catch (const std::bad_alloc&) {
        }
      } else {
        const std::size_t i = rng() % live.size();
        const live_block b = live[i];
        live[i] = live.back();
        live.pop_back();
        if (b.p[0] != b.tag || b.p[b.bytes - 1] != b.tag) intact = false;
        heap.deallocate(b.p, b.bytes, b.alignment);
        ++freed;
      }
      const strata::resource_stats s = heap.stats();
      if (s.misuse_detected != 0 || s.allocations != allocated || s.deallocations != freed) break;
    }
    const strata::resource_stats s = heap.stats();
    BOOST_TEST(intact, "seed " << seed);
    BOOST_TEST(s.misuse_detected == 0u, "seed " << seed);
    BOOST_TEST(s.allocations == allocated, "seed " << seed);
    BOOST_TEST(s.deallocations == freed, "seed " << seed);
    BOOST_TEST(recorder.taken().empty(), "seed " << seed);
    for (const live_block& b : live) heap.deallocate(b.p, b.bytes, b.alignment);
  }
}

namespace {
// Rewrites the encoded link word at block so that it decodes to target
// instead of expected (what it decodes to now): the XOR encoding is undone
// by one known plaintext, as an attacker with a use-after-free could.
void forge_link(void* block, unsigned word, const void* expected, const void* target) {
  auto* at = static_cast<std::uintptr_t*>(block) + word;
  strata::detail::unpoison_memory(at, sizeof(void*));
  *at ^= reinterpret_cast<std::uintptr_t>(expected) ^ reinterpret_cast<std::uintptr_t>(target);
  strata::detail::poison_memory(at, sizeof(void*));
}
}  // namespace

// Regression (issue 18): a forged free-list link into a live large block was
// followed (the side table knows only block starts, and an address it never
// saw was believed): the arena handed out memory inside a live 400,000-byte
// block. Links are now checked against the page map.
BOOST_AUTO_TEST_CASE(hardened_mode_rejects_a_forged_link_into_a_live_large_block) {
  strata::test::misuse_recorder recorder;
  strata::arena heap{{.capacity = 4 * mib, .hardened = true}, strata::system_pages()};
  auto* big = static_cast<unsigned char*>(heap.allocate(400000, 8));
  std::memset(big, 0x77, 400000);
  void* keep = heap.allocate(64, 8);  // the run stays in use, so it keeps its free list
  void* a = heap.allocate(64, 8);
  void* b = heap.allocate(64, 8);
  heap.deallocate(a, 64, 8);
  heap.deallocate(b, 64, 8);  // b's link names a
  forge_link(b, 0, a, big + 64 * kib);
  std::vector<void*> got;
  for (int i = 0; i < 3; ++i) {
    void* p = heap.allocate(64, 8);
    std::memset(p, 0x33, 64);
    got.push_back(p);
  }
  for (void* p : got) {
    BOOST_TEST(!(p >= big && p < big + 400000), "handed out memory inside the live large block");
  }
  BOOST_TEST(std::all_of(big, big + 400000, [](unsigned char c) { return c == 0x77; }));
  BOOST_TEST(heap.stats().misuse_detected >= 1u);
  BOOST_TEST(!recorder.taken().empty());
  for (void* p : got) heap.deallocate(p, 64, 8);
  heap.deallocate(keep, 64, 8);
  heap.deallocate(big, 400000, 8);
}

// Regression (issue 18): in a class of one block per batch (20 KiB blocks)
// the central pool's batch link was followed without validation, so a
// forged one handed out a live 20,000-byte block a second time.
BOOST_AUTO_TEST_CASE(hardened_mode_rejects_a_forged_link_to_a_live_block_of_a_large_class) {
  strata::test::misuse_recorder recorder;
  strata::arena heap{{.capacity = 4 * mib, .hardened = true}, strata::system_pages()};
  void* x = heap.allocate(20000, 8);
  void* y = heap.allocate(20000, 8);
  auto* z = static_cast<unsigned char*>(heap.allocate(20000, 8));
  std::memset(z, 0x44, 20000);
  heap.deallocate(x, 20000, 8);
  heap.deallocate(y, 20000, 8);
  // y's link to x is word 1 (the batch stack) before runs, word 0 (its
  // run's free list) after: forge both to name live z instead.
  forge_link(y, 0, x, z);
  forge_link(y, 1, x, z);
  std::vector<void*> got;
  for (int i = 0; i < 3; ++i) got.push_back(heap.allocate(20000, 8));
  for (void* p : got) BOOST_TEST(p != static_cast<void*>(z), "a live block was handed out twice");
  BOOST_TEST(std::all_of(z, z + 20000, [](unsigned char c) { return c == 0x44; }));
  BOOST_TEST(heap.stats().misuse_detected >= 1u);
  BOOST_TEST(!recorder.taken().empty());
  for (void* p : got) heap.deallocate(p, 20000, 8);
  heap.deallocate(z, 20000, 8);
}

// Regression (issue 18): a rejected deallocate was counted in deallocations
// too, so allocations - deallocations no longer gave the live blocks.
BOOST_AUTO_TEST_CASE(rejected_deallocates_count_in_misuse_detected_only) {
  strata::test::misuse_recorder recorder;
  for (const bool hardened : {false, true}) {
    strata::arena heap{{.capacity = 2 * mib, .hardened = hardened}, strata::system_pages()};
    void* p = heap.allocate(64, 8);
    void* big = heap.allocate(300 * kib, 8);
    alignas(16) static std::byte outside[64];
    heap.deallocate(outside, 64, 16);    // foreign
    heap.deallocate(p, 64, 12);          // bad alignment
    heap.deallocate(big, 600 * kib, 8);  // no large block of that size
    const strata::resource_stats s = heap.stats();
    BOOST_TEST(s.misuse_detected == 3u);
    BOOST_TEST(s.allocations == 2u);
    BOOST_TEST(s.deallocations == 0u);
    BOOST_TEST(s.allocations - s.deallocations == 2u);  // the live blocks
    heap.deallocate(p, 64, 8);
    heap.deallocate(big, 300 * kib, 8);
    BOOST_TEST(heap.stats().deallocations == 2u);
  }
}

// Soak (issue 13): phases of shifting size mixes on two threads with
// cross-thread frees, live bytes kept under half the capacity: small
// (16-128 B) -> medium (256 B-4 KiB) -> large (16 KiB-1 MiB) -> small, twice.
// No allocation may fail (memory one phase freed must serve the next), and
// the region's used part (capacity - remaining) stays within a stated
// multiple of the peak live bytes. The upstream sees the region only.
BOOST_AUTO_TEST_CASE(soak_shifting_size_mixes_on_two_threads_never_fail,
                     *boost::unit_test::label("threaded")) {
  strata::tracking_resource upstream{strata::system_pages()};
  constexpr std::size_t capacity = 64 * mib;
  // A quarter of the capacity, all threads and mailboxes included: 5/16
  // passed 6 runs of 6 but with up to 57 of 64 MiB used, too thin a margin
  // for a shared CI machine, so the asserted limit keeps a margin. Random
  // survivors are the adversarial case for a non-moving allocator (see
  // docs/design/arena.md, Fragmentation): at 1/3 and 3/8 a few 1 MiB
  // requests fail in the move to the large phase, because the free extents
  // there are split by runs that surviving small blocks keep in use.
  constexpr std::size_t live_limit = capacity / 4;
  strata::arena heap{{.capacity = capacity, .hardened = false}, &upstream};
  struct phase {
    std::size_t low;
    std::size_t high;
  };
  const std::vector<phase> phases = {{16, 128}, {256, 4 * kib}, {16 * kib, 1 * mib}, {16, 128},
                                     {16, 128}, {256, 4 * kib}, {16 * kib, 1 * mib}, {16, 128}};
  constexpr int thread_count = 2;
  soak_state st{thread_count};
  const auto release = [&](const block& b) {
    if (b.p[0] != b.bytes || b.p[b.bytes / 8 - 1] != b.bytes) ++st.corrupted;
    heap.deallocate(b.p, b.bytes, 8);
    st.live_bytes.fetch_sub(b.bytes);
  };
  std::vector<std::jthread> threads;
  for (int t = 0; t < thread_count; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 7);
      std::vector<block> mine;
      for (const phase& ph : phases) {
        st.sync.arrive_and_wait();  // the phase starts
        const int steps = ph.high > 64 * kib ? 3000 : 30000;
        for (int i = 0; i < steps; ++i) {
          std::vector<block> inbox;
          {
            std::lock_guard lock(st.mailbox_mutex[static_cast<std::size_t>(t)]);
            inbox.swap(st.mailbox[static_cast<std::size_t>(t)]);
          }
          for (const block& b : inbox) release(b);  // frees of the other thread's blocks
          const std::size_t bytes = log_uniform_size(rng, ph.low, ph.high);
          while (!mine.empty() && st.live_bytes.load() + bytes > live_limit) {
            const std::size_t j = rng() % mine.size();
            release(mine[j]);
            mine[j] = mine.back();
            mine.pop_back();
          }
          if (st.live_bytes.load() + bytes > live_limit) continue;  // the other thread holds the rest
          std::uint64_t* p = nullptr;
          try {
            p = static_cast<std::uint64_t*>(heap.allocate(bytes, 8));
          } catch (const std::bad_alloc&) {
            if (st.failures++ == 0) {
              const auto d = heap.details();
              std::lock_guard lock(st.mailbox_mutex[0]);
              BOOST_TEST_MESSAGE("first failure: " << bytes << " B, live " << st.live_bytes.load()
                                                   << ", remaining " << d.remaining << ", largest extent "
                                                   << d.largest_free_extent << ", runs " << d.runs);
            }
            continue;
          }
          p[0] = bytes;
          p[bytes / 8 - 1] = bytes;
          const std::size_t now = st.live_bytes.fetch_add(bytes) + bytes;
          st.raise_peak(now);
          mine.push_back({p, bytes});
          if (mine.size() > 8 && rng() % 4 == 0) {  // hand one to the other thread to free
            const std::size_t j = rng() % mine.size();
            {
              std::lock_guard lock(st.mailbox_mutex[static_cast<std::size_t>((t + 1) % thread_count)]);
              st.mailbox[static_cast<std::size_t>((t + 1) % thread_count)].push_back(mine[j]);
            }
            mine[j] = mine.back();
            mine.pop_back();
          }
        }
        st.sync.arrive_and_wait();  // the phase ends; the main thread measures
        st.sync.arrive_and_wait();
      }
      for (const block& b : mine) release(b);
    });
  }
  std::vector<std::size_t> used_after;
  for (std::size_t i = 0; i < phases.size(); ++i) {
    st.sync.arrive_and_wait();
    st.sync.arrive_and_wait();
    const strata::arena::details_type d = heap.details();
    const std::size_t used = d.capacity - d.remaining;
    used_after.push_back(used);
    BOOST_TEST_MESSAGE("phase " << i << ": used " << used << " live " << st.live_bytes.load() << " peak live "
                                << st.peak_live.load());
    // The stated bound: twice the peak live bytes plus 16 MiB (the thread
    // bins' limits, each class's spare run and run tails, for two threads).
    BOOST_TEST(used <= 2 * st.peak_live.load() + 16 * mib, "phase " << i);
    st.sync.arrive_and_wait();
  }
  threads.clear();
  for (auto& box : st.mailbox) {
    for (const block& b : box) release(b);
  }
  BOOST_TEST(st.failures.load() == 0);
  BOOST_TEST(st.corrupted.load() == 0);
  const strata::resource_stats s = heap.stats();
  BOOST_TEST(s.bytes_in_use == 0u);
  BOOST_TEST(s.allocations == s.deallocations);
  BOOST_TEST(s.misuse_detected == 0u);
  BOOST_TEST(upstream.stats().allocations == 1u);  // the region: no upstream call in any phase
}

// The soak a server team would write (issue 13): requests have lifetimes.
// Each block is freed a random, bounded number of steps after it was
// allocated (a quarter of them by the other thread), as requests finish, so
// every phase's blocks are gone a bounded time after the mix moves on. The
// mix shifts 16-128 B -> 256 B-4 KiB -> 16 KiB-1 MiB -> 16-128 B, twice, on
// two threads, with live bytes kept under half the capacity (a request that
// would cross it waits, as admission control would make it). No allocation
// may fail, no block may be corrupted, the upstream sees the region only, and
// the region's used part stays within a stated multiple of the peak live bytes.
BOOST_AUTO_TEST_CASE(soak_with_request_lifetimes_at_half_capacity_never_fails,
                     *boost::unit_test::label("threaded")) {
  struct phase {
    std::size_t low;
    std::size_t high;
    int steps;     // per thread
    int max_life;  // steps a block lives at most
  };
  constexpr std::size_t capacity = 64 * mib;
  constexpr std::size_t live_limit = capacity / 2;
  strata::tracking_resource upstream{strata::system_pages()};
  strata::arena heap{{.capacity = capacity, .hardened = false}, &upstream};
  // Lifetimes chosen so each phase's live bytes approach the limit: about
  // steps x mean size / 2 per thread at the longest lifetimes.
  const std::vector<phase> phases = {{16, 128, 24000, 16000},        {256, 4 * kib, 24000, 16000},
                                     {16 * kib, 1 * mib, 1500, 300}, {16, 128, 24000, 16000},
                                     {16, 128, 24000, 16000},        {256, 4 * kib, 24000, 16000},
                                     {16 * kib, 1 * mib, 1500, 300}, {16, 128, 24000, 16000}};
  constexpr int thread_count = 2;
  constexpr std::size_t horizon = 16001;  // > every max_life: the ring of expiry steps
  soak_state st{thread_count};
  const auto release = [&](const block& b) {
    const std::size_t words = b.bytes / 8;  // >= 2
    if (b.p[0] != b.bytes || b.p[words - 1] != ~b.bytes || (words > 2 && b.p[words / 2] != b.bytes))
      ++st.corrupted;
    heap.deallocate(b.p, b.bytes, 8);
    st.live_bytes.fetch_sub(b.bytes);
  };
  std::vector<std::jthread> threads;
  for (int t = 0; t < thread_count; ++t) {
    threads.emplace_back([&, t] {
      const auto me = static_cast<std::size_t>(t);
      const auto other = static_cast<std::size_t>((t + 1) % thread_count);
      std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 11);
      std::vector<std::vector<block>> expiring(horizon);  // by step % horizon
      std::size_t step = 0;
      const auto drain_inbox = [&] {
        std::vector<block> inbox;
        {
          std::lock_guard lock(st.mailbox_mutex[me]);
          inbox.swap(st.mailbox[me]);
        }
        for (const block& b : inbox) release(b);
      };
      const auto expire = [&](std::vector<block>& due) {
        for (const block& b : due) {
          if (rng() % 4 == 0) {  // finished by the other thread: a cross-thread free
            std::lock_guard lock(st.mailbox_mutex[other]);
            st.mailbox[other].push_back(b);
          } else {
            release(b);
          }
        }
        due.clear();
      };
      for (const phase& ph : phases) {
        st.sync.arrive_and_wait();  // the phase starts
        for (int i = 0; i < ph.steps; ++i, ++step) {
          drain_inbox();
          expire(expiring[step % horizon]);
          const std::size_t bytes = log_uniform_size(rng, ph.low, ph.high);
          // Admission: a request that would cross the limit waits for others to finish.
          if (st.live_bytes.fetch_add(bytes) + bytes > live_limit) {
            st.live_bytes.fetch_sub(bytes);
            continue;
          }
          std::uint64_t* p = nullptr;
          try {
            p = static_cast<std::uint64_t*>(heap.allocate(bytes, 8));
          } catch (const std::bad_alloc&) {
            st.live_bytes.fetch_sub(bytes);
            if (st.failures++ == 0) {
              const auto d = heap.details();
              BOOST_TEST_MESSAGE("first failure: " << bytes << " B, live " << st.live_bytes.load()
                                                   << ", remaining " << d.remaining << ", largest extent "
                                                   << d.largest_free_extent << ", runs " << d.runs);
            }
            continue;
          }
          const std::size_t words = bytes / 8;
          p[words / 2] = bytes;
          p[0] = bytes;
          p[words - 1] = ~bytes;
          const std::size_t now = st.live_bytes.load();
          st.raise_peak(now);
          const std::size_t life = 1 + rng() % static_cast<std::size_t>(ph.max_life);
          expiring[(step + life) % horizon].push_back({p, bytes});
        }
        st.sync.arrive_and_wait();  // the phase ends; the main thread measures
        st.sync.arrive_and_wait();
        // What the other thread finished during the phase and this one has not
        // freed yet is the test's own queue, not the workload's live set: how
        // much of it there is (and so how many runs its old blocks pin) depends
        // on how the two threads were scheduled. A loaded CI machine left 3 MiB
        // of such blocks over 300 runs. Free it before measuring what trim() keeps.
        drain_inbox();
        static_cast<void>(heap.trim());  // this thread's cache, at once
        st.sync.arrive_and_wait();       // the main thread measures again
        st.sync.arrive_and_wait();
      }
      for (std::size_t i = 0; i < horizon; ++i) expire(expiring[(step + i) % horizon]);
      st.sync.arrive_and_wait();  // every expiring block is freed or in a st.mailbox
      drain_inbox();
    });
  }
  for (std::size_t i = 0; i < phases.size(); ++i) {
    st.sync.arrive_and_wait();
    st.sync.arrive_and_wait();
    const strata::arena::details_type d = heap.details();
    const std::size_t used = d.capacity - d.remaining;
    BOOST_TEST_MESSAGE("phase " << i << ": used " << used << " live " << st.live_bytes.load() << " peak live "
                                << st.peak_live.load() << " cached " << cached_bytes(d) << " runs " << d.runs
                                << " large " << d.large_live_bytes);
    // The stated bound: 1.5 x the peak live bytes plus 8 MiB (the two
    // threads' bin limits, each class's spare run, run tails).
    BOOST_TEST(used <= st.peak_live.load() * 3 / 2 + 8 * mib, "phase " << i);
    st.sync.arrive_and_wait();
    st.sync.arrive_and_wait();  // both threads trimmed
    const strata::arena::details_type t = heap.details();
    const std::size_t trimmed = t.capacity - t.remaining;
    BOOST_TEST_MESSAGE("  after trim: used " << trimmed << " live " << st.live_bytes.load() << " runs "
                                             << t.runs);
    // After trim, only runs holding live blocks stay: within 2 x the live
    // bytes now plus 4 MiB (partly used runs: 18-26 of 64 KiB measured in the
    // small phases, for 0.8-0.9 MiB live; the margin is for TSan and loaded
    // machines, where frees still in flight keep a few more runs).
    BOOST_TEST(trimmed <= 2 * st.live_bytes.load() + 4 * mib, "phase " << i);
    st.sync.arrive_and_wait();
  }
  st.sync.arrive_and_wait();
  threads.clear();  // each thread's exit hands its cache back
  BOOST_TEST(st.failures.load() == 0);
  BOOST_TEST(st.corrupted.load() == 0);
  BOOST_TEST(st.peak_live.load() > live_limit / 2);  // the soak did reach the regime it claims
  static_cast<void>(heap.trim());
  const strata::arena::details_type d = heap.details();
  BOOST_TEST(d.remaining == d.capacity);  // everything free and back in the extent allocator
  const strata::resource_stats s = heap.stats();
  BOOST_TEST(s.bytes_in_use == 0u);
  BOOST_TEST(s.allocations == s.deallocations);
  BOOST_TEST(s.misuse_detected == 0u);
  BOOST_TEST(upstream.stats().allocations == 1u);  // the region: no upstream call in any phase
}

// Issue 13, item "decommit": the arena never gave pages back to the OS, so
// its resident memory stayed at its peak. Now trim() drops every free page
// (madvise), a reused page works and is counted committed again, and the
// option turns it off.
BOOST_AUTO_TEST_CASE(trim_gives_free_pages_back_to_the_os_and_reuse_recommits) {
  constexpr std::size_t capacity = 8 * mib;
  for (const bool decommit : {true, false}) {
    strata::arena heap{{.capacity = capacity, .hardened = false, .decommit = decommit},
                       strata::system_pages()};
    auto* base = static_cast<unsigned char*>(heap.allocate(capacity, 8));  // the whole region: its base
    std::memset(base, 0xa5, capacity);
    BOOST_TEST(resident_pages(base, capacity) == capacity / 4096);
    heap.deallocate(base, capacity, 8);
    std::vector<void*> small;
    for (int i = 0; i < 20000; ++i) {  // runs carved from the same pages, then emptied
      small.push_back(heap.allocate(48 + static_cast<std::size_t>(i % 8) * 64, 8));
      std::memset(small.back(), 1, 48);
    }
    for (std::size_t i = 0; i < small.size(); ++i) heap.deallocate(small[i], 48 + (i % 8) * 64, 8);
    static_cast<void>(heap.trim());
    const auto d = heap.details();
    BOOST_TEST(d.remaining == capacity);
    if (decommit) {
      BOOST_TEST(resident_pages(base, capacity) == 0u);
      BOOST_TEST(d.bytes_committed == 0u);
      BOOST_TEST(d.decommits >= 1u);
      BOOST_TEST(d.bytes_decommitted >= capacity);
    } else {
      BOOST_TEST(resident_pages(base, capacity) == capacity / 4096);
      BOOST_TEST(d.bytes_committed == capacity);
      BOOST_TEST(d.decommits == 0u);
    }
    // Reused: the same pages, usable, counted committed again.
    auto* again = static_cast<unsigned char*>(heap.allocate(capacity / 2, 8));
    BOOST_TEST(again == base);
    std::memset(again, 0x5a, capacity / 2);
    BOOST_TEST(again[capacity / 2 - 1] == 0x5a);
    BOOST_TEST(heap.details().bytes_committed == (decommit ? capacity / 2 : capacity));
    heap.deallocate(again, capacity / 2, 8);
    heap.release();  // release() decommits too
    BOOST_TEST(resident_pages(base, capacity) == (decommit ? 0u : capacity / 4096));
    const strata::resource_stats s = heap.stats();
    BOOST_TEST(s.allocations == s.deallocations);
    BOOST_TEST(s.misuse_detected == 0u);
  }
}

// Decay decommits pages that stayed free for a whole period, and keeps
// those a span took during it. Not a timed test: the thread sleeps past each
// period (300 ms: long enough for valgrind), so the next slow path acts.
BOOST_AUTO_TEST_CASE(free_pages_idle_for_a_decay_period_leave_the_resident_set) {
  using namespace std::chrono_literals;
  constexpr std::size_t capacity = 8 * mib;
  strata::arena heap{{.capacity = capacity, .hardened = false, .decay_period = 300ms},
                     strata::system_pages()};
  auto* base = static_cast<unsigned char*>(heap.allocate(capacity, 8));
  std::memset(base, 0xa5, capacity);
  heap.deallocate(base, capacity, 8);
  BOOST_TEST(resident_pages(base, capacity) == capacity / 4096);  // free, but not yet idle for a period
  for (int period = 0; period < 3; ++period) {
    std::this_thread::sleep_for(320ms);
    void* p = heap.allocate(300 * kib, 8);  // a slow path: the decay check (its pages stay in use)
    std::memset(p, 1, 300 * kib);
    heap.deallocate(p, 300 * kib, 8);
  }
  const auto d = heap.details();
  BOOST_TEST(d.decays >= 2u);
  // All but the pages the last period's 300 KiB block used (taken during it).
  BOOST_TEST(resident_pages(base, capacity) <= 300 * kib / 4096 + 1);
  BOOST_TEST(d.bytes_committed <= 304 * kib);
  BOOST_TEST(d.bytes_committed < capacity);
}

// Issue 13, reproduction 5: trim() reached only the calling thread. Now it
// hands back the caller's cache at once and makes every other thread's next
// slow path (its next deallocate reaches one: the bin limits are 0) hand its
// cache back; emptied runs return to the extent allocator.
BOOST_AUTO_TEST_CASE(trim_returns_this_threads_cache_and_the_spares_at_once) {
  strata::arena heap{{.capacity = 8 * mib, .hardened = false}, strata::system_pages()};
  std::vector<void*> blocks;
  for (int i = 0; i < 3000; ++i)
    blocks.push_back(heap.allocate(16 + static_cast<std::size_t>(i % 40) * 16, 8));
  for (std::size_t i = 0; i < blocks.size(); ++i) heap.deallocate(blocks[i], 16 + (i % 40) * 16, 8);
  auto d = heap.details();
  BOOST_TEST(total_cached(d) > 0u);
  BOOST_TEST(d.remaining < d.capacity);
  const std::size_t returned = heap.trim();
  d = heap.details();
  BOOST_TEST(total_cached(d) == 0u);
  BOOST_TEST(total_central(d) == 0u);
  BOOST_TEST(d.runs == 0u);
  BOOST_TEST(d.empty_runs_kept == 0u);
  BOOST_TEST(d.remaining == d.capacity);
  BOOST_TEST(d.free_extents == 1u);
  BOOST_TEST(returned > 0u);
  BOOST_TEST(d.trims == 1u);
  // Still usable, and counted exactly.
  void* p = heap.allocate(100, 8);
  heap.deallocate(p, 100, 8);
  const strata::resource_stats s = heap.stats();
  BOOST_TEST(s.allocations == s.deallocations);
  BOOST_TEST(s.bytes_in_use == 0u);
}

BOOST_AUTO_TEST_CASE(trim_reaches_other_threads_caches_at_their_next_call,
                     *boost::unit_test::label("threaded")) {
  strata::arena heap{{.capacity = 8 * mib, .hardened = false}, strata::system_pages()};
  std::atomic<int> stage{0};
  std::thread worker([&] {
    std::vector<void*> blocks;
    for (int i = 0; i < 2000; ++i) blocks.push_back(heap.allocate(48, 8));
    for (void* p : blocks) heap.deallocate(p, 48, 8);  // in this thread's bin and its runs
    void* keep = heap.allocate(48, 8);
    stage = 1;
    while (stage.load() != 2) std::this_thread::yield();
    heap.deallocate(keep, 48, 8);  // the next call: the bin's limit is 0, so it flushes
    stage = 3;
    while (stage.load() != 4) std::this_thread::yield();
  });
  while (stage.load() != 1) std::this_thread::yield();
  BOOST_TEST(heap.details().classes[2].cached_blocks > 0u);
  static_cast<void>(heap.trim());  // this thread has no cache; the worker's is asked for
  stage = 2;
  while (stage.load() != 3) std::this_thread::yield();
  const auto d = heap.details();
  BOOST_TEST(total_cached(d) <= 1u);  // at most the block freed after the flush
  BOOST_TEST(d.runs <= 2u);           // the one holding that block, and the class's spare
  stage = 4;
  worker.join();
  const auto e = heap.details();
  BOOST_TEST(e.runs == e.empty_runs_kept);  // the exit hook handed the last block back: only the spare
  BOOST_TEST(e.runs == 1u);
  static_cast<void>(heap.trim());
  BOOST_TEST(heap.details().remaining == heap.details().capacity);
  BOOST_TEST(heap.stats().bytes_in_use == 0u);
}

BOOST_AUTO_TEST_CASE(release_makes_every_block_free_and_the_region_whole) {
  strata::test::counting_resource upstream;
  for (const bool hardened : {false, true}) {
    strata::arena heap{{.capacity = 4 * mib, .hardened = hardened}, &upstream};
    for (int i = 0; i < 2000; ++i) std::memset(heap.allocate(static_cast<std::size_t>(i) % 300 + 1, 8), 1, 1);
    static_cast<void>(heap.allocate(1 * mib, 8));
    heap.release();
    strata::resource_stats s = heap.stats();
    BOOST_TEST(s.bytes_in_use == 0u);
    BOOST_TEST(s.allocations == s.deallocations);  // what release() took back counts as freed
    BOOST_TEST(s.bytes_reserved == 4 * mib);       // the region stays reserved
    auto d = heap.details();
    BOOST_TEST(d.remaining == d.capacity);
    BOOST_TEST(d.runs == 0u);
    BOOST_TEST(d.large_live == 0u);
    BOOST_TEST(total_cached(d) == 0u);
    void* big = heap.allocate(4 * mib, 8);  // the whole region in one block
    std::memset(big, 2, 4 * mib);
    heap.deallocate(big, 4 * mib, 8);
    void* p = heap.allocate(64, 8);
    heap.deallocate(p, 64, 8);
    s = heap.stats();
    BOOST_TEST(s.allocations == s.deallocations);
    BOOST_TEST(s.misuse_detected == 0u);
    BOOST_TEST(upstream.allocations() == (hardened ? 2u : 1u));
  }
  BOOST_TEST(upstream.bytes_outstanding() == 0u);
}

// Decay by wall-clock time. Not a timed test: the thread sleeps at least one
// period, so the next slow path finds the period elapsed, whatever the load.
// The period is long enough (300 ms) that the setup loops finish inside the
// first one even under valgrind (1 ms was not: a period elapsed mid-setup).
BOOST_AUTO_TEST_CASE(idle_memory_decays_after_the_period) {
  using namespace std::chrono_literals;
  strata::arena heap{{.capacity = 8 * mib, .hardened = false, .decay_period = 300ms}, strata::system_pages()};
  std::vector<void*> blocks;
  for (int i = 0; i < 4000; ++i) blocks.push_back(heap.allocate(64, 8));
  for (void* p : blocks) heap.deallocate(p, 64, 8);
  blocks.clear();
  for (int i = 0; i < 300; ++i) blocks.push_back(heap.allocate(200, 8));
  for (void* p : blocks) heap.deallocate(p, 200, 8);  // the 208 B bin, idle from now on
  const auto before = heap.details();
  // (A loaded machine may already have run a decay period during the loops above.)
  BOOST_TEST(before.classes[3].cached_blocks > 0u);
  BOOST_TEST(before.classes[12].cached_blocks > 0u);
  for (int period = 0; period < 3; ++period) {
    std::this_thread::sleep_for(320ms);
    void* p = heap.allocate(300 * kib, 8);  // a slow path (the large path): the decay check
    heap.deallocate(p, 300 * kib, 8);
    void* q = heap.allocate(64, 8);
    heap.deallocate(q, 64, 8);  // the bin's limit is 0: this thread's flush
  }
  const auto after = heap.details();
  BOOST_TEST(after.decays >= 3u);
  BOOST_TEST(after.classes[3].cached_blocks <= 256u + 1);  // in use: one batch stays
  BOOST_TEST(after.classes[12].cached_blocks == 0u);       // idle for a whole period: all of it went back
  BOOST_TEST(after.empty_runs_kept <= 1u);
  void* p = heap.allocate(6 * mib, 8);  // the rest of the region is whole again
  heap.deallocate(p, 6 * mib, 8);
  strata::arena off{{.capacity = 1 * mib, .decay_period = std::chrono::milliseconds{0}},
                    strata::system_pages()};
  std::this_thread::sleep_for(2ms);
  off.deallocate(off.allocate(300 * kib, 8), 300 * kib, 8);
  BOOST_TEST(off.details().decays == 0u);
}

// Regression (found by review of the run rewrite): a forged self-link (b's encoded link rewritten to name b)
// passes link_valid: while b is being taken it is neither on the list nor yet in handed_out_ (record_block
// runs after take_blocks returns), so the run's free head stays b and the next allocation hands out live b a
// second time.
BOOST_AUTO_TEST_CASE(hardened_mode_rejects_a_forged_self_link) {
  strata::test::misuse_recorder recorder;
  strata::arena heap{{.capacity = 2 * mib, .hardened = true}, strata::system_pages()};
  void* keep = heap.allocate(64, 8);
  void* a = heap.allocate(64, 8);
  void* b = heap.allocate(64, 8);
  heap.deallocate(a, 64, 8);
  heap.deallocate(b, 64, 8);  // the run's free list: b -> a
  forge_link(b, 0, a, b);     // a use-after-free makes b name itself
  void* x = heap.allocate(64, 8);
  void* y = heap.allocate(64, 8);
  BOOST_TEST(x != y, "a live block was handed out twice");
  BOOST_TEST(heap.stats().misuse_detected >= 1u);
  static_cast<void>(recorder.taken());
  heap.deallocate(x, 64, 8);
  if (y != x) heap.deallocate(y, 64, 8);
  heap.deallocate(keep, 64, 8);
}

// Regression (found by review of the run rewrite): decay_period is converted to nanoseconds
// (detail::decay_clock takes std::chrono::nanoseconds) without a range check; (2^58 + 1) ms, about nine
// million years, wraps to 1 ms, so idle memory decays every millisecond.
BOOST_AUTO_TEST_CASE(a_huge_decay_period_does_not_wrap_to_a_short_one) {
  const std::chrono::milliseconds huge{(std::int64_t{1} << 58) + 1};
  std::unique_ptr<strata::arena> heap;
  try {
    heap = std::make_unique<strata::arena>(strata::arena::options{.capacity = 1 * mib, .decay_period = huge},
                                           strata::system_pages());
  } catch (const std::invalid_argument&) {
    return;  // rejecting it is fine too
  }
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds{3});
    heap->deallocate(heap->allocate(300 * kib, 8), 300 * kib, 8);  // slow paths check the clock
  }
  BOOST_TEST(heap->details().decays == 0u);
}

// Regression (found by review of the run rewrite): in the default mode a provably wrong deallocate (an
// interior pointer, inside a run but off a block boundary) is pushed onto the bin and counted as a
// deallocation; give_blocks() rejects it later and counts it in misuse_detected as well, so allocations -
// deallocations no longer gives the live blocks (DESIGN: a rejected deallocate counts in misuse_detected
// only).
BOOST_AUTO_TEST_CASE(a_later_rejected_deallocate_is_not_also_counted_as_one) {
  strata::test::misuse_recorder recorder;
  strata::arena heap{{.capacity = 2 * mib, .hardened = false}, strata::system_pages()};
  auto* p = static_cast<std::byte*>(heap.allocate(64, 8));
  heap.deallocate(p + 16, 64, 8);  // not a block: the run map proves it
  heap.trim();                     // the bin goes back to the runs: rejected there
  const strata::resource_stats s = heap.stats();
  BOOST_TEST(s.misuse_detected == 1u);
  BOOST_TEST(s.allocations - s.deallocations == 1u);  // p is still live
  static_cast<void>(recorder.taken());
  heap.deallocate(p, 64, 8);
}

BOOST_AUTO_TEST_SUITE_END()

// A global operator new that fails once on request (this test
// binary only), to reach the arena constructor's allocations after the region.
namespace {
std::atomic<long> failing_new_countdown{-1};  // -1: never fail; n: the n-th new from now fails
}  // namespace

void* operator new(std::size_t n) {
  long c = failing_new_countdown.load(std::memory_order_relaxed);
  while (c >= 0 && !failing_new_countdown.compare_exchange_weak(c, c - 1)) {
  }
  if (c == 0) throw std::bad_alloc{};
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc{};
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace {
// Counts what is outstanding from it; aligned blocks from aligned_alloc.
class outstanding_resource final : public std::pmr::memory_resource {
 public:
  std::size_t outstanding = 0;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    void* p = std::aligned_alloc(std::max<std::size_t>(alignment, 4096), (bytes + 4095) / 4096 * 4096);
    if (p == nullptr) throw std::bad_alloc{};
    outstanding += bytes;
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t) override {
    outstanding -= bytes;
    std::free(p);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
};
}  // namespace

// Regression (found by review of the run rewrite): the constructor takes the region from upstream and then
// allocates again (registry().enroll() inserts into a map); when that throws, the region is never returned to
// the upstream.
BOOST_AUTO_TEST_SUITE(arena)
BOOST_AUTO_TEST_CASE(a_constructor_that_throws_returns_the_region) {
  { strata::arena warm{{.capacity = 64 * kib}, std::pmr::new_delete_resource()}; }  // registry built
  outstanding_resource upstream;
  for (long k = 0; k < 12; ++k) {
    bool threw = false;
    failing_new_countdown.store(k);
    try {
      strata::arena heap{{.capacity = 64 * kib}, &upstream};
      failing_new_countdown.store(-1);
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    failing_new_countdown.store(-1);
    BOOST_TEST_REQUIRE(upstream.outstanding == 0u,
                       "after failing at new #" << k << " (threw: " << threw << ")");
  }
}
BOOST_AUTO_TEST_SUITE_END()

// --------------------------------------------------------- the extent map
//
// detail::extent_map, the arena's private page allocator, on its own: best
// fit, alignment with a phase, coalescing with both neighbours, the page map,
// and a random program checked against a model of which pages are in use.

BOOST_AUTO_TEST_SUITE(extent_map)

using strata::detail::extent_map;

BOOST_AUTO_TEST_CASE(allocate_takes_the_best_fit_and_deallocate_coalesces) {
  extent_map map{100};
  BOOST_TEST(map.free_pages() == 100u);
  BOOST_TEST(map.free_spans() == 1u);
  const std::size_t a = map.allocate(10);
  const std::size_t b = map.allocate(20);
  const std::size_t c = map.allocate(5);
  const std::size_t d = map.allocate(30);
  BOOST_TEST(map.invariants_hold());
  BOOST_TEST(map.free_pages() == 35u);
  for (std::size_t p = b; p < b + 20; ++p) BOOST_TEST(map.head_of(p) == b);  // the page map
  BOOST_TEST(map.in_use_head(b));
  BOOST_TEST(!map.in_use_head(b + 1));
  BOOST_TEST(map.deallocate(b));
  BOOST_TEST(!map.deallocate(b));  // a second free is refused, nothing changes
  BOOST_TEST(map.free_spans() == 2u);
  BOOST_TEST(map.allocate(18) == b);  // the 20-page hole fits better than the 35-page tail
  BOOST_TEST(map.invariants_hold());
  BOOST_TEST(map.deallocate(b));
  BOOST_TEST(map.deallocate(a));  // coalesces with the hole after it
  BOOST_TEST(map.deallocate(d));  // and with the free tail
  BOOST_TEST(map.free_spans() == 2u);
  BOOST_TEST(map.largest_free() == 65u);
  BOOST_TEST(map.deallocate(c));  // both neighbours: one span again
  BOOST_TEST(map.free_spans() == 1u);
  BOOST_TEST(map.largest_free() == 100u);
  BOOST_TEST(map.invariants_hold());
  BOOST_TEST(map.allocate(101) == extent_map::npos);
  BOOST_TEST(map.allocate(100) == 0u);
  BOOST_TEST(map.allocate(1) == extent_map::npos);
}

BOOST_AUTO_TEST_CASE(for_each_free_visits_every_free_span_once) {
  strata::detail::extent_map map{100};
  const std::size_t a = map.allocate(10);
  const std::size_t b = map.allocate(20);
  static_cast<void>(map.allocate(30));
  BOOST_TEST(map.deallocate(b));  // free: [10, 30) and [60, 100)
  std::map<std::size_t, std::size_t> seen;
  map.for_each_free(
      [&](std::size_t first, std::size_t length) { BOOST_TEST(seen.emplace(first, length).second); });
  const std::map<std::size_t, std::size_t> expected{{a + 10, 20}, {60, 40}};
  BOOST_TEST((seen == expected));
}

BOOST_AUTO_TEST_CASE(allocate_honours_alignment_with_a_phase) {
  extent_map map{64};
  static_cast<void>(map.allocate(3));
  for (std::size_t phase : {0u, 1u, 5u}) {
    const std::size_t p = map.allocate(4, 8, phase);
    BOOST_REQUIRE(p != extent_map::npos);
    BOOST_TEST((p + phase) % 8 == 0u);
    BOOST_TEST(map.invariants_hold());
  }
  BOOST_TEST(map.allocate(8, 64, 0) == extent_map::npos);  // page 0 is taken
}

BOOST_AUTO_TEST_CASE(a_random_program_matches_a_model_of_the_pages) {
  constexpr std::size_t pages = 1000;
  extent_map map{pages};
  std::vector<int> owner(pages, -1);  // the model: which span holds each page
  std::vector<std::pair<std::size_t, std::size_t>> live;
  std::mt19937 rng(5);
  for (int step = 0; step < 20000; ++step) {
    if (live.empty() || rng() % 2 == 0) {
      const std::size_t n = 1 + (rng() % 4 == 0 ? rng() % 200 : rng() % 16);
      const std::size_t align = std::size_t{1} << (rng() % 4);
      const std::size_t first = map.allocate(n, align);
      if (first == extent_map::npos) {
        // Refused only if no free run of n pages at that alignment exists.
        bool fits = false;
        for (std::size_t s = 0; s + n <= pages && !fits; s += align) {
          fits = std::all_of(owner.begin() + static_cast<std::ptrdiff_t>(s),
                             owner.begin() + static_cast<std::ptrdiff_t>(s + n), [](int o) { return o < 0; });
        }
        BOOST_TEST(!fits);
        continue;
      }
      BOOST_TEST(first % align == 0u);
      for (std::size_t p = first; p < first + n; ++p) {
        BOOST_TEST(owner[p] == -1);  // never handed out twice
        owner[p] = static_cast<int>(first);
      }
      live.emplace_back(first, n);
    } else {
      const std::size_t i = rng() % live.size();
      const auto [first, n] = live[i];
      live[i] = live.back();
      live.pop_back();
      BOOST_TEST(map.deallocate(first));
      for (std::size_t p = first; p < first + n; ++p) owner[p] = -1;
    }
    if (step % 500 == 0) {
      BOOST_TEST(map.invariants_hold());
      BOOST_TEST(map.free_pages() == static_cast<std::size_t>(std::count(owner.begin(), owner.end(), -1)));
    }
  }
  for (const auto& [first, n] : live) BOOST_TEST(map.deallocate(first));
  BOOST_TEST(map.free_spans() == 1u);
  BOOST_TEST(map.invariants_hold());
}

BOOST_AUTO_TEST_SUITE_END()
