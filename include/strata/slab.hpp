// SPDX-License-Identifier: MIT
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <span>
#include <unordered_map>

#include "detail/align.hpp"
#include "detail/assert.hpp"
#include "detail/counters.hpp"
#include "detail/free_list.hpp"
#include "detail/sanitizer.hpp"
#include "resource.hpp"

namespace strata {

/// A fixed-capacity pool of equal slots, the natural home for pmr::list, map
/// and set nodes and for fixed-size records: allocate and deallocate are O(1)
/// pops and pushes on an intrusive LIFO free list.
///
/// Memory model: one contiguous region of `capacity` slots, taken from the
/// upstream at construction (or a caller's buffer). Slots are carved lazily
/// from the front of the region, so construction touches no slot page. A slot
/// is `stride()` bytes (slot_size rounded up to slot_alignment, at least one
/// pointer); a free slot's first word links to the next free slot, so there
/// is no per-allocation header. Requests bigger than slot_size or more aligned
/// than slot_alignment, and (by default) requests while the region is full,
/// are forwarded to the upstream; deallocate routes by address.
///
/// Thread safety: not thread-safe.
///
///     strata::slab nodes{strata::slab::options::for_type<my_record>(4096), &chunks};
///     void* p = nodes.allocate(sizeof(my_record), alignof(my_record));
///     nodes.deallocate(p, sizeof(my_record), alignof(my_record));
class slab final : public resource {
 public:
  /// What allocate does when every slot is handed out.
  enum class exhaustion : std::uint8_t {
    forward_upstream,  ///< serve the request from the upstream (tracked, returned at destruction)
    throw_bad_alloc,   ///< throw allocation_failure with reason capacity
  };

  struct options {
    /// Largest request served from a slot, in bytes; at least 1.
    std::size_t slot_size = 64;
    /// Alignment of every slot; a power of two.
    std::size_t slot_alignment = alignof(std::max_align_t);
    /// Number of slots; at least 1 (with a caller buffer, 0 means "as many as fit").
    std::size_t capacity = 1024;
    /// What happens when every slot is handed out.
    exhaustion on_exhaustion = exhaustion::forward_upstream;
    /// Keep one "handed out" bit per slot, set by allocate and tested and
    /// cleared by deallocate on the fast path, so a double free, a pointer
    /// inside a slot and a never-carved slot are refused and counted in
    /// misuse_detected (one multiply, one load and one store per call; see
    /// docs/design/slab.md). false gives the fastest path, which trusts every
    /// region pointer. The same in every build of the library and its user.
    bool detect_double_free = true;
    /// Encode free-list links, validate every pop and check every deallocate
    /// (double free, foreign pointer, slot boundary), each detection counted
    /// in misuse_detected; implies detect_double_free.
    /// Defaults to strata::hardened_by_default (-Dhardening=true); see docs/hardening.md.
    bool hardened = hardened_by_default;

    /// Returns options for slots that hold one T each.
    template <class T>
    [[nodiscard]] static constexpr options for_type(std::size_t capacity) noexcept {
      return options{.slot_size = sizeof(T), .slot_alignment = alignof(T), .capacity = capacity};
    }
  };

  struct details_type {
    std::size_t capacity;      ///< slots in the region
    std::size_t stride;        ///< bytes per slot
    std::size_t carved_slots;  ///< slots ever handed out of the fresh part of the region
    std::size_t free_slots;    ///< slots available: on the free list plus not yet carved
    std::size_t lost_slots;    ///< slots cut off a corrupted free list (hardened), unusable until destruction
    std::uint64_t forwarded_too_large;      ///< requests forwarded because of their size or alignment
    std::uint64_t forwarded_on_exhaustion;  ///< requests forwarded because the slab was full
    std::size_t forwarded_live;             ///< forwarded blocks not yet deallocated
    std::uint64_t corrupted_links;          ///< free-list links that failed validation (hardened)
    std::uint64_t double_frees;             ///< deallocates of a slot that was not handed out (checked)
    bool checked;                           ///< deallocates are checked (detect_double_free or hardened)
  };

