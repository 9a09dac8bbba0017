// SPDX-License-Identifier: MIT
// Concurrency stress for every thread-safe resource: four threads allocate
// random sizes and alignments, free most blocks themselves and pass the rest
// through a queue to the next thread, which checks and frees them (cross-thread
// frees); the resource's own housekeeping (trim) runs meanwhile, and an
// observer thread reads stats() and details() throughout. Every block carries
// an ownership tag (its address, size and serial, hashed) at both ends, checked
// before it is freed, so a block handed out twice, an overlap or a write into
// a live block fails the case. At the end every counter balances and the
// tracking upstream holds nothing once the resource is gone.
//
// The work is an iteration count, never a wall-clock time; it shrinks under
// sanitizers and valgrind, which run it in CI (all cases are "threaded": the
// TSan build runs them).
#define BOOST_TEST_MODULE stress
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <strata/arena.hpp>
#include <strata/chunk_provider.hpp>
#include <strata/extendable_slab.hpp>
#include <strata/page_resource.hpp>
#include <strata/tracking_resource.hpp>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define STRATA_STRESS_UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#else
#define STRATA_STRESS_UNDER_VALGRIND() false
#endif

#include "fixtures.hpp"

namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif
#else
constexpr bool sanitized = false;
#endif

constexpr int thread_count = 4;

// arena's switch for double-free and size-mismatch detection; being renamed
// to `hardened` (as in slab and extendable_slab): one word here.
constexpr auto arena_hardened_option = &strata::arena::options::hardened;

/// Operations per thread: full size in plain builds, half under sanitizers,
/// much less under valgrind (which runs the threads one at a time).
int scaled(int full) {
  if (STRATA_STRESS_UNDER_VALGRIND()) return full / 20;
  if (sanitized) return full / 2;
  return full;
}

struct block {
  std::byte* pointer;
  std::size_t bytes;
  std::size_t alignment;
  std::uint64_t serial;
};

std::uint64_t tag_of(const block& b) {
  std::uint64_t h = reinterpret_cast<std::uintptr_t>(b.pointer) * 0x9e3779b97f4a7c15u;
  h ^= (b.bytes + 0x632be59bd9b4e019u) * 0xbf58476d1ce4e5b9u;
  h ^= b.serial * 0x94d049bb133111ebu;
  return h ^ (h >> 31);
}

/// Writes the tag at both ends of the block (a byte of it, everywhere, for
/// blocks too small for two disjoint words).
void write_tag(const block& b) {
  const std::uint64_t tag = tag_of(b);
  if (b.bytes >= 2 * sizeof tag) {
    std::memcpy(b.pointer, &tag, sizeof tag);
    std::memcpy(b.pointer + b.bytes - sizeof tag, &tag, sizeof tag);
  } else if (b.bytes != 0) {
    std::memset(b.pointer, static_cast<int>(tag & 0xff), b.bytes);
  }
}

bool tag_intact(const block& b) {
  const std::uint64_t tag = tag_of(b);
  if (b.bytes >= 2 * sizeof tag) {
    std::uint64_t front = 0;
    std::uint64_t back = 0;
    std::memcpy(&front, b.pointer, sizeof tag);
    std::memcpy(&back, b.pointer + b.bytes - sizeof tag, sizeof tag);
    return front == tag && back == tag;
  }
  for (std::size_t i = 0; i < b.bytes; ++i) {
    if (std::to_integer<std::uint64_t>(b.pointer[i]) != (tag & 0xff)) return false;
  }
  return true;
}

/// A mutex-guarded queue of blocks for one receiving thread, bounded so that
/// a receiver the scheduler keeps off the CPU cannot grow the live set.
class mailbox {
 public:
  static constexpr std::size_t capacity = 64;
  /// Returns false (and keeps nothing) when the receiver is that far behind.
  bool post(const block& b) {
    std::lock_guard lock(mutex_);
    if (blocks_.size() >= capacity) return false;
    blocks_.push_back(b);
    return true;
  }
  std::deque<block> drain() {
    std::lock_guard lock(mutex_);
    return std::exchange(blocks_, {});
  }

