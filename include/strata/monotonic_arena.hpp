// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <span>
#include <thread>

#include "detail/align.hpp"
#include "detail/assert.hpp"
#include "detail/counters.hpp"
#include "detail/sanitizer.hpp"
#include "resource.hpp"

namespace strata {

namespace detail {
struct monotonic_chunk;  // the bookkeeping at the end of each chunk (see monotonic_arena.cpp)
}  // namespace detail

/// A per-request bump arena: blocks are carved upward inside chunks from the
/// upstream (normally a chunk_provider) and freed together by reset(),
/// release() or rewind(). Choose it for scratch memory that dies at once.
///
/// Memory model: a caller buffer first, then chunks growing geometrically to
/// max_chunk_size, and a dedicated chunk for each larger request. By default
/// reset() keeps the chunks that the largest of the last retention_window
/// requests needed (at most retain_bytes), dedicated ones included, and sizes
/// the next chunk for that request: a repeating request of any size makes no
/// upstream calls once warm, and memory a past peak needed goes back once the
/// peak has left the window. deallocate rolls back only the newest block.
/// Exception neutral.
/// Thread safety: not thread-safe (with options::check_owner_thread, use from
/// a second thread is counted and reported as misuse_kind::wrong_thread).
///
///     strata::monotonic_arena scratch{&chunks};      // chunks: a chunk_provider
///     std::pmr::vector<std::pmr::string> words{&scratch};
///     scratch.reset();                               // after words is gone
class monotonic_arena final : public resource {
 public:
  /// What reset() keeps for the next request. Every policy keeps at most
  /// retain_bytes; only keep_recent_need and keep_up_to_retain_bytes keep
  /// dedicated chunks (those of requests too large for max_chunk_size).
  enum class retention_policy : std::uint8_t {
    keep_none,                ///< return every chunk upstream
    keep_largest,             ///< keep the largest normal chunk
    keep_up_to_retain_bytes,  ///< keep chunks, used ones first, largest first, totalling at most retain_bytes
    adaptive,                 ///< keep capacity for the 90th-percentile footprint of the last 16 requests
    keep_recent_need,         ///< keep what the largest recent request needed (default)
  };

  /// No limit, for retain_bytes.
  static constexpr std::size_t unlimited = SIZE_MAX;

  struct options {
    /// Deprecated (0.2, goes in 0.3): pass the buffer to the constructor,
    /// as for slab. Caller-owned memory used before any chunk. Not marked
    /// [[deprecated]]: GCC 12 then warns on every `options{}`, whether or
    /// not it names the field.
    std::span<std::byte> initial_buffer{};
    /// Size of the first chunk asked from upstream; a power of two, at least 128.
    std::size_t first_chunk_size = 4096;
    /// Each new chunk is this many times the previous one; a power of two from 1 to 1024.
    std::size_t growth_factor = 2;
    /// Growth stops here; requests that do not fit a chunk of this size get a
    /// dedicated chunk. A power of two, at least first_chunk_size.
    std::size_t max_chunk_size = std::size_t{1} << 20;
    /// Most bytes of spare chunks the arena holds, under every policy: what
    /// reset() keeps, and what rewind() and deallocate keep for reuse.
    std::size_t retain_bytes = unlimited;
    /// What reset() keeps.
    retention_policy retention = retention_policy::keep_recent_need;
    /// Requests (resets and releases) a request's need is remembered for,
    /// counting the one that ends: it sizes reset()'s keep_recent_need and the
    /// next chunk under every policy but adaptive. At least 1. Exact up to 16;
    /// above, tracked in 16 steps, so a need may be remembered up to
    /// 2 * ceil(retention_window / 16) - 2 requests longer, never shorter.
    std::size_t retention_window = 64;
    /// Count and report (misuse_kind::wrong_thread) an allocate, deallocate,
    /// mark or rewind from a thread other than the one that started the
    /// request; reset() and release() hand ownership on. Costs a thread-id
    /// read on every call, so it is off unless the whole program is hardened:
    /// defaults to strata::hardened_by_default (-Dhardening=true). The same
    /// in every build of the library and its user, whatever NDEBUG says.
    bool check_owner_thread = hardened_by_default;
  };