  // ---------------------------------------------------------- construction

  /// Creates a slab with default options on the default resource.
  slab() : slab(options{}, std::pmr::get_default_resource()) {}
  /// Creates a slab with default options on upstream (held, not owned).
  explicit slab(std::pmr::memory_resource* upstream) : slab(options{}, upstream) {}
  /// Creates a slab whose region of capacity slots comes from upstream (held, not owned).
  /// Throws: std::invalid_argument naming the field for invalid options or a null
  /// upstream; whatever the upstream throws for the region.
  slab(options opts, std::pmr::memory_resource* upstream);
  /// Creates a slab on buffer (held, not owned; it must outlive the slab);
  /// forwarded requests go to upstream.
  /// Throws: std::invalid_argument naming the field for invalid options, a null
  /// upstream, or a buffer too small for opts.capacity slots (or for one slot).
  slab(options opts, std::span<std::byte> buffer, std::pmr::memory_resource* upstream);
  /// Returns the region (unless it is the caller's) and every forwarded block to the upstream.
  ~slab() override;

  // ------------------------------------------------------------- observers

  /// Returns the options this slab was created with (capacity resolved).
  [[nodiscard]] const options& get_options() const noexcept { return options_; }
  /// Returns the number of slots in the region.
  [[nodiscard]] std::size_t capacity() const noexcept { return options_.capacity; }
  /// Returns the slots that can still be handed out without forwarding.
  [[nodiscard]] std::size_t free_slots() const noexcept {
    const std::uint64_t live = (allocations_ - forwarded_allocations_) -
                               (deallocations_ - forwarded_deallocations_) - released_slots_;
    return options_.capacity - lost_slots_ - static_cast<std::size_t>(live);
  }
  /// Returns the bytes each slot occupies: slot_size rounded up to slot_alignment.
  [[nodiscard]] std::size_t stride() const noexcept { return stride_; }
  /// Returns the bytes a block at p may use: stride() for a slot, 0 otherwise.
  [[nodiscard]] std::size_t usable_size(const void* p) const noexcept { return contains(p) ? stride_ : 0; }
  /// Returns whether p points into the slot region (not whether that slot is live).
  [[nodiscard]] bool contains(const void* p) const noexcept {
    const auto* b = static_cast<const std::byte*>(p);
    return b >= begin_ && b < end_;
  }
  /// Returns the figures above and the forwarding and hardening counts.
  [[nodiscard]] details_type details() const noexcept;

  // ---------------------------------------------------------- housekeeping

  /// Makes every slot free again (the region is kept, carving restarts at its
  /// front) and returns every forwarded block to the upstream.
  /// Requires: no block handed out is used afterwards.
  /// Complexity: O(forwarded blocks + capacity / 512) (the checked-mode bits are cleared).
  void release() noexcept;

 private:
  // The typed path (allocator.hpp) calls do_allocate and do_deallocate by
  // qualified name: the same code and counters as through pmr, minus the virtual call.
  template <class T, class R>
  friend class allocator;
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  resource_stats do_stats() const noexcept override;
  void do_reset_peak() noexcept override { peak_ = bytes_allocated_ - bytes_deallocated_; }
  // Counts a block handed out. Monotonic counters, one add each: a running
  // bytes_in_use would be a load-add-store chain through memory on both
  // allocate and deallocate, which costs more than the free list itself.
  void note_allocate(std::size_t bytes) noexcept {
    ++allocations_;
    bytes_allocated_ += bytes;
    if (const std::size_t in_use = bytes_allocated_ - bytes_deallocated_; in_use > peak_) [[unlikely]]
      peak_ = in_use;
  }
  void note_deallocate(std::size_t bytes) noexcept {
    ++deallocations_;
    bytes_deallocated_ += bytes;
  }

