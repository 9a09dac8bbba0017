// SPDX-License-Identifier: MIT
// Fuzzes arena: the first bytes choose the options (capacity, refill and
// cache sizes, hardened), so small capacities run out often; reset_peak,
// frees and allocations on a short-lived second thread (remote frees, a cache
// handed back at thread exit) and a fill-to-exhaustion burst are the special
// operations. Every check cross-checks stats() and details() against the
// blocks live; the upstream must only ever hold the region.
#include <thread>

#include <strata/arena.hpp>

#include "fuzz_driver.hpp"

namespace {

using strata::fuzz::fail;

// The arena's switch for double-free and size-mismatch detection. Being
// renamed to `hardened` (as in slab and extendable_slab): one word here.
constexpr auto hardened_option = &strata::arena::options::hardened;

struct target {
  strata::tracking_resource* upstream = nullptr;
  bool threads_used = false;  // the peak is exact on one thread only (documented best effort across threads)

  std::unique_ptr<strata::arena> make(strata::tracking_resource* up, strata::fuzz::input& in) {
    upstream = up;
    static constexpr std::size_t capacities[] = {4096, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20};
    strata::arena::options opts;
    opts.capacity = capacities[in.byte() % std::size(capacities)] + std::size_t{4096} * (in.byte() % 4);
    opts.refill_bytes = std::size_t{16} << (in.byte() % 11);  // 16 B .. 16 KiB
    const std::uint8_t flags = in.byte();
    opts.cache_bytes_per_class = opts.refill_bytes << (flags % 3);
    opts.*hardened_option = (flags & 4) != 0;
    return std::make_unique<strata::arena>(opts, up);
  }

  void special(strata::arena& r, strata::fuzz::input& in, strata::fuzz::live_set& live) {
    const std::uint8_t op = in.byte();
    switch (op % 4) {
      case 0: {
        r.reset_peak();
        const strata::resource_stats s = r.stats();
        if (s.peak_bytes_in_use < s.bytes_in_use)
          fail("arena: reset_peak() left the peak below bytes_in_use");
        if (!threads_used && s.peak_bytes_in_use != s.bytes_in_use)
          fail("arena: reset_peak() did not lower the peak");
        break;
      }
      case 1: {
        // Fill until the arena refuses (or 256 blocks), check, free them all:
        // exhaustion must leave the arena usable and lose no block.
        const std::size_t bytes = strata::fuzz::pick_size(in);
        const std::size_t alignment = std::size_t{1} << (in.byte() % 13);
        std::vector<void*> burst;
        try {
          while (burst.size() < 256) {
            void* p = r.allocate(bytes, alignment);
            if (reinterpret_cast<std::uintptr_t>(p) % alignment != 0) fail("misaligned block");
            std::memset(p, 0x3c, bytes);
            live.add({static_cast<std::byte*>(p), bytes, alignment, 0x3c, 0});
            burst.push_back(p);
          }
        } catch (const std::bad_alloc&) {
          live.note_failure();
        }
        check(r, live);
        while (!burst.empty()) {
          const auto& blocks = live.blocks();
          const auto it = std::find_if(blocks.begin(), blocks.end(), [&](const strata::fuzz::block& b) {
            return b.pointer == burst.back();
          });
          const strata::fuzz::block b = live.take(static_cast<std::size_t>(it - blocks.begin()));
          r.deallocate(b.pointer, b.bytes, b.alignment);
          burst.pop_back();
        }
        break;
      }
      default: {
        // Another thread frees a live block (a remote free) and allocates one
        // that stays live; its cache goes back to the central pool when it exits.
        const bool free_one = live.size() != 0;
        strata::fuzz::block freed{};
        if (free_one) freed = live.take(in.byte() % live.size());
        const std::size_t bytes = strata::fuzz::pick_size(in);
        const std::size_t alignment = std::size_t{1} << (in.byte() % 13);
        void* p = nullptr;
        bool refused = false;
        threads_used = true;
        std::thread([&] {
          if (free_one) r.deallocate(freed.pointer, freed.bytes, freed.alignment);
          try {
            p = r.allocate(bytes, alignment);
          } catch (const std::bad_alloc&) {
            refused = true;
          }
        }).join();
        if (refused) {
          live.note_failure();
          break;
        }
        if (reinterpret_cast<std::uintptr_t>(p) % alignment != 0) fail("misaligned block");
        std::memset(p, 0x5a, bytes);
        live.add({static_cast<std::byte*>(p), bytes, alignment, 0x5a, 0});
        break;
      }
    }
  }

  bool exact_stats(const strata::arena&) const { return true; }

  void check(const strata::arena& r, const strata::fuzz::live_set& live) {
    const strata::resource_stats s = r.stats();
    const strata::arena::details_type d = r.details();
    std::size_t large = 0;
    std::size_t large_bytes = 0;
    for (const strata::fuzz::block& b : live.blocks()) {
      if (!r.contains(b.pointer)) fail("arena: a block lies outside the region");
      if (b.bytes != 0 && !r.contains(b.pointer + b.bytes - 1)) fail("arena: a block runs past the region");
      if (strata::arena::block_size_for(b.bytes, b.alignment) == 0) {
        ++large;
        large_bytes += b.bytes;
      }
    }
    if (d.capacity != r.get_options().capacity) fail("arena: details().capacity differs from the options");
    if (d.remaining > d.capacity) fail("arena: remaining above capacity");
    if (d.large_live != large) fail("arena: large_live drifted");
    if (d.large_live_bytes < large_bytes || d.large_live_bytes > large_bytes + 4096 * large) {
      fail("arena: large_live_bytes is not the live large blocks rounded to pages");
    }
    if (s.bytes_in_use > d.capacity) fail("arena: bytes_in_use above capacity");
    if (s.allocations != live.added()) fail("arena: allocations is not the blocks handed out");
    if (s.deallocations != live.taken()) fail("arena: deallocations is not the blocks freed");
    if (s.failed_allocations != live.failures()) fail("arena: failed_allocations drifted");
    if (s.peak_bytes_in_use < s.bytes_in_use) fail("arena: peak below bytes_in_use");
    if (upstream->live_blocks() != 1 || upstream->stats().allocations != 1) {
      fail("arena: the upstream holds something other than the region");
    }
    if (s.bytes_reserved != d.capacity) fail("arena: bytes_reserved is not the capacity");
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return strata::fuzz::run<target>(data, size);
}
