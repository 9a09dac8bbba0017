// SPDX-License-Identifier: MIT
#include <strata/tracking_resource.hpp>

// Concerns:
// 1. It forwards every call: the upstream sees the same sizes and alignments.
// 2. Each misuse is detected, counted by kind, reported, and never corrupts the upstream
//    (a double free of any earlier block whose address was not handed out again):
//    unknown pointer and double free are not forwarded; size and alignment mismatches
//    are corrected to the recorded values.
// 3. An upstream that hands out an overlapping block is caught.
// 4. Leaks are reported at destruction through the handler, in allocation order, and
//    returned upstream (or kept, by option).
// 5. The allocation limit makes exactly the N-th allocation throw, once; an
//    exception-safety loop over it terminates and leaks nothing.
// 6. Fill patterns are written on allocate and on deallocate.
// 7. Upstream exceptions pass through unchanged and are counted.
// 8. A null upstream is rejected.
// 9. The conformance kit passes, including concurrent use.

#define BOOST_TEST_MODULE tracking_resource
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include <strata/slab.hpp>

#include "conformance.hpp"
#include "counting_resource.hpp"
#include "fixtures.hpp"

namespace {

struct tracking_factory {
  static constexpr bool has_upstream = true;
  static constexpr bool thread_safe = true;
  std::unique_ptr<strata::resource> make(std::pmr::memory_resource* upstream) const {
    return std::make_unique<strata::tracking_resource>(upstream);
  }
};

// An upstream that hands out the same static block twice: a broken resource.
class repeating_resource final : public std::pmr::memory_resource {
  alignas(64) std::byte block_[256];
  void* do_allocate(std::size_t, std::size_t) override { return block_; }
  void do_deallocate(void*, std::size_t, std::size_t) override {}
  bool do_is_equal(const memory_resource& o) const noexcept override { return this == &o; }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(tracking_resource)

STRATA_CONFORMANCE_SUITE(tracking_factory)

BOOST_AUTO_TEST_CASE(get_options_returns_what_it_was_made_with) {
  strata::tracking_resource tracked{{.allocation_limit = 3, .fill_on_allocate = 0xAB, .release_leaks = false},
                                    std::pmr::new_delete_resource()};
  BOOST_TEST(tracked.get_options().allocation_limit == 3U);
  BOOST_TEST(tracked.get_options().fill_on_allocate.value_or(0) == 0xAB);
  BOOST_TEST(!tracked.get_options().fill_on_deallocate.has_value());
  BOOST_TEST(!tracked.get_options().release_leaks);
  tracked.set_allocation_limit(strata::tracking_resource::unlimited);  // re-arms; the options stay
  BOOST_TEST(tracked.get_options().allocation_limit == 3U);
}

BOOST_AUTO_TEST_CASE(forwards_sizes_and_alignments_unchanged) {
  strata::test::counting_resource upstream;
  strata::tracking_resource tracked{&upstream};
  void* a = tracked.allocate(100, 32);
  void* b = tracked.allocate(7, 1);
  BOOST_TEST(upstream.bytes_outstanding() == 107u);
  BOOST_TEST(tracked.owns(a));
  BOOST_TEST(!tracked.owns(static_cast<std::byte*>(a) + 1));
  BOOST_TEST(tracked.live_blocks() == 2u);
  const auto blocks = tracked.live_block_list();
  BOOST_TEST(blocks[0].pointer == a);
  BOOST_TEST(blocks[0].alignment == 32u);
  BOOST_TEST(blocks[1].serial == 1u);
  tracked.deallocate(a, 100, 32);
  tracked.deallocate(b, 7, 1);
  BOOST_TEST(upstream.bytes_outstanding() == 0u);
  BOOST_TEST(upstream.mismatches() == 0u);
  const strata::resource_stats s = tracked.stats();
  BOOST_TEST(s.allocations == 2u);
  BOOST_TEST(s.upstream_deallocations == 2u);
  BOOST_TEST(s.peak_bytes_in_use == 107u);
  BOOST_TEST(s.bytes_reserved == 0u);
}

BOOST_AUTO_TEST_CASE(double_free_and_unknown_pointer_are_detected_and_not_forwarded) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource upstream;
  strata::tracking_resource tracked{&upstream};
  void* p = tracked.allocate(64, 8);
  tracked.deallocate(p, 64, 8);
  tracked.deallocate(p, 64, 8);  // double free
  int local = 0;
  tracked.deallocate(&local, sizeof local, alignof(int));  // never handed out
  BOOST_TEST(upstream.mismatches() == 0u);                 // neither reached the upstream
  BOOST_TEST(upstream.deallocations() == 1u);
  const auto d = tracked.details();
  BOOST_TEST(d.double_frees == 1u);
  BOOST_TEST(d.unknown_pointers == 1u);
  BOOST_TEST(tracked.stats().misuse_detected == 2u);
  BOOST_TEST(tracked.stats().bytes_in_use == 0u);
  BOOST_REQUIRE(recorder.taken().size() == 2u);
  BOOST_TEST((recorder.taken()[0].kind == strata::misuse_kind::double_free));
  BOOST_TEST((recorder.taken()[1].kind == strata::misuse_kind::unknown_pointer));
  BOOST_TEST(recorder.taken()[0].resource_name == "tracking_resource");
}

// Regression (issue 14): rejected deallocates counted in deallocations, so
// 3 allocations showed 7 deallocations after four misuse calls, and a double
// free plus a leak balanced to allocations == deallocations, hiding the leak.
BOOST_AUTO_TEST_CASE(rejected_deallocates_count_as_misuse_only) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource upstream;
  {
    strata::tracking_resource tracked{&upstream};
    void* blocks[3];
    for (void*& b : blocks) b = tracked.allocate(32, 8);
    for (void* b : blocks) tracked.deallocate(b, 32, 8);
    int local = 0;
    tracked.deallocate(blocks[0], 32, 8);  // double frees
    tracked.deallocate(blocks[1], 32, 8);
    tracked.deallocate(&local, sizeof local, alignof(int));  // strangers
    tracked.deallocate(&local + 1, sizeof local, alignof(int));
    strata::resource_stats s = tracked.stats();
    BOOST_TEST(s.allocations == 3u);
    BOOST_TEST(s.deallocations == 3u);
    BOOST_TEST(s.misuse_detected == 4u);

    void* kept = tracked.allocate(16, 8);  // leaked...
    void* twice = tracked.allocate(16, 8);
    tracked.deallocate(twice, 16, 8);
    tracked.deallocate(twice, 16, 8);  // ...while a double free must not hide it
    s = tracked.stats();
    BOOST_TEST(s.allocations - s.deallocations == 1u);
    BOOST_TEST(tracked.live_blocks() == 1u);
    tracked.deallocate(kept, 16, 8);
    // A corrected call (the size is fixed before forwarding) counts once.
    void* resized = tracked.allocate(48, 16);
    tracked.deallocate(resized, 40, 16);
    s = tracked.stats();
    BOOST_TEST(s.allocations == s.deallocations);
    BOOST_TEST(s.misuse_detected == 6u);
  }
  BOOST_TEST(upstream.bytes_outstanding() == 0u);
}

