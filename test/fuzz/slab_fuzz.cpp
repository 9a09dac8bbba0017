// SPDX-License-Identifier: MIT
// Fuzzes slab: the first bytes choose the options (slot size and alignment,
// capacity, what exhaustion does, hardened, a caller buffer), so requests that
// fit a slot, forwarded requests and exhaustion all happen; release and
// reset_peak are the special operations. Every check cross-checks stats(),
// details() and free_slots() against the blocks live, and the upstream's own
// count of blocks (the region plus the forwarded blocks).
#include <strata/slab.hpp>

#include "fuzz_driver.hpp"

namespace {

using strata::fuzz::fail;

struct target {
  strata::tracking_resource* upstream = nullptr;
  std::vector<std::byte> buffer;  // the caller's buffer, when chosen
  bool own_region = true;         // the region came from the upstream

  std::unique_ptr<strata::slab> make(strata::tracking_resource* up, strata::fuzz::input& in) {
    upstream = up;
    static constexpr std::size_t slot_sizes[] = {1, 8, 16, 24, 48, 64, 100, 256, 512, 4096};
    strata::slab::options opts;
    opts.slot_size = slot_sizes[in.byte() % std::size(slot_sizes)];
    opts.slot_alignment = std::size_t{1} << (in.byte() % 13);
    opts.capacity = in.byte() % 65;
    const std::uint8_t flags = in.byte();
    opts.on_exhaustion =
        flags & 1 ? strata::slab::exhaustion::throw_bad_alloc : strata::slab::exhaustion::forward_upstream;
    opts.hardened = (flags & 2) != 0;
    if (flags & 4) {  // a caller buffer, misaligned on purpose by up to 63 bytes
      own_region = false;
      // Room for the slots at any stride (slot_size rounded up to the slot
      // alignment and to a pointer) and for aligning the first one.
      const std::size_t stride = opts.slot_size + opts.slot_alignment + sizeof(void*);
      const std::size_t slots = opts.capacity == 0 ? 1 + flags % 16 : opts.capacity;
      buffer.resize(slots * stride + opts.slot_alignment + 64);
      const std::size_t skew = (flags >> 3) % 64;
      return std::make_unique<strata::slab>(opts, std::span<std::byte>(buffer).subspan(skew), up);
    }
    if (opts.capacity == 0) opts.capacity = 1;
    return std::make_unique<strata::slab>(opts, up);
  }

  void special(strata::slab& r, strata::fuzz::input& in, strata::fuzz::live_set& live) {
    if (in.byte() % 2 == 0) {
      r.release();
      live.clear();
      const strata::resource_stats s = r.stats();
      if (s.bytes_in_use != 0) fail("slab: bytes_in_use not zero after release()");
      if (r.free_slots() != r.capacity()) fail("slab: release() did not free every slot");
      if (upstream->live_blocks() != (own_region ? 1u : 0u)) fail("slab: release() kept forwarded blocks");
    } else {
      r.reset_peak();
      const strata::resource_stats s = r.stats();
      if (s.peak_bytes_in_use != s.bytes_in_use) fail("slab: reset_peak() did not lower the peak");
    }
  }

  bool exact_stats(const strata::slab&) const { return true; }

  [[nodiscard]] static bool fits(const strata::slab& r, std::size_t bytes, std::size_t alignment) {
    return bytes <= r.get_options().slot_size && alignment <= r.get_options().slot_alignment;
  }

  void on_failure(const strata::slab& r, std::size_t bytes, std::size_t alignment,
                  const strata::fuzz::live_set&) {
    // The upstream never fails for these sizes, so the only refusal allowed is
    // a full region with on_exhaustion = throw_bad_alloc.
    if (r.get_options().on_exhaustion != strata::slab::exhaustion::throw_bad_alloc) {
      fail("slab: allocation refused although it forwards on exhaustion");
    }
    if (!fits(r, bytes, alignment)) fail("slab: a request for the upstream was refused");
    if (r.free_slots() != 0) fail("slab: allocation refused with free slots left");
  }

  void check(const strata::slab& r, const strata::fuzz::live_set& live) {
    const strata::resource_stats s = r.stats();
    const strata::slab::details_type d = r.details();
    std::size_t in_region = 0;
    for (const strata::fuzz::block& b : live.blocks()) {
      if (r.contains(b.pointer)) {
        ++in_region;
        if (!fits(r, b.bytes, b.alignment))
          fail("slab: a request too big for a slot was served from the region");
        if (r.usable_size(b.pointer) != r.stride()) fail("slab: usable_size of a slot is not the stride");
        if (b.bytes > r.stride()) fail("slab: block larger than its slot");
      } else if (r.usable_size(b.pointer) != 0) {
        fail("slab: usable_size of a forwarded block is not 0");
      }
    }
    if (r.free_slots() != r.capacity() - in_region) fail("slab: free_slots() drifted");
    if (d.free_slots != r.free_slots()) fail("slab: details().free_slots differs from free_slots()");
    if (d.forwarded_live != live.size() - in_region) fail("slab: forwarded_live drifted");
    if (d.carved_slots > d.capacity || d.carved_slots < in_region) fail("slab: carved_slots out of range");
    if (d.lost_slots != 0 || d.corrupted_links != 0 || d.double_frees != 0)
      fail("slab: correct use seen as corruption");
    if (r.stride() % r.get_options().slot_alignment != 0 || r.stride() < r.get_options().slot_size) {
      fail("slab: stride does not hold an aligned slot");
    }
    // The options decide, in every build (docs/reliability.md).
    if (d.checked != (r.get_options().hardened || r.get_options().detect_double_free))
      fail("slab: deallocate checking does not follow the options");
    if (s.allocations != live.added()) fail("slab: allocations is not the blocks handed out");
    if (s.deallocations != live.taken()) fail("slab: deallocations is not the blocks freed");
    if (s.failed_allocations != live.failures()) fail("slab: failed_allocations drifted");
    if (s.peak_bytes_in_use < s.bytes_in_use) fail("slab: peak below bytes_in_use");
    if (upstream->live_blocks() != (own_region ? 1u : 0u) + d.forwarded_live) {
      fail("slab: upstream blocks are not the region plus the forwarded blocks");
    }
    if (s.upstream_allocations - s.upstream_deallocations != upstream->live_blocks()) {
      fail("slab: upstream traffic counters disagree with the upstream");
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return strata::fuzz::run<target>(data, size);
}
