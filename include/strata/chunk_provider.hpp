// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
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

/// One size class in one thread's cache: one cache line. Written only by its thread.
struct alignas(64) chunk_bin {
  std::atomic<std::uint32_t> count{0};  // atomic so stats() may read it; single writer
  void* chunks[chunk_bin_capacity]{};
};

/// A thread's cache for one chunk_provider, owned by the provider and used
/// lock-free by one thread. Counters are summed by stats() (under the
/// provider registry's mutex, which also keeps the cache alive). The calling
/// thread's most recently used one is current_thread_cache<chunk_thread_cache>.
/// Its thread_cache_base counts the caller's bytes of normal chunks only.
struct chunk_thread_cache : thread_cache_base {
  std::array<chunk_bin, chunk_class_count> bins{};
  std::array<single_writer_counter, chunk_class_count> handed{};  // chunks handed out, per class
  std::array<single_writer_counter, chunk_class_count>
      returned{};  // chunks given back on this thread, per class

  [[nodiscard]] std::uint64_t allocations() const noexcept { return sum(handed); }
  [[nodiscard]] std::uint64_t deallocations() const noexcept { return sum(returned); }

 private:
  static std::uint64_t sum(const std::array<single_writer_counter, chunk_class_count>& counts) noexcept {
    std::uint64_t total = 0;
    for (const single_writer_counter& c : counts) total += c.load(std::memory_order_relaxed);
    return total;
  }
};
using chunk_cache_slot = thread_cache_slot<chunk_thread_cache>;

}  // namespace detail