 private:
  std::mutex mutex_;
  std::deque<block> blocks_;
};

struct workload {
  int operations;  // per thread
  std::function<std::size_t(std::mt19937_64&)> size;
  std::size_t max_alignment_log2;                            // alignments 1 .. 2^max
  std::size_t max_live = 64;                                 // per thread, before it frees
  std::function<void(int thread, int step)> housekeeping{};  // every 256 operations; may be empty
  std::function<void()> observe{};                           // the observer thread's read (stats, details)
};

struct outcome {
  std::uint64_t allocations = 0;
  std::uint64_t deallocations = 0;
  std::uint64_t cross_thread_frees = 0;
  std::uint64_t bad_tags = 0;
  std::uint64_t misaligned = 0;
};

/// Runs the workload on r from thread_count threads plus an observer.
outcome hammer(std::pmr::memory_resource& r, const workload& w) {
  std::vector<mailbox> inboxes(thread_count);
  std::vector<outcome> per_thread(thread_count);
  std::atomic<int> running{thread_count};
  std::atomic<std::uint64_t> serials{1};
  const auto free_checked = [&](outcome& out, const block& b) {
    if (!tag_intact(b)) ++out.bad_tags;
    r.deallocate(b.pointer, b.bytes, b.alignment);
    ++out.deallocations;
  };
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < thread_count; ++t) {
      threads.emplace_back([&, t] {
        outcome& out = per_thread[t];
        std::mt19937_64 rng(0x5eed + static_cast<std::uint64_t>(t));
        std::vector<block> live;
        for (int i = 0; i < w.operations; ++i) {
          const std::size_t bytes = w.size(rng);
          const std::size_t alignment = std::size_t{1} << (rng() % (w.max_alignment_log2 + 1));
          block b{static_cast<std::byte*>(r.allocate(bytes, alignment)), bytes, alignment,
                  serials.fetch_add(1, std::memory_order_relaxed)};
          ++out.allocations;
          if (reinterpret_cast<std::uintptr_t>(b.pointer) % alignment != 0) ++out.misaligned;
          write_tag(b);
          if (rng() % 2 != 0 || !inboxes[(t + 1) % thread_count].post(b)) {  // else freed by the next thread
            live.push_back(b);
          }
          if (live.size() > w.max_live) {  // free a random half of our own
            for (std::size_t k = 0; k < live.size() / 2; ++k) {
              const std::size_t j = rng() % live.size();
              free_checked(out, live[j]);
              live[j] = live.back();
              live.pop_back();
            }
          }
          if (i % 16 == 15) {
            for (const block& other : inboxes[t].drain()) {
              free_checked(out, other);
              ++out.cross_thread_frees;
            }
          }
          if (w.housekeeping && i % 256 == 255) w.housekeeping(t, i);
        }
        for (const block& b : live) free_checked(out, b);
        // Keep serving the inbox until every thread has stopped posting, so
        // the live set stays bounded and the last frees are concurrent too.
        running.fetch_sub(1, std::memory_order_acq_rel);
        do {
          for (const block& other : inboxes[t].drain()) {
            free_checked(out, other);
            ++out.cross_thread_frees;
          }
          std::this_thread::yield();
        } while (running.load(std::memory_order_acquire) != 0);
        for (const block& other : inboxes[t].drain()) {
          free_checked(out, other);
          ++out.cross_thread_frees;
        }
      });
    }
    if (w.observe) {
      threads.emplace_back([&] {
        while (running.load(std::memory_order_acquire) != 0) {
          w.observe();
          std::this_thread::yield();
        }
      });
    }
  }
  outcome total;
  for (const outcome& o : per_thread) {
    total.allocations += o.allocations;
    total.deallocations += o.deallocations;
    total.cross_thread_frees += o.cross_thread_frees;
    total.bad_tags += o.bad_tags;
    total.misaligned += o.misaligned;
  }
  return total;
}

