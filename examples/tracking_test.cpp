// SPDX-License-Identifier: MIT
// tracking_resource inside a unit test: catching a leak and a double free.
//
// Wrap the resource your code under test uses in a tracking_resource. It
// records every live block, so it can prove a double free (and a foreign
// pointer or a wrong size) at the faulty deallocate, and a leak when it is
// destroyed. Both go to handlers you install, so a test can assert on them
// instead of aborting (the default misuse handler aborts in debug builds).
//
// Plain checks keep this self-contained; in Boost.Test or GoogleTest the
// same handlers feed BOOST_TEST / EXPECT_EQ.

#include <cstdio>
#include <memory_resource>
#include <vector>

#include <strata/tracking_resource.hpp>

namespace {

bool all_ok = true;
void check(bool condition, const char* claim) {
  std::printf("%s: %s\n", condition ? "ok  " : "FAIL", claim);
  all_ok = all_ok && condition;
}

// The misuse handler is a process-wide function pointer: record into a global.
std::vector<strata::misuse_kind> misuses;
void record_misuse(const strata::misuse_report& report) noexcept {
  misuses.push_back(report.kind);
}

// Installs record_misuse for one test and restores the previous handler.
struct expect_misuse {
  strata::misuse_handler previous = strata::set_misuse_handler(&record_misuse);
  ~expect_misuse() {
    strata::set_misuse_handler(previous);
    misuses.clear();
  }
};

// Code under test, with two bugs.
void buggy_free_twice(std::pmr::memory_resource* r) {
  void* p = r->allocate(32, 8);
  r->deallocate(p, 32, 8);
  r->deallocate(p, 32, 8);  // bug: double free
}
void buggy_forget(std::pmr::memory_resource* r) {
  std::pmr::vector<int> kept{{1, 2, 3}, r};
  (void)r->allocate(64, 16);  // bug: never deallocated
}

}  // namespace

int main() {
  // Test 1: a double free is detected at the second deallocate and not obeyed
  // (the block is not handed to the upstream twice).
  {
    expect_misuse guard;
    strata::tracking_resource tracked{std::pmr::new_delete_resource()};
    buggy_free_twice(&tracked);
    check(misuses.size() == 1 && misuses[0] == strata::misuse_kind::double_free, "double free reported");
    check(tracked.details().double_frees == 1, "double free counted in details()");
    check(tracked.stats().misuse_detected == 1, "and in stats().misuse_detected");
    check(tracked.stats().upstream_deallocations == 1, "the upstream saw exactly one deallocate");
  }

  // Test 2: a leak is reported when the tracker dies. on_leak receives every
  // live block in allocation order; release_leaks (default true) then returns
  // them upstream, so the test itself does not leak.
  std::size_t leaked_blocks = 0, leaked_bytes = 0;
  {
    strata::tracking_resource tracked{{.on_leak =
                                           [&](const strata::tracking_resource::leak_report& report) {
                                             leaked_blocks = report.blocks;
                                             leaked_bytes = report.bytes;
                                           }},
                                      std::pmr::new_delete_resource()};
    buggy_forget(&tracked);
    check(tracked.live_blocks() == 1, "one block still live after the call");
  }
  check(leaked_blocks == 1 && leaked_bytes == 64, "leak handler saw the 64-byte block");

  // Test 3: correct code passes: no misuse, no leak.
  {
    expect_misuse guard;
    bool leak_seen = false;
    {
      strata::tracking_resource tracked{{.on_leak = [&](const auto&) { leak_seen = true; }},
                                        std::pmr::new_delete_resource()};
      std::pmr::vector<int> v{{1, 2, 3}, &tracked};
      v.resize(1000);
    }
    check(misuses.empty() && !leak_seen, "clean code: no misuse, no leak");
  }
  return all_ok ? 0 : 1;
}
