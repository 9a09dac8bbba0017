// SPDX-License-Identifier: MIT
#include <strata/monotonic_arena.hpp>

// Concerns:
// 1. The conformance kit passes (alignment matrix, size 0, impossible sizes,
//    bad alignment, pmr containers, std upstream use, destruction, identity).
// 2. A null upstream and each invalid option are rejected, naming the field;
//    the default constructor takes the default resource.
// 3. Blocks are bumped contiguously; chunks grow geometrically in powers of
//    two and stop at max_chunk_size.
// 4. After reset() the next chunk is sized for the previous request, and a
//    steady stream of similar requests needs one chunk and no upstream calls,
//    also on a chunk_provider over system_pages(), and also with a fresh
//    arena per request (the chunk_provider's size hint).
// 5. deallocate rolls back the most recent block only, never across a mark,
//    and lowers bytes_in_use by the size passed every time.
// 6. reset() keeps chunks per each retention policy; adaptive ignores one
//    huge request; release() returns everything and the arena stays usable.
// 7. mark()/rewind() and nested rewind_scopes free what came after the mark
//    and reuse the chunks without upstream calls.
// 8. The initial buffer is used first, again after reset(), and never
//    returned upstream.
// 9. Requests above max_chunk_size get a dedicated chunk (current chunk not
//    abandoned; returned on deallocate, rewind, reset); alignments up to
//    64 KiB are honoured, those up to 4096 by padding inside the chunk.
// 10. Foreign, stale and rewound-past markers are counted, reported as
//     foreign_marker and ignored.
// 11. Overflowing sizes throw allocation_failure(size_overflow), upstream
//     failures allocation_failure(upstream_failed); nothing is lost.
// 12. details() reports footprint, tail waste, chunks and resets.
// 13. With check_owner_thread, use from a second thread is reported; reset() hands ownership on.
// 14. Under ASan, memory given back and kept is poisoned.

#define BOOST_TEST_MODULE monotonic_arena
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <strata/chunk_provider.hpp>
#include <strata/page_resource.hpp>

#include "conformance.hpp"
#include "counting_resource.hpp"
#include "fixtures.hpp"

