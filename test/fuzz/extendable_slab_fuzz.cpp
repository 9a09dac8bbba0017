// SPDX-License-Identifier: MIT
// Fuzzes extendable_slab: the first bytes choose the options (slot size and
// alignment, segment size, empty segments kept, decay period, thread cache
// size, colouring, hardened), so growth, reclamation and forwarding all
// happen; trim, release, reset_peak and frees on a short-lived second thread (whose
// cache is flushed when it exits) are the special operations. Every check
// cross-checks stats() and details() against the blocks live and the
// upstream's own count of blocks (the segments plus the forwarded blocks).
#include <thread>

#include <strata/extendable_slab.hpp>

#include "fuzz_driver.hpp"

namespace {

using strata::fuzz::fail;

struct target {
  strata::tracking_resource* upstream = nullptr;
  bool threads_used = false;
  std::uint64_t released = 0;  // blocks release() took (counted as deallocations)  // the peak is exact on
                               // one thread only (documented best effort across threads)

  std::unique_ptr<strata::extendable_slab> make(strata::tracking_resource* up, strata::fuzz::input& in) {
    upstream = up;
    static constexpr std::size_t slot_sizes[] = {1, 8, 16, 24, 48, 64, 100, 256, 512, 4096};
    static constexpr std::int64_t decay_ms[] = {0, 1, 4, 15000};  // decay_period
    static constexpr std::size_t cache_slots[] = {0, 1, 4, 32, 256};
    strata::extendable_slab::options opts;
    opts.slot_size = slot_sizes[in.byte() % std::size(slot_sizes)];
    opts.slot_alignment = std::size_t{1} << (in.byte() % 13);
    const std::uint8_t per_segment = in.byte();
    opts.slots_per_segment = per_segment % 4 == 0 ? 0 : 1 + per_segment % 24;
    const std::uint8_t b = in.byte();
    opts.max_empty_segments = b % 3;
    opts.decay_period = std::chrono::milliseconds{decay_ms[(b >> 2) % std::size(decay_ms)]};
    opts.thread_cache_slots = cache_slots[(b >> 4) % std::size(cache_slots)];
    const std::uint8_t flags = in.byte();
    opts.colouring = (flags & 1) != 0;
    opts.hardened = (flags & 2) != 0;
    return std::make_unique<strata::extendable_slab>(opts, up);
  }

  void special(strata::extendable_slab& r, strata::fuzz::input& in, strata::fuzz::live_set& live) {
    const std::uint8_t op = in.byte();
    switch (op % 4) {
      case 0: {
        if ((op & 4) != 0) {  // release(): everything back upstream, every block gone
          r.release();
          released += live.size();
          if (r.details().released_blocks != released) fail("extendable_slab: released_blocks drifted");
          live.clear();
          const strata::resource_stats s = r.stats();
          if (s.bytes_in_use != 0) fail("extendable_slab: bytes_in_use not zero after release()");
          if (s.allocations != s.deallocations) fail("extendable_slab: release() left blocks counted live");
          if (r.segment_count() != 0) fail("extendable_slab: release() kept a segment");
          if (upstream->live_blocks() != 0) fail("extendable_slab: release() kept upstream blocks");
          break;
        }
        r.trim();
        const strata::extendable_slab::details_type d = r.details();
        if (d.empty_segments != 0) fail("extendable_slab: trim() kept an empty segment");
        if (d.cached_slots != 0) fail("extendable_slab: trim() left slots in the only thread's cache");
        break;
      }
      case 1: {
        r.reset_peak();
        const strata::resource_stats s = r.stats();
        if (s.peak_bytes_in_use < s.bytes_in_use)
          fail("extendable_slab: reset_peak() left the peak below bytes_in_use");
        if (!threads_used && s.peak_bytes_in_use != s.bytes_in_use)
          fail("extendable_slab: reset_peak() did not lower the peak");
        break;
      }
      default: {
        // Another thread frees a live block and allocates one that stays live;
        // its cache goes back to the segments when it exits.
        const bool free_one = live.size() != 0;
        strata::fuzz::block freed{};
        if (free_one) freed = live.take(in.byte() % live.size());
        const std::size_t bytes = strata::fuzz::pick_size(in);
        const std::size_t alignment = std::size_t{1} << (in.byte() % 13);
        void* p = nullptr;
        threads_used = true;
        std::thread([&] {
          if (free_one) r.deallocate(freed.pointer, freed.bytes, freed.alignment);
          p = r.allocate(bytes, alignment);
        }).join();
        if (reinterpret_cast<std::uintptr_t>(p) % alignment != 0) fail("misaligned block");
        std::memset(p, 0xa5, bytes);
        live.add({static_cast<std::byte*>(p), bytes, alignment, 0xa5, 0});
        break;
      }
    }
  }

