// SPDX-License-Identifier: MIT
#include <strata/resource.hpp>
#include <strata/stats.hpp>

// Concerns:
// 1. allocation_failure is a std::bad_alloc whose what() names the link, the request and
//    the reason in one line, and whose fields carry the same.
// 2. The misuse handler can be replaced and restored; reports reach the installed one.
// 3. Alignment and option checks throw std::invalid_argument naming resource and field.
// 4. resource_stats compares by value; the counter blocks keep peak and balance exact.
// 5. Under ASan, poison_memory makes memory unaddressable and unpoison_memory restores it.

#define BOOST_TEST_MODULE resource_stats
#include <boost/test/unit_test.hpp>

#include <stdexcept>
#include <string>

#include <strata/detail/counters.hpp>
#include <strata/detail/sanitizer.hpp>

#include "fixtures.hpp"

BOOST_AUTO_TEST_SUITE(resource_stats)

BOOST_AUTO_TEST_CASE(allocation_failure_names_link_request_and_reason) {
  const strata::allocation_failure e("chunk_provider", 1048576, 64, strata::failure_reason::budget);
  const std::bad_alloc& base = e;
  BOOST_TEST(std::string(base.what()) ==
             "strata::chunk_provider: cannot allocate 1048576 bytes aligned to 64: budget");
  BOOST_TEST(e.resource_name() == "chunk_provider");
  BOOST_TEST(e.bytes() == 1048576u);
  BOOST_TEST(e.alignment() == 64u);
  BOOST_TEST((e.reason() == strata::failure_reason::budget));
  const strata::allocation_failure copy = e;
  BOOST_TEST(std::string(copy.what()) == e.what());
}

BOOST_AUTO_TEST_CASE(every_reason_and_misuse_kind_has_a_name) {
  for (auto r : {strata::failure_reason::capacity, strata::failure_reason::budget,
                 strata::failure_reason::upstream_failed, strata::failure_reason::size_overflow,
                 strata::failure_reason::allocation_limit}) {
    BOOST_TEST(strata::to_string(r) != "unknown");
  }
  BOOST_TEST(strata::to_string(strata::misuse_kind::double_free) == "double_free");
  BOOST_TEST(strata::to_string(strata::misuse_kind::wrong_thread) == "wrong_thread");
}

namespace {
int handler_calls = 0;
void counting_handler(const strata::misuse_report&) noexcept {
  ++handler_calls;
}
}  // namespace

BOOST_AUTO_TEST_CASE(misuse_handler_is_replaceable_and_restorable) {
  const strata::misuse_handler original = strata::set_misuse_handler(&counting_handler);
  strata::report_misuse({"slab", strata::misuse_kind::double_free, nullptr, 8, 8});
  BOOST_TEST(handler_calls == 1);
  BOOST_TEST(strata::set_misuse_handler(original) == &counting_handler);
  {
    strata::test::misuse_recorder recorder;
    strata::report_misuse({"slab", strata::misuse_kind::size_mismatch, nullptr, 8, 8});
    BOOST_REQUIRE(recorder.taken().size() == 1u);
    BOOST_TEST(recorder.taken()[0].resource_name == "slab");
  }
  BOOST_TEST(handler_calls == 1);  // the recorder, not counting_handler, took the second
}

BOOST_AUTO_TEST_CASE(bad_alignment_and_options_name_resource_and_field) {
  try {
    strata::detail::check_alignment("slab", 24);
    BOOST_FAIL("24 accepted");
  } catch (const std::invalid_argument& e) {
    BOOST_TEST(std::string(e.what()) == "strata::slab: alignment 24 is not a power of two");
  }
  BOOST_CHECK_NO_THROW(strata::detail::check_alignment("slab", 4096));
  BOOST_CHECK_THROW(strata::detail::check_alignment("slab", 0), std::invalid_argument);
  try {
    strata::detail::check_upstream("arena", nullptr);
    BOOST_FAIL("null accepted");
  } catch (const std::invalid_argument& e) {
    BOOST_TEST(std::string(e.what()) == "strata::arena: upstream must not be null");
  }
}

