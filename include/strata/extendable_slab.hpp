// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "detail/align.hpp"
#include "detail/assert.hpp"
#include "detail/counters.hpp"
#include "detail/free_list.hpp"
#include "detail/sanitizer.hpp"
#include "detail/thread_cache.hpp"
#include "resource.hpp"

namespace strata {

namespace detail {

/// One thread's magazine of free slots for one extendable_slab: an intrusive
/// LIFO list through the slots' first words, written only by its thread.
/// Every counter is monotonic and single-writer (a relaxed load and store,
/// never a read-modify-write): a running count would be a load-add-store
/// chain through memory on both allocate and deallocate. stats() sums them
/// under the registry mutex.
struct alignas(64) xslab_thread_cache : thread_cache_base {
  void* head = nullptr;               // free slots (plain links; caches are off in hardened mode)
  single_writer_counter pushed{0};    // slots put on head: deallocations and refills
  single_writer_counter popped{0};    // slots taken off head: allocations and flushes
  single_writer_counter refilled{0};  // of pushed, by refills
  single_writer_counter flushed{0};   // of popped, by flushes
  single_writer_counter forwarded_allocations{0};  // made on this thread
  single_writer_counter forwarded_deallocations{0};
  // The segment of the last slot freed here, known to be the slab's as long as
  // the slab's reclaim epoch is still hot_epoch. Address 0 is never proven (it
  // is the segment table's empty mark), and hot_epoch 0 is older than any epoch.
  std::uintptr_t hot_segment = 0;
  std::uint64_t hot_epoch = 0;

  [[nodiscard]] static std::uint64_t get(const single_writer_counter& c) noexcept {
    return c.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t size() const noexcept { return get(pushed) - get(popped); }
  [[nodiscard]] std::uint64_t allocations() const noexcept {
    return get(popped) - get(flushed) + get(forwarded_allocations);
  }
  [[nodiscard]] std::uint64_t deallocations() const noexcept {
    return get(pushed) - get(refilled) + get(forwarded_deallocations);
  }
};

using xslab_cache_slot = thread_cache_slot<xslab_thread_cache>;  // the fast path's MRU slot

/// The set of segment addresses a slab holds, as an open-addressed table that
/// the deallocate fast path reads without a lock. Written only under the
/// slab's mutex; removal shifts entries back (no tombstones), so a reader may
/// miss a live entry for a moment (it then takes the slow path, which checks
/// the authoritative sorted list) but never sees an address that was not a
/// segment of this slab. The entries are 64-byte aligned so that one word,
/// entries | log2(capacity), publishes a table: the fast path loads that word
/// and one entry.
class segment_table {
 public:
  explicit segment_table(unsigned log2_capacity)
      : bits_(log2_capacity),
        entries_(static_cast<std::uintptr_t*>(
            ::operator new (capacity() * sizeof(std::uintptr_t), std::align_val_t{64}))) {
    std::fill_n(entries_, capacity(), std::uintptr_t{0});
  }
  ~segment_table() { ::operator delete (entries_, std::align_val_t{64}); }
  segment_table(const segment_table&) = delete;
  segment_table& operator=(const segment_table&) = delete;

  [[nodiscard]] unsigned bits() const noexcept { return bits_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return std::size_t{1} << bits_; }
  [[nodiscard]] std::uintptr_t word() const noexcept {
    return reinterpret_cast<std::uintptr_t>(entries_) | bits_;
  }
  [[nodiscard]] std::atomic_ref<std::uintptr_t> entry(std::size_t i) const noexcept {
    return std::atomic_ref<std::uintptr_t>(entries_[i]);
  }
  // Fibonacci hashing: segment addresses have zero low bits, but the product's
  // high bits, which are kept, mix every address bit.
  [[nodiscard]] static std::size_t home(std::uintptr_t segment, unsigned bits) noexcept {
    return static_cast<std::size_t>((segment * 0x9e3779b97f4a7c15u) >> (64 - bits));
  }
  /// Returns whether the table published as word holds segment.
  /// Requires: segment != 0 (0 marks an empty entry).
  [[nodiscard]] static bool holds(std::uintptr_t word, std::uintptr_t segment) noexcept {
    const auto bits = static_cast<unsigned>(word & 63);
    auto* entries = reinterpret_cast<std::uintptr_t*>(word & ~std::uintptr_t{63});
    const std::size_t mask = (std::size_t{1} << bits) - 1;
    for (std::size_t i = home(segment, bits);; i = (i + 1) & mask) {
      const std::uintptr_t entry =
          std::atomic_ref<std::uintptr_t>(entries[i]).load(std::memory_order_relaxed);
      if (entry == segment) return true;
      if (entry == 0) return false;
    }
  }