void expect_balanced(const outcome& out, const strata::resource_stats& before,
                     const strata::resource_stats& after) {
  BOOST_TEST(out.bad_tags == 0u);
  BOOST_TEST(out.misaligned == 0u);
  BOOST_TEST(out.allocations == out.deallocations);
  BOOST_TEST(out.cross_thread_frees > 0u);
  BOOST_TEST(after.allocations - before.allocations == out.allocations);
  BOOST_TEST(after.deallocations - before.deallocations == out.deallocations);
  BOOST_TEST(after.bytes_in_use == before.bytes_in_use);
  BOOST_TEST(after.failed_allocations == before.failed_allocations);
  BOOST_TEST(after.misuse_detected == 0u);
  BOOST_TEST(after.peak_bytes_in_use >= after.bytes_in_use);
}

/// A tracking upstream over the system pages that records leaks at its destruction.
struct checked_upstream {
  std::size_t leaked_blocks = 0;
  strata::tracking_resource pages{{.on_leak = [this](const auto& report) { leaked_blocks += report.blocks; }},
                                  strata::system_pages()};
  void expect_everything_returned() const {
    BOOST_TEST(pages.live_blocks() == 0u);
    BOOST_TEST(pages.stats().misuse_detected == 0u);
    BOOST_TEST(pages.stats().bytes_in_use == 0u);
  }
};

