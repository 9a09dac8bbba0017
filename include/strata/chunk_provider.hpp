// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory_resource>
#include <mutex>
#include <optional>
#include <vector>

#include "detail/align.hpp"
#include "detail/assert.hpp"
#include "detail/free_list.hpp"
#include "detail/sanitizer.hpp"
#include "detail/thread_cache.hpp"
#include "resource.hpp"

namespace strata {

class chunk_provider;

namespace detail {

/// Classes are indexed by log2 of the chunk size, up to 2^47 bytes (beyond
/// any address space we run in). Every index from 0 to 64 (the bit width of
/// any size_t) is valid, so the fast paths index by a computed class without
/// clamping it; the indices above the largest class stand for oversized requests.
inline constexpr unsigned chunk_class_count = 65;
/// The largest class max_chunk_size may name.
inline constexpr unsigned chunk_max_class = 47;
/// Most chunks one thread keeps per class before spilling to the shared pool
/// (7, so that a bin fills one 64-byte cache line).
inline constexpr unsigned chunk_bin_capacity = 7;

/// One size class in one thread's cache: one cache line, so the deallocate
/// fast path reads the count and the capacity from the line it writes. The
/// count and the chunks are written only by the bin's thread.
struct alignas(64) chunk_bin {
  std::atomic<std::uint32_t> count{0};  // atomic so stats() may read it; single writer
  /// How many chunks the deallocate fast path may keep here. Set by the owner
  /// on its slow path; set to 0 by another thread asking for a flush, which
  /// sends the owner's next deallocate of this class to the slow path.
  std::atomic<std::uint32_t> capacity{0};
  void* chunks[chunk_bin_capacity]{};
};

/// A thread's cache for one chunk_provider, owned by the provider and used
/// lock-free by one thread. Counters are summed by stats() (under the
/// provider registry's mutex, which also keeps the cache alive). The calling
/// thread's most recently used one is current_thread_cache<chunk_thread_cache>.
/// Its thread_cache_base counts the caller's bytes of normal chunks only.
///
/// Per class, only the chunks handed out are counted on the fast paths; the
/// chunks given back follow from the bin (issue 15: one counter per pair, not
/// two). Invariant, per class and modulo 2^64:
///
///     returned == handed + bin.count + unbinned
///
/// The fast paths keep it without touching unbinned (a fast allocate adds 1
/// to handed and takes 1 from the count; a fast deallocate adds 1 to the
/// count and to returned). The slow paths add 1 to unbinned for a chunk given
/// back that does not enter the bin and for a chunk that leaves the bin other
/// than by being handed out (flush, eviction, release()), and take 1 for a
/// chunk handed out that does not come from the bin. Every field has one
/// writer, the owner (release() excepted, which requires quiescence), so a
/// sum taken while the thread runs is a snapshot, exact when it is quiescent.
struct chunk_thread_cache : thread_cache_base {
  /// Largest class the allocate fast path serves from this cache: the
  /// provider's floor with ratchet_floor, else its largest class. 0 (below
  /// every class) until the owner's first slow path arms it, and after another
  /// thread asks for a flush: the owner's next allocate then takes the slow path.
  std::atomic<unsigned> fast_ceiling{0};
  /// Set by trim() on another thread: hand the bins back upstream (not just
  /// to the shared pools) at the next slow path. Cleared by the owner.
  std::atomic<bool> trim_requested{false};
  std::array<chunk_bin, chunk_class_count> bins{};
  std::array<single_writer_counter, chunk_class_count> handed{};    // chunks handed out, per class
  std::array<single_writer_counter, chunk_class_count> unbinned{};  // see the invariant above