 private:
  unsigned bits_;            // 3..58
  std::uintptr_t* entries_;  // 0: empty; read and written through atomic_ref
};

struct xslab_segment;  // the header at the start of every segment (extendable_slab.cpp)

}  // namespace detail

/// A growable pool of equal slots for many threads: the thread-safe
/// counterpart of slab, for node-based containers and fixed-size records
/// shared across threads, when the count is not known in advance.
///
/// Memory model: slots live in segments of segment_bytes() (a power of two),
/// each obtained from the upstream aligned to its own size (chunk_provider is
/// the natural upstream), so a slot's segment is found by masking its address.
/// Segments never move. A segment starts with a header, then its slots, offset
/// by a per-segment cache colour; slots are carved lazily. Each thread keeps a
/// magazine of free slots; the allocate and deallocate fast paths pop and push
/// it with plain loads and stores (no lock, no atomic read-modify-write).
/// Magazines refill from and flush to the segments under one mutex, in
/// batches, preferring partial segments so that empty ones can be returned
/// upstream: those beyond max_empty_segments once idle for decay_period (at
/// a slow path), all of them on trim(). Requests that do not fit a slot are
/// forwarded to the upstream.
///
/// Thread safety: thread-safe.
///
///     strata::extendable_slab nodes{{.slot_size = 48}, &chunks};
///     std::pmr::list<int> shared{&nodes};   // nodes may be freed on any thread
///     nodes.details().segments;            // occupancy per segment
class extendable_slab final : public resource {
 public:
// The deprecated member's own implicit copies must not warn (clang reports those
// at the member); a user who sets it is still warned where they do.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  struct options {
    /// Largest request served from a slot, in bytes; at least 1.
    std::size_t slot_size = 64;
    /// Alignment of every slot; a power of two up to 4096.
    std::size_t slot_alignment = alignof(std::max_align_t);
    /// Slots per segment; 0 picks as many as fill a 64 KiB segment (or the
    /// smallest power of two holding 8 slots) after the header and 8 cache
    /// lines of colouring slack.
    std::size_t slots_per_segment = 0;
    /// Empty segments kept for reuse however long they stay empty; more are
    /// returned to the upstream after decay_period.
    std::size_t max_empty_segments = 1;
    /// Working-set period, in wall-clock time: an empty segment beyond
    /// max_empty_segments that stayed empty for a whole period is returned
    /// upstream by the next slow path (a refill, a flush, a growth, or any
    /// call while thread caches are off) or trim(), oldest first. Decay needs
    /// such a call: a slab nobody calls keeps its memory until trim(). 0
    /// returns empty segments beyond max_empty_segments at once. Not negative.
    std::chrono::milliseconds decay_period{15000};
    /// Deprecated (issue 13: a period counted in refills and flushes never
    /// ended in a program gone quiet): ignored, except that 0 still means
    /// decay_period 0. Use decay_period.
    [[deprecated("use decay_period")]] std::size_t reclaim_period = 256;
    /// Free slots each thread keeps without locking; 0 turns thread caches off
    /// (every call then takes the mutex).
    std::size_t thread_cache_slots = 256;
    /// Offset successive segments' first slot by multiples of the cache line.
    bool colouring = true;
    /// Encode free-list links, validate every pop and check every deallocate
    /// (double free, foreign pointer, slot boundary), each detection counted
    /// in misuse_detected. Thread caches are off: every call takes the mutex.
    /// Defaults to strata::hardened_by_default (-Dhardening=true); see docs/hardening.md.
    bool hardened = hardened_by_default;
  };
#pragma GCC diagnostic pop

  /// One segment's occupancy in details().
  struct segment_summary {
    const void* address;
    std::size_t slots;
    std::size_t in_use;         ///< slots handed to callers or held in thread caches
    std::size_t colour_offset;  ///< bytes between the header and the first slot
  };