  struct details_type {
    std::size_t chunks;                     ///< chunks held from upstream: in use, spare and dedicated
    std::size_t spare_chunks;               ///< held chunks not in use (kept by reset, rewound or freed)
    std::size_t dedicated_chunks;           ///< held chunks of a dedicated size, holding a block or spare
    std::size_t wasted_tail_bytes;          ///< bytes skipped at region tails, since construction
    std::size_t request_footprint;          ///< high-water bytes bumped (with padding) since the last reset
    std::size_t largest_request_footprint;  ///< largest request_footprint since construction
    std::size_t next_chunk_size;            ///< size of the next chunk to be asked from upstream
    std::uint64_t resets;                   ///< calls to reset()
    std::size_t spare_bytes;                ///< bytes of the spare chunks; never above retain_bytes
    std::size_t recent_need;                ///< what keep_recent_need aims to keep, as of the last reset
  };

  /// A point in one arena's history, taken by mark() and restored by rewind().
  class marker {
   public:
    /// Creates a marker of no arena: rewinding to it is reported as misuse.
    marker() = default;

   private:
    friend class monotonic_arena;
    std::uint64_t arena_id_ = 0;                // 0 names no arena
    std::uint64_t generation_ = 0;              // the arena's generation_ when taken
    detail::monotonic_chunk* chunk_ = nullptr;  // region of cursor_; nullptr: the initial buffer
    std::uintptr_t cursor_ = 0;
    std::size_t position_ = 0;            // request position (see base_) at the mark
    std::uint64_t dedicated_serial_ = 0;  // dedicated chunks with a larger serial came later
    std::size_t bytes_in_use_ = 0;        // stats().bytes_in_use at the mark
    std::size_t tails_ = 0;               // chain_tails_ at the mark
  };

  // ---------------------------------------------------------- construction

  /// Creates an arena on the default resource with default options.
  monotonic_arena() : monotonic_arena(options{}, std::pmr::get_default_resource()) {}
  /// Creates an arena on upstream (held, not owned) with default options.
  /// Throws: std::invalid_argument if upstream is null.
  explicit monotonic_arena(std::pmr::memory_resource* upstream) : monotonic_arena(options{}, upstream) {}
  /// Creates an arena on upstream (held, not owned).
  /// Throws: std::invalid_argument naming the field for invalid options or a null upstream.
  monotonic_arena(options opts, std::pmr::memory_resource* upstream);
  /// Creates an arena on upstream that serves from buffer first: before any
  /// chunk, and again first after every reset() and release(). The buffer is
  /// the caller's (held, not owned; it must outlive the arena), never
  /// returned upstream and not counted in bytes_reserved. The same argument
  /// order as slab's caller-buffer constructor.
  /// Throws: std::invalid_argument for a buffer with a size but no data, the
  /// deprecated options::initial_buffer given too, invalid options or a null upstream.
  monotonic_arena(options opts, std::span<std::byte> buffer, std::pmr::memory_resource* upstream);
  /// Returns every chunk to the upstream (release()).
  ~monotonic_arena() override;

  // --------------------------------------------------------- allocation API

  /// Returns a marker for the current point; rollbacks of blocks allocated
  /// before it are refused from now on, so the marker stays valid.
  /// Complexity: O(1).
  [[nodiscard]] marker mark() noexcept;
  /// Frees every block allocated since m was taken: chunks acquired since
  /// become spares (kept for reuse, no upstream call), and so do dedicated
  /// chunks acquired since under the policies that keep them (else they go
  /// back upstream); spares stay within retain_bytes. A marker of another
  /// arena, from before a reset() or release(), or ahead of the current point is counted in
  /// misuse_detected, reported as misuse_kind::foreign_marker and ignored.
  /// Complexity: O(chunks bumped into since m, plus spares). Thread safety: not thread-safe.
  void rewind(const marker& m) noexcept;

  // ------------------------------------------------------------- observers

  /// Returns the options this arena was created with.
  [[nodiscard]] const options& get_options() const noexcept { return options_; }
  /// Returns chunk, footprint and waste figures.
  [[nodiscard]] details_type details() const noexcept;

  // ---------------------------------------------------------- housekeeping

  /// Frees every block and ends the request: records its need, keeps chunks
  /// per the retention policy (at most retain_bytes), returns the rest
  /// upstream, sizes the next chunk for the largest recent need and
  /// invalidates all markers.
  /// The next allocate may come from any thread.
  /// Complexity: O(chunks held). Thread safety: not thread-safe.
  void reset() noexcept;
  /// Does what reset() does but returns every chunk upstream.
  /// Complexity: O(chunks held). Thread safety: not thread-safe.
  void release() noexcept;

 private:
  using chunk = detail::monotonic_chunk;
  static constexpr std::size_t history_length = 16;  // requests the adaptive policy remembers
  static constexpr std::size_t window_steps = 16;    // retention_window is tracked in this many steps