// Regression (issue 14): only the last 256 frees were remembered, so this
// double free was reported as an unknown pointer.
BOOST_AUTO_TEST_CASE(a_double_free_of_any_earlier_block_is_detected) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource upstream;
  strata::tracking_resource checked{&upstream};
  std::vector<void*> blocks;
  for (int i = 0; i < 10'000; ++i) blocks.push_back(checked.allocate(16, 8));
  for (void* p : blocks) checked.deallocate(p, 16, 8);
  checked.deallocate(blocks.front(), 16, 8);
  BOOST_TEST(checked.details().double_frees == 1u);
  BOOST_TEST(checked.details().unknown_pointers == 0u);
  BOOST_TEST(checked.stats().deallocations == 10'000u);
  BOOST_TEST(upstream.deallocations() == 10'000u);
  BOOST_TEST_REQUIRE(recorder.taken().size() == 1u);
  BOOST_TEST((recorder.taken()[0].kind == strata::misuse_kind::double_free));
}

// An address the upstream hands out again belongs to the new block: its free
// is obeyed, and only a second free of it is a double free.
BOOST_AUTO_TEST_CASE(a_reused_address_is_forgotten_until_freed_again) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource below;
  strata::slab upstream{{.slot_size = 32, .capacity = 4}, &below};  // LIFO: hands the slot back
  strata::tracking_resource checked{&upstream};
  void* a = checked.allocate(32, 8);
  checked.deallocate(a, 32, 8);
  void* b = checked.allocate(32, 8);
  BOOST_TEST_REQUIRE(a == b);
  checked.deallocate(b, 32, 8);
  BOOST_TEST(checked.stats().misuse_detected == 0u);
  checked.deallocate(b, 32, 8);
  BOOST_TEST(checked.details().double_frees == 1u);
  BOOST_TEST(recorder.taken().size() == 1u);
}

BOOST_AUTO_TEST_CASE(size_and_alignment_mismatches_are_corrected_before_forwarding) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource upstream;  // fails the test on any mismatched deallocate
  strata::tracking_resource tracked{&upstream};
  void* a = tracked.allocate(48, 16);
  void* b = tracked.allocate(48, 16);
  tracked.deallocate(a, 40, 16);
  tracked.deallocate(b, 48, 8);
  BOOST_TEST(upstream.mismatches() == 0u);
  BOOST_TEST(upstream.bytes_outstanding() == 0u);
  BOOST_TEST(tracked.details().size_mismatches == 1u);
  BOOST_TEST(tracked.details().alignment_mismatches == 1u);
  BOOST_TEST(tracked.stats().misuse_detected == 2u);
  BOOST_TEST(tracked.stats().bytes_in_use == 0u);  // the recorded size came off
}