  struct details_type {
    std::size_t segment_bytes;
    std::size_t slots_per_segment;
    std::size_t stride;
    std::vector<segment_summary> segments;  ///< by address
    std::size_t partial_segments;
    std::size_t full_segments;
    std::size_t empty_segments;
    std::size_t cached_slots;           ///< free slots in thread caches
    std::uint64_t growth_events;        ///< segments obtained from upstream
    std::uint64_t concurrent_growths;   ///< of which grown while another thread was growing
    std::uint64_t reclaimed_segments;   ///< empty segments returned upstream (decay, trim, flush requests)
    std::uint64_t decayed_segments;     ///< of which by decay_period
    std::uint64_t forwarded_too_large;  ///< requests forwarded for their size or alignment
    std::size_t forwarded_live;
    std::uint64_t corrupted_links;  ///< free-list links that failed validation (hardened)
    std::uint64_t double_frees;     ///< (hardened)
    std::size_t lost_slots;         ///< slots cut off corrupted lists, unusable until destruction
    std::size_t threads_attached;
    std::uint64_t released_blocks;  ///< live blocks release() took back (counted as deallocations)
  };

  // ---------------------------------------------------------- construction

  /// Creates a slab with default options on the default resource.
  extendable_slab() : extendable_slab(options{}, std::pmr::get_default_resource()) {}
  /// Creates a slab with default options on upstream (held, not owned).
  explicit extendable_slab(std::pmr::memory_resource* upstream) : extendable_slab(options{}, upstream) {}
  /// Creates a slab on upstream (held, not owned); no segment is obtained yet.
  /// Throws: std::invalid_argument naming the field for invalid options or a null upstream.
  extendable_slab(options opts, std::pmr::memory_resource* upstream);
  /// Returns every segment and forwarded block to the upstream.
  /// Requires: no other thread uses the slab meanwhile.
  ~extendable_slab() override;

  // ------------------------------------------------------------- observers

  /// Returns the options this slab was created with (slots_per_segment resolved).
  [[nodiscard]] const options& get_options() const noexcept {
    return options_;
  }
  /// Returns the bytes each slot occupies: slot_size rounded up to slot_alignment.
  [[nodiscard]] std::size_t stride() const noexcept {
    return stride_;
  }
  /// Returns the size (and alignment) of every segment asked of the upstream.
  [[nodiscard]] std::size_t segment_bytes() const noexcept {
    return std::size_t{1} << segment_shift_;
  }
  /// Returns the number of segments held.
  [[nodiscard]] std::size_t segment_count() const noexcept {
    return segment_count_.load(std::memory_order_relaxed);
  }
  /// Returns the bytes of slots in the segments held: segment_count() x slots_per_segment x stride().
  [[nodiscard]] std::size_t capacity_bytes() const noexcept {
    return segment_count() * options_.slots_per_segment * stride_;
  }
  /// Returns per-segment occupancy and the growth, reclamation, forwarding and
  /// hardening counts (a snapshot). Complexity: O(segments + threads).
  [[nodiscard]] details_type details() const;

  // ---------------------------------------------------------- housekeeping

  /// Returns every empty segment to the upstream now (down to zero, whatever
  /// max_empty_segments), after handing the calling thread's cache back into
  /// the segments. Asks every other thread to hand its cache back: it does so
  /// at its next deallocate (or, at the latest, its next refill or flush) and
  /// returns the segments that this empties; a thread that never calls the
  /// slab again keeps its cache until it exits.
  /// Complexity: O(empty segments + threads + cached slots of this thread).
  void trim() noexcept;
  /// Returns every segment and forwarded block to the upstream, empties every
  /// thread's cache, and starts again from no segment; slots and blocks still
  /// handed out are gone (counted as deallocations and in
  /// details().released_blocks). Requires: no other thread uses the slab
  /// meanwhile, and nothing handed out is used afterwards.
  /// Complexity: O(segments + forwarded blocks + threads).
  void release() noexcept;

 private:
  // The typed path (allocator.hpp) calls do_allocate and do_deallocate by
  // qualified name: the same code and counters as through pmr, minus the virtual call.
  template <class T, class R>
  friend class allocator;
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  resource_stats do_stats() const noexcept override;
  void do_reset_peak() noexcept override;

