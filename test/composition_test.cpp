// SPDX-License-Identifier: MIT
#include <strata/byte_limit_resource.hpp>
#include <strata/fallback_resource.hpp>
#include <strata/literals.hpp>
#include <strata/segregator.hpp>

// Concerns:
// 1. Size literals are exact std::size_t values (4_GiB is 2^32, not the 0 that
//    `4 << 30` gives); an overflowing literal not compiling is checked by
//    test/meson.build at configure time.
// 2. byte_limit_resource forwards while callers hold at most max_bytes and
//    refuses beyond with allocation_failure (budget) without calling the
//    upstream, leaving itself usable; an upstream failure gives the charge
//    back; a deallocate larger than everything charged is refused as misuse;
//    concurrent callers never take more than the limit from the upstream.
// 3. segregator routes allocate and deallocate by size and alignment alike,
//    rejects invalid options naming the field, and shows its small resource
//    in details() and format_chain.
// 4. fallback_resource serves from the primary and retries on the fallback
//    only after std::bad_alloc, with a strata primary and a plain std::pmr
//    one; every deallocate reaches the resource that allocated the block;
//    a fallback block returned with the wrong size is counted as misuse and
//    returned with the recorded size; both failing throws and loses nothing;
//    other exceptions pass through without a retry.
// 5. All three pass the conformance kit (the checks that apply to adapters
//    that hold no memory of their own), including concurrent use.

#define BOOST_TEST_MODULE composition
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <strata/format.hpp>
#include <strata/page_resource.hpp>
#include <strata/tracking_resource.hpp>

#include "conformance.hpp"
#include "counting_resource.hpp"
#include "fixtures.hpp"

using namespace strata::literals;
namespace kit = strata::test::conformance;

namespace {

// -------------------------------------------------------------- factories

struct byte_limit_factory {
  static constexpr bool has_upstream = true;
  static constexpr bool thread_safe = true;
  std::unique_ptr<strata::resource> make(std::pmr::memory_resource* upstream) const {
    return std::make_unique<strata::byte_limit_resource>(
        strata::byte_limit_resource::options{.max_bytes = 64_MiB}, upstream);
  }
};

// The second resource of a two-resource adapter, shared by the factories'
// instances (the kit frees everything it takes, so one at a time is enough).
std::pmr::memory_resource* second_link() {
  static strata::tracking_resource second{strata::system_pages()};
  return &second;
}

struct segregator_factory {
  static constexpr bool has_upstream = true;
  static constexpr bool thread_safe = true;
  std::unique_ptr<strata::resource> make(std::pmr::memory_resource* upstream) const {
    return std::make_unique<strata::segregator>(second_link(), upstream);
  }
};

// The primary serves everything: the fallback is never asked.
struct fallback_factory {
  static constexpr bool has_upstream = true;
  static constexpr bool thread_safe = true;
  std::unique_ptr<strata::resource> make(std::pmr::memory_resource* upstream) const {
    return std::make_unique<strata::fallback_resource>(upstream, second_link());
  }
};

// A primary that refuses everything: every block takes the fallback path.
// Its upstream_resource() is that primary, so check_identity does not apply.
struct refusing_primary_factory {
  static constexpr bool has_upstream = true;
  static constexpr bool thread_safe = true;
  std::unique_ptr<strata::resource> make(std::pmr::memory_resource* upstream) const {
    return std::make_unique<strata::fallback_resource>(std::pmr::null_memory_resource(), upstream);
  }
};

// A strata primary with a small quota: blocks come from both sides at once,
// so deallocates run the lookup while fallback blocks are live.
struct mixed_factory {
  static constexpr bool has_upstream = true;
  static constexpr bool thread_safe = true;
  std::unique_ptr<strata::resource> make(std::pmr::memory_resource* upstream) const {
    static strata::byte_limit_resource quota{{.max_bytes = 16_KiB}, second_link()};
    return std::make_unique<strata::fallback_resource>(&quota, upstream);
  }
};

// Every kit check except check_destruction_returns_everything: these
// adapters hold no memory of their own, so blocks live when one is destroyed
// are the callers' (as with any forwarding std::pmr resource), and nothing
// is returned for them. check_identity needs upstream_resource() to be the
// kit's upstream, so resources built over another primary skip it.
template <class Factory>
void expect_kit_clean(bool check_identity) {
  kit::expect_clean(kit::check_alignment_matrix<Factory>());
  kit::expect_clean(kit::check_zero_size<Factory>());
  kit::expect_clean(kit::check_huge_sizes<Factory>());
  kit::expect_clean(kit::check_invalid_alignment<Factory>());
  kit::expect_clean(kit::check_containers<Factory>());
  kit::expect_clean(kit::check_as_std_upstream<Factory>());
  kit::expect_clean(kit::check_exception_safety<Factory>());
  if (check_identity) kit::expect_clean(kit::check_identity<Factory>());
}

// A primary that throws something other than std::bad_alloc.
class throwing_resource final : public std::pmr::memory_resource {
  void* do_allocate(std::size_t, std::size_t) override { throw std::runtime_error("not an exhaustion"); }
  void do_deallocate(void*, std::size_t, std::size_t) override {}
  bool do_is_equal(const memory_resource& o) const noexcept override { return this == &o; }
};

void use(void* p, std::size_t bytes) {
  if (bytes != 0) std::memset(p, 0xab, bytes);
}

}  // namespace