namespace {

// The suite below is a namespace named monotonic_arena: spell the class in full.
using policy = strata::monotonic_arena::retention_policy;

struct arena_factory {
  static constexpr bool has_upstream = true;
  static constexpr bool thread_safe = false;
  std::unique_ptr<strata::resource> make(std::pmr::memory_resource* upstream) const {
    return std::make_unique<strata::monotonic_arena>(upstream);
  }
};

// Records the size and alignment of every upstream request, then forwards it.
class recording_resource final : public std::pmr::memory_resource {
 public:
  explicit recording_resource(std::pmr::memory_resource* next) : next_(next) {}
  std::vector<std::size_t> sizes;
  std::vector<std::size_t> alignments;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    sizes.push_back(bytes);
    alignments.push_back(alignment);
    return next_->allocate(bytes, alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    next_->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }
  std::pmr::memory_resource* next_;
};

std::byte* bytes_of(void* p) {
  return static_cast<std::byte*>(p);
}

void expect_bad_option(const strata::monotonic_arena::options& opts, const std::string& field) {
  strata::test::counting_resource upstream;
  try {
    strata::monotonic_arena arena{opts, &upstream};
    BOOST_ERROR("options with a bad " << field << " were accepted");
  } catch (const std::invalid_argument& e) {
    BOOST_TEST(std::string(e.what()).find(field) != std::string::npos, e.what()
                                                                           << " does not name " << field);
  }
}

// One request as the benchmark shapes it: many small blocks, some of them
// given back at once (vector growth), then reset().
void run_request(strata::monotonic_arena& arena, std::mt19937& rng, int allocations) {
  for (int i = 0; i < allocations; ++i) {
    const std::size_t size = 16 + rng() % 241;
    const std::size_t alignment = rng() % 2 == 0 ? 8 : 16;
    void* p = arena.allocate(size, alignment);
    std::memset(p, 0x5a, size);
    if (rng() % 8 == 0) arena.deallocate(p, size, alignment);  // rolled back
  }
  arena.reset();
}

// Fills chunks of 4, 8, 16 and 32 KiB with 1000-byte blocks (29 blocks).
void fill_four_chunks(strata::monotonic_arena& arena) {
  while (arena.details().chunks < 4) static_cast<void>(arena.allocate(1000, 8));
}

// Fills bytes in blocks of 16-256 B (the benchmark's request shape), touching each.
void fill_small_blocks(strata::monotonic_arena& arena, std::size_t bytes) {
  std::size_t done = 0;
  for (std::size_t i = 0; done < bytes; ++i) {
    const std::size_t size = 16 + (i * 37) % 241;
    std::memset(arena.allocate(size, 16), 0x5a, size);
    done += size;
  }
}

// The soak tests' request shapes (see the soak chapter below).
struct soak_phase {
  const char* name;
  std::size_t small_bytes;  // in blocks of 16-256 B
  std::size_t block_bytes;  // one block (above 1 MiB: a dedicated chunk), 0 for none
  std::size_t grown_bytes;  // a buffer grown by doubling, each old one freed (a vector's growth)
};

const soak_phase soak_small{"small", 272'000, 0, 0};
const soak_phase soak_medium{"medium", 900'000, 300'000, 100'000};
const soak_phase soak_large{"large", 2'000'000, 3'000'000, 1'500'000};

// Grows a buffer to at least bytes as a vector does: allocate twice the
// capacity, copy, free the old one; frees the last one at the end.
void grow_buffer(strata::monotonic_arena& arena, std::size_t bytes) {
  std::size_t capacity = 16;
  void* p = arena.allocate(capacity, 8);
  std::memset(p, 0x21, capacity);
  while (capacity < bytes) {
    void* q = arena.allocate(2 * capacity, 8);
    std::memcpy(q, p, capacity);
    std::memset(bytes_of(q) + capacity, 0x22, capacity);
    arena.deallocate(p, capacity, 8);
    p = q;
    capacity *= 2;
  }
  arena.deallocate(p, capacity, 8);
}

// One request; returns its peak of bytes in use (what the caller needed at once).
std::size_t run_soak_request(strata::monotonic_arena& arena, const soak_phase& phase) {
  arena.reset_peak();
  fill_small_blocks(arena, phase.small_bytes / 2);
  if (phase.block_bytes != 0) std::memset(arena.allocate(phase.block_bytes, 64), 0x3c, phase.block_bytes);
  if (phase.grown_bytes != 0) grow_buffer(arena, phase.grown_bytes);
  fill_small_blocks(arena, phase.small_bytes / 2);
  return arena.stats().peak_bytes_in_use;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(monotonic_arena)

STRATA_CONFORMANCE_SUITE(arena_factory)

// ------------------------------------------------------------ construction

BOOST_AUTO_TEST_CASE(null_upstream_and_invalid_options_are_rejected_naming_the_field) {
  BOOST_CHECK_THROW(strata::monotonic_arena(nullptr), std::invalid_argument);
  expect_bad_option({.first_chunk_size = 3000}, "first_chunk_size");
  expect_bad_option({.first_chunk_size = 64}, "first_chunk_size");
  expect_bad_option({.first_chunk_size = 8192, .max_chunk_size = 4096}, "max_chunk_size");
  expect_bad_option({.max_chunk_size = 3 << 20}, "max_chunk_size");
  expect_bad_option({.growth_factor = 3}, "growth_factor");
  expect_bad_option({.growth_factor = 0}, "growth_factor");
  expect_bad_option({.growth_factor = 2048}, "growth_factor");
  expect_bad_option({.retention = static_cast<policy>(9)}, "retention");
  expect_bad_option({.retention_window = 0}, "retention_window");
  strata::test::counting_resource upstream;
  const std::span<std::byte> no_data(static_cast<std::byte*>(nullptr), 16);
  BOOST_CHECK_THROW(strata::monotonic_arena({}, no_data, &upstream), std::invalid_argument);
}

// Issue 17: the caller's buffer is a constructor argument, as on slab; the
// options field stays for 0.2, deprecated, and behaves as before. Giving both
// is refused rather than one silently winning.
BOOST_AUTO_TEST_CASE(the_deprecated_initial_buffer_field_still_works_and_not_with_the_argument) {
  strata::test::counting_resource upstream;
  alignas(16) std::array<std::byte, 256> buffer{};
  alignas(16) std::array<std::byte, 256> other{};
  strata::monotonic_arena old_way{{.initial_buffer = buffer}, &upstream};
  BOOST_TEST(bytes_of(old_way.allocate(16, 16)) == buffer.data());
  BOOST_CHECK_THROW(strata::monotonic_arena({.initial_buffer = buffer}, other, &upstream),
                    std::invalid_argument);
  expect_bad_option({.initial_buffer = std::span<std::byte>(static_cast<std::byte*>(nullptr), 16)}, "buffer");
  strata::monotonic_arena new_way{{}, other, &upstream};
  BOOST_TEST(bytes_of(new_way.allocate(16, 16)) == other.data());
  BOOST_TEST(upstream.allocations() == 0u);
}

BOOST_AUTO_TEST_CASE(default_constructor_takes_the_default_resource) {
  strata::monotonic_arena arena;  // the global fixture made the default resource null
  BOOST_TEST(arena.upstream_resource() == std::pmr::get_default_resource());
  BOOST_TEST(arena.name() == "monotonic_arena");
  try {
    static_cast<void>(arena.allocate(8, 8));
    BOOST_FAIL("the null default resource did not refuse");
  } catch (const strata::allocation_failure& e) {
    BOOST_TEST((e.reason() == strata::failure_reason::upstream_failed));
    BOOST_TEST(e.resource_name() == "monotonic_arena");
  }
  BOOST_TEST(arena.stats().failed_allocations == 1u);
  BOOST_TEST(arena.stats().allocations == 0u);
}

// ------------------------------------------------------------ bump, growth

BOOST_AUTO_TEST_CASE(blocks_are_bumped_contiguously_with_padding_only_for_alignment) {
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{&upstream};
  std::byte* a = bytes_of(arena.allocate(24, 8));
  std::byte* b = bytes_of(arena.allocate(8, 8));
  std::byte* c = bytes_of(arena.allocate(1, 1));
  std::byte* d = bytes_of(arena.allocate(16, 16));
  BOOST_TEST(b == a + 24);
  BOOST_TEST(c == b + 8);
  BOOST_TEST(strata::detail::is_aligned(d, 16));
  BOOST_TEST(d > c);
  BOOST_TEST(d - c <= 16);
  BOOST_TEST(upstream.allocations() == 1u);
}

BOOST_AUTO_TEST_CASE(chunks_grow_geometrically_in_powers_of_two_up_to_max_chunk_size) {
  strata::test::counting_resource counted;
  recording_resource upstream{&counted};
  {
    strata::monotonic_arena arena{{.first_chunk_size = 4096, .max_chunk_size = 32768}, &upstream};
    for (int i = 0; i < 100000 && upstream.sizes.size() < 6; ++i) static_cast<void>(arena.allocate(100, 8));
    const std::vector<std::size_t> expected{4096, 8192, 16384, 32768, 32768, 32768};
    BOOST_TEST(upstream.sizes == expected, boost::test_tools::per_element());
    BOOST_TEST(std::all_of(upstream.alignments.begin(), upstream.alignments.end(),
                           [](std::size_t a) { return a == alignof(std::max_align_t); }));
    const strata::resource_stats s = arena.stats();
    BOOST_TEST(s.upstream_allocations == 6u);
    BOOST_TEST(s.bytes_reserved == counted.bytes_outstanding());
    BOOST_TEST(arena.details().chunks == 6u);
    BOOST_TEST(arena.details().wasted_tail_bytes < 6 * 100u);  // each skipped tail is under one block
  }
  upstream.sizes.clear();
  {
    strata::monotonic_arena arena{{.growth_factor = 4, .max_chunk_size = 65536}, &upstream};
    for (int i = 0; i < 100000 && upstream.sizes.size() < 4; ++i) static_cast<void>(arena.allocate(100, 8));
    const std::vector<std::size_t> expected{4096, 16384, 65536, 65536};
    BOOST_TEST(upstream.sizes == expected, boost::test_tools::per_element());
  }
  BOOST_TEST(counted.bytes_outstanding() == 0u);
}

BOOST_AUTO_TEST_CASE(reset_sizes_the_next_chunk_for_the_previous_request) {
  strata::test::counting_resource counted;
  recording_resource upstream{&counted};
  strata::monotonic_arena arena{{.retention = policy::keep_none}, &upstream};
  for (int i = 0; i < 40; ++i) static_cast<void>(arena.allocate(1000, 8));
  BOOST_TEST(upstream.sizes.size() > 1u);  // grew over several chunks
  arena.reset();
  BOOST_TEST(counted.bytes_outstanding() == 0u);          // keep_none kept nothing
  BOOST_TEST(arena.details().next_chunk_size == 65536u);  // 40,000 bytes and a footer
  upstream.sizes.clear();
  for (int i = 0; i < 40; ++i) static_cast<void>(arena.allocate(1000, 8));
  BOOST_TEST(upstream.sizes == std::vector<std::size_t>{65536}, boost::test_tools::per_element());
  arena.release();
}

BOOST_AUTO_TEST_CASE(steady_requests_reuse_the_kept_chunk_without_upstream_calls) {
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{&upstream};  // keep_largest
  std::mt19937 rng(1);
  for (int warm = 0; warm < 3; ++warm) run_request(arena, rng, 500);
  const std::uint64_t before = upstream.allocations();
  for (int request = 0; request < 20; ++request) {
    run_request(arena, rng, 500);
    BOOST_TEST_REQUIRE(arena.details().chunks == 1u);  // one chunk serves a whole request
  }
  BOOST_TEST(upstream.allocations() == before);
  BOOST_TEST(upstream.deallocations() + 1 == upstream.allocations());
}

// The stacking example of DESIGN.md and the README: a fresh arena per request
// on a shared chunk_provider. Each arena starts small; without the provider's
// size hint it grew through 4, 8, 16 KiB... classes that the provider's floor
// ratchet no longer caches, so every request mapped and unmapped them.
BOOST_AUTO_TEST_CASE(fresh_arenas_per_request_on_a_chunk_provider_make_zero_upstream_calls) {
  strata::chunk_provider chunks{{.max_chunk_size = 1 << 20}, strata::system_pages()};
  std::mt19937 rng(7);
  const auto one_request = [&] {
    strata::monotonic_arena arena{&chunks};
    run_request(arena, rng, 2000);
    return arena.stats().upstream_allocations;  // chunks this arena took
  };
  for (int warm = 0; warm < 3; ++warm) one_request();
  const strata::resource_stats before = chunks.stats();
  std::uint64_t chunks_taken = 0;
  for (int request = 0; request < 50; ++request) chunks_taken += one_request();
  const strata::resource_stats after = chunks.stats();
  BOOST_TEST(after.upstream_allocations == before.upstream_allocations);
  BOOST_TEST(after.upstream_deallocations == before.upstream_deallocations);
  BOOST_TEST(chunks_taken == 50u);  // one chunk of the provider's floor class per request
  BOOST_TEST(after.bytes_in_use == 0u);
}

BOOST_AUTO_TEST_CASE(steady_requests_on_a_chunk_provider_make_zero_upstream_calls) {
  strata::chunk_provider chunks{strata::system_pages()};
  strata::monotonic_arena arena{&chunks};
  std::mt19937 rng(2024);
  for (int warm = 0; warm < 4; ++warm) run_request(arena, rng, 2000);
  const strata::resource_stats arena_before = arena.stats();
  const strata::resource_stats chunks_before = chunks.stats();
  for (int request = 0; request < 100; ++request) {
    run_request(arena, rng, 2000);
    BOOST_TEST_REQUIRE(arena.details().spare_chunks == 1u);  // the kept chunk, ready for the next
  }
  const strata::resource_stats arena_after = arena.stats();
  const strata::resource_stats chunks_after = chunks.stats();
  BOOST_TEST(arena_after.allocations - arena_before.allocations == 200000u);
  BOOST_TEST(arena_after.upstream_allocations == arena_before.upstream_allocations);
  BOOST_TEST(arena_after.upstream_deallocations == arena_before.upstream_deallocations);
  BOOST_TEST(chunks_after.upstream_allocations == chunks_before.upstream_allocations);
  BOOST_TEST(chunks_after.upstream_deallocations == chunks_before.upstream_deallocations);
  BOOST_TEST(arena.details().resets == 104u);
}

// ------------------------------------------- long-running servers (issue 13)
//
// Regression tests for issue 13, part 3: "monotonic_arena forgets its largest
// need". Each failed on the code before the fix, as the comment says.

// Used to break: keep_largest (the default) kept one chunk of at most
// max_chunk_size and never a dedicated chunk, so a request needing 2 MB made
// upstream calls after every reset(), in either shape.
BOOST_AUTO_TEST_CASE(a_repeating_2_mb_request_makes_no_upstream_calls_after_warm_up) {
  const auto small_blocks = [](strata::monotonic_arena& arena) { fill_small_blocks(arena, 2'000'000); };
  const auto one_block = [](strata::monotonic_arena& arena) {
    fill_small_blocks(arena, 20'000);
    std::memset(arena.allocate(2'000'000, 64), 0x6b, 2'000'000);  // above max_chunk_size: dedicated
    fill_small_blocks(arena, 20'000);
  };
  for (const bool dedicated : {false, true}) {
    BOOST_TEST_CONTEXT((dedicated ? "one 2 MB block" : "2 MB of small blocks")) {
      strata::test::counting_resource upstream;
      strata::monotonic_arena arena{&upstream};  // default options
      const auto request = [&] {
        if (dedicated) {
          one_block(arena);
        } else {
          small_blocks(arena);
        }
        arena.reset();
      };
      for (int warm = 0; warm < 3; ++warm) request();
      const std::uint64_t allocations = upstream.allocations();
      const std::uint64_t deallocations = upstream.deallocations();
      for (int i = 0; i < 10; ++i) request();
      BOOST_TEST(upstream.allocations() == allocations);
      BOOST_TEST(upstream.deallocations() == deallocations);
    }
  }
}

// Used to break: reset() sized the next chunk for the request that had just
// ended, so one small request dropped next_chunk_size from 1 MiB to 16 KiB
// and the next large request grew through every class again.
BOOST_AUTO_TEST_CASE(one_small_request_does_not_shrink_the_next_chunk_size) {
  strata::test::counting_resource counted;
  recording_resource upstream{&counted};
  strata::monotonic_arena arena{{.retention = policy::keep_none}, &upstream};  // no spares: only sizing
  fill_small_blocks(arena, 1'500'000);
  arena.reset();
  fill_small_blocks(arena, 10'000);
  arena.reset();
  BOOST_TEST(arena.details().next_chunk_size == std::size_t{1} << 20);
  upstream.sizes.clear();
  fill_small_blocks(arena, 1'500'000);  // two 1 MiB chunks, not 16 KiB, 32 KiB, ... 1 MiB
  BOOST_TEST(upstream.sizes == (std::vector<std::size_t>{1 << 20, 1 << 20}),
             boost::test_tools::per_element());
}

// Used to break: retain_bytes was read only under keep_up_to_retain_bytes, so
// with the default retention it was silently ignored.
BOOST_AUTO_TEST_CASE(retain_bytes_caps_the_default_retention) {
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{{.retain_bytes = 64 * 1024}, &upstream};
  fill_small_blocks(arena, 600'000);
  arena.reset();
  BOOST_TEST(arena.stats().bytes_reserved <= 64u * 1024);
  BOOST_TEST(upstream.bytes_outstanding() <= 64u * 1024);
}

// Issue 13: "a 2 MB request repeated after small ones makes no upstream call
// after warm-up", with default options, in both shapes.
BOOST_AUTO_TEST_CASE(a_2_mb_request_between_small_ones_makes_no_upstream_calls_after_warm_up) {
  for (const bool dedicated : {false, true}) {
    BOOST_TEST_CONTEXT((dedicated ? "one 2 MB block" : "2 MB of small blocks")) {
      strata::test::counting_resource upstream;
      strata::monotonic_arena arena{&upstream};
      const auto cycle = [&] {
        for (int small = 0; small < 5; ++small) {
          fill_small_blocks(arena, 10'000);
          arena.reset();
        }
        if (dedicated) {
          std::memset(arena.allocate(2'000'000, 16), 0x6b, 2'000'000);
        } else {
          fill_small_blocks(arena, 2'000'000);
        }
        arena.reset();
      };
      for (int warm = 0; warm < 2; ++warm) cycle();
      const std::uint64_t allocations = upstream.allocations();
      const std::uint64_t deallocations = upstream.deallocations();
      for (int i = 0; i < 10; ++i) cycle();
      BOOST_TEST(upstream.allocations() == allocations);
      BOOST_TEST(upstream.deallocations() == deallocations);
      BOOST_TEST(arena.stats().bytes_reserved <= 3u << 20);  // what 2 MB needs, not more
    }
  }
}

// A pmr vector growing past max_chunk_size frees each buffer after taking
// the next: the freed dedicated chunks are kept, so the growth repeats with
// no upstream call.
BOOST_AUTO_TEST_CASE(a_vector_growing_past_max_chunk_size_makes_no_upstream_calls_after_warm_up) {
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{&upstream};
  const auto request = [&] {
    {
      using page = std::array<char, 4096>;  // large elements: few push_backs, same capacities in bytes
      std::pmr::vector<page> v{&arena};
      for (int i = 0; i < 733; ++i) v.push_back(page{static_cast<char>(i)});  // 3 MB: capacity 4 MiB
      BOOST_TEST_REQUIRE(v[700][0] == static_cast<char>(700));
    }
    arena.reset();
  };
  for (int warm = 0; warm < 2; ++warm) request();
  const std::uint64_t allocations = upstream.allocations();
  const std::uint64_t deallocations = upstream.deallocations();
  for (int i = 0; i < 5; ++i) request();
  BOOST_TEST(upstream.allocations() == allocations);
  BOOST_TEST(upstream.deallocations() == deallocations);
  // Capacities 1, 2 and 4 MiB are dedicated (above 1 MiB less a footer): 7 MiB
  // and three footers. The smaller ones bump through 1 MiB, held in at most
  // 2 MiB of chunks.
  BOOST_TEST(arena.details().dedicated_chunks == 3u);
  BOOST_TEST(arena.stats().bytes_reserved <= (9u << 20) + 3 * 32);
}

// "Recent" is the last retention_window requests: once the large requests
// stop, their chunks stay for window - 1 more resets, then go back, and the
// next chunk size falls with them.
BOOST_AUTO_TEST_CASE(what_a_past_peak_needed_goes_back_after_retention_window_requests) {
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{{.retention_window = 8}, &upstream};
  for (int large = 0; large < 2; ++large) {  // the first grows through small chunks, the second settles
    fill_small_blocks(arena, 1'500'000);
    std::memset(arena.allocate(2'000'000, 16), 0x6b, 2'000'000);
    arena.reset();  // the need is remembered from this reset on
  }
  const std::size_t peak = arena.stats().bytes_reserved;
  BOOST_TEST(peak == (std::size_t{2} << 20) + 2'000'000 + 32);  // two 1 MiB chunks, one dedicated
  BOOST_TEST(arena.details().recent_need == peak);
  BOOST_TEST(arena.details().chunks == 3u);
  for (int small = 1; small <= 7; ++small) {
    fill_small_blocks(arena, 10'000);
    arena.reset();
    BOOST_TEST_REQUIRE(arena.stats().bytes_reserved == peak);  // still within the window
    BOOST_TEST_REQUIRE(arena.details().next_chunk_size == std::size_t{1} << 20);
  }
  fill_small_blocks(arena, 10'000);
  arena.reset();                                   // the eighth small request: the peak has left the window
  BOOST_TEST(arena.stats().bytes_reserved == 0u);  // its chunks were too large for 10 KB
  BOOST_TEST(upstream.bytes_outstanding() == 0u);
  BOOST_TEST(arena.details().next_chunk_size == 16384u);
  BOOST_TEST(arena.details().recent_need == 16384u);
  for (int small = 0; small < 5; ++small) {
    fill_small_blocks(arena, 10'000);
    arena.reset();
  }
  BOOST_TEST(arena.stats().bytes_reserved == 16384u);  // one chunk sized for the new need
  BOOST_TEST(upstream.allocations() == upstream.deallocations() + 1);
}

// Windows above 16 are tracked in 16 steps: never shorter than asked, at
// most 2 * ceil(window / 16) - 2 requests longer.
BOOST_AUTO_TEST_CASE(a_long_retention_window_is_kept_at_least_as_long_as_asked) {
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{{.retention_window = 100}, &upstream};
  fill_small_blocks(arena, 1'500'000);
  arena.reset();
  const std::size_t peak = arena.stats().bytes_reserved;
  int resets = 1;
  for (; resets < 100; ++resets) {
    fill_small_blocks(arena, 10'000);
    arena.reset();
    BOOST_TEST_REQUIRE(arena.stats().bytes_reserved == peak);
  }
  // ceil(100 / 16) = 7: remembered for at most 112 resets, forgotten by the 113th.
  for (; resets < 113 && arena.stats().bytes_reserved == peak; ++resets) {
    fill_small_blocks(arena, 10'000);
    arena.reset();
  }
  BOOST_TEST(arena.stats().bytes_reserved < peak);
  BOOST_TEST(resets > 100);
}

// retain_bytes bounds the spare bytes under every policy and at every point:
// after reset(), after a rewind() and after freeing a dedicated block.
BOOST_AUTO_TEST_CASE(retain_bytes_caps_spares_under_every_policy_at_every_point) {
  constexpr std::size_t cap = 40 * 1024;
  for (const policy retention : {policy::keep_none, policy::keep_largest, policy::keep_up_to_retain_bytes,
                                 policy::adaptive, policy::keep_recent_need}) {
    BOOST_TEST_CONTEXT("policy " << static_cast<int>(retention)) {
      strata::test::counting_resource upstream;
      strata::monotonic_arena arena{{.max_chunk_size = 65536, .retain_bytes = cap, .retention = retention},
                                    &upstream};
      for (int request = 0; request < 4; ++request) {
        fill_small_blocks(arena, 20'000);
        const auto m = arena.mark();
        fill_small_blocks(arena, 300'000);
        arena.rewind(m);  // its chunks become spares, as far as the cap allows
        BOOST_TEST_REQUIRE(arena.details().spare_bytes <= cap);
        void* big = arena.allocate(30'000 + 65536, 8);  // dedicated
        arena.deallocate(big, 30'000 + 65536, 8);
        BOOST_TEST_REQUIRE(arena.details().spare_bytes <= cap);
        arena.reset();
        BOOST_TEST_REQUIRE(arena.stats().bytes_reserved <= cap);
        BOOST_TEST_REQUIRE(upstream.bytes_outstanding() == arena.stats().bytes_reserved);
      }
      BOOST_TEST(arena.stats().failed_allocations == 0u);
    }
  }
}

// keep_recent_need swaps chunks smaller than the need for one fresh chunk at
// the next request, but not after an upstream failure: it keeps what it
// could not replace (the fault_injection suite relies on it too).
BOOST_AUTO_TEST_CASE(after_an_upstream_failure_reset_keeps_the_chunks_it_has) {
  for (const bool failing : {false, true}) {
    BOOST_TEST_CONTEXT((failing ? "upstream failed" : "upstream fine")) {
      strata::test::counting_resource upstream;
      strata::monotonic_arena arena{{.max_chunk_size = 16384}, &upstream};
      for (int i = 0; i < 12; ++i) static_cast<void>(arena.allocate(1000, 8));  // 4 and 8 KiB chunks
      BOOST_TEST_REQUIRE(upstream.bytes_outstanding() == 4096u + 8192);
      upstream.fail_allocations(failing);
      if (failing) BOOST_CHECK_THROW(static_cast<void>(arena.allocate(5000, 8)), strata::allocation_failure);
      if (!failing) static_cast<void>(arena.allocate(5000, 8));  // a 16 KiB chunk
      arena.reset();  // the need (over 12 KB) wants one 16 KiB chunk
      BOOST_TEST(arena.stats().bytes_reserved == (failing ? 4096u + 8192 : 16384u));
      const std::uint64_t calls = upstream.allocations();
      for (int i = 0; i < 8; ++i) static_cast<void>(arena.allocate(1000, 8));  // served by what was kept
      BOOST_TEST(upstream.allocations() == calls);
      upstream.fail_allocations(false);
    }
  }
}

// ------------------------------------------------------------------ soak
//
// A long-running server in miniature, on the README's chain (a chunk_provider
// with 1 MiB classes over system_pages()): phases of small, medium and large
// requests, each phase repeating one request shape. Bounded: about 100
// requests of at most ~7 MB each.

BOOST_AUTO_TEST_CASE(soak_shifting_request_sizes_settle_with_zero_upstream_calls_and_a_bounded_footprint) {
  strata::chunk_provider chunks{{.max_chunk_size = 1 << 20}, strata::system_pages()};
  strata::monotonic_arena arena{&chunks};  // default options: a window of 64 requests
  const soak_phase* cycle[] = {&soak_small, &soak_medium, &soak_large, &soak_small};
  constexpr int per_phase = 4;
  constexpr int cycles = 6;
  std::size_t largest_in_use = 0;
  std::size_t largest_reserved = 0;
  strata::resource_stats arena_warm{};
  strata::resource_stats chunks_warm{};
  for (int c = 0; c < cycles; ++c) {
    if (c == 1) {  // one cycle (16 requests, inside the window) warms everything
      arena_warm = arena.stats();
      chunks_warm = chunks.stats();
    }
    for (const soak_phase* phase : cycle) {
      for (int r = 0; r < per_phase; ++r) {
        largest_in_use = std::max(largest_in_use, run_soak_request(arena, *phase));
        largest_reserved = std::max(largest_reserved, arena.stats().bytes_reserved);  // at the request's end
        arena.reset();
      }
    }
  }
  const strata::resource_stats a = arena.stats();
  const strata::resource_stats p = chunks.stats();
  BOOST_TEST(a.upstream_allocations == arena_warm.upstream_allocations);
  BOOST_TEST(a.upstream_deallocations == arena_warm.upstream_deallocations);
  BOOST_TEST(p.upstream_allocations == chunks_warm.upstream_allocations);  // no mmap either
  BOOST_TEST(p.upstream_deallocations == chunks_warm.upstream_deallocations);
  BOOST_TEST(a.failed_allocations == 0u);
  BOOST_TEST(p.failed_allocations == 0u);
  BOOST_TEST(a.misuse_detected == 0u);
  // The footprint: at most twice what the largest request held at once. The
  // large request's 7.3 MB peak is served by about 10.5 MB of chunks (the
  // growth chunks of its small blocks, three dedicated ones for its vector
  // and one for its block); the other phases reuse them.
  BOOST_TEST_MESSAGE("soak: largest in use " << largest_in_use << ", largest reserved " << largest_reserved);
  BOOST_TEST(largest_reserved <= 2 * largest_in_use);
  BOOST_TEST(arena.stats().bytes_reserved <= largest_reserved);
}

// The same phases with a window shorter than a phase, and a retain_bytes cap:
// each phase settles after its first request; a finished large phase gives
// its memory back within the window; spares never exceed retain_bytes.
BOOST_AUTO_TEST_CASE(soak_with_a_short_window_gives_memory_back_and_respects_retain_bytes) {
  strata::chunk_provider chunks{{.max_chunk_size = 1 << 20}, strata::system_pages()};
  constexpr std::size_t cap = 12u << 20;
  strata::monotonic_arena arena{{.retain_bytes = cap, .retention_window = 3}, &chunks};
  const soak_phase* cycle[] = {&soak_small, &soak_medium, &soak_large, &soak_small};
  constexpr int per_phase = 5;
  for (int c = 0; c < 3; ++c) {
    for (const soak_phase* phase : cycle) {
      BOOST_TEST_CONTEXT("cycle " << c << ", phase " << phase->name) {
        for (int r = 0; r < per_phase; ++r) {
          const std::uint64_t calls =
              chunks.stats().upstream_allocations + arena.stats().upstream_allocations;
          static_cast<void>(run_soak_request(arena, *phase));
          BOOST_TEST_REQUIRE(arena.details().spare_bytes <= cap);
          arena.reset();
          BOOST_TEST_REQUIRE(arena.stats().bytes_reserved <= cap);
          if (r >= 2) {  // after the phase's first two requests: no new memory
            BOOST_TEST(chunks.stats().upstream_allocations + arena.stats().upstream_allocations == calls);
          }
        }
        if (phase == &soak_small) {  // five small requests: the window holds small ones only
          BOOST_TEST(arena.stats().bytes_reserved <= std::size_t{1} << 20);
        }
      }
    }
  }
  BOOST_TEST(arena.stats().failed_allocations == 0u);
  BOOST_TEST(chunks.stats().failed_allocations == 0u);
}

// -------------------------------------------------------- rollback, stats

BOOST_AUTO_TEST_CASE(deallocating_the_latest_block_rolls_back_and_older_ones_do_not) {
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{&upstream};
  std::byte* a = bytes_of(arena.allocate(64, 8));
  std::byte* b = bytes_of(arena.allocate(64, 8));
  arena.deallocate(b, 64, 8);
  BOOST_TEST(bytes_of(arena.allocate(64, 8)) == b);  // rolled back and reused
  arena.deallocate(a, 64, 8);                        // not the latest: no-op
  std::byte* c = bytes_of(arena.allocate(64, 8));
  BOOST_TEST(c == b + 64);
  BOOST_TEST(c != a);
  std::byte* z = bytes_of(arena.allocate(0, 8));  // size 0 still takes a byte
  BOOST_TEST(bytes_of(arena.allocate(0, 1)) == z + 1);
}

BOOST_AUTO_TEST_CASE(a_rollback_never_crosses_a_mark) {
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{&upstream};
  std::byte* x = bytes_of(arena.allocate(32, 8));
  const auto m = arena.mark();
  arena.deallocate(x, 32, 8);  // latest, but below the mark
  std::byte* y = bytes_of(arena.allocate(32, 8));
  BOOST_TEST(y == x + 32);
  arena.rewind(m);
  BOOST_TEST(bytes_of(arena.allocate(32, 8)) == y);  // the marker is still valid
  BOOST_TEST(arena.stats().misuse_detected == 0u);
}

BOOST_AUTO_TEST_CASE(every_deallocate_lowers_bytes_in_use_and_reset_zeroes_it) {
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{&upstream};
  void* a = arena.allocate(100, 8);
  void* b = arena.allocate(50, 8);
  void* c = arena.allocate(25, 8);
  BOOST_TEST(arena.stats().bytes_in_use == 175u);
  BOOST_TEST(arena.stats().peak_bytes_in_use == 175u);  // computed lazily, but never stale when read
  arena.deallocate(a, 100, 8);                          // not reused, still counted off
  BOOST_TEST(arena.stats().bytes_in_use == 75u);
  arena.deallocate(c, 25, 8);
  BOOST_TEST(arena.stats().bytes_in_use == 50u);
  BOOST_TEST(arena.stats().peak_bytes_in_use == 175u);
  BOOST_TEST(arena.stats().deallocations == 2u);
  static_cast<void>(b);
  arena.reset();  // b is gone with everything else
  BOOST_TEST(arena.stats().bytes_in_use == 0u);
  BOOST_TEST(arena.stats().allocations == 3u);
  BOOST_TEST(arena.stats().peak_bytes_in_use == 175u);
  arena.reset_peak();
  BOOST_TEST(arena.stats().peak_bytes_in_use == 0u);
  static_cast<void>(arena.allocate(30, 8));
  BOOST_TEST(arena.stats().peak_bytes_in_use == 30u);
}

// --------------------------------------------------------------- retention

// retain_bytes caps every policy (issue 13: it used to be read by
// keep_up_to_retain_bytes only).
BOOST_AUTO_TEST_CASE(reset_keeps_chunks_per_each_retention_policy) {
  struct expectation {
    policy retention;
    std::size_t retain_bytes;
    std::size_t kept_bytes;
    std::size_t kept_chunks;
  };
  constexpr std::size_t all = strata::monotonic_arena::unlimited;
  constexpr std::size_t cap = 16384 + 8192 + 2000;
  const expectation cases[] = {
      {policy::keep_none, all, 0, 0},
      {policy::keep_largest, all, 32768, 1},
      {policy::keep_up_to_retain_bytes, all, 4096 + 8192 + 16384 + 32768, 4},
      {policy::adaptive, all, 32768, 1},          // a 29,000-byte request needs 32 KiB
      {policy::keep_recent_need, all, 32768, 1},  // the same, smaller chunks go back
      {policy::keep_none, cap, 0, 0},
      {policy::keep_largest, cap, 0, 0},                        // 32 KiB is above the cap
      {policy::keep_up_to_retain_bytes, cap, 16384 + 8192, 2},  // 32 KiB does not fit 26,576; 4 KiB no more
      {policy::adaptive, cap, 16384 + 8192, 2},                 // the same greedy rule under the cap
      {policy::keep_recent_need, cap, 0, 0},                    // only chunks that hold the request count
  };
  for (const expectation& e : cases) {
    BOOST_TEST_CONTEXT("policy " << static_cast<int>(e.retention) << ", retain_bytes " << e.retain_bytes) {
      strata::test::counting_resource upstream;
      strata::monotonic_arena arena{{.retain_bytes = e.retain_bytes, .retention = e.retention}, &upstream};
      fill_four_chunks(arena);
      BOOST_TEST(upstream.bytes_outstanding() == 4096u + 8192 + 16384 + 32768);
      arena.reset();
      BOOST_TEST(upstream.bytes_outstanding() == e.kept_bytes);
      BOOST_TEST(arena.stats().bytes_reserved == e.kept_bytes);
      BOOST_TEST(arena.details().chunks == e.kept_chunks);
      BOOST_TEST(arena.details().spare_chunks == e.kept_chunks);
      // The kept chunks serve the next request first: no upstream call until they are full.
      const std::uint64_t before = upstream.allocations();
      if (e.kept_chunks > 0) {
        static_cast<void>(arena.allocate(1000, 8));
        BOOST_TEST(upstream.allocations() == before);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(adaptive_retention_lets_no_single_huge_request_pin_memory) {
  strata::test::counting_resource adaptive_upstream;
  strata::test::counting_resource largest_upstream;
  strata::monotonic_arena adaptive{{.retention = policy::adaptive}, &adaptive_upstream};
  strata::monotonic_arena largest{{.retention = policy::keep_largest}, &largest_upstream};
  for (strata::monotonic_arena* arena : {&adaptive, &largest}) {
    for (int request = 0; request < 15; ++request) {
      for (int i = 0; i < 3; ++i) static_cast<void>(arena->allocate(1000, 8));
      arena->reset();
    }
    for (int i = 0; i < 600; ++i) static_cast<void>(arena->allocate(1000, 8));  // one outlier
    arena->reset();
  }
  BOOST_TEST(largest_upstream.bytes_outstanding() >= 512u * 1024);  // pinned by keep_largest
  BOOST_TEST(adaptive_upstream.bytes_outstanding() <= 4096u);       // the typical 3,000 bytes
  BOOST_TEST(adaptive.details().next_chunk_size == 4096u);
  BOOST_TEST(adaptive.details().largest_request_footprint >= 600000u);
  // Two outliers in sixteen reach the 90th percentile: then the capacity is kept.
  for (int i = 0; i < 600; ++i) static_cast<void>(adaptive.allocate(1000, 8));
  adaptive.reset();
  BOOST_TEST(adaptive_upstream.bytes_outstanding() >= 512u * 1024);
}

BOOST_AUTO_TEST_CASE(release_returns_every_chunk_and_the_arena_stays_usable) {
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{{.max_chunk_size = 16384}, &upstream};
  for (int i = 0; i < 100; ++i) static_cast<void>(arena.allocate(1000, 8));
  static_cast<void>(arena.allocate(100000, 8));  // dedicated
  const auto m = arena.mark();
  static_cast<void>(arena.allocate(5000, 8));
  arena.rewind(m);  // leaves a spare
  BOOST_TEST(arena.details().spare_chunks + arena.details().dedicated_chunks >= 1u);
  arena.release();
  BOOST_TEST(upstream.bytes_outstanding() == 0u);
  BOOST_TEST(upstream.blocks_outstanding() == 0u);
  const strata::resource_stats s = arena.stats();
  BOOST_TEST(s.bytes_reserved == 0u);
  BOOST_TEST(s.bytes_in_use == 0u);
  BOOST_TEST(s.upstream_allocations == s.upstream_deallocations);
  BOOST_TEST(arena.details().chunks == 0u);
  void* p = arena.allocate(64, 8);  // usable again
  std::memset(p, 1, 64);
  BOOST_TEST(upstream.blocks_outstanding() == 1u);
}

// ----------------------------------------------------------------- markers

BOOST_AUTO_TEST_CASE(rewind_frees_what_came_after_the_mark_and_keeps_its_chunks) {
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{&upstream};
  static_cast<void>(arena.allocate(100, 8));
  const auto m = arena.mark();
  std::byte* b = bytes_of(arena.allocate(100, 8));
  static_cast<void>(arena.allocate(6000, 8));  // does not fit the first chunk: a second one
  BOOST_TEST(arena.stats().bytes_in_use == 6200u);
  BOOST_TEST(upstream.allocations() == 2u);
  arena.rewind(m);
  BOOST_TEST(arena.stats().bytes_in_use == 100u);
  BOOST_TEST(arena.details().spare_chunks == 1u);
  BOOST_TEST(bytes_of(arena.allocate(100, 8)) == b);
  for (int round = 0; round < 10; ++round) {  // a scratch loop: the spare serves every round
    strata::rewind_scope scope{arena};
    static_cast<void>(arena.allocate(6000, 8));
  }
  BOOST_TEST(upstream.allocations() == 2u);
  BOOST_TEST(arena.stats().misuse_detected == 0u);
}

// Issue 17: arena_scope is now rewind_scope; the old name stays one release
// as a deprecated alias of the same type.
BOOST_AUTO_TEST_CASE(the_old_arena_scope_name_is_the_same_rewind_scope) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  static_assert(std::is_same_v<strata::arena_scope, strata::rewind_scope>);
  strata::monotonic_arena arena{{.first_chunk_size = 1024}, std::pmr::new_delete_resource()};
  static_cast<void>(arena.allocate(100, 8));
  {
    strata::arena_scope scope{arena};
    static_cast<void>(arena.allocate(300, 8));
    BOOST_TEST(arena.stats().bytes_in_use == 400u);
  }
#pragma GCC diagnostic pop
  BOOST_TEST(arena.stats().bytes_in_use == 100u);
}

BOOST_AUTO_TEST_CASE(rewind_scopes_nest_and_each_rewinds_to_its_own_mark) {
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{{.first_chunk_size = 1024}, &upstream};
  static_cast<void>(arena.allocate(200, 8));  // the scopes start inside the first chunk
  std::byte* outer_first = nullptr;
  std::byte* inner_first = nullptr;
  {
    strata::rewind_scope outer{arena};
    BOOST_TEST(&outer.arena() == &arena);
    outer_first = bytes_of(arena.allocate(200, 8));
    {
      strata::rewind_scope inner{arena};
      inner_first = bytes_of(arena.allocate(200, 8));
      for (int i = 0; i < 50; ++i) static_cast<void>(arena.allocate(200, 8));  // several chunks
    }
    BOOST_TEST(bytes_of(arena.allocate(200, 8)) == inner_first);
    std::pmr::vector<int> v{&arena};  // a container destroyed before the scope ends
    v.assign(100, 7);
  }
  BOOST_TEST(bytes_of(arena.allocate(200, 8)) == outer_first);
  BOOST_TEST(arena.stats().bytes_in_use == 400u);
  BOOST_TEST(arena.stats().misuse_detected == 0u);
}

BOOST_AUTO_TEST_CASE(foreign_stale_and_rewound_past_markers_are_reported_and_ignored) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{&upstream};
  strata::monotonic_arena other{&upstream};
  static_cast<void>(other.allocate(8, 8));
  std::byte* a = bytes_of(arena.allocate(16, 8));
  const auto expect_ignored = [&](const strata::monotonic_arena::marker& m, std::uint64_t count) {
    std::byte* before = bytes_of(arena.allocate(16, 8));
    arena.rewind(m);
    BOOST_TEST(arena.stats().misuse_detected == count);
    BOOST_TEST(bytes_of(arena.allocate(16, 8)) == before + 16);  // nothing moved
  };
  expect_ignored(other.mark(), 1);                       // another arena's
  expect_ignored(strata::monotonic_arena::marker{}, 2);  // nobody's
  const auto outer = arena.mark();
  std::byte* between = bytes_of(arena.allocate(16, 8));
  const auto inner = arena.mark();
  arena.rewind(outer);
  arena.rewind(inner);  // ahead of the current point
  BOOST_TEST(arena.stats().misuse_detected == 3u);
  BOOST_TEST(bytes_of(arena.allocate(16, 8)) == between);  // still at the outer mark
  const auto before_reset = arena.mark();
  arena.reset();
  a = bytes_of(arena.allocate(16, 8));
  expect_ignored(before_reset, 4);  // from before reset()
  const auto before_release = arena.mark();
  arena.release();
  static_cast<void>(arena.allocate(16, 8));
  expect_ignored(before_release, 5);  // from before release()
  const auto reports = recorder.taken();
  BOOST_TEST_REQUIRE(reports.size() == 5u);
  for (const strata::misuse_report& r : reports) {
    BOOST_TEST((r.kind == strata::misuse_kind::foreign_marker));
    BOOST_TEST(r.resource_name == "monotonic_arena");
  }
  static_cast<void>(a);
}

// ----------------------------------------------------------- initial buffer

BOOST_AUTO_TEST_CASE(initial_buffer_is_used_first_and_never_returned_upstream) {
  strata::test::counting_resource upstream;  // fails the test on any deallocate of the buffer
  alignas(64) std::array<std::byte, 1024> buffer;
  {
    strata::monotonic_arena arena{{}, buffer, &upstream};
    for (int i = 0; i < 10; ++i) {
      std::byte* p = bytes_of(arena.allocate(100, 4));
      BOOST_TEST_REQUIRE(p == buffer.data() + 100 * i);
    }
    const auto in_buffer = arena.mark();
    BOOST_TEST(upstream.allocations() == 0u);
    std::byte* spill = bytes_of(arena.allocate(100, 4));  // 24 bytes left: a chunk
    BOOST_TEST((spill < buffer.data() || spill >= buffer.data() + buffer.size()));
    BOOST_TEST(upstream.allocations() == 1u);
    BOOST_TEST(arena.details().wasted_tail_bytes == 24u);
    BOOST_TEST(arena.stats().bytes_reserved == upstream.bytes_outstanding());  // the buffer is not counted
    arena.rewind(in_buffer);  // back into the buffer; the chunk becomes a spare
    BOOST_TEST(arena.details().spare_chunks == 1u);
    arena.reset();
    BOOST_TEST(bytes_of(arena.allocate(100, 4)) == buffer.data());  // the buffer first again
    arena.release();
    BOOST_TEST(upstream.bytes_outstanding() == 0u);
    BOOST_TEST(bytes_of(arena.allocate(8, 8)) == buffer.data());
  }
  buffer[0] = std::byte{1};  // the caller's again (and unpoisoned) once the arena is gone
  BOOST_TEST(upstream.mismatches() == 0u);
}

// ------------------------------------------------- large and over-aligned

// keep_none keeps no dedicated chunk: each goes back as soon as its block does.
BOOST_AUTO_TEST_CASE(requests_above_max_chunk_size_get_a_dedicated_chunk) {
  strata::test::counting_resource counted;
  recording_resource upstream{&counted};
  strata::monotonic_arena arena{{.max_chunk_size = 16384, .retention = policy::keep_none}, &upstream};
  std::byte* a = bytes_of(arena.allocate(96, 8));
  std::byte* big = bytes_of(arena.allocate(100000, 8));
  std::memset(big, 0x11, 100000);
  BOOST_TEST(upstream.sizes.size() == 2u);
  BOOST_TEST(upstream.sizes[1] >= 100000u);
  BOOST_TEST(upstream.sizes[1] < 100000u + 64);            // its own size, not a power of two
  BOOST_TEST(bytes_of(arena.allocate(100, 8)) == a + 96);  // the current chunk goes on
  BOOST_TEST(arena.details().dedicated_chunks == 1u);
  BOOST_TEST(arena.details().wasted_tail_bytes == 0u);
  arena.deallocate(big, 100000, 8);  // returned at once
  BOOST_TEST(counted.blocks_outstanding() == 1u);
  BOOST_TEST(arena.details().dedicated_chunks == 0u);
  const auto m = arena.mark();
  static_cast<void>(arena.allocate(20000, 8));
  static_cast<void>(arena.allocate(30000, 8));
  BOOST_TEST(counted.blocks_outstanding() == 3u);
  arena.rewind(m);  // dedicated chunks after the mark go back
  BOOST_TEST(counted.blocks_outstanding() == 1u);
  static_cast<void>(arena.allocate(20000, 8));
  arena.reset();  // and so do the rest, with the normal chunk (keep_none)
  BOOST_TEST(counted.blocks_outstanding() == 0u);
  BOOST_TEST(arena.details().dedicated_chunks == 0u);
}

// The default policy keeps a dedicated chunk whose block is gone (deallocate,
// rewind, reset) as a spare and reuses the smallest that fits.
BOOST_AUTO_TEST_CASE(dedicated_chunks_are_kept_and_reused_best_fit_by_default) {
  strata::test::counting_resource counted;
  recording_resource upstream{&counted};
  strata::monotonic_arena arena{{.max_chunk_size = 16384}, &upstream};
  static_cast<void>(arena.allocate(96, 8));
  void* big = arena.allocate(100000, 8);
  void* bigger = arena.allocate(200000, 8);
  BOOST_TEST(upstream.sizes.size() == 3u);
  arena.deallocate(big, 100000, 8);  // kept: no upstream call
  arena.deallocate(bigger, 200000, 8);
  BOOST_TEST(counted.blocks_outstanding() == 3u);
  BOOST_TEST(arena.details().spare_chunks == 2u);
  BOOST_TEST(arena.details().dedicated_chunks == 2u);
  BOOST_TEST(arena.details().spare_bytes == upstream.sizes[1] + upstream.sizes[2]);
  std::byte* again = bytes_of(arena.allocate(90000, 8));  // best fit: the 100,000-byte chunk
  BOOST_TEST(again == big);
  std::memset(again, 0x12, 90000);
  BOOST_TEST(bytes_of(arena.allocate(150000, 16)) == bigger);
  BOOST_TEST(upstream.sizes.size() == 3u);
  const auto m = arena.mark();
  void* third = arena.allocate(300000, 8);  // too large for a spare: upstream
  BOOST_TEST(upstream.sizes.size() == 4u);
  arena.rewind(m);  // kept too
  BOOST_TEST(arena.details().spare_chunks == 1u);
  arena.reset();  // all three were used by this request: all kept
  BOOST_TEST(arena.details().dedicated_chunks == 3u);
  BOOST_TEST(arena.details().spare_chunks == 4u);  // and the normal chunk
  BOOST_TEST(bytes_of(arena.allocate(250000, 8)) == third);
  BOOST_TEST(bytes_of(arena.allocate(100000, 8)) == big);
  BOOST_TEST(bytes_of(arena.allocate(200000, 8)) == bigger);
  BOOST_TEST(upstream.sizes.size() == 4u);
  BOOST_TEST(arena.stats().bytes_reserved == counted.bytes_outstanding());
}

BOOST_AUTO_TEST_CASE(alignments_up_to_64_kib_are_honoured_and_small_ones_padded_in_the_chunk) {
  strata::test::counting_resource counted;
  recording_resource upstream{&counted};
  strata::monotonic_arena arena{{.first_chunk_size = 16384}, &upstream};
  static_cast<void>(arena.allocate(10, 1));
  for (std::size_t alignment = 2; alignment <= 4096; alignment *= 2) {
    void* p = arena.allocate(10, alignment);
    BOOST_TEST(strata::detail::is_aligned(p, alignment));
  }
  BOOST_TEST(upstream.sizes.size() == 1u);  // all padded inside the 16 KiB chunk
  for (std::size_t alignment = 8192; alignment <= 65536; alignment *= 2) {
    const std::size_t calls = upstream.sizes.size();
    const std::size_t planned = arena.details().next_chunk_size;
    void* p = arena.allocate(100, alignment);
    std::memset(p, 0x22, 100);
    BOOST_TEST(strata::detail::is_aligned(p, alignment));
    if (upstream.sizes.size() > calls) {  // a fresh chunk, aligned upstream: no padding to pay for
      BOOST_TEST(upstream.alignments.back() == alignment);
      BOOST_TEST(upstream.sizes.back() == std::max(planned, alignment));
    }
  }
  // Above max_chunk_size the alignment goes to a dedicated chunk, still honoured.
  strata::monotonic_arena small{{.max_chunk_size = 16384}, &upstream};
  void* p = small.allocate(100, 65536);
  BOOST_TEST(strata::detail::is_aligned(p, 65536));
  BOOST_TEST(small.details().dedicated_chunks == 1u);
  small.deallocate(p, 100, 65536);
  BOOST_TEST(small.details().spare_chunks == 1u);  // kept for the next such request
  const std::size_t calls = upstream.sizes.size();
  BOOST_TEST(small.allocate(100, 65536) == p);
  BOOST_TEST(upstream.sizes.size() == calls);
  void* q = small.allocate(100, 65536);  // no spare left: a fresh one, still aligned
  BOOST_TEST(strata::detail::is_aligned(q, 65536));
  BOOST_TEST(q != p);
}

// ------------------------------------------------------------------ errors

BOOST_AUTO_TEST_CASE(overflowing_sizes_throw_size_overflow_and_lose_nothing) {
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{&upstream};
  std::byte* a = bytes_of(arena.allocate(16, 8));
  for (std::size_t bytes : {SIZE_MAX, SIZE_MAX - 4095, static_cast<std::size_t>(PTRDIFF_MAX)}) {
    try {
      static_cast<void>(arena.allocate(bytes, 8));
      BOOST_ERROR("allocate(" << bytes << ") did not throw");
    } catch (const strata::allocation_failure& e) {
      BOOST_TEST((e.reason() == strata::failure_reason::size_overflow));
    }
  }
  BOOST_TEST(arena.stats().failed_allocations == 3u);
  BOOST_TEST(upstream.allocations() == 1u);  // the upstream was never asked
  BOOST_TEST(bytes_of(arena.allocate(16, 8)) == a + 16);
}

// The fast path folds the alignment and size-0 tests into its bounds test
// (see do_allocate): check every state the cursor can be in — no region at
// all (cursor 0), fresh and mid-chunk, the initial buffer, exactly full, and
// after reset() — against bad alignments, size 0 and wrapping sizes.
BOOST_AUTO_TEST_CASE(bad_alignments_size_zero_and_wrapping_sizes_in_every_cursor_state) {
  const std::size_t bad_alignments[] = {0, 3, 24, 48, 4097, SIZE_MAX, SIZE_MAX / 2, std::size_t{3} << 62};
  std::array<std::byte, 256> buffer{};
  strata::test::counting_resource upstream;
  strata::monotonic_arena plain{{.first_chunk_size = 1024}, &upstream};
  strata::monotonic_arena buffered{{.first_chunk_size = 1024}, buffer, &upstream};
  const auto probe = [&](strata::monotonic_arena& arena, const char* state) {
    BOOST_TEST_CONTEXT(state) {
      const strata::resource_stats before = arena.stats();
      const strata::monotonic_arena::details_type d = arena.details();
      for (std::size_t alignment : bad_alignments) {
        for (std::size_t bytes : {std::size_t{0}, std::size_t{1}, std::size_t{16}, SIZE_MAX}) {
          BOOST_TEST_CONTEXT("allocate(" << bytes << ", " << alignment << ")") {
            BOOST_CHECK_THROW(static_cast<void>(arena.allocate(bytes, alignment)), std::invalid_argument);
          }
        }
      }
      for (std::size_t bytes : {SIZE_MAX, SIZE_MAX - 14, SIZE_MAX / 2 + 1}) {
        for (std::size_t alignment : {std::size_t{1}, std::size_t{16}, std::size_t{4096}}) {
          BOOST_CHECK_THROW(static_cast<void>(arena.allocate(bytes, alignment)), strata::allocation_failure);
        }
      }
      const strata::resource_stats after = arena.stats();
      BOOST_TEST(after.allocations == before.allocations);
      BOOST_TEST(after.bytes_in_use == before.bytes_in_use);
      BOOST_TEST(after.failed_allocations == before.failed_allocations + 9);
      BOOST_TEST(arena.details().chunks == d.chunks);
      // Size 0: unique pointers, a byte each, counted as zero bytes.
      std::byte* z1 = bytes_of(arena.allocate(0, 8));
      std::byte* z2 = bytes_of(arena.allocate(0, 1));
      std::byte* z3 = bytes_of(arena.allocate(0, 16));
      BOOST_TEST(z1 != z2);
      BOOST_TEST(z2 != z3);
      BOOST_TEST(z1 != z3);
      BOOST_TEST(strata::detail::is_aligned(z1, 8));
      BOOST_TEST(strata::detail::is_aligned(z3, 16));
      BOOST_TEST(arena.stats().allocations == after.allocations + 3);
      BOOST_TEST(arena.stats().bytes_in_use == after.bytes_in_use);
    }
  };
  for (strata::monotonic_arena* arena : {&plain, &buffered}) {
    probe(*arena, "fresh");
    static_cast<void>(arena->allocate(40, 8));
    probe(*arena, "mid-region");
    arena->reset();
    probe(*arena, "after reset");
    arena->release();
    probe(*arena, "after release");
  }
  // Exactly full: the buffer's last byte handed out, then size 0 goes on elsewhere.
  std::array<std::byte, 64> small{};
  strata::monotonic_arena full{{.first_chunk_size = 1024}, small, &upstream};
  std::byte* whole = bytes_of(full.allocate(64, 1));
  BOOST_TEST(whole == small.data());
  probe(full, "exactly full");
  // Size 0 in the last byte of a region stays inside it.
  std::array<std::byte, 64> tight{};
  strata::monotonic_arena last_byte{{.first_chunk_size = 1024}, tight, &upstream};
  static_cast<void>(last_byte.allocate(63, 1));
  BOOST_TEST(bytes_of(last_byte.allocate(0, 1)) == tight.data() + 63);
  BOOST_TEST(last_byte.details().chunks == 0u);
}

BOOST_AUTO_TEST_CASE(upstream_failure_becomes_allocation_failure_and_loses_nothing) {
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{{.first_chunk_size = 1024}, &upstream};
  std::byte* a = bytes_of(arena.allocate(900, 8));
  std::memset(a, 0x33, 900);
  upstream.fail_allocations(true);
  try {
    static_cast<void>(arena.allocate(900, 8));
    BOOST_FAIL("the failing upstream did not throw");
  } catch (const strata::allocation_failure& e) {
    BOOST_TEST((e.reason() == strata::failure_reason::upstream_failed));
    BOOST_TEST(e.resource_name() == "monotonic_arena");
  }
  BOOST_TEST(arena.stats().failed_allocations == 1u);
  BOOST_TEST(arena.stats().bytes_in_use == 900u);
  BOOST_TEST(bytes_of(arena.allocate(16, 4)) == a + 900);  // the old chunk's room is still there
  upstream.fail_allocations(false);
  void* b = arena.allocate(900, 8);
  std::memset(b, 0x44, 900);
  BOOST_TEST(std::all_of(a, a + 900, [](std::byte x) { return x == std::byte{0x33}; }));
}

// ----------------------------------------------------------------- details

BOOST_AUTO_TEST_CASE(details_report_footprint_tail_waste_and_resets) {
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{&upstream};
  static_cast<void>(arena.allocate(4000, 1));
  void* b = arena.allocate(200, 1);  // 64 bytes left in the 4 KiB chunk (32 are its footer)
  auto d = arena.details();
  BOOST_TEST(d.wasted_tail_bytes == 64u);
  BOOST_TEST(d.request_footprint == 4200u);
  BOOST_TEST(d.chunks == 2u);
  arena.deallocate(b, 200, 1);  // rolled back; the footprint is a high-water mark
  BOOST_TEST(arena.details().request_footprint == 4200u);
  arena.reset();
  d = arena.details();
  BOOST_TEST(d.resets == 1u);
  BOOST_TEST(d.request_footprint == 0u);
  BOOST_TEST(d.largest_request_footprint == 4200u);
  BOOST_TEST(d.next_chunk_size == 8192u);
  BOOST_TEST(d.chunks == 1u);
}

// ------------------------------------------------------------------ threads

// Regression (issue 14): the check was compiled in or out by the user's NDEBUG.
BOOST_AUTO_TEST_CASE(use_from_a_second_thread_is_reported_when_the_option_asks) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{{.check_owner_thread = true}, &upstream};
  static_cast<void>(arena.allocate(16, 8));  // this thread owns the arena now
  std::jthread([&] { static_cast<void>(arena.allocate(16, 8)); }).join();
  BOOST_TEST(arena.stats().misuse_detected == 1u);
  BOOST_TEST_REQUIRE(recorder.taken().size() == 1u);
  BOOST_TEST((recorder.taken()[0].kind == strata::misuse_kind::wrong_thread));
  arena.reset();  // ownership is handed on: another thread may start the next request
  std::jthread([&] {
    static_cast<void>(arena.allocate(16, 8));
    arena.reset();
  }).join();
  static_cast<void>(arena.allocate(16, 8));
  BOOST_TEST(arena.stats().misuse_detected == 1u);
  BOOST_TEST(recorder.taken().size() == arena.stats().misuse_detected);
}

// -------------------------------------------------------------------- ASan

#if defined(STRATA_HAS_ASAN)
constexpr bool built_with_asan = true;
#else
constexpr bool built_with_asan = false;
#endif

BOOST_AUTO_TEST_CASE(memory_given_back_and_kept_is_poisoned_under_asan,
                     *boost::unit_test::enable_if<built_with_asan>()) {
#if defined(STRATA_HAS_ASAN)
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{&upstream};
  std::byte* a = bytes_of(arena.allocate(64, 8));
  BOOST_TEST(!__asan_address_is_poisoned(a));
  BOOST_TEST(__asan_address_is_poisoned(a + 64));  // not handed out yet
  arena.deallocate(a, 64, 8);                      // rolled back
  BOOST_TEST(__asan_address_is_poisoned(a));
  a = bytes_of(arena.allocate(64, 8));
  BOOST_TEST(!__asan_address_is_poisoned(a + 63));
  const auto m = arena.mark();
  std::byte* b = bytes_of(arena.allocate(64, 8));
  arena.rewind(m);
  BOOST_TEST(__asan_address_is_poisoned(b));
  arena.reset();  // the chunk is kept
  BOOST_TEST(__asan_address_is_poisoned(a));
  // A dedicated chunk kept as a spare is poisoned; reused, only the new block is not.
  std::byte* big = bytes_of(arena.allocate(2'000'000, 16));
  BOOST_TEST(!__asan_address_is_poisoned(big + 1'999'999));
  arena.deallocate(big, 2'000'000, 16);
  BOOST_TEST(arena.details().spare_chunks >= 1u);
  BOOST_TEST(__asan_address_is_poisoned(big));
  BOOST_TEST(bytes_of(arena.allocate(1'500'000, 16)) == big);
  BOOST_TEST(!__asan_address_is_poisoned(big + 1'499'999));
  BOOST_TEST(__asan_address_is_poisoned(big + 1'500'000));
#endif
}

BOOST_AUTO_TEST_SUITE_END()