  [[nodiscard]] std::uintptr_t segment_of(const void* p) const noexcept {
    return reinterpret_cast<std::uintptr_t>(p) & ~segment_mask_;
  }
  // What the deallocate fast path checks: p lies past the header of a segment
  // this slab holds, proven without dereferencing p: either its segment is
  // the one this thread last proved and no segment was returned upstream
  // since (the reclaim epoch, read by the caller, is unchanged), or the
  // lock-free table holds it (and it becomes the proven one). The epoch is
  // read before the table, so a segment removed meanwhile is remembered under
  // an epoch already stale.
  [[nodiscard]] bool in_some_segment(detail::xslab_thread_cache& cache, const void* p,
                                     std::uint64_t epoch) const noexcept {
    const std::uintptr_t offset = reinterpret_cast<std::uintptr_t>(p) & segment_mask_;
    if (offset < header_bytes_) return false;
    const std::uintptr_t segment = reinterpret_cast<std::uintptr_t>(p) - offset;
    if (segment == 0) return false;  // a near-null pointer; 0 marks the table's empty entries
    if (segment == cache.hot_segment && cache.hot_epoch == epoch) [[likely]]
      return true;
    if (!detail::segment_table::holds(table_word_.load(std::memory_order_acquire), segment)) return false;
    cache.hot_segment = segment;
    cache.hot_epoch = epoch;
    return true;
  }
  // Pushes a slot proven ours onto this thread's magazine, which has room.
  // No poisoning: the slow paths do it after the push (the fast path never
  // runs under a memory tool; see fast_id_).
  void push_to_cache(detail::xslab_thread_cache& cache, void* p, std::size_t bytes) const noexcept {
    *static_cast<void**>(p) = cache.head;
    cache.head = p;
    detail::single_writer_add(cache.pushed);
    cache.note_deallocated(bytes);
  }
  // Whether alignment is a power of two no larger than slot_alignment, in one
  // test: alignment - 1 must share no bit with alignment (a power of two, or
  // 0) nor with ~(slot_alignment - 1) (at most slot_alignment; this rejects 0).
  [[nodiscard]] bool fits_slot_alignment(std::size_t alignment) const noexcept {
    return ((alignment - 1) & (alignment | alignment_reject_mask_)) == 0;
  }

  // Everything below is cold and leaves the slab consistent.
  // Refills this thread's cache (growing by at most one segment, obtained
  // outside the lock), or serves hardened, forwarded and bad-alignment requests.
  STRATA_SLOW_PATH void* allocate_slow(std::size_t bytes, std::size_t alignment);
  // The deallocate fast path's second chance, when p is not in the segment
  // this thread last proved ours (or trim() bumped the epoch to send every
  // thread here): unless trim() asked for this thread's cache, proves p
  // through the segment table (as in_some_segment) and pushes it onto the
  // magazine, else deallocate_slow. Out
  // of line, and reached by a tail call, so that the fast path's code needs no
  // more registers than the argument ones (the table probe inlined made it
  // save and restore three on every call).
  [[gnu::noinline]] void deallocate_unproven(void* p, std::size_t bytes, std::size_t alignment) noexcept;
  // Flushes half of a full cache (the whole of it, and returns the segments
  // this empties, when trim() asked), serves cacheless and hardened
  // deallocates, forwarded blocks and foreign pointers (counted as misuse, state untouched).
  STRATA_SLOW_PATH void deallocate_slow(void* p, std::size_t bytes, std::size_t alignment) noexcept;
  detail::xslab_thread_cache* attach() noexcept;  // nullptr when caches are off or memory is short
  bool invariants_hold() const noexcept;          // requires mutex_
  friend struct extendable_slab_access;           // the thread-exit hook in the .cpp
  friend struct xslab_impl;                       // segment bookkeeping in the .cpp

  struct forwarded_block {
    std::size_t bytes;
    std::size_t alignment;
  };

  // What the fast paths read, together at the start of the object (the
  // first two cache lines, with the base's vptr and upstream).
  std::uint64_t id_;  // unique per slab, never reused
  // What the fast paths compare the thread's cache slot with: id_, or, under
  // a memory tool (decided at construction, once per process), a value no
  // slot holds, so every call takes the slow paths, which poison. So the fast
  // paths do no poisoning and pay nothing for it, not even a test.
  std::uint64_t fast_id_ = 0;
  std::size_t slot_size_ = 0;              // options_.slot_size
  std::size_t alignment_reject_mask_ = 0;  // ~(slot_alignment - 1)
  std::uintptr_t segment_mask_ = 0;        // segment bytes - 1
  std::size_t header_bytes_ = 0;           // header (and hardened bits) before the colour offset
  std::size_t stride_ = 0;                 // bytes per slot
  std::uint32_t cache_capacity_ = 0;       // slots per thread cache; 0 when caches are off
                                           // (each cache's fast path reads its own copy)
  std::atomic<std::uint64_t> reclaim_epoch_{
      1};  // bumped (under mutex_) whenever a segment leaves, and by trim()

