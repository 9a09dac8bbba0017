// SPDX-License-Identifier: MIT
// tracking_resource and strata/testing.hpp inside a unit test: catching a
// double free, a leak, and a leak on an exception path.
//
// Wrap the resource your code under test uses in a tracking_resource. It
// records every live block, so it can prove a double free (and a foreign
// pointer or a wrong size) at the faulty deallocate, and a leak when it is
// destroyed. strata/testing.hpp has the pieces a test needs around it:
// misuse_recorder (misuse reports for one scope, instead of the default
// handler's stderr line), stats_monitor (in use / max / total up or same) and
// exception_safety_loop (every allocation of the body made to fail in turn).
//
// The same tests are built twice (examples/meson.build): with
// STRATA_EXAMPLE_BOOST_TEST under Boost.Test, and without as a plain main. Only
// the three macros below differ; copy whichever half fits your project.

#include <cstdio>
#include <memory_resource>
#include <stdexcept>
#include <vector>

#include <strata/testing.hpp>
#include <strata/tracking_resource.hpp>

#if defined(STRATA_EXAMPLE_BOOST_TEST)
#define BOOST_TEST_MODULE tracking_test
#include <boost/test/unit_test.hpp>
#define EXAMPLE_TEST(name) BOOST_AUTO_TEST_CASE(name)
#define EXAMPLE_CHECK(condition, claim) BOOST_TEST((condition), claim)
#else
namespace {
bool all_ok = true;
std::vector<void (*)()> tests;
struct register_test {
  explicit register_test(void (*test)()) { tests.push_back(test); }
};
}  // namespace
#define EXAMPLE_TEST(name)                     \
  void name();                                 \
  const register_test name##_registered{name}; \
  void name()
#define EXAMPLE_CHECK(condition, claim)                     \
  do {                                                      \
    const bool held = (condition);                          \
    std::printf("%s: %s\n", held ? "ok  " : "FAIL", claim); \
    all_ok = all_ok && held;                                \
  } while (false)
#endif

namespace {

// Code under test, with three bugs.
void buggy_free_twice(std::pmr::memory_resource* r) {
  void* p = r->allocate(32, 8);
  r->deallocate(p, 32, 8);
  r->deallocate(p, 32, 8);  // bug: double free
}
void buggy_forget(std::pmr::memory_resource* r) {
  std::pmr::vector<int> kept{{1, 2, 3}, r};
  (void)r->allocate(64, 16);  // bug: never deallocated
}
// Builds two buffers; if the second allocation throws, the first leaks.
void buggy_on_exception(std::pmr::memory_resource* r) {
  void* first = r->allocate(128, 8);
  void* second = r->allocate(256, 8);  // bug: a throw here leaks `first`
  r->deallocate(second, 256, 8);
  r->deallocate(first, 128, 8);
}
void safe_on_exception(std::pmr::memory_resource* r) {
  std::pmr::vector<int> first(32, 0, r);  // freed by its destructor on any path
  std::pmr::vector<int> second(64, 0, r);
}

}  // namespace

// A double free is detected at the second deallocate and not obeyed (the
// block is not handed to the upstream twice).
EXAMPLE_TEST(double_free_is_reported_and_not_obeyed) {
  strata::testing::misuse_recorder misuses;
  strata::tracking_resource tracked{std::pmr::new_delete_resource()};
  buggy_free_twice(&tracked);
  EXAMPLE_CHECK(misuses.count() == 1 && misuses.count(strata::misuse_kind::double_free) == 1,
                "double free reported");
  EXAMPLE_CHECK(tracked.stats().misuse_detected == 1, "and counted in stats().misuse_detected");
  EXAMPLE_CHECK(tracked.stats().upstream_deallocations == 1, "the upstream saw exactly one deallocate");
  EXAMPLE_CHECK(tracked.stats().allocations - tracked.stats().deallocations == 0,
                "allocations - deallocations is the live blocks: none");
}

// A leak shows while the tracker lives (stats_monitor, live_blocks) and is
// reported when it dies: on_leak receives the live blocks; release_leaks
// (default true) then returns them upstream, so the test itself does not leak.
EXAMPLE_TEST(leak_is_seen_by_the_monitor_and_reported_at_destruction) {
  std::size_t leaked_blocks = 0;
  std::size_t leaked_bytes = 0;
  {
    strata::tracking_resource tracked{{.on_leak =
                                           [&](const strata::tracking_resource::leak_report& report) {
                                             leaked_blocks = report.blocks;
                                             leaked_bytes = report.bytes;
                                           }},
                                      std::pmr::new_delete_resource()};
    strata::testing::stats_monitor monitor{tracked};
    buggy_forget(&tracked);
    EXAMPLE_CHECK(monitor.is_in_use_up(), "bytes in use went up across the call");
    EXAMPLE_CHECK(tracked.live_blocks() == 1, "one block still live after the call");
  }
  EXAMPLE_CHECK(leaked_blocks == 1 && leaked_bytes == 64, "leak handler saw the 64-byte block");
}

// exception_safety_loop makes the 1st, 2nd, ... allocation of the body fail
// in turn and checks that nothing stays live after each exception.
EXAMPLE_TEST(exception_safety_loop_finds_the_leak_on_the_throwing_path) {
  strata::tracking_resource tracked{std::pmr::new_delete_resource()};
  const auto buggy = strata::testing::exception_safety_loop(tracked, [&] { buggy_on_exception(&tracked); });
  EXAMPLE_CHECK(!buggy.ok() && buggy.first_leak_limit == 1 && buggy.leaked_blocks == 1,
                "the run whose 2nd allocation failed leaked the 1st block");
  tracked.release();  // returns what the buggy runs left behind, without a leak report
  const auto safe = strata::testing::exception_safety_loop(tracked, [&] { safe_on_exception(&tracked); });
  EXAMPLE_CHECK(safe.ok() && safe.runs == 3,
                "the RAII version leaks on no path (2 failing runs, 1 complete)");
}

// Correct code passes: no misuse, no leak, nothing left in use.
EXAMPLE_TEST(clean_code_reports_nothing) {
  strata::testing::misuse_recorder misuses;
  bool leak_seen = false;
  {
    strata::tracking_resource tracked{{.on_leak = [&](const auto&) { leak_seen = true; }},
                                      std::pmr::new_delete_resource()};
    strata::testing::stats_monitor monitor{tracked};
    {
      std::pmr::vector<int> v{{1, 2, 3}, &tracked};
      v.resize(1000);
    }
    EXAMPLE_CHECK(monitor.is_in_use_same() && monitor.is_total_up(), "allocated, and gave all of it back");
  }
  EXAMPLE_CHECK(misuses.count() == 0 && !leak_seen, "clean code: no misuse, no leak");
}

#if !defined(STRATA_EXAMPLE_BOOST_TEST)
int main() {
  for (void (*test)() : tests) test();
  return all_ok ? 0 : 1;
}
#endif