// ================================================================= literals

BOOST_AUTO_TEST_SUITE(literals)

BOOST_AUTO_TEST_CASE(literals_are_exact_size_t_values) {
  static_assert(std::is_same_v<decltype(1_KiB), std::size_t>);
  static_assert(1_KiB == 1024u && 3_KiB == 3072u);
  static_assert(1_MiB == 1048576u && 256_MiB == 268435456u);
  static_assert(4_GiB == 4294967296u);                       // `4 << 30` is 0 after int overflow
  static_assert(17179869183_GiB == SIZE_MAX - (1_GiB - 1));  // the largest that fits
  // Run-time copies, so a failure shows as a test failure too.
  const std::size_t four_gib = 4_GiB;
  BOOST_TEST(four_gib == std::size_t{4} * 1024 * 1024 * 1024);
}

BOOST_AUTO_TEST_SUITE_END()

// ====================================================== byte_limit_resource

BOOST_AUTO_TEST_SUITE(byte_limit_resource)

BOOST_AUTO_TEST_CASE(passes_the_conformance_kit) {
  expect_kit_clean<byte_limit_factory>(true);
}

BOOST_AUTO_TEST_CASE(concurrent_use_never_hands_out_a_block_twice, *boost::unit_test::label("threaded")) {
  kit::expect_clean(kit::check_concurrent_use<byte_limit_factory>());
}

BOOST_AUTO_TEST_CASE(refuses_beyond_the_limit_without_calling_the_upstream) {
  strata::test::counting_resource upstream;
  strata::byte_limit_resource quota{{.max_bytes = 1000}, &upstream};
  void* a = quota.allocate(600, 8);
  use(a, 600);
  try {
    (void)quota.allocate(401, 8);
    BOOST_FAIL("allocate beyond the limit did not throw");
  } catch (const strata::allocation_failure& e) {
    BOOST_TEST(strata::to_string(e.reason()) == "budget");
    BOOST_TEST(e.resource_name() == "byte_limit_resource");
  }
  BOOST_TEST(upstream.allocations() == 1u);  // the refused request never reached it
  void* b = quota.allocate(400, 8);          // exactly up to the limit
  use(b, 400);
  BOOST_TEST(quota.bytes_available() == 0u);
  BOOST_CHECK_THROW((void)quota.allocate(1, 1), std::bad_alloc);
  quota.deallocate(a, 600, 8);
  void* c = quota.allocate(600, 8);  // the returned bytes are usable again
  quota.deallocate(c, 600, 8);
  quota.deallocate(b, 400, 8);
  const strata::resource_stats s = quota.stats();
  BOOST_TEST(s.allocations == 3u);
  BOOST_TEST(s.deallocations == 3u);
  BOOST_TEST(s.failed_allocations == 2u);
  BOOST_TEST(s.bytes_in_use == 0u);
  BOOST_TEST(s.peak_bytes_in_use == 1000u);
  BOOST_TEST(quota.details().limit_failures == 2u);
  BOOST_TEST(upstream.bytes_outstanding() == 0u);
}