  options options_;
  unsigned segment_shift_ = 0;    // log2(segment bytes)
  std::size_t colour_step_ = 0;   // bytes between colours: a cache line, or the slot alignment if larger
  std::size_t colour_count_ = 1;  // distinct colours the slack allows
  detail::link_codec codec_;      // hardened links
  std::atomic<std::uintptr_t> table_word_{0};  // the current segment_table's word()

  mutable std::mutex mutex_;                       // guards everything below up to the counters
  std::vector<detail::xslab_segment*> segments_;   // held segments, sorted by address
  detail::xslab_segment* partial_ = nullptr;       // segments with free slots and some in use
  detail::xslab_segment* empty_ = nullptr;         // segments with none in use
  detail::xslab_segment* full_ = nullptr;          // segments with no free slot
  detail::xslab_segment* empty_oldest_ = nullptr;  // the empty list's tail: empty longest
  std::size_t empty_count_ = 0;
  std::int64_t decay_ns_ = 0;                                   // decay_period (0: at once)
  std::size_t table_used_ = 0;                                  // entries in *table_
  std::vector<std::unique_ptr<detail::segment_table>> tables_;  // current last; older ones stay for readers
  std::unordered_map<void*, forwarded_block> forwarded_;        // live forwarded blocks
  std::size_t lost_slots_ = 0;
  std::uint64_t growth_count_ = 0;  // segments grown, for the colour

  // Guarded by the process-wide registry mutex (see the .cpp).
  detail::thread_cache_set<detail::xslab_thread_cache> caches_;  // attached thread caches, owned

  detail::atomic_counters central_;  // calls without a thread cache, upstream traffic, misuse
  std::atomic<std::size_t> segment_count_{0};
  std::atomic<unsigned> growers_{0};
  std::atomic<std::uint64_t> late_refusals_{
      0};  // deallocates a magazine took, refused when flushed  // threads obtaining a segment right now
  std::atomic<std::uint64_t> growth_events_{0};
  std::atomic<std::uint64_t> concurrent_growths_{0};
  std::atomic<std::uint64_t> reclaimed_{0};
  std::atomic<std::uint64_t> decayed_{0};
  std::atomic<std::uint64_t> released_blocks_{0};
  std::atomic<std::uint64_t> forwarded_too_large_{0};
  std::atomic<std::uint64_t> corrupted_links_{0};
  std::atomic<std::uint64_t> double_frees_{0};
};

// ------------------------------------------------------------- fast paths

// Pops this thread's magazine: no lock, no atomic read-modify-write (the
// count and counters are single-writer atomics so stats() may read them).
inline void* extendable_slab::do_allocate(std::size_t bytes, std::size_t alignment) {
  const detail::xslab_cache_slot slot =
      detail::current_thread_cache<detail::xslab_thread_cache>;  // one TLS read
  if (slot.owner_id == fast_id_ && bytes <= slot_size_ && fits_slot_alignment(alignment)) [[likely]] {
    detail::xslab_thread_cache& cache = *slot.cache;
    void* p = cache.head;
    if (p != nullptr) [[likely]] {
      cache.head = *static_cast<void**>(p);
      detail::single_writer_add(cache.popped);
      cache.note_allocated(bytes);
      return p;
    }
  }
  return allocate_slow(bytes, alignment);
}

// Pushes a slot of one of our segments onto this thread's magazine, whichever
// thread allocated it. Hardened mode never attaches caches, so it always goes slow.
inline void extendable_slab::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  const detail::xslab_cache_slot slot =
      detail::current_thread_cache<detail::xslab_thread_cache>;  // one TLS read
  if (slot.owner_id == fast_id_) [[likely]] {
    detail::xslab_thread_cache& cache = *slot.cache;
    // in_some_segment's first case only: p is past the header of the segment
    // this thread last proved ours, and no segment has left since.
    const std::uintptr_t offset = reinterpret_cast<std::uintptr_t>(p) & segment_mask_;
    if (reinterpret_cast<std::uintptr_t>(p) - offset == cache.hot_segment &&
        cache.hot_epoch == reclaim_epoch_.load(std::memory_order_relaxed) && offset >= header_bytes_ &&
        cache.size() < cache_capacity_) [[likely]] {
      push_to_cache(cache, p, bytes);
      return;
    }
  }
  deallocate_unproven(p, bytes, alignment);
}

}  // namespace strata