BOOST_AUTO_TEST_CASE(subtracting_snapshots_gives_the_calls_between_and_the_later_levels) {
  strata::resource_stats before{.bytes_in_use = 100,
                                .peak_bytes_in_use = 400,
                                .bytes_reserved = 4096,
                                .allocations = 10,
                                .deallocations = 8,
                                .failed_allocations = 1,
                                .upstream_allocations = 2,
                                .upstream_deallocations = 1,
                                .misuse_detected = 3};
  strata::resource_stats after = before;
  after.bytes_in_use = 60;
  after.bytes_reserved = 8192;
  after.allocations = 15;
  after.deallocations = 14;
  after.upstream_allocations = 3;
  after.misuse_detected = 4;
  const strata::resource_stats d = after - before;
  BOOST_TEST(d.allocations == 5u);
  BOOST_TEST(d.deallocations == 6u);
  BOOST_TEST(d.failed_allocations == 0u);
  BOOST_TEST(d.upstream_allocations == 1u);
  BOOST_TEST(d.upstream_deallocations == 0u);
  BOOST_TEST(d.misuse_detected == 1u);
  BOOST_TEST(d.bytes_in_use == 60u);  // levels: the later snapshot's
  BOOST_TEST(d.peak_bytes_in_use == 400u);
  BOOST_TEST(d.bytes_reserved == 8192u);
}

template <class Counters>
void exercise_counters() {
  Counters c;
  c.on_upstream_allocate(4096);
  c.on_allocate(100);
  c.on_allocate(300);
  c.on_deallocate(100);
  c.on_allocate(50);
  c.on_rejected_deallocate();
  c.on_failure();
  const strata::resource_stats s = c.snapshot();
  BOOST_TEST(s.bytes_in_use == 350u);
  BOOST_TEST(s.peak_bytes_in_use == 400u);
  BOOST_TEST(s.allocations == 3u);
  BOOST_TEST(s.deallocations == 1u);  // the rejected one counts as misuse only (issue 14)
  BOOST_TEST(s.misuse_detected == 1u);
  BOOST_TEST(s.failed_allocations == 1u);
  BOOST_TEST(s.bytes_reserved == 4096u);
  c.reset_peak();
  BOOST_TEST(c.snapshot().peak_bytes_in_use == 350u);
  c.on_upstream_deallocate(4096);
  BOOST_TEST(c.snapshot().bytes_reserved == 0u);
  BOOST_TEST(c.snapshot().upstream_deallocations == 1u);
}

BOOST_AUTO_TEST_CASE(plain_counters_keep_peak_and_balance) {
  exercise_counters<strata::detail::plain_counters>();
}

BOOST_AUTO_TEST_CASE(atomic_counters_keep_peak_and_balance) {
  exercise_counters<strata::detail::atomic_counters>();
}

BOOST_AUTO_TEST_CASE(stats_compare_by_value) {
  strata::resource_stats a;
  strata::resource_stats b;
  BOOST_TEST((a == b));
  b.upstream_allocations = 1;
  BOOST_TEST(!(a == b));
}

#if defined(STRATA_HAS_ASAN)
constexpr bool asan = true;
#else
constexpr bool asan = false;
#endif

BOOST_AUTO_TEST_CASE(poisoning_marks_kept_memory_under_asan, *boost::unit_test::enable_if<asan>()) {
#if defined(STRATA_HAS_ASAN)
  alignas(64) static unsigned char buffer[256];
  strata::detail::poison_memory(buffer + 64, 128);
  BOOST_TEST(__asan_address_is_poisoned(buffer + 64) != 0);
  BOOST_TEST(__asan_address_is_poisoned(buffer + 191) != 0);
  BOOST_TEST(__asan_address_is_poisoned(buffer + 63) == 0);
  strata::detail::unpoison_memory(buffer + 64, 128);
  BOOST_TEST(__asan_address_is_poisoned(buffer + 64) == 0);
#endif
}

// The build's hardening switch (meson -Dhardening=true defines STRATA_HARDENED
// for the library and every user of the dependency) is what the constant says;
// each resource's options default to the constant (tested in its own suite).
BOOST_AUTO_TEST_CASE(hardened_by_default_follows_the_build_switch) {
#ifdef STRATA_HARDENED
  BOOST_TEST(strata::hardened_by_default);
#else
  BOOST_TEST(!strata::hardened_by_default);
#endif
}

BOOST_AUTO_TEST_SUITE_END()