BOOST_AUTO_TEST_CASE(an_impossible_size_cannot_wrap_the_charge) {
  strata::test::counting_resource upstream;
  strata::byte_limit_resource quota{{.max_bytes = 1000}, &upstream};
  void* a = quota.allocate(10, 8);
  volatile std::size_t huge = SIZE_MAX - 5;  // volatile: GCC warns about a constant impossible size
  BOOST_CHECK_THROW((void)quota.allocate(huge, 8), std::bad_alloc);
  BOOST_TEST(quota.details().bytes_charged == 10u);
  quota.deallocate(a, 10, 8);
  BOOST_TEST(upstream.allocations() == 1u);
}

BOOST_AUTO_TEST_CASE(an_upstream_failure_gives_the_charge_back) {
  strata::test::counting_resource upstream;
  strata::byte_limit_resource quota{{.max_bytes = 1000}, &upstream};
  upstream.fail_allocations(true);
  BOOST_CHECK_THROW((void)quota.allocate(800, 8), std::bad_alloc);
  upstream.fail_allocations(false);
  BOOST_TEST(quota.details().upstream_failures == 1u);
  BOOST_TEST(quota.bytes_available() == 1000u);
  void* p = quota.allocate(1000, 8);  // the whole limit is still there
  quota.deallocate(p, 1000, 8);
  BOOST_TEST(quota.stats().failed_allocations == 1u);
}

BOOST_AUTO_TEST_CASE(a_deallocate_larger_than_everything_charged_is_refused) {
  strata::test::counting_resource upstream;
  strata::byte_limit_resource quota{{.max_bytes = 1000}, &upstream};
  strata::test::misuse_recorder misuse;
  void* p = quota.allocate(16, 8);
  quota.deallocate(p, 4096, 8);  // counting_resource would fail the test if it were forwarded
  BOOST_TEST(misuse.count(strata::misuse_kind::size_mismatch) == 1u);
  BOOST_TEST(quota.stats().misuse_detected == 1u);
  BOOST_TEST(quota.stats().deallocations == 0u);
  BOOST_TEST(quota.details().bytes_charged == 16u);
  quota.deallocate(p, 16, 8);
  BOOST_TEST(upstream.blocks_outstanding() == 0u);
}

BOOST_AUTO_TEST_CASE(size_zero_charges_nothing_and_gives_unique_blocks) {
  strata::test::counting_resource upstream;
  strata::byte_limit_resource quota{{.max_bytes = 0}, &upstream};
  void* a = quota.allocate(0, 8);
  void* b = quota.allocate(0, 8);
  BOOST_TEST(a != b);
  BOOST_CHECK_THROW((void)quota.allocate(1, 1), std::bad_alloc);
  quota.deallocate(a, 0, 8);
  quota.deallocate(b, 0, 8);
}

BOOST_AUTO_TEST_CASE(a_null_upstream_is_rejected) {
  BOOST_CHECK_THROW(strata::byte_limit_resource(nullptr), std::invalid_argument);
  const strata::byte_limit_resource unlimited{strata::system_pages()};
  BOOST_TEST(unlimited.get_options().max_bytes == SIZE_MAX);
}

// The charge is a CAS: a check-then-add would let two threads both pass the
// last free bytes, and the upstream (a tracking_resource, which keeps an
// exact peak under its mutex) would then have held more than the limit.
BOOST_AUTO_TEST_CASE(concurrent_callers_never_exceed_the_limit, *boost::unit_test::label("threaded")) {
  constexpr std::size_t block = 64;
  constexpr std::size_t limit = 8 * block;
  strata::tracking_resource upstream{strata::system_pages()};
  strata::byte_limit_resource quota{{.max_bytes = limit}, &upstream};
  std::atomic<std::uint64_t> refused{0};
  {
    std::vector<std::jthread> threads;
    threads.reserve(4);
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        std::vector<void*> live;
        for (int i = 0; i < 4000; ++i) {
          try {
            live.push_back(quota.allocate(block, 8));
          } catch (const std::bad_alloc&) {
            refused.fetch_add(1);
          }
          if (live.size() == 4 || (i % 3 == 0 && !live.empty())) {
            quota.deallocate(live.back(), block, 8);
            live.pop_back();
          }
        }
        for (void* p : live) quota.deallocate(p, block, 8);
      });
    }
  }
  BOOST_TEST(upstream.stats().peak_bytes_in_use <= limit);
  BOOST_TEST(upstream.live_blocks() == 0u);
  const strata::resource_stats s = quota.stats();
  BOOST_TEST(s.failed_allocations == refused.load());
  BOOST_TEST(s.allocations == s.deallocations);
  BOOST_TEST(s.bytes_in_use == 0u);
  BOOST_TEST(s.peak_bytes_in_use <= limit);
}

