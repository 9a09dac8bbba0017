// SPDX-License-Identifier: MIT
// Fault injection at named points: an upstream that throws a plain
// std::bad_alloc exactly where a resource grows (chunk_provider growth and
// reserve, extendable_slab segment growth, arena construction,
// monotonic_arena chunk acquisition, slab region and forwarding). Each case
// checks that the failure reaches the caller as a std::bad_alloc
// (allocation_failure naming the link that saw it), that nothing the resource
// already held is lost or overwritten, that the resource serves what it can
// without the upstream while the fault lasts, works again once the upstream
// recovers, and that a tracking upstream holds nothing after destruction.
//
// The conformance kit's check_exception_safety already makes the k-th
// upstream allocation throw once under a container workload and checks
// usability and bytes_in_use; the container loop here adds what it does not:
// failures that persist for several calls, and the strong guarantee of the
// containers checked against a std:: model after every throw (a resource
// that scribbles over live memory while failing shows up there).
#define BOOST_TEST_MODULE fault_injection
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <memory_resource>
#include <string>
#include <thread>
#include <vector>

#include <strata/arena.hpp>
#include <strata/chunk_provider.hpp>
#include <strata/extendable_slab.hpp>
#include <strata/monotonic_arena.hpp>
#include <strata/page_resource.hpp>
#include <strata/slab.hpp>
#include <strata/tracking_resource.hpp>

#include "fixtures.hpp"

namespace {

constexpr std::size_t kib = 1024;

/// An upstream that forwards to a tracking_resource over the system pages
/// and throws a plain std::bad_alloc at chosen points: after a number of
/// successful allocations, for a number of calls (or until healed). Counts
/// are atomic so growth on several threads can be faulted too.
class fault_resource final : public std::pmr::memory_resource {
 public:
  static constexpr std::uint64_t forever = UINT64_MAX;

  fault_resource() = default;
  fault_resource(const fault_resource&) = delete;
  fault_resource& operator=(const fault_resource&) = delete;