  /// Chunks of class cls given back on this thread.
  [[nodiscard]] std::uint64_t returned(std::size_t cls) const noexcept {
    return handed[cls].load(std::memory_order_relaxed) + bins[cls].count.load(std::memory_order_relaxed) +
           unbinned[cls].load(std::memory_order_relaxed);
  }
  /// Keeps the invariant for a slow-path event: +1 for a chunk given back
  /// outside the bin or leaving the bin unhanded, -1 (as 2^64 - 1) for a chunk
  /// handed out from outside the bin. Requires: the owner, or quiescence.
  void note_unbinned(std::size_t cls, std::uint64_t delta) noexcept {
    single_writer_add(unbinned[cls], delta);
  }

  [[nodiscard]] std::uint64_t allocations() const noexcept {
    std::uint64_t total = 0;
    for (const single_writer_counter& c : handed) total += c.load(std::memory_order_relaxed);
    return total;
  }
  [[nodiscard]] std::uint64_t deallocations() const noexcept {
    std::uint64_t total = 0;
    for (std::size_t cls = 0; cls < chunk_class_count; ++cls) total += returned(cls);
    return total;
  }
};
using chunk_cache_slot = thread_cache_slot<chunk_thread_cache>;

/// Returns p, as a value the optimizer cannot see through: the fast paths
/// then address a bin's count, capacity and chunks from one register, where
/// GCC 12 refolds the bin's address from the cache's base into each access
/// (7 more instructions per pair, issue 15). Changes nothing else.
template <class T>
T* opaque_pointer(T* p) noexcept {
  asm("" : "+r"(p));
  return p;
}

}  // namespace detail

/// A cache of large chunks in power-of-two size classes, between a page
/// source (page_resource) and the arenas and slabs that carve chunks up, so
/// that steady-state workloads stop calling the system.
///
/// Memory model: a request of n bytes aligned to a gets a chunk of class
/// bit_ceil(max(n, a, min_chunk_size)), aligned to its own size (owners may
/// find a chunk header by masking a pointer). Freed chunks are cached per
/// class and reused, every class alike, so any steady mix of sizes makes no
/// upstream calls; requests above max_chunk_size are oversized: passed
/// straight to the upstream (rounded up to whole pages), never cached. A byte
/// budget bounds everything held from upstream; cached chunks leave only
/// under budget pressure, by trim(), or by decay (idle for decay_period).
///
/// Thread safety: thread-safe. Each thread has its own small cache per
/// provider (up to 7 chunks and thread_cache_bytes per class), used without
/// locks or atomic read-modify-writes; behind it each class has a shared
/// pool under its own mutex (no global lock on the cached path). There is no
/// lock-free list, hence no ABA: a thread cache has one writer, and the
/// shared pools are locked.
///
///     strata::chunk_provider chunks{{.max_chunk_size = 1 << 20}, strata::system_pages()};
///     void* c = chunks.allocate(64 << 10, 64 << 10);   // a 64 KiB chunk aligned to 64 KiB
///     chunks.deallocate(c, 64 << 10, 64 << 10);        // cached for the next request
class chunk_provider final : public resource {
 public:
  static constexpr std::size_t unlimited = SIZE_MAX;

  /// What the budget warning callback receives.
  struct budget_event {
    std::size_t bytes_reserved;     ///< bytes held from upstream after the allocation that crossed
    std::size_t warning_threshold;  ///< byte_budget * budget_warning_fraction
    std::size_t byte_budget;
  };

