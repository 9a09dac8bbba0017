// SPDX-License-Identifier: MIT
// Fuzzes tracking_resource: allocation limits and fill patterns as special
// operations (a limit makes one later allocation throw).
#include <strata/tracking_resource.hpp>

#include "fuzz_driver.hpp"

namespace {

struct target {
  std::unique_ptr<strata::tracking_resource> make(std::pmr::memory_resource* upstream) {
    return std::make_unique<strata::tracking_resource>(
        strata::tracking_resource::options{.fill_on_deallocate = 0xdd}, upstream);
  }
  void special(strata::tracking_resource& r, strata::fuzz::input& in, strata::fuzz::live_set& live) {
    r.set_allocation_limit(in.byte() % 8);
    if (r.live_blocks() != live.size()) strata::fuzz::fail("live_blocks() drifted");
  }
  bool exact_stats(const strata::tracking_resource&) const { return true; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return strata::fuzz::run<target>(data, size);
}