  // What one request needed, or the largest need in a stretch of requests.
  struct need_record {
    std::size_t chunk_bytes = 0;      // bytes consumed in normal chunks: bumped, padded and tails
    std::size_t dedicated_bytes = 0;  // sizes of the dedicated chunks it asked for
  };

  // The typed path (allocator.hpp) calls do_allocate and do_deallocate by
  // qualified name: the same code and counters as through pmr, minus the virtual call.
  template <class T, class R>
  friend class allocator;
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  resource_stats do_stats() const noexcept override;
  void do_reset_peak() noexcept override;

  // bytes_in_use only falls in deallocate, rewind, reset and release, so the
  // peak is brought up to date there (and when read) rather than on every
  // allocate: the bump path then updates two counters, not three.
  void count_allocate(std::size_t bytes) noexcept {
    ++counters_.value.allocations;
    counters_.value.bytes_in_use += bytes;
  }
  void settle_peak() noexcept {
    resource_stats& s = counters_.value;
    s.peak_bytes_in_use = std::max(s.peak_bytes_in_use, s.bytes_in_use);
  }
  void count_deallocate(std::size_t bytes) noexcept {
    settle_peak();
    // Saturating: a block freed after reset() or rewind() was already uncounted.
    resource_stats& s = counters_.value;
    ++s.deallocations;
    s.bytes_in_use -= std::min(bytes, s.bytes_in_use);
  }
  // Bytes a block occupies: one at least, so that size-0 pointers are unique.
  static std::size_t bump_size(std::size_t bytes) noexcept {
    return bytes + static_cast<std::size_t>(bytes == 0);
  }
  // Rolls the cursor back over [start, start + n) if that is the newest block
  // of the current region and lies above floor_.
  void roll_back(std::uintptr_t start, std::size_t n) noexcept {
    if (start + n == cursor_ && start >= floor_) {
      high_water_ = std::max(high_water_, cursor_ - base_);
      detail::poison_memory(reinterpret_cast<void*>(start), n);
      cursor_ = start;
    }
  }
  // With check_owner_thread: claims an unowned arena for this thread, or
  // reports use from a second thread. Decided by the flag stored in the
  // object, never by a macro, so every TU's inline copy behaves the same.
  void check_owner() noexcept {
    if (check_owner_thread_ && owner_ != std::this_thread::get_id()) [[unlikely]] {
      owner_mismatch_slow();
    }
  }

  // do_allocate and do_deallocate when checked_calls_: the owner check, then
  // what the fast paths do, with the poisoning a memory tool needs. Out of
  // line so that the fast paths make no call (issue 15); leave the arena as
  // the fast and slow paths do.
  [[gnu::noinline]] void* allocate_checked(std::size_t bytes, std::size_t alignment);
  [[gnu::noinline]] void deallocate_checked(void* p, std::size_t bytes, std::size_t alignment) noexcept;
  // Checks the alignment, then serves the block from a spare, a fresh or a
  // dedicated chunk; leaves cursor_/end_ on the chunk bumped into (unchanged
  // for a dedicated one). On a throw nothing has changed but failed_allocations.
  STRATA_SLOW_PATH void* allocate_slow(std::size_t bytes, std::size_t alignment);
  // Returns p's dedicated chunk upstream, or rolls back as the fast path does.
  STRATA_SLOW_PATH void deallocate_slow(void* p, std::size_t bytes) noexcept;
  // Records this thread as the owner, or counts and reports wrong_thread.
  STRATA_SLOW_PATH void owner_mismatch_slow() noexcept;

  void* allocate_dedicated(std::size_t bytes, std::size_t n, std::size_t alignment);
  chunk* take_spare(std::size_t n, std::size_t alignment) noexcept;
  chunk* take_dedicated_spare(std::size_t size, std::size_t alignment) noexcept;
  chunk* acquire_chunk(std::size_t n, std::size_t alignment);
  // Returns a chunk of size bytes from upstream, counted; a failure is counted and rethrown.
  void* get_from_upstream(std::size_t size, std::size_t alignment);
  void give_back(chunk* c) noexcept;
  void enter_chunk(chunk* c) noexcept;
  void enter_buffer() noexcept;
  // Folds the current region's high-water into the request's footprint and need.
  void close_region() noexcept;
  // Keeps c as a spare if retain_bytes allows, else returns it upstream.
  void add_spare(chunk* c) noexcept;
  // Keeps a dedicated chunk whose block is gone as a spare, if the policy and
  // retain_bytes allow, else returns it upstream.
  void retire_dedicated(chunk* c) noexcept;
  void release_dedicated_after(std::uint64_t serial) noexcept;
  // Validates m against the chain, then moves there; false (and no change) if it is not reachable.
  bool move_to(const marker& m) noexcept;
  // Records this request's footprint and need, sizes the next chunk,
  // invalidates markers and drops the owner. Chunks are left as they are.
  void end_request() noexcept;
  void record_need(need_record need) noexcept;
  [[nodiscard]] need_record recent_need() const noexcept;
  [[nodiscard]] std::size_t position() const noexcept { return cursor_ - base_; }
  [[nodiscard]] std::size_t chunk_size_for(std::size_t footprint) const noexcept;
  [[nodiscard]] std::size_t capacity_for(std::size_t footprint) const noexcept;
  // Bytes of fresh normal chunks that hold chunk_bytes, as acquire_chunk would
  // take them (the upstream's preferred size included); 0 for 0.
  [[nodiscard]] std::size_t fresh_capacity_for(std::size_t chunk_bytes) const noexcept;
  [[nodiscard]] bool keeps_dedicated() const noexcept;
  [[nodiscard]] std::size_t percentile_footprint() const noexcept;
  [[nodiscard]] bool invariants_hold() const noexcept;