/// A cache of large chunks in power-of-two size classes, between a page
/// source (page_resource) and the arenas and slabs that carve chunks up, so
/// that steady-state workloads stop calling the system.
///
/// Memory model: a request of n bytes aligned to a gets a chunk of class
/// bit_ceil(max(n, a, min_chunk_size)), aligned to its own size (owners may
/// find a chunk header by masking a pointer). Freed chunks are cached per
/// class and reused; requests above max_chunk_size are oversized: passed
/// straight to the upstream, never cached. A byte budget bounds everything
/// held from upstream. With ratchet_floor, requesting a class above the
/// current floor raises the floor and returns cached chunks below it, so an
/// arena that has grown settles on its largest class with the fewest chunks.
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
    /// Evict cached classes below the largest class in demand.
    bool ratchet_floor = true;
    /// Per class and per thread, how many bytes of chunks a thread keeps
    /// without locking (at most 7 chunks); 0 turns thread caches off.
    std::size_t thread_cache_bytes = std::size_t{1} << 20;
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
    std::uint64_t evicted_by_floor;
    std::uint64_t evicted_by_trim;
    std::uint64_t evicted_by_budget;
    std::uint64_t returned_over_cache_limit;  ///< freed chunks max_cached_bytes sent upstream
    std::size_t floor_chunk_size;             ///< smallest class still cached
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
  /// how many were cached: fewer when max_cached_bytes is reached.
  /// Throws: std::invalid_argument if chunk_size is above max_chunk_size;
  /// allocation_failure when the budget or the upstream refuses (chunks
  /// obtained before that stay cached).
  std::size_t reserve(std::size_t chunk_size, std::size_t count);
  /// Returns cached chunks upstream, largest classes first, until at most
  /// keep_bytes stay cached in the shared pools and this thread's cache.
  /// Other threads' caches (at most thread_cache_bytes per class each) are
  /// not touched: they are flushed when those threads exit.
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
  // arenas ask for the class the provider caches. Reads the floor only.
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
  [[nodiscard]] std::size_t fast_class_of(std::size_t bytes, std::size_t alignment) const noexcept {
    // Never 0 (min_chunk_mask_ >= 63), so the count of leading zeros is defined;
    // std::bit_width would add a test for 0.
    return static_cast<std::size_t>(std::numeric_limits<unsigned long long>::digits -
                                    __builtin_clzll((bytes - 1) | (alignment - 1) | min_chunk_mask_));
  }
  // Counts a normal chunk of class cls handed out on this thread and keeps its peak.
  static void note_handed(detail::chunk_thread_cache& cache, std::size_t cls, std::size_t bytes) noexcept {
    detail::single_writer_add(cache.handed[cls]);
    cache.note_allocated(bytes);
  }
  [[nodiscard]] detail::chunk_thread_cache* my_cache() const noexcept {
    const detail::chunk_cache_slot slot =
        detail::current_thread_cache<detail::chunk_thread_cache>;  // one TLS read
    return slot.owner_id == id_ ? slot.cache : nullptr;
  }

  // Everything below leaves the provider consistent and is cold.
  STRATA_SLOW_PATH void* allocate_slow(std::size_t bytes, std::size_t alignment);
  STRATA_SLOW_PATH void deallocate_slow(void* p, std::size_t bytes, std::size_t alignment) noexcept;
  // Returns this thread's cache, creating and registering it if needed;
  // nullptr when the thread is exiting or no cache can be allocated.
  detail::chunk_thread_cache* attach() noexcept;
  // Reserves size bytes of budget (evicting cached chunks to make room), takes
  // them from upstream and records the block. Throws allocation_failure naming
  // the caller's request (bytes, request_alignment); on a throw nothing is held.
  void* take_from_upstream(std::size_t size, std::size_t alignment, bool oversized, std::size_t bytes,
                           std::size_t request_alignment);
  void give_back(void* chunk, std::size_t size, std::size_t alignment) noexcept;
  // Adds chunk to its class's shared pool; false if max_cached_bytes forbids it.
  bool push_shared(void* chunk, unsigned cls, bool ignore_limit = false) noexcept;
  void* pop_shared(unsigned cls) noexcept;
  void raise_floor(unsigned cls) noexcept;
  // Sets the floor and everything derived from it. Requires floor_mutex_ (or construction).
  void set_floor(unsigned cls) noexcept;
  std::size_t evict(std::size_t target_bytes, std::atomic<std::uint64_t>& reason) noexcept;
  bool reserve_budget(std::size_t bytes) noexcept;
  // Calls on_budget_warning if usage is at or above the threshold and the
  // warning is armed. Exceptions from the callback are swallowed.
  void warn_if_crossed() noexcept;
  // A shared pool's link in chunk's first word: encoded when hardened.
  void store_pool_link(void* chunk, void* next) const noexcept;
  [[nodiscard]] void* load_pool_link(const void* chunk) const noexcept;
  // Hardened: whether a decoded pool link of cls may be followed, given
  // whether the pool should end there: it must name a held, pooled chunk of
  // cls. Requires the pool's mutex; takes blocks_mutex_.
  bool pool_link_valid(const void* next, unsigned cls, bool should_end) noexcept;
  // Marks a held chunk as in (or out of) a shared pool, for double-free checks.
  void set_pooled(void* chunk, bool pooled) noexcept;
  void release_budget(std::size_t bytes) noexcept;
  // Empties cache's bins of classes below below_class: upstream when
  // to_upstream, else into the shared pools (even past max_cached_bytes).
  // Returns the chunks moved.
  std::size_t flush_thread_cache(detail::chunk_thread_cache& cache, unsigned below_class,
                                 bool to_upstream) noexcept;
  void note_returned(detail::chunk_thread_cache* cache, unsigned cls, std::size_t bytes) noexcept;
  void reject(misuse_kind kind, void* p, std::size_t bytes, std::size_t alignment) noexcept;
  bool invariants_hold() const noexcept;
  struct upstream_block;
  // Position of p in blocks_ (or where it would go). Requires blocks_mutex_.
  std::vector<std::pair<void*, upstream_block>>::iterator block_position(const void* p) noexcept;

  friend struct chunk_provider_access;  // the thread-exit hook in the .cpp

  struct shared_pool {  // one class's chunks beyond the thread caches
    mutable std::mutex mutex;
    void* head = nullptr;                  // chunks linked through their first word; guarded by mutex
    std::size_t count = 0;                 // guarded by mutex
    std::atomic<std::uint64_t> misses{0};  // requests of this class that went upstream
  };
  struct class_totals {  // counters of thread caches already detached
    std::uint64_t handed = 0;
    std::uint64_t returned = 0;
  };
  struct upstream_block {
    std::size_t size;
    std::size_t alignment;
    bool oversized;
    bool pooled = false;  // in a shared pool (free); thread bins are not tracked here
  };

  // What the fast paths read, together at the start of the object (the
  // first two cache lines, with the base's vptr and upstream).
  std::uint64_t id_;                    // unique per provider, never reused
  std::size_t min_chunk_mask_;          // min_chunk_size - 1
  std::atomic<unsigned> fast_ceiling_;  // largest class the allocate fast path serves
  // Chunks a thread bin may hold per class: 0 outside [floor, max class] and
  // when thread caches are off, so one load decides the deallocate fast path.
  std::array<std::atomic<std::uint8_t>, detail::chunk_class_count> bin_capacity_{};

  options options_;
  detail::link_codec codec_;       // shared pool links (hardened only)
  unsigned min_class_;             // log2(min_chunk_size)
  unsigned max_class_;             // log2(max_chunk_size)
  std::size_t warning_threshold_;  // bytes; unlimited when no budget
  std::mutex floor_mutex_;         // serializes floor changes
  std::atomic<unsigned> floor_;    // smallest cached class
  std::array<shared_pool, detail::chunk_class_count> pools_;
  std::atomic<std::size_t> shared_cached_bytes_{0};
  std::atomic<std::size_t> bytes_reserved_{0};  // held from upstream; the budget's measure
  std::atomic<bool> warning_armed_{true};

  mutable std::mutex blocks_mutex_;                       // guards blocks_ and oversized counters
  std::vector<std::pair<void*, upstream_block>> blocks_;  // every chunk held from upstream, sorted
  std::size_t oversized_live_ = 0;
  std::size_t oversized_bytes_in_use_ = 0;  // caller's sizes
  std::uint64_t oversized_allocations_ = 0;
  std::uint64_t oversized_deallocations_ = 0;

  // Guarded by the process-wide registry mutex (see the .cpp).
  detail::thread_cache_set<detail::chunk_thread_cache> caches_;              // attached thread caches, owned
  std::array<class_totals, detail::chunk_class_count> retired_classes_{};    // of detached caches
  std::array<std::uint64_t, detail::chunk_class_count> released_classes_{};  // chunks dropped by release()

  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> rejected_{0};  // deallocates refused as misuse
  std::atomic<std::uint64_t> upstream_allocations_{0};
  std::atomic<std::uint64_t> upstream_deallocations_{0};
  std::atomic<std::uint64_t> evicted_by_floor_{0};
  std::atomic<std::uint64_t> evicted_by_trim_{0};
  std::atomic<std::uint64_t> evicted_by_budget_{0};
  std::atomic<std::uint64_t> returned_over_limit_{0};
};