  bool exact_stats(const strata::extendable_slab&) const { return true; }

  void on_failure(const strata::extendable_slab&, std::size_t, std::size_t, const strata::fuzz::live_set&) {
    fail("extendable_slab: allocation refused although its upstream never fails");
  }

  void check(const strata::extendable_slab& r, const strata::fuzz::live_set& live) {
    const strata::resource_stats s = r.stats();
    const strata::extendable_slab::details_type d = r.details();
    const strata::extendable_slab::options& o = r.get_options();
    if (d.segments.size() != r.segment_count())
      fail("extendable_slab: segment_count() differs from details()");
    if (d.partial_segments + d.full_segments + d.empty_segments != d.segments.size()) {
      fail("extendable_slab: partial + full + empty is not every segment");
    }
    if (r.capacity_bytes() != r.segment_count() * o.slots_per_segment * r.stride())
      fail("extendable_slab: capacity_bytes()");
    std::size_t in_use = 0;
    for (const auto& seg : d.segments) {
      if (seg.in_use > seg.slots) fail("extendable_slab: a segment has more slots in use than slots");
      in_use += seg.in_use;
    }
    std::size_t in_slots = 0;
    for (const strata::fuzz::block& b : live.blocks()) {
      if (b.bytes > o.slot_size || b.alignment > o.slot_alignment) continue;  // forwarded
      ++in_slots;
      const auto segment = reinterpret_cast<std::uintptr_t>(b.pointer) & ~(r.segment_bytes() - 1);
      const bool held = std::any_of(d.segments.begin(), d.segments.end(), [&](const auto& seg) {
        return reinterpret_cast<std::uintptr_t>(seg.address) == segment;
      });
      if (!held) fail("extendable_slab: a slot lies in no segment the slab holds");
    }
    if (in_use != in_slots + d.cached_slots)
      fail("extendable_slab: slots in use are not the live slots plus the cached ones");
    if (d.forwarded_live != live.size() - in_slots) fail("extendable_slab: forwarded_live drifted");
    if (d.corrupted_links != 0 || d.double_frees != 0 || d.lost_slots != 0) {
      fail("extendable_slab: correct use seen as corruption");
    }
    if (s.allocations != live.added()) fail("extendable_slab: allocations is not the blocks handed out");
    if (s.deallocations != live.taken() + released)
      fail("extendable_slab: deallocations is not the blocks freed");
    if (s.failed_allocations != 0) fail("extendable_slab: failed_allocations is not zero");
    if (s.peak_bytes_in_use < s.bytes_in_use) fail("extendable_slab: peak below bytes_in_use");
    if (upstream->live_blocks() != d.segments.size() + d.forwarded_live) {
      fail("extendable_slab: upstream blocks are not the segments plus the forwarded blocks");
    }
    if (s.bytes_reserved != upstream->stats().bytes_in_use)
      fail("extendable_slab: bytes_reserved differs from the upstream's view");
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return strata::fuzz::run<target>(data, size);
}