  struct options {
    /// Smallest chunk class; a power of two, at least 64.
    std::size_t min_chunk_size = 4096;
    /// Largest cached class; larger requests are oversized. A power of two >= min_chunk_size.
    std::size_t max_chunk_size = std::size_t{4} << 20;
    /// Bound on every byte held from upstream: cached, handed out and oversized.
    std::size_t byte_budget = unlimited;
    /// Bound on cached bytes. When set (not unlimited), chunks are cached only
    /// in the shared pools, so the bound is exact; thread caches are off.
    std::size_t max_cached_bytes = unlimited;
    /// Keeps a floor: the largest class in recent demand (raised by any
    /// larger request; at each decay check lowered to the largest class
    /// requested during the last period, if any was), which preferred_size()
    /// answers for smaller requests (so arenas created per request settle on
    /// one cached class). It no longer evicts anything: every class is cached
    /// (see docs/design/chunk_provider.md).
    /// false: preferred_size() answers every request as asked.
    bool ratchet_floor = true;
    /// Per class and per thread, how many bytes of chunks a thread keeps
    /// without locking (at most 7 chunks; classes above it keep none in the
    /// thread and use the shared pool); 0 turns thread caches off.
    std::size_t thread_cache_bytes = std::size_t{1} << 20;
    /// Idle memory decay: at the first slow path or trim() after each period
    /// of wall-clock time, each shared pool returns upstream the chunks it
    /// kept through the whole period (its lowest count in the period), and
    /// every thread is asked to move its bins to the shared pools at its next
    /// call. So a chunk idle for two periods has left. 0 turns decay off. At
    /// least 0.
    std::chrono::milliseconds decay_period{10'000};
    /// Fraction of byte_budget at which on_budget_warning fires, in (0, 1].
    double budget_warning_fraction = 0.9;
    /// Called once each time bytes held rise across the warning threshold
    /// (re-armed when they fall back below it), after the allocation that
    /// crossed succeeded, outside any lock. Exceptions it throws are ignored.
    /// Under concurrent crossings it is best effort (may be missed or repeated).
    std::function<void(const budget_event&)> on_budget_warning{};
    /// Thread bins off, so every deallocate is checked against the chunks
    /// held (foreign pointer, size/alignment mismatch) and the shared pools
    /// (every free chunk is in one, so every double free is caught); shared
    /// pool links are encoded and validated before they are followed. Each
    /// detection is counted in misuse_detected and changes nothing.
    /// Allocations then take a pool mutex. The default fast path is untouched.
    /// Defaults to strata::hardened_by_default (-Dhardening=true); see docs/hardening.md.
    bool hardened = hardened_by_default;
  };

  /// Per-class figures in details().
  struct class_details {
    std::size_t chunk_size;
    std::size_t cached;          ///< chunks cached (shared pool and thread caches)
    std::size_t in_use;          ///< chunks handed out and not returned
    std::uint64_t cache_hits;    ///< requests served from a cache
    std::uint64_t cache_misses;  ///< requests that went upstream
  };

  struct details_type {
    std::vector<class_details> classes;  ///< from min_chunk_size to max_chunk_size
    std::size_t cached_bytes;
    std::size_t oversized_live;
    std::size_t oversized_bytes;
    std::uint64_t evicted_by_floor;  ///< deprecated: always 0 (the floor evicts nothing since issue 13)
    std::uint64_t evicted_by_trim;
    std::uint64_t evicted_by_budget;
    std::uint64_t evicted_by_decay;           ///< idle chunks returned by decay_period
    std::uint64_t returned_over_cache_limit;  ///< freed chunks max_cached_bytes sent upstream
    std::size_t floor_chunk_size;             ///< the preferred_size hint's class (ratchet_floor)
    std::size_t threads_attached;             ///< live thread caches
  };

  // ---------------------------------------------------------- construction

  /// Creates a provider on the default resource with default options.
  chunk_provider() : chunk_provider(options{}, std::pmr::get_default_resource()) {}
  /// Creates a provider on upstream (held, not owned) with default options.
  explicit chunk_provider(std::pmr::memory_resource* upstream) : chunk_provider(options{}, upstream) {}
  /// Creates a provider on upstream (held, not owned).
  /// Throws: std::invalid_argument naming the field for invalid options or a null upstream.
  chunk_provider(options opts, std::pmr::memory_resource* upstream);
  /// Returns every chunk, cached or still handed out, to the upstream.
  ~chunk_provider() override;

  // ------------------------------------------------------------- observers

