// SPDX-License-Identifier: MIT
// Fuzzes chunk_provider: a small budget so exhaustion and eviction happen,
// trim and reserve as special operations.
#include <strata/chunk_provider.hpp>

#include "fuzz_driver.hpp"

namespace {

struct target {
  std::unique_ptr<strata::chunk_provider> make(std::pmr::memory_resource* upstream) {
    return std::make_unique<strata::chunk_provider>(
        strata::chunk_provider::options{.min_chunk_size = 4096,
                                        .max_chunk_size = std::size_t{256} << 10,
                                        .byte_budget = std::size_t{8} << 20,
                                        .thread_cache_bytes = std::size_t{64} << 10},
        upstream);
  }
  void special(strata::chunk_provider& r, strata::fuzz::input& in, strata::fuzz::live_set&) {
    const std::uint8_t op = in.byte();
    if (op % 2 == 0) {
      r.trim(std::size_t{op} << 12);
    } else {
      try {
        static_cast<void>(r.reserve(std::size_t{4096} << (op % 7), op % 4));
      } catch (const std::bad_alloc&) {  // the budget may refuse
      }
    }
  }
  bool exact_stats(const strata::chunk_provider&) const { return true; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return strata::fuzz::run<target>(data, size);
}