BOOST_AUTO_TEST_CASE(upstream_handing_out_a_live_block_twice_is_caught) {
  strata::test::misuse_recorder recorder;
  repeating_resource broken;
  strata::tracking_resource tracked{{.release_leaks = false}, &broken};
  void* a = tracked.allocate(32, 8);
  void* b = tracked.allocate(16, 8);  // overlaps a
  BOOST_TEST(a == b);
  BOOST_TEST(tracked.details().duplicate_handouts == 1u);
  BOOST_REQUIRE(recorder.taken().size() == 1u);
  BOOST_TEST((recorder.taken()[0].kind == strata::misuse_kind::duplicate_handout));
  tracked.deallocate(a, 32, 8);
}

BOOST_AUTO_TEST_CASE(leaks_are_reported_in_order_and_returned_upstream) {
  strata::test::counting_resource upstream;
  std::vector<std::size_t> leaked_sizes;
  std::size_t leaked_bytes = 0;
  {
    strata::tracking_resource tracked{{.on_leak =
                                           [&](const strata::tracking_resource::leak_report& r) {
                                             leaked_bytes = r.bytes;
                                             for (const auto& b : r.leaked) leaked_sizes.push_back(b.bytes);
                                           }},
                                      &upstream};
    void* keep = tracked.allocate(10, 8);
    static_cast<void>(tracked.allocate(30, 8));
    static_cast<void>(tracked.allocate(20, 8));
    tracked.deallocate(keep, 10, 8);
  }
  BOOST_TEST(leaked_sizes == (std::vector<std::size_t>{30, 20}), boost::test_tools::per_element());
  BOOST_TEST(leaked_bytes == 50u);
  BOOST_TEST(upstream.bytes_outstanding() == 0u);  // returned after the report
}

BOOST_AUTO_TEST_CASE(leaks_can_be_kept_for_callers_that_still_use_them) {
  strata::test::counting_resource upstream;
  void* leaked = nullptr;
  {
    strata::tracking_resource tracked{{.on_leak = [](const auto&) {}, .release_leaks = false}, &upstream};
    leaked = tracked.allocate(24, 8);
  }
  BOOST_TEST(upstream.bytes_outstanding() == 24u);
  upstream.deallocate(leaked, 24, 8);
}