  /// Returns the options this provider was created with.
  [[nodiscard]] const options& get_options() const noexcept { return options_; }
  /// Returns the size of the chunk a request of bytes aligned to alignment
  /// gets, or 0 if it is oversized.
  [[nodiscard]] std::size_t chunk_size_for(std::size_t bytes, std::size_t alignment) const noexcept;
  /// Returns per-class and eviction figures (a snapshot).
  /// Complexity: O(classes x attached threads).
  [[nodiscard]] details_type details() const;

  // ---------------------------------------------------------- housekeeping

  /// Obtains count chunks of chunk_size's class from upstream into the shared
  /// cache (raising the floor to that class, as a request would), and returns
  /// how many were cached: fewer when max_cached_bytes is reached. Evicts
  /// nothing to make room. Reserved chunks are cached like any other: unused
  /// for two decay periods, they decay.
  /// Throws: std::invalid_argument if chunk_size is above max_chunk_size;
  /// allocation_failure when the budget (reason budget) or the upstream
  /// refuses (chunks obtained before that stay cached).
  std::size_t reserve(std::size_t chunk_size, std::size_t count);
  /// Returns cached chunks upstream, largest classes first, until at most
  /// keep_bytes stay cached in the shared pools and this thread's cache;
  /// if more than keep_bytes are then still cached, every other thread holding
  /// chunks in its bins is asked to return them all upstream at its next call
  /// on this provider (or moves them to the shared pools when it exits). Also
  /// runs the decay check.
  void trim(std::size_t keep_bytes = 0) noexcept;
  /// Returns every chunk, cached or handed out, to the upstream, and resets
  /// the floor. Requires: no other thread uses the provider meanwhile, and
  /// no chunk handed out is used afterwards.
  void release() noexcept;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  resource_stats do_stats() const noexcept override;
  void do_reset_peak() noexcept override;
  // With ratchet_floor: the floor class's size for requests below it, so
  // arenas ask for the largest class in demand. Reads the floor only.
  std::size_t do_preferred_size(std::size_t bytes) const noexcept override;

  /// Class index (log2 of the chunk size) for a request; above max_class_
  /// means oversized. Requires alignment to be a power of two.
  [[nodiscard]] unsigned class_of(std::size_t bytes, std::size_t alignment) const noexcept {
    const std::size_t need = std::max({bytes, alignment, options_.min_chunk_size});
    return static_cast<unsigned>(std::bit_width(need - 1));
  }
  /// class_of for the fast paths, in a few instructions: for powers of two,
  /// bit_width(max(x, y) - 1) is bit_width((x - 1) | (y - 1)). Equals
  /// class_of for every bytes > 0 and power-of-two alignment; bytes == 0 and
  /// alignment == 0 give 64 (oversized), which sends the call to the slow path.
  /// Takes alignment - 1, which the caller has computed for its power-of-two test.
  [[nodiscard]] unsigned fast_class_of(std::size_t bytes, std::size_t alignment_mask) const noexcept {
    // Never 0 (min_chunk_mask_ >= 63), so the count of leading zeros is defined;
    // std::bit_width would add a test for 0. 63 ^ clz is the bit scan itself
    // (bsr); unsigned, so no sign extension follows it.
    return static_cast<unsigned>(63 ^ __builtin_clzll((bytes - 1) | alignment_mask | min_chunk_mask_)) + 1;
  }
  // Counts a chunk of class cls (oversized: cls > max_class_) handed out on
  // this thread and keeps its peak.
  static void note_handed(detail::chunk_thread_cache& cache, std::size_t cls, std::size_t bytes) noexcept {
    detail::single_writer_add(cache.handed[cls]);
    cache.note_allocated(bytes);
  }

