// SPDX-License-Identifier: MIT
// Fuzzes monotonic_arena: reset, release, mark and rewind as special
// operations, on a small first chunk so growth and dedicated chunks happen.
#include <strata/monotonic_arena.hpp>

#include "fuzz_driver.hpp"

namespace {

struct target {
  struct saved_mark {
    strata::monotonic_arena::marker marker;
    std::uint64_t serial;  // blocks from this serial on are freed by a rewind to it
  };
  std::vector<saved_mark> marks;  // oldest first; rewinding drops the newer ones
  bool rewound = false;           // bytes_in_use after a rewind is documented as approximate

  std::unique_ptr<strata::monotonic_arena> make(std::pmr::memory_resource* upstream) {
    return std::make_unique<strata::monotonic_arena>(
        strata::monotonic_arena::options{.first_chunk_size = 256, .max_chunk_size = std::size_t{64} << 10},
        upstream);
  }
  void special(strata::monotonic_arena& r, strata::fuzz::input& in, strata::fuzz::live_set& live) {
    const std::uint8_t op = in.byte();
    switch (op % 4) {
      case 0:
        r.reset();
        live.clear();
        marks.clear();
        rewound = false;
        break;
      case 1:
        r.release();
        live.clear();
        marks.clear();
        rewound = false;
        break;
      case 2:
        marks.push_back({r.mark(), live.next_serial()});
        break;
      case 3:
        if (!marks.empty()) {
          const std::size_t k = (op >> 2) % marks.size();
          r.rewind(marks[k].marker);
          live.forget_from(marks[k].serial);
          marks.resize(k + 1);
          rewound = true;
        }
        break;
    }
  }
  bool exact_stats(const strata::monotonic_arena&) const { return !rewound; }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return strata::fuzz::run<target>(data, size);
}