std::size_t small(std::mt19937_64& rng) {
  return rng() % 4 == 0 ? rng() % 2048 : 1 + rng() % 256;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(stress, *boost::unit_test::label("threaded"))

// Chunks of many classes (and oversized ones) cross threads while trim and
// reserve shrink and refill the shared cache under a small budget.
BOOST_AUTO_TEST_CASE(chunk_provider_cross_thread_frees_with_trim) {
  checked_upstream upstream;
  {
    strata::chunk_provider chunks{
        {.min_chunk_size = 4096, .max_chunk_size = 256 << 10, .thread_cache_bytes = 64 << 10},
        &upstream.pages};
    const strata::resource_stats before = chunks.stats();
    workload w{.operations = scaled(6000),
               .size =
                   [](std::mt19937_64& rng) {
                     return rng() % 16 == 0 ? (std::size_t{256} << 10) + rng() % 100000  // oversized
                                            : std::size_t{1} << (6 + rng() % 12);
                   },
               .max_alignment_log2 = 16,
               .max_live = 24,
               .housekeeping =
                   [&](int t, int step) {
                     if (t == 0) {
                       chunks.trim(step % 512 == 255 ? 0 : 1 << 20);
                     } else if (t == 1) {
                       static_cast<void>(chunks.reserve(16 << 10, 2));
                     }
                   },
               .observe = [&] { static_cast<void>(chunks.details()); }};
    const outcome out = hammer(chunks, w);
    const strata::resource_stats after = chunks.stats();
    expect_balanced(out, before, after);
    BOOST_TEST(after.bytes_reserved == upstream.pages.stats().bytes_in_use);
    chunks.trim(0);  // this thread's cache and the shared pools go back
    BOOST_TEST(chunks.stats().bytes_reserved == upstream.pages.stats().bytes_in_use);
  }
  upstream.expect_everything_returned();
  BOOST_TEST(upstream.leaked_blocks == 0u);
}

// Slots freed on other threads land in other threads' magazines; segments
// are reclaimed (decay period 1 ms, none kept) and regrown while others allocate.
BOOST_AUTO_TEST_CASE(extendable_slab_cross_thread_frees_with_reclaim) {
  checked_upstream upstream;
  {
    strata::extendable_slab slab{{.slot_size = 96,
                                  .slots_per_segment = 32,
                                  .max_empty_segments = 0,
                                  .decay_period = std::chrono::milliseconds{1},
                                  .thread_cache_slots = 16},
                                 &upstream.pages};
    const strata::resource_stats before = slab.stats();
    workload w{
        .operations = scaled(40000),
        .size = [](std::mt19937_64& rng) { return rng() % 64 == 0 ? 97 + rng() % 400 : 1 + rng() % 96; },
        .max_alignment_log2 = 4,
        .housekeeping = [&](int, int) { slab.trim(); },
        .observe = [&] { static_cast<void>(slab.details()); }};
    const outcome out = hammer(slab, w);
    const strata::resource_stats after = slab.stats();
    expect_balanced(out, before, after);
    const strata::extendable_slab::details_type d = slab.details();
    BOOST_TEST(d.growth_events > 0u);
    BOOST_TEST(d.forwarded_live == 0u);
    BOOST_TEST(d.double_frees == 0u);
    BOOST_TEST(d.corrupted_links == 0u);
    BOOST_TEST(upstream.pages.live_blocks() == slab.segment_count());  // the segments, nothing else
    slab.trim();  // the workers exited, so every cache was flushed: all segments are empty
    BOOST_TEST(slab.segment_count() == 0u);
    BOOST_TEST(upstream.pages.live_blocks() == 0u);
  }
  upstream.expect_everything_returned();
  BOOST_TEST(upstream.leaked_blocks == 0u);
}

// The same with hardened checks on (no thread caches: every call locks).
BOOST_AUTO_TEST_CASE(hardened_extendable_slab_cross_thread_frees) {
  checked_upstream upstream;
  {
    strata::extendable_slab slab{{.slot_size = 48, .slots_per_segment = 64, .hardened = true},
                                 &upstream.pages};
    const strata::resource_stats before = slab.stats();
    workload w{.operations = scaled(20000),
               .size = [](std::mt19937_64& rng) { return 1 + rng() % 48; },
               .max_alignment_log2 = 4,
               .housekeeping =
                   [&](int t, int) {
                     if (t == 2) slab.trim();
                   },
               .observe = [&] { static_cast<void>(slab.stats()); }};
    const outcome out = hammer(slab, w);
    expect_balanced(out, before, slab.stats());
    BOOST_TEST(slab.details().double_frees == 0u);
  }
  upstream.expect_everything_returned();
  BOOST_TEST(upstream.leaked_blocks == 0u);
}

// A chain: extendable_slab on chunk_provider on the tracking upstream, both
// trimmed while the threads run.
BOOST_AUTO_TEST_CASE(extendable_slab_on_chunk_provider_chain) {
  checked_upstream upstream;
  {
    strata::chunk_provider chunks{{.min_chunk_size = 4096, .max_chunk_size = 1 << 20}, &upstream.pages};
    {
      strata::extendable_slab slab{
          {.slot_size = 32, .slots_per_segment = 100, .decay_period = std::chrono::milliseconds{1}}, &chunks};
      const strata::resource_stats before = slab.stats();
      workload w{
          .operations = scaled(30000),
          .size = [](std::mt19937_64& rng) { return rng() % 32 == 0 ? 4000 + rng() % 9000 : 1 + rng() % 32; },
          .max_alignment_log2 = 5,
          .housekeeping =
              [&](int t, int) {
                if (t == 0) slab.trim();
                if (t == 3) chunks.trim(64 << 10);
              }};
      const outcome out = hammer(slab, w);
      expect_balanced(out, before, slab.stats());
      BOOST_TEST(chunks.stats().misuse_detected == 0u);
    }
    BOOST_TEST(chunks.stats().bytes_in_use == 0u);  // the slab returned every segment and forwarded block
  }
  upstream.expect_everything_returned();
  BOOST_TEST(upstream.leaked_blocks == 0u);
}

// Mixed small and large blocks: remote frees go through the buffered
// remote-free path; the large path (tracked, coalescing) is shared by all.
BOOST_AUTO_TEST_CASE(arena_cross_thread_frees_small_and_large) {
  checked_upstream upstream;
  {
    strata::arena heap{{.capacity = 64 << 20, .refill_bytes = 4096, .cache_bytes_per_class = 8192},
                       &upstream.pages};
    const strata::resource_stats before = heap.stats();
    workload w{.operations = scaled(30000),
               .size =
                   [](std::mt19937_64& rng) {
                     return rng() % 128 == 0 ? (std::size_t{256} << 10) + rng() % (1 << 20) : small(rng);
                   },
               .max_alignment_log2 = 13,
               .observe = [&] { static_cast<void>(heap.details()); }};
    const outcome out = hammer(heap, w);
    const strata::resource_stats after = heap.stats();
    expect_balanced(out, before, after);
    const strata::arena::details_type d = heap.details();
    BOOST_TEST(d.large_live == 0u);
    BOOST_TEST(d.large_live_bytes == 0u);
    BOOST_TEST(upstream.pages.live_blocks() == 1u);  // the region, nothing else, ever
    BOOST_TEST(upstream.pages.stats().allocations == 1u);
  }
  upstream.expect_everything_returned();
  BOOST_TEST(upstream.leaked_blocks == 0u);
}

// Checked mode (side table for double free and size mismatch, no thread
// caches): correct cross-thread use must never be reported as misuse.
BOOST_AUTO_TEST_CASE(hardened_arena_cross_thread_frees) {
  checked_upstream upstream;
  {
    strata::arena::options opts{.capacity = 16 << 20};
    opts.*arena_hardened_option = true;
    strata::arena heap{opts, &upstream.pages};
    const strata::resource_stats before = heap.stats();
    workload w{.operations = scaled(12000),
               .size =
                   [](std::mt19937_64& rng) {
                     return rng() % 64 == 0 ? (std::size_t{256} << 10) + rng() % 100000 : small(rng);
                   },
               .max_alignment_log2 = 13,
               .observe = [&] { static_cast<void>(heap.stats()); }};
    const outcome out = hammer(heap, w);
    expect_balanced(out, before, heap.stats());
    BOOST_TEST(heap.details().large_live == 0u);
  }
  upstream.expect_everything_returned();
  BOOST_TEST(upstream.leaked_blocks == 0u);
}

// A small arena: threads hit exhaustion and must see allocation_failure, then
// carry on once others free; nothing is lost.
BOOST_AUTO_TEST_CASE(arena_near_capacity_recovers_from_exhaustion) {
  checked_upstream upstream;
  {
    // One thread's live set alone (up to 61 blocks of 4 KiB on average) is
    // more than the capacity, whatever the scheduling.
    strata::arena heap{{.capacity = 128 << 10, .refill_bytes = 1024, .cache_bytes_per_class = 2048},
                       &upstream.pages};
    std::vector<std::size_t> last_served(thread_count);
    std::atomic<std::uint64_t> refused{0};
    std::atomic<std::uint64_t> served{0};
    std::atomic<std::uint64_t> bad_tags{0};
    {
      std::vector<std::jthread> threads;
      for (int t = 0; t < thread_count; ++t) {
        threads.emplace_back([&, t] {
          std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 99);
          std::vector<block> live;
          for (int i = 0; i < scaled(8000); ++i) {
            const std::size_t bytes = 16 + rng() % 8000;
            try {
              block b{static_cast<std::byte*>(heap.allocate(bytes, 16)), bytes, 16,
                      static_cast<std::uint64_t>(i)};
              write_tag(b);
              live.push_back(b);
              last_served[t] = bytes;
              served.fetch_add(1, std::memory_order_relaxed);
            } catch (const std::bad_alloc&) {
              refused.fetch_add(1, std::memory_order_relaxed);
            }
            if (live.size() > 60 || (!live.empty() && rng() % 3 == 0)) {
              const std::size_t j = rng() % live.size();
              if (!tag_intact(live[j]))
                bad_tags.fetch_add(1, std::memory_order_relaxed);  // Boost.Test is not thread-safe
              heap.deallocate(live[j].pointer, live[j].bytes, live[j].alignment);
              live[j] = live.back();
              live.pop_back();
            }
          }
          for (const block& b : live) {
            if (!tag_intact(b)) bad_tags.fetch_add(1, std::memory_order_relaxed);
            heap.deallocate(b.pointer, b.bytes, b.alignment);
          }
        });
      }
    }
    const strata::resource_stats s = heap.stats();
    BOOST_TEST(bad_tags.load() == 0u);
    BOOST_TEST(refused.load() > 0u);  // the capacity was really reached
    BOOST_TEST(s.failed_allocations == refused.load());
    BOOST_TEST(s.allocations == served.load());
    BOOST_TEST(s.deallocations == served.load());
    BOOST_TEST(s.bytes_in_use == 0u);
    BOOST_TEST(s.misuse_detected == 0u);
    // Usable again: every block is free once more, and the threads' caches
    // went back at their exit, so the emptied runs are back in the region:
    // sizes that were served, and one no thread asked for (issue 13).
    void* whole = nullptr;
    BOOST_CHECK_NO_THROW(whole = heap.allocate(96 << 10, 16));
    if (whole != nullptr) heap.deallocate(whole, 96 << 10, 16);
    BOOST_TEST(std::any_of(last_served.begin(), last_served.end(), [](std::size_t n) { return n != 0; }));
    for (const std::size_t bytes : last_served) {
      if (bytes == 0) continue;
      void* p = nullptr;
      BOOST_CHECK_NO_THROW(p = heap.allocate(bytes, 16));
      if (p != nullptr) heap.deallocate(p, bytes, 16);
    }
    BOOST_TEST(heap.stats().bytes_in_use == 0u);
  }
  upstream.expect_everything_returned();
  BOOST_TEST(upstream.leaked_blocks == 0u);
}