  // Hot state first: the fast paths touch only these and counters_.
  std::uintptr_t cursor_ = 0;        // next free byte of the current region
  std::uintptr_t end_ = 0;           // end of the current region's usable bytes
  std::uintptr_t floor_ = 0;         // rollbacks stop here: current region start or the latest mark
  std::size_t dedicated_threshold_;  // bump sizes above this get a dedicated chunk
  detail::plain_counters counters_;  // plain: one owner thread
  std::uintptr_t base_ = 0;          // cursor_ - base_: request position (bytes bumped, tails excluded)
  std::size_t high_water_ = 0;       // highest position in the current region, as of the last backward move
  bool check_owner_thread_;          // options_.check_owner_thread, beside the hot state
  bool checked_calls_;               // check_owner_thread_ or a memory tool: calls go out of line
  std::thread::id owner_{};          // owner thread while a request runs (check_owner_thread)

  options options_;
  const resource* strata_upstream_;   // the upstream if it is a strata resource (for preferred_size)
  std::uint64_t id_;                  // unique per arena in this process, for markers
  std::uint64_t generation_ = 0;      // bumped by reset() and release(): older markers are stale
  chunk* current_ = nullptr;          // chunk holding cursor_, head of the chain; nullptr: initial buffer
  chunk* spare_ = nullptr;            // held chunks outside the chain, largest first
  chunk* dedicated_ = nullptr;        // dedicated chunks holding a block, newest first
  chunk* dedicated_spare_ = nullptr;  // dedicated chunks without a block, largest first
  std::uintptr_t buffer_begin_ = 0;   // initial buffer (caller-owned); both 0 without one
  std::uintptr_t buffer_end_ = 0;
  std::size_t next_chunk_size_;            // size of the next fresh chunk
  std::size_t chunk_count_ = 0;            // normal chunks held: chain and spares
  std::size_t spare_count_ = 0;            // normal spares
  std::size_t dedicated_count_ = 0;        // dedicated chunks held: with a block and spare
  std::size_t dedicated_spare_count_ = 0;  // dedicated spares
  std::size_t spare_bytes_ = 0;            // bytes of all spares; at most retain_bytes
  std::uint64_t dedicated_serial_ = 0;     // dedicated chunks ever acquired
  std::size_t wasted_tail_bytes_ = 0;
  // This request so far (see close_region): footprint without tails, chunk
  // bytes consumed with them, tails of the chain's older regions, and the
  // dedicated chunk bytes it asked for.
  std::size_t footprint_ = 0;
  std::size_t consumed_ = 0;
  std::size_t chain_tails_ = 0;
  std::size_t dedicated_need_ = 0;
  bool upstream_failed_ = false;  // an upstream call failed in this request
  std::size_t largest_footprint_ = 0;
  std::uint64_t resets_ = 0;
  std::array<std::size_t, history_length> history_{};  // footprints of recent requests (ring)
  std::size_t history_count_ = 0;
  std::size_t history_next_ = 0;
  // The largest needs of recent requests: window_slots_ slots of
  // window_span_ requests each, the newest at window_slot_ with window_fill_.
  std::array<need_record, window_steps + 1> window_{};
  std::size_t window_span_ = 1;
  std::size_t window_slots_ = 1;
  std::size_t window_slot_ = 0;
  std::size_t window_fill_ = 0;
  need_record window_older_;  // the largest need in the slots other than the newest
};

/// Marks an arena on construction and rewinds it on destruction, for nested
/// scratch work: what is allocated in the scope is freed when it ends.
/// Requires: the arena outlives the scope, and containers using the scratch
/// memory are destroyed first (declare them after the scope object).
///
///     strata::rewind_scope scope{arena};
///     std::pmr::vector<int> tmp{&arena};   // freed at scope exit
class rewind_scope {
 public:
  /// Takes a marker of arena.
  explicit rewind_scope(monotonic_arena& arena) noexcept : arena_(arena), marker_(arena.mark()) {}
  /// Rewinds the arena to the marker.
  ~rewind_scope() { arena_.rewind(marker_); }
  // A scope rewinds exactly once: no copy, no move.
  rewind_scope(const rewind_scope&) = delete;
  rewind_scope& operator=(const rewind_scope&) = delete;