BOOST_AUTO_TEST_CASE(allocation_limit_throws_exactly_once_at_the_nth_allocation) {
  strata::test::counting_resource upstream;
  strata::tracking_resource tracked{{.allocation_limit = 2}, &upstream};
  void* a = tracked.allocate(8, 8);
  void* b = tracked.allocate(8, 8);
  try {
    static_cast<void>(tracked.allocate(8, 8));
    BOOST_FAIL("the third allocation did not throw");
  } catch (const strata::allocation_failure& e) {
    BOOST_TEST((e.reason() == strata::failure_reason::allocation_limit));
  }
  void* c = tracked.allocate(8, 8);  // spent: works again
  BOOST_TEST(tracked.stats().failed_allocations == 1u);
  BOOST_TEST(tracked.details().limit_failures == 1u);
  BOOST_TEST(upstream.allocations() == 3u);  // the failing call never reached upstream
  for (void* p : {a, b, c}) tracked.deallocate(p, 8, 8);
}

BOOST_AUTO_TEST_CASE(exception_safety_loop_over_the_limit_terminates_without_leaks) {
  strata::test::counting_resource upstream;
  strata::tracking_resource tracked{&upstream};
  int throws = 0;
  for (std::uint64_t k = 0;; ++k) {
    tracked.set_allocation_limit(k);
    try {
      std::pmr::vector<std::pmr::string> v{&tracked};
      for (int i = 0; i < 20; ++i) v.emplace_back(40, 'x');
      break;  // completed without hitting the limit
    } catch (const std::bad_alloc&) {
      ++throws;
    }
    BOOST_TEST_REQUIRE(tracked.live_blocks() == 0u);  // the container unwound cleanly
  }
  BOOST_TEST(throws > 20);  // 20 strings plus the vector's growth steps
  BOOST_TEST(upstream.bytes_outstanding() == 0u);
}

BOOST_AUTO_TEST_CASE(fill_patterns_are_written) {
  strata::test::counting_resource upstream;
  strata::tracking_resource tracked{{.fill_on_allocate = 0xA5, .fill_on_deallocate = 0xDD}, &upstream};
  auto* p = static_cast<unsigned char*>(tracked.allocate(32, 8));
  BOOST_TEST(std::all_of(p, p + 32, [](unsigned char c) { return c == 0xA5; }));
  // The deallocate fill is observed by a spy upstream that copies the block it gets back.
  std::vector<unsigned char> seen;
  struct spy final : std::pmr::memory_resource {
    std::vector<unsigned char>* seen;
    std::pmr::memory_resource* next;
    void* do_allocate(std::size_t n, std::size_t a) override { return next->allocate(n, a); }
    void do_deallocate(void* p, std::size_t n, std::size_t a) override {
      seen->assign(static_cast<unsigned char*>(p), static_cast<unsigned char*>(p) + n);
      next->deallocate(p, n, a);
    }
    bool do_is_equal(const memory_resource& o) const noexcept override { return this == &o; }
  } watcher;
  watcher.seen = &seen;
  watcher.next = &upstream;
  {
    strata::tracking_resource filled{{.fill_on_deallocate = 0xDD}, &watcher};
    void* r = filled.allocate(16, 8);
    std::memset(r, 0, 16);
    filled.deallocate(r, 16, 8);
  }
  BOOST_TEST(seen == std::vector<unsigned char>(16, 0xDD), boost::test_tools::per_element());
  tracked.deallocate(p, 32, 8);
}

BOOST_AUTO_TEST_CASE(upstream_exceptions_pass_through_and_are_counted) {
  strata::test::counting_resource upstream;
  strata::tracking_resource tracked{&upstream};
  upstream.fail_allocations(true);
  BOOST_CHECK_THROW(static_cast<void>(tracked.allocate(8, 8)), std::bad_alloc);
  upstream.fail_allocations(false);
  BOOST_TEST(tracked.stats().failed_allocations == 1u);
  BOOST_TEST(tracked.live_blocks() == 0u);
  void* p = tracked.allocate(8, 8);
  tracked.deallocate(p, 8, 8);
}

BOOST_AUTO_TEST_CASE(null_upstream_is_rejected) {
  BOOST_CHECK_THROW(strata::tracking_resource(nullptr), std::invalid_argument);
}

BOOST_AUTO_TEST_SUITE_END()