  // The slot index of a region pointer p, or a value >= capacity when p is
  // outside the region or not on a slot boundary. stride_ = odd << shift_,
  // and offset * inverse_ (inverse_ * odd == 1 mod 2^64) rotated right by
  // shift_ is offset / stride_ exactly when stride_ divides offset; for any
  // other offset it exceeds SIZE_MAX / stride_ >= capacity (the divisibility
  // test compilers use for x % c == 0). One multiply instead of a divide.
  [[nodiscard]] std::size_t slot_index(const void* p) const noexcept {
    const std::uintptr_t offset = reinterpret_cast<std::uintptr_t>(p) - begin_address_;
    return std::rotr(offset * inverse_, shift_);
  }
  // Marks p, a slot, handed out when double frees are detected on the fast
  // path: one byte store, which reads nothing (a bit would be a
  // read-modify-write of a word that the next deallocate reads again, a
  // dependency chain through memory on every pair).
  void mark_live(const void* p) noexcept {
    if (live_ != nullptr) live_[slot_index(p)] = 1;
  }
  void push(void* p, std::size_t bytes) noexcept {
    *static_cast<void**>(p) = head_;
    head_ = p;
    note_deallocate(bytes);
  }

  // Serves what the fast path does not: checked mode, forwarding, exhaustion,
  // bad alignment. Leaves the free list valid (cut off if it was corrupt).
  STRATA_SLOW_PATH void* allocate_slow(std::size_t bytes, std::size_t alignment);
  // Checked deallocate, forwarded blocks and foreign pointers; a proven misuse
  // is counted and leaves every structure untouched.
  STRATA_SLOW_PATH void deallocate_slow(void* p, std::size_t bytes, std::size_t alignment) noexcept;
  void* pop_checked() noexcept;  // hardened/checked pop; nullptr when nothing is free
  void* forward(std::size_t bytes, std::size_t alignment);
  void reject(misuse_kind kind, void* p, std::size_t bytes, std::size_t alignment) noexcept;
  void init(std::byte* first_slot);  // sets the region up; decides checked mode from the options
  bool invariants_hold() const noexcept;

  struct forwarded_block {
    std::size_t bytes;
    std::size_t alignment;
  };

  // Hot state first, next to the vtable pointer: the fast paths touch only
  // these (and stride_ when carving).
  void* head_ = nullptr;  // free list (links encoded when checked_ && hardened)
  std::size_t fast_slot_size_ =
      0;  // slot_size + 1, or 0 in checked mode or under a memory tool: the fast path serves bytes below it
  std::size_t alignment_reject_ = 0;  // ~(slot_alignment - 1): bits a served alignment's mask must not have
  std::uintptr_t begin_address_ = 0;  // begin_ as an integer, for the fast path's one-compare region test
  std::size_t fast_span_ =
      0;  // end_ - begin_, or 0 in checked mode or under a memory tool: the fast path frees below it
  // detect_double_free (not hardened): the handed-out bytes, tested and
  // flipped by the fast paths; nullptr when the option is off or in checked
  // mode (whose slow path uses the same bytes through live_bytes_).
  std::uint8_t* live_ = nullptr;
  std::size_t inverse_ = 1;     // see slot_index()
  int shift_ = 0;               // see slot_index()
  std::size_t fast_slots_ = 0;  // capacity, or 0 in checked mode or under a memory tool
  // Fast-path counters, summed by do_stats(). Interleaved so that the two
  // each path updates are not adjacent: GCC 12 -O3 would otherwise merge them
  // into one SSE load-add-store whose setup adds instructions to both paths.
  std::uint64_t allocations_ = 0;
  std::uint64_t deallocations_ = 0;  // successful ones; refused ones are in counters_
  std::size_t bytes_allocated_ = 0;
  std::size_t bytes_deallocated_ = 0;  // includes what release() dropped
  std::size_t peak_ = 0;
  std::byte* fresh_ = nullptr;  // next slot never handed out; slots from here to end_ are uncarved
  std::byte* end_ = nullptr;    // one past the last slot