  /// Returns the arena this scope rewinds.
  [[nodiscard]] monotonic_arena& arena() const noexcept { return arena_; }

 private:
  monotonic_arena& arena_;
  monotonic_arena::marker marker_;
};

/// The old name of rewind_scope, kept for one release (0.2): "arena" named
/// three things (arena, monotonic_arena and this scope, which only takes a
/// monotonic_arena).
using arena_scope [[deprecated("strata::arena_scope is now strata::rewind_scope")]] = rewind_scope;

// ------------------------------------------------------------- fast paths

// Bumps inside the current region: one alignment test, two bounds tests.
// The alignment test is (alignment & mask) == 0, which also lets alignment 0
// through; its mask is all ones, so pad is -cursor_, which exceeds the room
// whenever cursor_ != 0 (pad <= room - bytes would need end_ >= 2^64 + bytes), and
// cursor_ == 0 only in the empty region of an arena with no initial buffer,
// where end_ == 0 leaves no room at all. So alignment 0, like every other
// bad alignment, reaches allocate_slow(), which throws std::invalid_argument.
// (A variant testing pad + (bytes - 1) with one carry test was 8 % fewer
// instructions but measured ~8 % slower per request, so it was not kept; so
// was one rounding the block up as (cursor_ + mask) & ~mask, a shorter chain
// from the cursor's load but two more instructions and no faster, issue 15.)
// The owner check and the unpoisoning are not here (issue 15): with either
// in use every call goes to allocate_checked, so this path makes no call and
// saves no registers (that was 14 of its 40 instructions).
inline void* monotonic_arena::do_allocate(std::size_t bytes, std::size_t alignment) {
  if (checked_calls_) [[unlikely]] {
    return allocate_checked(bytes, alignment);
  }
  const std::size_t mask = alignment - 1;
  const std::size_t pad = static_cast<std::size_t>(-cursor_) & mask;
  const std::size_t room = end_ - cursor_;
  // bytes - 1 < room is bytes <= room for every size but 0, which wraps and
  // goes to allocate_slow (it serves a zero-size block from this region when
  // one byte fits): bump_size would cost three instructions on every call.
  if ((alignment & mask) == 0 && bytes - 1 < room && pad <= room - bytes) [[likely]] {
    const std::uintptr_t block = cursor_ + pad;
    cursor_ = block + bytes;
    count_allocate(bytes);
    return reinterpret_cast<void*>(block);
  }
  return allocate_slow(bytes, alignment);
}

// Counts, then rolls back the newest block; only dedicated sizes go slow.
// Without the owner check and the poisoning, as do_allocate.
inline void monotonic_arena::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  if (checked_calls_) [[unlikely]] {
    deallocate_checked(p, bytes, alignment);
    return;
  }
  count_deallocate(bytes);
  const std::size_t n = bump_size(bytes);
  // Wider than allocate's test (alignment above the threshold rather than above
  // max_chunk_size) so it is one comparison; the slow path falls back to roll_back.
  if (std::max(n, alignment) > dedicated_threshold_) [[unlikely]] {
    deallocate_slow(p, bytes);
    return;
  }
  // roll_back, without the poisoning (no tool is present here).
  const auto start = reinterpret_cast<std::uintptr_t>(p);
  if (start + n == cursor_ && start >= floor_) {
    high_water_ = std::max(high_water_, cursor_ - base_);
    cursor_ = start;
  }
}

inline monotonic_arena::marker monotonic_arena::mark() noexcept {
  check_owner();
  floor_ = cursor_;  // a rollback below the mark would let rewind() move forward
  marker m;
  m.arena_id_ = id_;
  m.generation_ = generation_;
  m.chunk_ = current_;
  m.cursor_ = cursor_;
  m.position_ = position();
  m.dedicated_serial_ = dedicated_serial_;
  m.bytes_in_use_ = counters_.value.bytes_in_use;
  m.tails_ = chain_tails_;
  return m;
}

}  // namespace strata