BOOST_AUTO_TEST_SUITE_END()

// =============================================================== segregator

BOOST_AUTO_TEST_SUITE(segregator)

BOOST_AUTO_TEST_CASE(passes_the_conformance_kit) {
  expect_kit_clean<segregator_factory>(true);
}

BOOST_AUTO_TEST_CASE(concurrent_use_never_hands_out_a_block_twice, *boost::unit_test::label("threaded")) {
  kit::expect_clean(kit::check_concurrent_use<segregator_factory>());
}

BOOST_AUTO_TEST_CASE(routes_by_size_and_alignment_both_ways) {
  strata::test::counting_resource small;
  strata::test::counting_resource large;
  strata::segregator route{{.threshold = 64, .max_small_alignment = 16}, &small, &large};
  struct request {
    std::size_t bytes, alignment;
    bool small;
  };
  const request requests[] = {{0, 1, true},   {1, 1, true},    {64, 16, true},   {65, 1, false},
                              {8, 32, false}, {64, 32, false}, {4096, 8, false}, {16, 16, true}};
  std::vector<void*> blocks;
  std::uint64_t small_count = 0;
  for (const request& r : requests) {
    const std::uint64_t small_before = small.allocations();
    const std::uint64_t large_before = large.allocations();
    blocks.push_back(route.allocate(r.bytes, r.alignment));
    use(blocks.back(), r.bytes);
    BOOST_TEST((small.allocations() - small_before) == (r.small ? 1u : 0u));
    BOOST_TEST((large.allocations() - large_before) == (r.small ? 0u : 1u));
    BOOST_TEST(route.routes_to_small(r.bytes, r.alignment) == r.small);
    small_count += r.small ? 1 : 0;
  }
  // Each deallocate goes where its block came from, or counting_resource fails the test.
  for (std::size_t i = 0; i < blocks.size(); ++i)
    route.deallocate(blocks[i], requests[i].bytes, requests[i].alignment);
  BOOST_TEST(small.blocks_outstanding() == 0u);
  BOOST_TEST(large.blocks_outstanding() == 0u);
  const auto d = route.details();
  BOOST_TEST(d.small_allocations == small_count);
  BOOST_TEST(d.large_allocations == std::size(requests) - small_count);
  BOOST_TEST(route.stats().allocations == std::size(requests));
  BOOST_TEST(route.stats().deallocations == std::size(requests));
}