  options options_;
  std::size_t stride_ = 0;        // bytes per slot, a multiple of slot_alignment
  std::size_t region_bytes_ = 0;  // bytes taken from upstream for the region (0: caller's buffer)
  std::size_t region_alignment_ = 0;
  std::byte* region_ = nullptr;  // what the upstream returned (nullptr: caller's buffer)
  std::byte* begin_ = nullptr;   // first slot
  std::size_t free_count_ = 0;   // length of the free list (kept in checked mode only)
  bool checked_ = false;         // every call goes through the slow path (hardened)
  bool poisoning_ = false;  // not checked_, but a memory tool is present: every call goes slow, which poisons
  detail::link_codec codec_;  // identity when not hardened
  std::unique_ptr<std::uint8_t[]>
      live_bytes_;  // one "handed out" byte per slot (1: handed out), unless unchecked
  std::uint64_t forwarded_allocations_ = 0;
  std::uint64_t forwarded_deallocations_ = 0;
  std::uint64_t released_slots_ = 0;  // slots live at release(), no longer counted as live
  detail::plain_counters counters_;   // slow-path events: failures, misuse, upstream traffic
  std::unordered_map<void*, forwarded_block> forwarded_;  // live forwarded blocks (global heap bookkeeping)
  std::size_t lost_slots_ = 0;
  std::uint64_t forwarded_too_large_ = 0;
  std::uint64_t forwarded_on_exhaustion_ = 0;
  std::uint64_t corrupted_links_ = 0;
  std::uint64_t double_frees_ = 0;
};

// ------------------------------------------------------------- fast paths

// Pops the free list, else carves the next fresh slot. No lock, no atomic:
// the slab is not thread-safe.
//
// One test admits exactly the power-of-two alignments up to slot_alignment:
// with mask = alignment - 1, (alignment | ~(slot_alignment - 1)) & mask is 0
// only if alignment and mask share no bit (a power of two, or 0) and mask has
// no bit at or above slot_alignment (alignment <= slot_alignment; for 0 the
// mask is all ones). Everything else goes to allocate_slow(), which throws
// for a bad alignment and forwards a larger one.
inline void* slab::do_allocate(std::size_t bytes, std::size_t alignment) {
  // fast_slot_size_ is 0 in checked mode and under a memory tool, so neither
  // needs a test here (nor does this path poison: see init()).
  if (bytes < fast_slot_size_ && ((alignment | alignment_reject_) & (alignment - 1)) == 0) [[likely]] {
    void* p = head_;
    if (p != nullptr) [[likely]] {
      head_ = *static_cast<void**>(p);
      mark_live(p);
      note_allocate(bytes);
      return p;
    }
    if (fresh_ != end_) {
      p = fresh_;
      fresh_ += stride_;
      mark_live(p);
      note_allocate(bytes);
      return p;
    }
  }
  return allocate_slow(bytes, alignment);
}

// Pushes a slot of the region; everything else (checked mode, forwarded and
// foreign pointers) goes slow. With detect_double_free, p must be a slot
// boundary in the region whose handed-out byte is set (slot_index covers
// region and boundary in one compare); the byte is cleared, so a second free
// of the slot goes slow and is refused there. Without it, p is in the region
// by one unsigned compare (an address below the region wraps to a huge
// offset). What decides this is the options stored in the object, never a
// macro, so every TU agrees.
inline void slab::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  // fast_slots_ and fast_span_ are 0 in checked mode and under a memory tool,
  // so neither needs a test here.
  if (live_ != nullptr) {
    const std::size_t i = slot_index(p);
    if (i < fast_slots_ && live_[i] != 0) [[likely]] {
      live_[i] = 0;
      push(p, bytes);
      return;
    }
  } else if (reinterpret_cast<std::uintptr_t>(p) - begin_address_ < fast_span_) [[likely]] {
    push(p, bytes);
    return;
  }
  deallocate_slow(p, bytes, alignment);
}

}  // namespace strata