  // Everything below leaves the provider consistent and is cold.
  STRATA_SLOW_PATH void* allocate_slow(std::size_t bytes, std::size_t alignment);
  STRATA_SLOW_PATH void deallocate_slow(void* p, std::size_t bytes, std::size_t alignment) noexcept;
  // Returns this thread's cache, creating and registering it if needed, with
  // its pending flush requests answered and its fast paths armed; nullptr
  // when the thread is exiting or no cache can be allocated. cls is the class
  // the caller is about to use (its bin's capacity is checked too).
  detail::chunk_thread_cache* attach(unsigned cls) noexcept;
  // Answers cache's flush requests (trim: bins upstream; decay: bins to the
  // shared pools) and re-arms its fast paths if they were disarmed or the floor moved.
  void answer_requests(detail::chunk_thread_cache& cache, unsigned cls) noexcept;
  // Sets cache's fast ceiling and bin capacities from the options and floor.
  void arm(detail::chunk_thread_cache& cache) noexcept;
  // Sends cache's thread to its slow paths at its next call (another thread calls this).
  static void disarm(detail::chunk_thread_cache& cache) noexcept;
  [[nodiscard]] unsigned intended_ceiling() const noexcept;
  [[nodiscard]] std::uint32_t intended_capacity(unsigned cls) const noexcept;
  // What arm() stores: the intended limits, or 0 (fast paths off) under a memory tool.
  [[nodiscard]] unsigned armed_ceiling() const noexcept { return fast_paths_ ? intended_ceiling() : 0; }
  [[nodiscard]] std::uint32_t armed_capacity(unsigned cls) const noexcept {
    return fast_paths_ ? intended_capacity(cls) : 0;
  }
  // Reserves size bytes of budget (with may_evict, evicting cached chunks to
  // make room for exactly what is missing), takes them from upstream and
  // records the block (in its class's pool, or the oversized list with the
  // caller's bytes). Throws allocation_failure naming the caller's request
  // (bytes, request_alignment); on a throw nothing is held and nothing was
  // evicted unless the budget refused.
  void* take_from_upstream(std::size_t size, std::size_t alignment, unsigned cls, std::size_t bytes,
                           std::size_t request_alignment, bool may_evict);
  // Returns a normal chunk of class cls, held and not pooled, upstream.
  void give_back(void* chunk, unsigned cls) noexcept;
  // The upstream half of give_back, for a chunk already taken off its pool's list.
  void return_upstream(void* chunk, unsigned cls) noexcept;
  // Counts a chunk of cls into the shared pools' bytes; false if max_cached_bytes forbids it.
  bool reserve_cached(unsigned cls, bool ignore_limit = false) noexcept;
  // Adds a held chunk to its class's shared pool; false if max_cached_bytes forbids it.
  bool push_shared(void* chunk, unsigned cls, bool ignore_limit = false) noexcept;
  // Pushes under the pool's mutex (held by the caller). Requires: the chunk is held and not pooled.
  void push_locked(void* chunk, unsigned cls) noexcept;
  void* pop_shared(unsigned cls) noexcept;
  void raise_floor(unsigned cls) noexcept;
  // Returns cached chunks (this thread's bins, then the shared pools, the
  // largest classes first) until target_bytes are freed or none are left.
  std::size_t evict(std::size_t target_bytes, std::atomic<std::uint64_t>& reason) noexcept;
  // If a decay period has elapsed: returns each shared pool's idle chunks
  // and asks every thread to move its bins to the shared pools.
  void decay_if_due() noexcept;
  // Why p, a pointer not listed where its size says, is not ours to take:
  // size_mismatch if another class or the oversized list holds it, else unknown_pointer.
  [[nodiscard]] misuse_kind classify_foreign(const void* p) const noexcept;
  bool reserve_budget(std::size_t bytes) noexcept;
  // Calls on_budget_warning if usage is at or above the threshold and the
  // warning is armed. Exceptions from the callback are swallowed.
  void warn_if_crossed() noexcept;
  // A shared pool's link in chunk's first word: encoded when hardened.
  void store_pool_link(void* chunk, void* next) const noexcept;
  [[nodiscard]] void* load_pool_link(const void* chunk) const noexcept;
  // Hardened: whether a decoded pool link of cls may be followed, given
  // whether the pool should end there: it must name a held, pooled chunk of
  // cls. Requires the pool's mutex.
  bool pool_link_valid(const void* next, unsigned cls, bool should_end) noexcept;
  void release_budget(std::size_t bytes) noexcept;
  // Empties cache's bins: upstream when to_upstream, else into the shared
  // pools (even past max_cached_bytes). Returns the chunks moved.
  std::size_t flush_thread_cache(detail::chunk_thread_cache& cache, bool to_upstream) noexcept;
  // Counts a chunk (or oversized block) of cls given back on this thread;
  // binned: it goes into the thread's bin (see chunk_thread_cache's invariant).
  void note_returned(detail::chunk_thread_cache* cache, unsigned cls, std::size_t bytes,
                     bool binned = false) noexcept;
  void reject(misuse_kind kind, void* p, std::size_t bytes, std::size_t alignment) noexcept;
  bool invariants_hold() const noexcept;