BOOST_AUTO_TEST_CASE(invalid_options_throw_naming_the_field) {
  strata::test::counting_resource r;
  const auto message = [&](strata::segregator::options opts, std::pmr::memory_resource* small,
                           std::pmr::memory_resource* large) -> std::string {
    try {
      strata::segregator s{opts, small, large};
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "(no throw)";
  };
  BOOST_TEST(message({.threshold = 0}, &r, &r).find("threshold") != std::string::npos);
  BOOST_TEST(message({.max_small_alignment = 24}, &r, &r).find("max_small_alignment") != std::string::npos);
  BOOST_TEST(message({.max_small_alignment = 0}, &r, &r).find("max_small_alignment") != std::string::npos);
  BOOST_TEST(message({}, nullptr, &r).find("small") != std::string::npos);
  BOOST_TEST(message({}, &r, nullptr).find("large") != std::string::npos);
  BOOST_TEST(message({.threshold = 1, .max_small_alignment = 1}, &r, &r) == "(no throw)");
}

BOOST_AUTO_TEST_CASE(the_chain_follows_the_large_resource_and_details_name_the_small) {
  strata::tracking_resource small{strata::system_pages()};
  strata::tracking_resource large{strata::system_pages()};
  const strata::segregator route{&small, &large};
  BOOST_TEST(route.upstream_resource() == &large);
  BOOST_TEST(route.details().small_resource == &small);
  const std::string table = strata::format_chain(&route, {.details = true});
  BOOST_TEST(table.find("small_resource=") != std::string::npos, table);
  BOOST_TEST(table.find("threshold=256") != std::string::npos, table);
}

BOOST_AUTO_TEST_SUITE_END()

// ======================================================== fallback_resource

BOOST_AUTO_TEST_SUITE(fallback_resource)

BOOST_AUTO_TEST_CASE(passes_the_conformance_kit_on_the_primary_path) {
  expect_kit_clean<fallback_factory>(true);
}

BOOST_AUTO_TEST_CASE(passes_the_conformance_kit_on_the_fallback_path) {
  expect_kit_clean<refusing_primary_factory>(false);
}

BOOST_AUTO_TEST_CASE(passes_the_conformance_kit_on_both_paths_at_once) {
  expect_kit_clean<mixed_factory>(false);
}

BOOST_AUTO_TEST_CASE(concurrent_use_never_hands_out_a_block_twice, *boost::unit_test::label("threaded")) {
  kit::expect_clean(kit::check_concurrent_use<fallback_factory>());
  kit::expect_clean(kit::check_concurrent_use<refusing_primary_factory>());
  kit::expect_clean(kit::check_concurrent_use<mixed_factory>());
}

// A plain std::pmr primary (no ownership query): counting_resource fails the
// test on any deallocate of a block it did not hand out, so routing is proved
// on both sides.
BOOST_AUTO_TEST_CASE(a_std_primary_and_its_fallback_each_get_their_own_blocks_back) {
  strata::test::counting_resource primary;
  strata::test::counting_resource fallback;
  strata::fallback_resource r{&primary, &fallback};
  void* a = r.allocate(100, 8);
  primary.fail_allocations(true);
  void* b = r.allocate(200, 16);
  void* c = r.allocate(0, 8);
  primary.fail_allocations(false);
  void* d = r.allocate(300, 8);
  use(a, 100);
  use(b, 200);
  use(d, 300);
  BOOST_TEST(primary.allocations() == 2u);
  BOOST_TEST(fallback.allocations() == 2u);
  BOOST_TEST(r.served_by_fallback(b));
  BOOST_TEST(r.served_by_fallback(c));
  BOOST_TEST(!r.served_by_fallback(a));
  auto det = r.details();
  BOOST_TEST(det.primary_allocations == 2u);
  BOOST_TEST(det.fallback_allocations == 2u);
  BOOST_TEST(det.fallbacks_taken == 2u);
  BOOST_TEST(det.fallback_live_blocks == 2u);
  BOOST_TEST(det.fallback_live_bytes == 200u);
  // Freed in an order that mixes the sides while fallback blocks are live.
  r.deallocate(d, 300, 8);
  r.deallocate(b, 200, 16);
  r.deallocate(a, 100, 8);
  r.deallocate(c, 0, 8);
  BOOST_TEST(primary.blocks_outstanding() == 0u);
  BOOST_TEST(fallback.blocks_outstanding() == 0u);
  BOOST_TEST(primary.mismatches() == 0u);
  BOOST_TEST(fallback.mismatches() == 0u);
  const strata::resource_stats s = r.stats();
  BOOST_TEST(s.allocations == 4u);
  BOOST_TEST(s.deallocations == 4u);
  BOOST_TEST(s.bytes_in_use == 0u);
  BOOST_TEST(s.peak_bytes_in_use == 600u);
  BOOST_TEST(s.failed_allocations == 0u);
  BOOST_TEST(r.details().fallback_live_blocks == 0u);
}

// A strata primary: a byte_limit_resource whose quota runs out.
BOOST_AUTO_TEST_CASE(a_strata_primary_that_runs_out_hands_over_to_the_fallback) {
  strata::test::counting_resource below;
  strata::byte_limit_resource quota{{.max_bytes = 1_KiB}, &below};
  strata::test::counting_resource fallback;
  strata::fallback_resource r{&quota, &fallback};
  std::vector<void*> blocks;
  blocks.reserve(6);
  for (int i = 0; i < 6; ++i) blocks.push_back(r.allocate(256, 8));  // 4 fit the quota
  BOOST_TEST(quota.stats().allocations == 4u);
  BOOST_TEST(quota.stats().failed_allocations == 2u);
  BOOST_TEST(fallback.allocations() == 2u);
  BOOST_TEST(r.details().fallbacks_taken == 2u);
  r.deallocate(blocks[0], 256, 8);  // frees quota: the next request stays on the primary
  blocks[0] = r.allocate(256, 8);
  BOOST_TEST(quota.stats().allocations == 5u);
  BOOST_TEST(fallback.allocations() == 2u);
  for (void* p : blocks) r.deallocate(p, 256, 8);
  BOOST_TEST(quota.stats().bytes_in_use == 0u);
  BOOST_TEST(quota.stats().misuse_detected == 0u);
  BOOST_TEST(fallback.blocks_outstanding() == 0u);
  BOOST_TEST(r.upstream_resource() == &quota);
}

BOOST_AUTO_TEST_CASE(a_fallback_block_returned_with_the_wrong_size_is_corrected) {
  strata::test::counting_resource primary;
  strata::test::counting_resource fallback;
  strata::fallback_resource r{&primary, &fallback};
  strata::test::misuse_recorder misuse;
  primary.fail_allocations(true);
  void* p = r.allocate(128, 16);
  void* q = r.allocate(64, 16);
  r.deallocate(p, 100, 16);  // counting_resource fails the test unless it gets 128
  r.deallocate(q, 64, 8);    // and 16 here
  BOOST_TEST(misuse.count(strata::misuse_kind::size_mismatch) == 1u);
  BOOST_TEST(misuse.count(strata::misuse_kind::alignment_mismatch) == 1u);
  BOOST_TEST(r.stats().misuse_detected == 2u);
  BOOST_TEST(r.stats().bytes_in_use == 0u);
  BOOST_TEST(fallback.blocks_outstanding() == 0u);
}

BOOST_AUTO_TEST_CASE(both_failing_throws_and_loses_nothing) {
  strata::test::counting_resource primary;
  strata::test::counting_resource fallback;
  strata::fallback_resource r{&primary, &fallback};
  primary.fail_allocations(true);
  fallback.fail_allocations(true);
  BOOST_CHECK_THROW((void)r.allocate(64, 8), std::bad_alloc);
  const strata::resource_stats s = r.stats();
  BOOST_TEST(s.failed_allocations == 1u);
  BOOST_TEST(s.allocations == 0u);
  BOOST_TEST(r.details().fallbacks_taken == 1u);
  BOOST_TEST(r.details().fallback_live_blocks == 0u);
  fallback.fail_allocations(false);
  void* p = r.allocate(64, 8);  // usable again, on the fallback
  r.deallocate(p, 64, 8);
  BOOST_TEST(fallback.blocks_outstanding() == 0u);
}

BOOST_AUTO_TEST_CASE(an_exception_other_than_bad_alloc_passes_through_without_a_retry) {
  throwing_resource primary;
  strata::test::counting_resource fallback;
  strata::fallback_resource r{&primary, &fallback};
  BOOST_CHECK_THROW((void)r.allocate(64, 8), std::runtime_error);
  BOOST_TEST(fallback.allocations() == 0u);
  BOOST_TEST(r.details().fallbacks_taken == 0u);
}

BOOST_AUTO_TEST_CASE(a_bad_alignment_throws_without_trying_the_fallback) {
  strata::test::counting_resource primary;
  strata::test::counting_resource fallback;
  strata::fallback_resource r{&primary, &fallback};
  BOOST_CHECK_THROW((void)r.allocate(64, 3), std::invalid_argument);
  BOOST_TEST(primary.allocations() == 0u);
  BOOST_TEST(fallback.allocations() == 0u);
  BOOST_TEST(r.details().fallbacks_taken == 0u);
}

BOOST_AUTO_TEST_CASE(null_resources_are_rejected_naming_which) {
  strata::test::counting_resource r;
  const auto message = [](std::pmr::memory_resource* primary, std::pmr::memory_resource* fallback) {
    try {
      strata::fallback_resource f{primary, fallback};
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("(no throw)");
  };
  BOOST_TEST(message(nullptr, &r).find("primary") != std::string::npos);
  BOOST_TEST(message(&r, nullptr).find("fallback") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_chain_follows_the_primary_and_details_name_the_fallback) {
  strata::tracking_resource primary{strata::system_pages()};
  strata::tracking_resource fallback{strata::system_pages()};
  const strata::fallback_resource r{&primary, &fallback};
  std::vector<std::string_view> names;
  strata::for_each_link(&r, [&](const strata::chain_link& link) { names.push_back(link.name()); });
  BOOST_TEST(names.size() == 3u);  // fallback_resource, tracking_resource, page_resource
  BOOST_TEST(names.at(0) == "fallback_resource");
  BOOST_TEST(r.details().fallback == &fallback);
  const std::string table = strata::format_chain(&r, {.details = true});
  BOOST_TEST(table.find("fallback=") != std::string::npos, table);
  BOOST_TEST(table.find("fallbacks_taken=0") != std::string::npos, table);
}

BOOST_AUTO_TEST_SUITE_END()