// page_resource is called directly by every thread: mappings of several
// sizes and alignments (huge-page aligned ones included) cross threads.
BOOST_AUTO_TEST_CASE(page_resource_cross_thread_frees) {
  strata::page_resource pages;
  const strata::resource_stats before = pages.stats();
  workload w{.operations = scaled(1500),
             .size = [](std::mt19937_64& rng) { return (1 + rng() % 16) * 4096 - rng() % 4096; },
             .max_alignment_log2 = 21,
             .max_live = 16,
             .observe = [&] { static_cast<void>(pages.stats()); }};
  const outcome out = hammer(pages, w);
  expect_balanced(out, before, pages.stats());
  BOOST_TEST(pages.stats().bytes_reserved == before.bytes_reserved);
}

// tracking_resource's own bookkeeping (live map, recent frees) under threads;
// its live count must return to zero and nothing may be reported.
BOOST_AUTO_TEST_CASE(tracking_resource_cross_thread_frees) {
  checked_upstream upstream;
  {
    std::size_t leaks = 0;
    {
      strata::tracking_resource tracked{{.fill_on_allocate = 0xab,
                                         .fill_on_deallocate = 0xcd,
                                         .on_leak = [&](const auto& report) { leaks += report.blocks; }},
                                        &upstream.pages};
      const strata::resource_stats before = tracked.stats();
      workload w{.operations = scaled(8000), .size = small, .max_alignment_log2 = 12, .observe = [&] {
                   static_cast<void>(tracked.live_blocks());
                 }};
      const outcome out = hammer(tracked, w);
      expect_balanced(out, before, tracked.stats());
      BOOST_TEST(tracked.live_blocks() == 0u);
    }
    BOOST_TEST(leaks == 0u);
  }
  upstream.expect_everything_returned();
  BOOST_TEST(upstream.leaked_blocks == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