  friend struct chunk_provider_access;  // the thread-exit hook in the .cpp

  struct held_chunk {  // a normal chunk held from upstream
    void* chunk;
    bool pooled;  // in the shared pool (free); chunks in thread bins are not marked
  };
  // One class's chunks beyond the thread caches, and the list of every chunk
  // of the class held from upstream (for misuse checks), under one mutex of
  // the class's own: nothing on the cached path takes a provider-wide lock.
  struct alignas(64) shared_pool {
    mutable std::mutex mutex;
    void* head = nullptr;                  // chunks linked through their first word; guarded by mutex
    std::size_t count = 0;                 // guarded by mutex
    std::size_t low_water = 0;             // lowest count since the last decay; guarded by mutex
    std::vector<held_chunk> held;          // sorted by address; guarded by mutex
    std::atomic<std::uint64_t> misses{0};  // requests of this class that went upstream
  };
  struct oversized_block {
    void* block;
    std::size_t mapped;  // asked of the upstream: bytes rounded up to whole pages
    std::size_t bytes;   // the caller's size
    std::size_t alignment;
  };
  struct class_totals {  // counters of thread caches already detached
    std::uint64_t handed = 0;
    std::uint64_t returned = 0;
  };
  // Position of p in a sorted list of held chunks (or where it would go).
  static std::vector<held_chunk>::iterator held_position(std::vector<held_chunk>& held,
                                                         const void* p) noexcept;

  // What the fast paths read, together at the start of the object (the
  // first cache line, with the base's vptr and upstream).
  std::uint64_t id_;            // unique per provider, never reused
  std::size_t min_chunk_mask_;  // min_chunk_size - 1

  options options_;
  detail::link_codec codec_;       // shared pool links (hardened only)
  unsigned min_class_;             // log2(min_chunk_size)
  unsigned max_class_;             // log2(max_chunk_size)
  bool thread_caches_;             // thread bins in use (not hardened, no max_cached_bytes, bytes > 0)
  bool fast_paths_;                // caches may be armed: no memory tool present (issue 15)
  std::size_t warning_threshold_;  // bytes; unlimited when no budget
  std::atomic<unsigned> floor_;    // the preferred_size hint's class
  detail::decay_clock decay_;
  std::array<shared_pool, detail::chunk_class_count> pools_;
  std::atomic<std::size_t> shared_cached_bytes_{0};
  std::atomic<std::size_t> bytes_reserved_{0};  // held from upstream; the budget's measure
  std::atomic<bool> warning_armed_{true};

  mutable std::mutex oversized_mutex_;      // guards the three below; never held with another lock
  std::vector<oversized_block> oversized_;  // sorted by address
  std::size_t oversized_bytes_in_use_ = 0;  // caller's sizes