// ------------------------------------------------------------- fast paths

// Serves a chunk from this thread's cache: no lock, no atomic read-modify-write.
inline void* chunk_provider::do_allocate(std::size_t bytes, std::size_t alignment) {
  const detail::chunk_cache_slot slot =
      detail::current_thread_cache<detail::chunk_thread_cache>;  // one TLS read
  // A zero alignment passes the power-of-two test here but gives an oversized class.
  if (slot.owner_id == id_ && (alignment & (alignment - 1)) == 0) [[likely]] {
    const std::size_t cls = fast_class_of(bytes, alignment);
    // Oversized classes, and classes above the floor (which must go slow to raise it), fail here.
    if (cls <= fast_ceiling_.load(std::memory_order_relaxed)) [[likely]] {
      detail::chunk_bin& bin = slot.cache->bins[cls];
      const std::uint32_t count = bin.count.load(std::memory_order_relaxed);
      if (count != 0) [[likely]] {
        void* chunk = bin.chunks[count - 1];
        bin.count.store(count - 1, std::memory_order_relaxed);
        note_handed(*slot.cache, cls, bytes);
        detail::unpoison_memory(chunk, std::size_t{1} << cls);
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
  // A zero alignment passes the power-of-two test here but gives an oversized class.
  if (slot.owner_id == id_ && (alignment & (alignment - 1)) == 0) [[likely]] {
    const std::size_t cls = fast_class_of(bytes, alignment);
    detail::chunk_bin& bin = slot.cache->bins[cls];
    const std::uint32_t count = bin.count.load(std::memory_order_relaxed);
    // Capacity is 0 for oversized classes and classes below the floor, so
    // the alignment test (p's low cls bits shifted out and back) runs only
    // for cls <= max_class_; it is one instruction shorter than a mask.
    if (count < bin_capacity_[cls].load(std::memory_order_relaxed) &&
        (reinterpret_cast<std::uintptr_t>(p) >> cls << cls) == reinterpret_cast<std::uintptr_t>(p))
        [[likely]] {
      detail::poison_memory(p, std::size_t{1} << cls);
      bin.chunks[count] = p;
      bin.count.store(count + 1, std::memory_order_relaxed);
      detail::single_writer_add(slot.cache->returned[cls]);
      slot.cache->note_deallocated(bytes);
      return;
    }
  }
  deallocate_slow(p, bytes, alignment);
}

}  // namespace strata
