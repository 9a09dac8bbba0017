// SPDX-License-Identifier: MIT
#pragma once

// Fixtures every strata test executable shares. Include once per test
// executable, after BOOST_TEST_MODULE and <boost/test/unit_test.hpp>.

#include <memory_resource>
#include <mutex>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <strata/resource.hpp>

namespace strata::test {

/// Makes the default resource the null resource for the whole run, so any
/// allocation that silently falls back to it throws (BDE's default-allocator
/// guard in pmr terms).
struct null_default_resource {
  null_default_resource() { std::pmr::set_default_resource(std::pmr::null_memory_resource()); }
  ~null_default_resource() { std::pmr::set_default_resource(nullptr); }
};

/// Records every misuse report while alive, instead of the default handler
/// (which aborts in debug builds). Not re-entrant: one at a time.
class misuse_recorder {
 public:
  misuse_recorder() { previous_ = set_misuse_handler(&record); }
  ~misuse_recorder() {
    set_misuse_handler(previous_);
    reports().clear();
  }
  misuse_recorder(const misuse_recorder&) = delete;
  misuse_recorder& operator=(const misuse_recorder&) = delete;

  [[nodiscard]] std::vector<misuse_report> taken() const {
    std::lock_guard lock(mutex());
    return reports();
  }

 private:
  static std::vector<misuse_report>& reports() {
    static std::vector<misuse_report> list;
    return list;
  }
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static void record(const misuse_report& report) noexcept {
    std::lock_guard lock(mutex());
    reports().push_back(report);
  }
  misuse_handler previous_;
};

}  // namespace strata::test

using strata_null_default_resource = strata::test::null_default_resource;
BOOST_TEST_GLOBAL_FIXTURE(strata_null_default_resource);