  // Guarded by the process-wide registry mutex (see the .cpp).
  detail::thread_cache_set<detail::chunk_thread_cache> caches_;              // attached thread caches, owned
  std::array<class_totals, detail::chunk_class_count> retired_classes_{};    // of detached caches
  std::array<std::uint64_t, detail::chunk_class_count> released_classes_{};  // chunks dropped by release()
  std::array<std::uint64_t, detail::chunk_class_count>
      handed_at_decay_{};  // per class, at the last decay check

  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> rejected_{0};  // deallocates refused as misuse
  std::atomic<std::uint64_t> upstream_allocations_{0};
  std::atomic<std::uint64_t> upstream_deallocations_{0};
  std::atomic<std::uint64_t> evicted_by_trim_{0};
  std::atomic<std::uint64_t> evicted_by_budget_{0};
  std::atomic<std::uint64_t> evicted_by_decay_{0};
  std::atomic<std::uint64_t> returned_over_limit_{0};
};

// ------------------------------------------------------------- fast paths
//
// Per pair (issue 15), besides the bin itself: one TLS read and id compare,
// the class (one OR chain and one bit scan), one per-class counter (chunks
// handed out; those given back follow from the bin, see chunk_thread_cache)
// and the running byte figure with its peak. Nothing is poisoned here: when
// a memory tool is present the caches are never armed (arm()), so every call
// takes the slow path, which poisons and unpoisons; without one, the fast
// paths make no call at all and need no saved registers.

// Serves a chunk from this thread's cache: no lock, no atomic read-modify-write.
inline void* chunk_provider::do_allocate(std::size_t bytes, std::size_t alignment) {
  const detail::chunk_cache_slot slot =
      detail::current_thread_cache<detail::chunk_thread_cache>;  // one TLS read
  const std::size_t alignment_mask = alignment - 1;
  // A zero alignment passes the power-of-two test here but gives an oversized class.
  if (slot.owner_id == id_ && (alignment & alignment_mask) == 0) [[likely]] {
    const unsigned cls = fast_class_of(bytes, alignment_mask);
    // Oversized classes, classes above the floor (which must go slow to raise
    // it), and every class while the cache is disarmed fail here.
    if (cls <= slot.cache->fast_ceiling.load(std::memory_order_relaxed)) [[likely]] {
      detail::chunk_bin& bin = *detail::opaque_pointer(&slot.cache->bins[cls]);
      // Widened before the - 1, so chunks[count - 1] is one load from the bin.
      const std::size_t count = bin.count.load(std::memory_order_relaxed);
      if (count != 0) [[likely]] {
        void* chunk = bin.chunks[count - 1];
        bin.count.store(static_cast<std::uint32_t>(count - 1), std::memory_order_relaxed);
        note_handed(*slot.cache, cls, bytes);
        return chunk;
      }
    }
  }
  return allocate_slow(bytes, alignment);
}

// Keeps a chunk in this thread's cache when its bin has room.
inline void chunk_provider::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  const detail::chunk_cache_slot slot =
      detail::current_thread_cache<detail::chunk_thread_cache>;  // one TLS read
  const std::size_t alignment_mask = alignment - 1;
  // A zero alignment passes the power-of-two test here but gives an oversized class.
  if (slot.owner_id == id_ && (alignment & alignment_mask) == 0) [[likely]] {
    const unsigned cls = fast_class_of(bytes, alignment_mask);
    detail::chunk_bin& bin = *detail::opaque_pointer(&slot.cache->bins[cls]);
    // Capacity is 0 for oversized classes (and while the cache is disarmed),
    // so the alignment test runs only for cls <= max_class_. p must be aligned
    // to its class and not null: null is aligned to every class, and a cached
    // null would be handed out (p below one chunk and aligned to it is null).
    const std::uint32_t capacity = bin.capacity.load(std::memory_order_relaxed);
    const std::uint32_t count = bin.count.load(std::memory_order_relaxed);
    const auto address = reinterpret_cast<std::uintptr_t>(p);
    if (count < capacity && address != 0 && static_cast<unsigned>(std::countr_zero(address)) >= cls)
        [[likely]] {
      bin.chunks[count] = p;
      bin.count.store(count + 1, std::memory_order_relaxed);
      slot.cache->note_deallocated(bytes);
      return;
    }
  }
  deallocate_slow(p, bytes, alignment);
}

}  // namespace strata