  /// After `successes` more allocations succeed, the next `failures` throw.
  void arm(std::uint64_t successes, std::uint64_t failures = forever) noexcept {
    successes_left_.store(successes);
    failures_left_.store(failures);
  }
  /// Every allocation from now on succeeds.
  void heal() noexcept { failures_left_.store(0); }
  [[nodiscard]] std::uint64_t calls() const noexcept { return calls_.load(); }
  [[nodiscard]] std::uint64_t thrown() const noexcept { return thrown_.load(); }
  [[nodiscard]] strata::tracking_resource& below() noexcept { return tracked_; }
  [[nodiscard]] std::size_t live_blocks() const { return tracked_.live_blocks(); }
  [[nodiscard]] std::size_t live_bytes() const { return tracked_.stats().bytes_in_use; }

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    calls_.fetch_add(1);
    if (failures_left_.load() != 0) {
      std::uint64_t s = successes_left_.load();
      bool fail = true;
      while (s != 0) {
        if (successes_left_.compare_exchange_weak(s, s - 1)) {
          fail = false;
          break;
        }
      }
      if (fail) {
        std::uint64_t f = failures_left_.load();
        while (f != 0 && !failures_left_.compare_exchange_weak(f, f == forever ? f : f - 1)) {
        }
        if (f != 0) {
          thrown_.fetch_add(1);
          throw std::bad_alloc();
        }
      }
    }
    return tracked_.allocate(bytes, alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    tracked_.deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

  strata::tracking_resource tracked_{strata::system_pages()};
  std::atomic<std::uint64_t> successes_left_{0};
  std::atomic<std::uint64_t> failures_left_{0};
  std::atomic<std::uint64_t> calls_{0};
  std::atomic<std::uint64_t> thrown_{0};
};

/// Runs f, which must throw allocation_failure with reason upstream_failed
/// naming resource (the link that saw the upstream's plain bad_alloc).
template <class F>
void expect_upstream_failure(F&& f, std::string_view resource) {
  try {
    f();
    BOOST_ERROR("no exception");
  } catch (const strata::allocation_failure& e) {
    BOOST_TEST((e.reason() == strata::failure_reason::upstream_failed));
    BOOST_TEST(e.resource_name() == resource);
  } catch (const std::exception& e) {
    BOOST_ERROR("wrong exception: " << e.what());
  }
}

/// A block filled with a pattern, to prove the resource did not touch it.
struct filled {
  std::byte* p;
  std::size_t bytes;
  unsigned char tag;
  [[nodiscard]] bool intact() const {
    return std::all_of(p, p + bytes, [&](std::byte b) { return std::to_integer<unsigned char>(b) == tag; });
  }
};

filled fill(std::pmr::memory_resource& r, std::size_t bytes, std::size_t alignment, unsigned char tag) {
  auto* p = static_cast<std::byte*>(r.allocate(bytes, alignment));
  std::memset(p, tag, bytes);
  return {p, bytes, tag};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(fault_injection)

// ------------------------------------------------------------ chunk_provider

// Growth fails: cached chunks are still served without the upstream, live
// chunks are untouched, the budget and bytes_reserved are not charged for the
// failed chunk, and the provider grows again once the upstream recovers.
BOOST_AUTO_TEST_CASE(chunk_provider_growth_failure_keeps_cached_and_live_chunks) {
  fault_resource upstream;
  {
    strata::chunk_provider chunks{
        {.min_chunk_size = 4 * kib, .max_chunk_size = 256 * kib, .byte_budget = 1024 * kib}, &upstream};
    const filled a = fill(chunks, 64 * kib, 8, 0xa1);
    const filled b = fill(chunks, 128 * kib, 8, 0xb2);
    // Cached for reuse (in the largest class in demand: the ratchet floor
    // evicts smaller classes).
    void* spare = chunks.allocate(128 * kib, 8);
    chunks.deallocate(spare, 128 * kib, 8);
    const strata::resource_stats before = chunks.stats();
    upstream.arm(0);
    void* again = nullptr;
    BOOST_CHECK_NO_THROW(again = chunks.allocate(128 * kib, 8));  // the cache needs no upstream
    BOOST_TEST(again == spare);
    expect_upstream_failure([&] { static_cast<void>(chunks.allocate(128 * kib, 8)); }, "chunk_provider");
    expect_upstream_failure([&] { static_cast<void>(chunks.allocate(512 * kib, 8)); },
                            "chunk_provider");  // oversized
    const strata::resource_stats after = chunks.stats();
    BOOST_TEST(after.failed_allocations == before.failed_allocations + 2);
    BOOST_TEST(after.bytes_in_use == before.bytes_in_use + 128 * kib);
    BOOST_TEST(after.bytes_reserved == before.bytes_reserved);
    BOOST_TEST(after.bytes_reserved == upstream.live_bytes());
    BOOST_TEST(after.misuse_detected == 0u);
    BOOST_TEST(a.intact());
    BOOST_TEST(b.intact());
    upstream.heal();
    // The budget was not charged for the failures: exactly what was left of
    // it (1024 - 64 - 128 - 128 KiB) can still be taken.
    const filled c = fill(chunks, 256 * kib, 8, 0xc3);
    const filled d = fill(chunks, 448 * kib, 8, 0xd4);  // oversized, up to the last byte of the budget
    BOOST_TEST(c.intact());
    if (again != nullptr) chunks.deallocate(again, 128 * kib, 8);
    for (const filled& f : {a, b, c, d}) chunks.deallocate(f.p, f.bytes, 8);
    BOOST_TEST(chunks.stats().bytes_in_use == 0u);
  }
  BOOST_TEST(upstream.live_blocks() == 0u);
}

// reserve() that fails half-way keeps the chunks it already obtained, and
// they serve requests while the upstream is still failing.
BOOST_AUTO_TEST_CASE(chunk_provider_reserve_failure_keeps_what_it_got) {
  fault_resource upstream;
  {
    strata::chunk_provider chunks{{.min_chunk_size = 4 * kib, .max_chunk_size = 256 * kib}, &upstream};
    upstream.arm(2);
    expect_upstream_failure([&] { static_cast<void>(chunks.reserve(64 * kib, 5)); }, "chunk_provider");
    BOOST_TEST(chunks.stats().bytes_reserved == 128 * kib);
    BOOST_TEST(chunks.stats().bytes_reserved == upstream.live_bytes());
    const filled a = fill(chunks, 64 * kib, 8, 1);  // both served from the reserve, upstream still failing
    const filled b = fill(chunks, 60 * kib, 64, 2);
    expect_upstream_failure([&] { static_cast<void>(chunks.allocate(64 * kib, 8)); }, "chunk_provider");
    BOOST_TEST(a.intact());
    chunks.deallocate(a.p, a.bytes, 8);
    chunks.deallocate(b.p, b.bytes, 64);
    BOOST_TEST(chunks.stats().bytes_in_use == 0u);
  }
  BOOST_TEST(upstream.live_blocks() == 0u);
}

// ----------------------------------------------------------- extendable_slab

// A segment cannot be grown: the request fails, the slots already handed out
// are untouched, a freed slot is reused while the upstream still fails, and
// growth resumes once it recovers.
BOOST_AUTO_TEST_CASE(extendable_slab_segment_growth_failure) {
  for (const bool hardened : {false, true}) {
    BOOST_TEST_CONTEXT("hardened " << hardened) {
      fault_resource upstream;
      {
        strata::extendable_slab slab{{.slot_size = 64, .slots_per_segment = 8, .hardened = hardened},
                                     &upstream};
        std::vector<filled> live;
        for (int i = 0; i < 8; ++i) live.push_back(fill(slab, 64, 8, static_cast<unsigned char>(0x10 + i)));
        BOOST_TEST(slab.segment_count() == 1u);
        upstream.arm(0);
        // A thread cache may hold none of the segment's slots now: the next one grows.
        expect_upstream_failure([&] { static_cast<void>(slab.allocate(64, 8)); }, "extendable_slab");
        BOOST_TEST(slab.segment_count() == 1u);
        BOOST_TEST(slab.stats().failed_allocations == 1u);
        BOOST_TEST(slab.stats().bytes_in_use == 8 * 64u);
        for (const filled& f : live) BOOST_TEST(f.intact());
        slab.deallocate(live.back().p, 64, 8);
        live.pop_back();
        live.push_back(fill(slab, 64, 8, 0x77));  // the freed slot, no upstream call
        expect_upstream_failure([&] { static_cast<void>(slab.allocate(1000, 8)); },
                                "extendable_slab");  // forwarded
        BOOST_TEST(slab.details().forwarded_live == 0u);
        upstream.heal();
        live.push_back(fill(slab, 64, 8, 0x78));
        BOOST_TEST(slab.segment_count() == 2u);
        for (const filled& f : live) BOOST_TEST(f.intact());
        for (const filled& f : live) slab.deallocate(f.p, 64, 8);
        const strata::resource_stats s = slab.stats();
        BOOST_TEST(s.bytes_in_use == 0u);
        BOOST_TEST(s.allocations == s.deallocations);
        BOOST_TEST(s.failed_allocations == 2u);
        BOOST_TEST(s.misuse_detected == 0u);
        slab.trim();
        BOOST_TEST(upstream.live_blocks() == slab.segment_count());
      }
      BOOST_TEST(upstream.live_blocks() == 0u);
    }
  }
}

// Several threads grow the slab while the upstream refuses after a few
// segments: every thread sees bad_alloc, none loses a slot, and all of them
// allocate again once the upstream recovers.
BOOST_AUTO_TEST_CASE(extendable_slab_growth_failure_on_many_threads, *boost::unit_test::label("threaded")) {
  fault_resource upstream;
  {
    strata::extendable_slab slab{{.slot_size = 32, .slots_per_segment = 16, .thread_cache_slots = 8},
                                 &upstream};
    upstream.arm(6);
    constexpr int thread_count = 4;
    std::vector<std::size_t> served(thread_count);
    std::vector<int> refused(thread_count);
    std::vector<int> bad(thread_count);
    std::atomic<int> ready{0};
    {
      std::vector<std::jthread> threads;
      for (int t = 0; t < thread_count; ++t) {
        threads.emplace_back([&, t] {
          std::vector<filled> mine;
          ready.fetch_add(1);
          while (ready.load() != thread_count) std::this_thread::yield();
          for (int i = 0; i < 200 && refused[t] < 3; ++i) {
            try {
              mine.push_back(fill(slab, 32, 8, static_cast<unsigned char>(t + 1)));
            } catch (const std::bad_alloc&) {
              ++refused[t];
            }
          }
          served[t] = mine.size();
          for (const filled& f : mine) {
            if (!f.intact()) ++bad[t];
            slab.deallocate(f.p, 32, 8);
          }
        });
      }
    }
    std::size_t total = 0;
    for (int t = 0; t < thread_count; ++t) {
      BOOST_TEST(refused[t] > 0);
      BOOST_TEST(bad[t] == 0);
      total += served[t];
    }
    BOOST_TEST(upstream.below().stats().allocations <= 6u);  // six segments at most
    const strata::resource_stats s = slab.stats();
    BOOST_TEST(s.bytes_in_use == 0u);
    BOOST_TEST(s.allocations == total);
    BOOST_TEST(s.deallocations == total);
    BOOST_TEST(s.misuse_detected == 0u);
    BOOST_TEST(upstream.live_blocks() <= 6u);
    upstream.heal();
    std::vector<void*> again;
    for (int i = 0; i < 200; ++i) again.push_back(slab.allocate(32, 8));
    for (void* p : again) slab.deallocate(p, 32, 8);
  }
  BOOST_TEST(upstream.live_blocks() == 0u);
}

// --------------------------------------------------------------------- arena

// The only upstream call is the region at construction: if it fails the
// constructor throws and leaves nothing behind; once built, the arena never
// needs the upstream again, so a failing upstream changes nothing.
BOOST_AUTO_TEST_CASE(arena_construction_failure_and_independence_afterwards) {
  fault_resource upstream;
  upstream.arm(0);
  expect_upstream_failure([&] { strata::arena heap({.capacity = 1 << 20}, &upstream); }, "arena");
  BOOST_TEST(upstream.live_blocks() == 0u);
  upstream.heal();
  {
    strata::arena heap{{.capacity = 1 << 20}, &upstream};
    upstream.arm(0);  // fails forever from now on
    std::vector<filled> live;
    bool exhausted = false;
    for (int i = 0; i < 2000 && !exhausted; ++i) {
      try {
        live.push_back(
            fill(heap, i % 7 == 0 ? 300 * kib : 16 + (i * 37) % 3000, 16, static_cast<unsigned char>(i)));
      } catch (const strata::allocation_failure& e) {
        BOOST_TEST((e.reason() == strata::failure_reason::capacity));  // never the upstream
        exhausted = true;
      }
    }
    BOOST_TEST(exhausted);
    for (const filled& f : live) {
      BOOST_TEST(f.intact());
      heap.deallocate(f.p, f.bytes, 16);
    }
    BOOST_TEST(heap.stats().bytes_in_use == 0u);
    BOOST_TEST(upstream.calls() == 2u);  // the failed construction, the region, nothing else
    BOOST_TEST(upstream.thrown() == 1u);
  }
  BOOST_TEST(upstream.live_blocks() == 0u);
}

// ----------------------------------------------------------- monotonic_arena

// Chunk acquisition fails while a marker is held: the blocks before it are
// untouched, rewinding still works, and after a reset the retained chunk
// serves the next request without the upstream.
BOOST_AUTO_TEST_CASE(monotonic_arena_chunk_failure_with_marks_and_reset) {
  fault_resource upstream;
  {
    strata::monotonic_arena arena{{.first_chunk_size = 4 * kib, .max_chunk_size = 16 * kib}, &upstream};
    const filled keep = fill(arena, 1000, 8, 0x42);
    const strata::monotonic_arena::marker m = arena.mark();
    upstream.arm(1);  // one more chunk, then nothing
    std::size_t served = 0;
    try {
      for (;;) {
        static_cast<void>(fill(arena, 3000, 8, 0x24));
        ++served;
      }
    } catch (const strata::allocation_failure& e) {
      BOOST_TEST((e.reason() == strata::failure_reason::upstream_failed));
      BOOST_TEST(e.resource_name() == "monotonic_arena");
    }
    BOOST_TEST(served >= 2u);
    BOOST_TEST(keep.intact());
    expect_upstream_failure([&] { static_cast<void>(arena.allocate(64 * kib, 8)); },
                            "monotonic_arena");  // dedicated
    BOOST_TEST(arena.stats().failed_allocations == 2u);
    arena.rewind(m);
    BOOST_TEST(arena.stats().bytes_in_use == 1000u);
    BOOST_TEST(keep.intact());
    const filled after_rewind = fill(arena, 3000, 8, 0x55);  // room from the rewound chunks
    BOOST_TEST(after_rewind.intact());
    arena.reset();
    const std::uint64_t calls = upstream.calls();
    const filled after_reset = fill(arena, 3000, 8, 0x66);  // a retained chunk, no upstream call
    BOOST_TEST(upstream.calls() == calls);
    BOOST_TEST(after_reset.intact());
    BOOST_TEST(arena.stats().misuse_detected == 0u);
    upstream.heal();
    static_cast<void>(fill(arena, 64 * kib, 8, 0x67));
  }
  BOOST_TEST(upstream.live_blocks() == 0u);
}

// ---------------------------------------------------------------------- slab

// The region cannot be obtained: the constructor throws and leaves nothing.
// Once built, a full slab forwards to the upstream; when that fails, the
// slab's slots and forwarded blocks are untouched and a freed slot is served
// again without the upstream.
BOOST_AUTO_TEST_CASE(slab_region_and_forwarding_failures) {
  fault_resource upstream;
  upstream.arm(0);
  expect_upstream_failure([&] { strata::slab s({.slot_size = 64, .capacity = 8}, &upstream); }, "slab");
  BOOST_TEST(upstream.live_blocks() == 0u);
  upstream.heal();
  {
    strata::slab slab{{.slot_size = 64, .capacity = 8}, &upstream};
    std::vector<filled> live;
    for (int i = 0; i < 8; ++i) live.push_back(fill(slab, 64, 8, static_cast<unsigned char>(0x30 + i)));
    const filled forwarded = fill(slab, 64, 8, 0x40);  // exhausted: forwarded
    BOOST_TEST(slab.details().forwarded_live == 1u);
    upstream.arm(0);
    expect_upstream_failure([&] { static_cast<void>(slab.allocate(64, 8)); }, "slab");    // exhausted
    expect_upstream_failure([&] { static_cast<void>(slab.allocate(4000, 8)); }, "slab");  // too large
    BOOST_TEST(slab.details().forwarded_live == 1u);
    BOOST_TEST(slab.free_slots() == 0u);
    BOOST_TEST(slab.stats().failed_allocations == 2u);
    for (const filled& f : live) BOOST_TEST(f.intact());
    BOOST_TEST(forwarded.intact());
    slab.deallocate(live[3].p, 64, 8);
    live[3] = fill(slab, 64, 8, 0x99);  // the freed slot, upstream still failing
    BOOST_TEST(slab.contains(live[3].p));
    upstream.heal();
    for (const filled& f : live) slab.deallocate(f.p, 64, 8);
    slab.deallocate(forwarded.p, 64, 8);
    const strata::resource_stats s = slab.stats();
    BOOST_TEST(s.bytes_in_use == 0u);
    BOOST_TEST(s.misuse_detected == 0u);
    BOOST_TEST(upstream.live_blocks() == 1u);  // the region
  }
  BOOST_TEST(upstream.live_blocks() == 0u);
}

// -------------------------------------------------------------------- chains

// A failure two links down surfaces unchanged through the upper link, named
// after the link that saw the plain bad_alloc; both links stay consistent.
BOOST_AUTO_TEST_CASE(failure_deep_in_a_chain_names_the_failing_link) {
  fault_resource upstream;
  {
    strata::chunk_provider chunks{{.min_chunk_size = 4 * kib, .max_chunk_size = 64 * kib}, &upstream};
    strata::monotonic_arena arena{{.first_chunk_size = 4 * kib, .max_chunk_size = 64 * kib}, &chunks};
    const filled a = fill(arena, 3000, 8, 0x11);
    upstream.arm(0);
    expect_upstream_failure([&] { static_cast<void>(arena.allocate(3000, 8)); }, "chunk_provider");
    BOOST_TEST(a.intact());
    BOOST_TEST(arena.stats().bytes_in_use == 3000u);
    BOOST_TEST(chunks.stats().failed_allocations == 1u);
    BOOST_TEST(chunks.stats().bytes_reserved == upstream.live_bytes());
    upstream.heal();
    static_cast<void>(fill(arena, 3000, 8, 0x12));
    arena.release();
    BOOST_TEST(chunks.stats().bytes_in_use == 0u);
  }
  BOOST_TEST(upstream.live_blocks() == 0u);
}

// ------------------------------------------------------ container workloads

namespace {

// A resource under test on a fault_resource, built by a factory.
struct subject {
  const char* name;
  std::function<std::unique_ptr<std::pmr::memory_resource>(std::pmr::memory_resource*)> make;
};

const subject subjects[] = {
    {"chunk_provider",
     [](std::pmr::memory_resource* up) {
       return std::make_unique<strata::chunk_provider>(
           strata::chunk_provider::options{
               .min_chunk_size = 64, .max_chunk_size = 4 * kib, .thread_cache_bytes = 256},
           up);
     }},
    {"monotonic_arena",
     [](std::pmr::memory_resource* up) {
       return std::make_unique<strata::monotonic_arena>(
           strata::monotonic_arena::options{.first_chunk_size = 256, .max_chunk_size = 4 * kib}, up);
     }},
    {"extendable_slab",
     [](std::pmr::memory_resource* up) {
       return std::make_unique<strata::extendable_slab>(
           strata::extendable_slab::options{.slot_size = 64,
                                            .slots_per_segment = 4,
                                            .max_empty_segments = 0,
                                            .decay_period = std::chrono::milliseconds{0},
                                            .thread_cache_slots = 4},
           up);
     }},
    {"slab",
     [](std::pmr::memory_resource* up) {
       return std::make_unique<strata::slab>(strata::slab::options{.slot_size = 64, .capacity = 16}, up);
     }},
    {"arena",
     [](std::pmr::memory_resource* up) {
       return std::make_unique<strata::arena>(strata::arena::options{.capacity = 1 << 20}, up);
     }},
};

// One step of the workload on the pmr containers and on the std model; a
// step that throws must leave the pmr containers equal to the model (the
// standard's strong guarantee for these operations), so the model is only
// updated after the pmr operation succeeded.
struct containers {
  explicit containers(std::pmr::memory_resource* r) : words{r}, index{r}, text{r} {}
  std::pmr::vector<std::pmr::string> words;
  std::pmr::map<int, std::pmr::string> index;
  std::pmr::string text;
  std::vector<std::string> model_words;
  std::map<int, std::string> model_index;
  std::string model_text;

  void step(int i) {
    const std::string word(static_cast<std::size_t>(5 + (i * 37) % 90), static_cast<char>('a' + i % 26));
    switch (i % 3) {
      case 0:
        words.emplace_back(word);
        model_words.push_back(word);
        break;
      case 1:
        index.emplace(i, word);
        model_index.emplace(i, word);
        break;
      case 2:
        text.append(word);  // strong guarantee when it must reallocate
        model_text.append(word);
        break;
    }
  }
  [[nodiscard]] bool match() const {
    const auto same = [](std::string_view a, std::string_view b) { return a == b; };
    return std::equal(words.begin(), words.end(), model_words.begin(), model_words.end(), same) &&
           std::equal(index.begin(), index.end(), model_index.begin(), model_index.end(),
                      [&](const auto& a, const auto& b) {
                        return a.first == b.first && same(a.second, b.second);
                      }) &&
           same(text, model_text);
  }
};

}  // namespace

// BDE style with persistent faults: for k = 0, 1, 2, ... the upstream fails
// from its k-th allocation on, for `span` calls. The workload keeps going
// through the failures (each failed step is retried later); after every
// throw the containers must still equal the model, and at the end the
// resource and the upstream must be balanced.
BOOST_AUTO_TEST_CASE(containers_keep_the_strong_guarantee_through_persistent_faults) {
  for (const subject& s : subjects) {
    for (const std::uint64_t span : {std::uint64_t{1}, std::uint64_t{4}}) {
      BOOST_TEST_CONTEXT(s.name << ", faults lasting " << span << " calls") {
        for (std::uint64_t k = 0;; ++k) {
          fault_resource upstream;
          upstream.arm(k, span);
          std::unique_ptr<std::pmr::memory_resource> r;
          try {
            r = s.make(&upstream);
          } catch (const std::bad_alloc&) {
            BOOST_TEST(upstream.live_blocks() == 0u);
            continue;
          }
          {
            containers c{r.get()};
            for (int i = 0; i < 60; ++i) {
              try {
                c.step(i);
              } catch (const std::bad_alloc&) {
                if (!c.match()) {
                  BOOST_ERROR("k = " << k << ", step " << i << ": containers changed by a failed operation");
                  break;
                }
              }
            }
            BOOST_TEST(c.match());
          }
          auto* strata_resource = dynamic_cast<strata::resource*>(r.get());
          BOOST_REQUIRE(strata_resource != nullptr);
          const strata::resource_stats st = strata_resource->stats();
          BOOST_TEST(st.allocations == st.deallocations);
          BOOST_TEST(st.bytes_in_use == 0u);
          BOOST_TEST(st.misuse_detected == 0u);
          r.reset();
          BOOST_TEST(upstream.live_blocks() == 0u);
          if (upstream.thrown() == 0) {  // every failure point visited
            BOOST_TEST_MESSAGE(s.name << ", span " << span << ": " << k << " failure points");
            BOOST_TEST(k >= 1u);  // construction at least
            break;
          }
          if (k > 400) {
            BOOST_ERROR("the workload still reached the upstream after 400 failure points");
            break;
          }
        }
      }
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
