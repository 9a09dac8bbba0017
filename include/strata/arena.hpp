// SPDX-License-Identifier: MIT
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "detail/align.hpp"
#include "detail/assert.hpp"
#include "detail/extent_map.hpp"
#include "detail/free_list.hpp"
#include "detail/sanitizer.hpp"
#include "detail/thread_cache.hpp"
#include "resource.hpp"

namespace strata {

namespace detail {

// ------------------------------------------------------------ size classes
//
// 96 classes from 16 B to 256 KiB. Up to 128 B they are 16 B apart (16 B is
// the alignment quantum every block keeps); above, each power of two [2^k,
// 2^(k+1)) is split into 8 steps of 2^(k-3), so a block is at most 1/9 larger
// than any request it serves there (<= 11.1 % of the block, 12.5 % of the
// request). Eight steps rather than four: four steps would waste up to 20 %.

inline constexpr unsigned arena_class_count = 96;
inline constexpr std::size_t arena_max_small = std::size_t{256} << 10;  // largest class
inline constexpr std::size_t arena_page = 4096;             // large-path granularity; largest class alignment
inline constexpr unsigned arena_large = arena_class_count;  // "class" of the large path

/// Returns the block size of class cls (< arena_class_count).
[[nodiscard]] constexpr std::size_t arena_class_size(unsigned cls) noexcept {
  if (cls < 8) return std::size_t{16} * (cls + 1);
  const unsigned k = 7 + (cls - 8) / 8;
  return (std::size_t{1} << k) + std::size_t{(cls - 8) % 8 + 1} * (std::size_t{1} << (k - 3));
}

/// Alignment of every block of a class: the largest power of two dividing
/// its size, capped at a page (runs of a class start at that alignment).
[[nodiscard]] constexpr std::size_t arena_class_alignment(unsigned cls) noexcept {
  const std::size_t size = arena_class_size(cls);
  const std::size_t low = size & (~size + 1);
  return low < arena_page ? low : arena_page;
}

/// Every class's block size, as a table: one load where the arithmetic above
/// would take a dozen instructions and a branch on a fast path.
inline constexpr auto arena_class_sizes = [] {
  std::array<std::uint32_t, arena_class_count> table{};
  for (unsigned c = 0; c < arena_class_count; ++c) table[c] = static_cast<std::uint32_t>(arena_class_size(c));
  return table;
}();

/// Returns the smallest class whose blocks hold bytes, by arithmetic.
/// Requires: bytes <= arena_max_small.
[[nodiscard]] constexpr unsigned arena_size_class_computed(std::size_t bytes) noexcept {
  if (bytes <= 128) return static_cast<unsigned>((bytes - (bytes != 0)) >> 4);
  const std::size_t t = bytes - 1;
  const auto b = static_cast<unsigned>(std::bit_width(t)) - 1;  // >= 7
  return 8 + (b - 7) * 8 + static_cast<unsigned>((t >> (b - 3)) - 8);
}

/// Classes of sizes up to 1 KiB by 16 B step (every class edge there is a
/// multiple of 16): one load instead of a branch on the size, which mixed
/// sizes would mispredict.
inline constexpr auto arena_small_class_table = [] {
  std::array<std::uint8_t, 65> table{};
  for (std::size_t i = 0; i < table.size(); ++i) {
    table[i] = static_cast<std::uint8_t>(arena_size_class_computed(i * 16));
  }
  return table;
}();

/// The largest size arena_small_class_table covers.
inline constexpr std::size_t arena_table_max = 1024;

/// Whether alignment is a power of two no larger than 16, which every class
/// meets: one compare and one bit test.
[[nodiscard]] constexpr bool arena_small_alignment(std::size_t alignment) noexcept {
  constexpr std::uint32_t powers = (1u << 1) | (1u << 2) | (1u << 4) | (1u << 8) | (1u << 16);
  return alignment <= 16 && ((powers >> alignment) & 1u) != 0;
}

/// Returns the smallest class whose blocks hold bytes. Requires: bytes <= arena_max_small.
[[nodiscard]] constexpr unsigned arena_size_class(std::size_t bytes) noexcept {
  if (bytes <= arena_table_max) [[likely]]
    return arena_small_class_table[(bytes + 15) >> 4];
  return arena_size_class_computed(bytes);
}

/// For alignment 2^k (k <= 12) and class c: the first class >= c whose blocks
/// are aligned to 2^k, or arena_large. Blocks of 2^k bytes are aligned to
/// 2^k, so a class is always found for sizes up to the largest class.
inline constexpr auto arena_aligned_class = [] {
  std::array<std::array<std::uint8_t, arena_class_count>, 13> table{};
  for (unsigned k = 0; k < 13; ++k) {
    for (unsigned c = 0; c < arena_class_count; ++c) {
      unsigned found = c;
      while (found < arena_class_count && arena_class_alignment(found) < (std::size_t{1} << k)) ++found;
      table[k][c] = static_cast<std::uint8_t>(found);
    }
  }
  return table;
}();

/// Returns the class serving (bytes, alignment), or arena_large. A pure
/// function of the pair, so deallocate finds the class allocate used.
/// Requires: alignment is a power of two.
[[nodiscard]] inline unsigned arena_class_for(std::size_t bytes, std::size_t alignment) noexcept {
  if (bytes > arena_max_small) return arena_large;
  const unsigned cls = arena_size_class(bytes);
  if (alignment <= 16) [[likely]]
    return cls;  // every class is aligned to 16
  if (alignment > arena_page) return arena_large;
  return arena_aligned_class[static_cast<unsigned>(std::countr_zero(alignment))][cls];
}

/// One class in one thread's cache: a free list linked through the blocks'
/// first word. Only the owning thread touches head; count is atomic so that
/// details() may read it, but has a single writer. limit is the number of
/// blocks the bin holds before a push goes to the slow path: the owner sets
/// it to the class's limit, and another thread (trim(), the decay timer) sets
/// it to 0 so that the owner's next push reaches the slow path, which hands
/// the cache back. 0 in a fresh cache, for the same reason.
struct arena_bin {
  void* head = nullptr;
  std::atomic<std::uint32_t> count{0};
  std::atomic<std::uint32_t> limit{0};
};

/// A thread's cache for one arena, owned by the arena and used lock-free by
/// one thread. Counters are summed by stats() under the registry mutex.
struct alignas(64) arena_thread_cache : thread_cache_base {  // own cache lines: no false sharing
  single_writer_counter allocated{0};                        // calls served on this thread
  single_writer_counter freed{0};                            // deallocations obeyed on this thread
  std::array<arena_bin, arena_class_count> bins{};
  // trim() requests, counted by the requester; the owner serves every one up
  // to trims_served (owner only) by handing back every block. A count, not a
  // flag, so a request arriving while the owner serves another is never lost.
  std::atomic<std::uint32_t> trim_requests{0};
  std::uint32_t trims_served = 0;
  // Each bin's head and count after the last decay flush (owner only): a bin
  // found unchanged a period later was idle and goes back whole.
  std::array<void*, arena_class_count> decay_head{};
  std::array<std::uint32_t, arena_class_count> decay_count{};

  [[nodiscard]] std::uint64_t allocations() const noexcept {
    return allocated.load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint64_t deallocations() const noexcept { return freed.load(std::memory_order_relaxed); }
  void on_allocate(std::size_t bytes) noexcept {
    single_writer_add(allocated);
    note_allocated(bytes);
  }
  void on_deallocate(std::size_t bytes) noexcept {
    single_writer_add(freed);
    note_deallocated(bytes);
  }
};

using arena_cache_slot = thread_cache_slot<arena_thread_cache>;  // the fast path's MRU slot

/// Pops a block of class cls from the calling thread's own cache and counts
/// it, or returns nullptr if the bin is empty. No lock, no atomic RMW.
/// Poisoning false: no memory tool is present (the inline path; see
/// arena::fast_id_), so the pop makes no call; true: it unpoisons the block
/// (slow paths).
template <bool Poisoning = true>
[[gnu::always_inline]] inline void* arena_pop(arena_thread_cache& cache, unsigned cls,
                                              std::size_t bytes) noexcept {
  arena_bin& bin = cache.bins[cls];
  void* p = bin.head;
  if (p == nullptr) [[unlikely]]
    return nullptr;
  // The whole block was poisoned while free, its link word included.
  if constexpr (Poisoning) unpoison_memory(p, arena_class_sizes[cls]);
  bin.head = *static_cast<void**>(p);
  bin.count.store(bin.count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  cache.on_allocate(bytes);
  return p;
}

/// Pushes p onto the calling thread's bin of class cls and counts it, or
/// returns false (nothing changed) if the bin holds its limit already.
/// Poisoning: as for arena_pop.
template <bool Poisoning = true>
[[gnu::always_inline]] inline bool arena_push(arena_thread_cache& cache, unsigned cls, void* p,
                                              std::size_t bytes) noexcept {
  arena_bin& bin = cache.bins[cls];
  const std::uint32_t count = bin.count.load(std::memory_order_relaxed);
  if (count >= bin.limit.load(std::memory_order_relaxed)) [[unlikely]]
    return false;
  *static_cast<void**>(p) = bin.head;
  if constexpr (Poisoning) poison_memory(p, arena_class_sizes[cls]);
  bin.head = p;
  bin.count.store(count + 1, std::memory_order_relaxed);
  cache.on_deallocate(bytes);
  return true;
}

}  // namespace detail

/// A general-purpose, thread-safe resource for mixed sizes inside one
/// fixed-capacity region, for allocation-heavy multi-threaded work
/// (inference batches, tensor pipelines, servers). Choose it when the peak
/// footprint is known and upstream calls must stop after construction.
///
/// Memory model: `capacity` bytes are taken from upstream at construction and
/// returned at destruction; nothing else is ever asked of the upstream (the
/// region stays reserved for the arena's life: bytes_reserved = capacity).
/// Inside, a page-granular extent allocator hands out spans: runs of one size
/// class (96 classes up to 256 KiB; no header: the class follows from the
/// (bytes, alignment) pmr passes back) and large blocks (above 256 KiB, or
/// aligned above 4096). A run whose blocks are all free goes back to the
/// extent allocator, where any class or the large path can take it. Each
/// thread keeps a free list per class that exchanges batches with the runs.
/// When the region is used up, allocate throws allocation_failure (capacity).
/// allocate throws std::invalid_argument for a non-power-of-two alignment and
/// allocation_failure (a std::bad_alloc) on exhaustion, leaving the arena
/// usable; deallocate never throws.
/// Complexity: O(1) for small blocks (amortized over a batch on refill and
/// hand-back); O(free extents of the fitting size) for a large allocate.
///
/// Thread safety: thread-safe. The fast paths touch only the calling thread's
/// cache, without a lock or an atomic read-modify-write; a block may be freed
/// on any thread.
///
///     strata::arena heap{{.capacity = 256 << 20}, strata::system_pages()};
///     std::pmr::vector<float> batch{&heap};     // any thread, any size
///     fmt::print("{}", heap.stats());
class arena final : public resource {
 public:
  struct options {
    /// Bytes reserved from upstream at construction; at least 4096, rounded
    /// up to 4096; at most 2^32 - 2 pages.
    std::size_t capacity = std::size_t{64} << 20;
    /// Bytes a thread cache takes from the class's runs at once, per class:
    /// max(1, refill_bytes / block size) blocks. At least 16.
    std::size_t refill_bytes = std::size_t{16} << 10;
    /// Bytes a thread cache keeps per class before handing a batch back; at
    /// least refill_bytes. A class keeps at least two batches, except that a
    /// bin keeps one block of a class above half of cache_bytes_per_class.
    std::size_t cache_bytes_per_class = std::size_t{64} << 10;
    /// Records every block handed out in side metadata, so that double free,
    /// foreign pointer and size/alignment mismatch are detected (counted in
    /// misuse_detected, never obeyed), and encodes every free-list link and
    /// validates it against the page map before following it. Thread caches
    /// are off: every call takes a class lock and the metadata lock. (Named
    /// `checked` before.) Defaults to strata::hardened_by_default
    /// (-Dhardening=true); see docs/hardening.md.
    bool hardened = hardened_by_default;
    /// Idle memory decays after this much wall-clock time: once per period
    /// (checked on slow paths and in trim()), each thread's bins give back
    /// what lies beyond one batch per class (a bin unchanged for a whole
    /// period gives back everything), and each class's spare empty run goes
    /// back to the extent allocator. Zero turns decay off; not negative.
    std::chrono::milliseconds decay_period{10'000};
    /// Gives the physical memory of free extents back to the OS with
    /// madvise(MADV_DONTNEED): pages free for a whole decay period at each
    /// decay, and every free page in trim() and release(). The pages stay
    /// reserved and read as zero when reused. Safe for private memory (what
    /// strata::system_pages() and malloc-backed upstreams give); turn it off
    /// for an upstream whose pages must keep their contents while free to
    /// the arena (a shared or file-backed mapping another party reads).
    bool decommit = true;
  };

  /// Per-class figures in details().
  struct class_details {
    std::size_t block_size;
    std::size_t runs;            ///< runs of this class (its spare included)
    std::size_t central_blocks;  ///< free blocks in its runs (never-carved ones included)
    std::size_t central_bytes;
    std::size_t cached_blocks;  ///< free blocks in thread caches
    /// Free blocks in whole batches between thread caches (the transfer
    /// cache: a full bin's batch waits there for the next refill).
    std::size_t transfer_blocks;
  };

  struct details_type {
    std::size_t capacity;                ///< bytes of the region
    std::size_t remaining;               ///< bytes in free extents (usable by every class and the large path)
    std::vector<class_details> classes;  ///< all 96, smallest first
    std::size_t large_live;              ///< large blocks handed out
    std::size_t large_live_bytes;        ///< their page-rounded sizes
    std::size_t free_extents;            ///< free extents (coalesced)
    std::size_t largest_free_extent;     ///< bytes of the longest one
    std::size_t runs;                    ///< runs of all classes
    std::size_t empty_runs_kept;         ///< spare empty runs (at most one per class)
    std::uint64_t runs_returned;         ///< empty runs given back to the extent allocator, ever
    std::size_t bytes_committed;         ///< capacity minus the bytes decommitted and not reused since
    std::uint64_t decommits;             ///< madvise calls that gave free pages back to the OS
    std::uint64_t bytes_decommitted;     ///< bytes they gave back, ever
    std::uint64_t trims;                 ///< trim() calls
    std::uint64_t decays;                ///< decay periods acted on
    std::uint64_t remote_frees;          ///< lower bound on frees of blocks another thread allocated
    std::size_t threads_attached;        ///< live thread caches
  };

  // ---------------------------------------------------------- construction

  /// Creates an arena on the default resource with default options.
  arena() : arena(options{}, std::pmr::get_default_resource()) {}
  /// Creates an arena on upstream (held, not owned) with default options.
  explicit arena(std::pmr::memory_resource* upstream) : arena(options{}, upstream) {}
  /// Reserves opts.capacity bytes from upstream (held, not owned).
  /// Throws: std::invalid_argument naming the field for invalid options or a
  /// null upstream; whatever the upstream throws (a plain std::bad_alloc as
  /// allocation_failure); std::bad_alloc for the page map.
  arena(options opts, std::pmr::memory_resource* upstream);
  /// Returns the region to the upstream. Threads that still hold a cache for
  /// this arena lose it without touching freed memory.
  /// Requires: no other thread is using the arena meanwhile.
  ~arena() override;

  // ------------------------------------------------------------- observers

  /// Returns the options this arena was created with (capacity rounded).
  [[nodiscard]] const options& get_options() const noexcept { return options_; }
  /// Returns the block size a request of bytes aligned to alignment gets, or
  /// 0 if it takes the large path. Requires: alignment is a power of two.
  [[nodiscard]] static std::size_t block_size_for(std::size_t bytes, std::size_t alignment) noexcept {
    const unsigned cls = detail::arena_class_for(bytes, alignment);
    return cls == detail::arena_large ? 0 : detail::arena_class_size(cls);
  }
  /// Returns whether p lies inside the region (as slab::contains; the name
  /// owns() means "the start of a live block", as in tracking_resource).
  [[nodiscard]] bool contains(const void* p) const noexcept {
    return reinterpret_cast<std::uintptr_t>(p) - base_ < capacity_;
  }
  /// The old name of contains(), kept for one release (0.2).
  [[nodiscard, deprecated("arena::owns() is now arena::contains()")]] bool owns(
      const void* p) const noexcept {
    return contains(p);
  }
  /// Returns capacity, per-class, run, extent, large-path and remote-free
  /// figures (a snapshot). Complexity: O(classes x attached threads + free extents).
  [[nodiscard]] details_type details() const;

  // ---------------------------------------------------------- housekeeping

  /// Gives back to the extent allocator all that is free now: the calling
  /// thread's cache is handed back at once, every other thread's at its next
  /// call that reaches a slow path (its next deallocate of a cached class
  /// does: its bin limits are set to 0), and each class's spare empty run
  /// goes back. Runs emptied by that go back as they empty. A thread that
  /// never calls the arena again keeps its cache until it exits. With
  /// options::decommit, the pages of every free extent then go back to the
  /// OS (madvise, under the region mutex).
  /// Returns: the bytes that went back to the extent allocator during the call.
  /// Complexity: O(classes x attached threads + blocks in this thread's cache).
  /// Thread safety: thread-safe.
  std::size_t trim() noexcept;
  /// Makes every block free at once (the caller's blocks included, which
  /// callers must no longer use): empties every thread cache and every run,
  /// and returns the whole region to the extent allocator; the region itself
  /// stays reserved from upstream. The blocks taken back count as
  /// deallocations, and bytes_in_use starts again from 0.
  /// With options::decommit, the whole region's pages go back to the OS.
  /// Complexity: O(pages + classes x attached threads).
  /// Requires: no other thread uses the arena meanwhile.
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

  static constexpr std::uint32_t no_run = UINT32_MAX;
  static constexpr std::uint32_t large_tag = UINT32_MAX;

  // A list of free blocks of one class, linked through their first word.
  struct block_list {
    void* head = nullptr;
    std::size_t count = 0;
  };

  // Everything below is cold and leaves the arena consistent.
  // Serves what the fast path could not: attaches a cache, refills a bin from
  // the class's runs, takes the large or hardened path, answers flush requests.
  STRATA_SLOW_PATH void* allocate_slow(std::size_t bytes, std::size_t alignment);
  // Frees what the fast path could not: a full bin (hands a batch back to its
  // runs), large blocks, hardened mode, flush requests, misuse.
  STRATA_SLOW_PATH void deallocate_slow(void* p, std::size_t bytes, std::size_t alignment) noexcept;
  // Returns this thread's cache, creating and registering it if needed;
  // nullptr in hardened mode, once the thread's exit hooks have run, or when
  // no memory is left for one: the caller then takes the cache-less path.
  detail::arena_thread_cache* attach() noexcept;
  // Returns up to want (>= 1) blocks of cls, poisoned and linked through
  // word 0: partial runs first, then the spare, then a new run; after a
  // reclaim() if none. Throws: allocation_failure (capacity) when none is left.
  block_list take_blocks(unsigned cls, std::size_t want, std::size_t bytes, std::size_t alignment);
  std::size_t take_blocks_once(unsigned cls, std::size_t want, block_list& out);
  // Takes up to want blocks from run r into out. Requires the pool mutex.
  void take_from_run(unsigned cls, std::uint32_t r, std::size_t want, block_list& out) noexcept;
  // Hands a poisoned list of count blocks of cls back to their runs; a run
  // that empties becomes the class's spare or goes back to the extent allocator.
  // Returns how many of its blocks were refused as misuse (dropped, reported).
  std::size_t give_blocks(unsigned cls, block_list list) noexcept;
  // A new run of cls from the extent allocator, or no_run. Requires the pool mutex.
  std::uint32_t new_run(unsigned cls) noexcept;
  // Gives an empty run back to the extent allocator. Requires the pool mutex.
  void return_run(unsigned cls, std::uint32_t r) noexcept;
  void unlink_partial(unsigned cls, std::uint32_t r) noexcept;
  void link_partial(unsigned cls, std::uint32_t r) noexcept;
  // Marks the pages of a span just taken from the extent allocator as in
  // use this period and committed again (a page the kernel dropped faults in
  // as zeros on first touch: no call needed). Requires region_mutex_.
  void commit_span(std::size_t first, std::size_t pages) noexcept;
  // Decommits free pages: all of them, or (idle_only, at decay) those no
  // span took since the previous decay, which then starts a new period. Holds region_mutex_ across madvise,
  // so no page is handed out while the kernel drops it.
  void decommit_free(bool idle_only) noexcept;
  // Hands every class's transfer-cache batches back to their runs, then
  // returns every class's spare run.
  void return_spares() noexcept;
  // Keeps a full bin's batch (head: batch_[cls] blocks ending in nullptr) in
  // the class's transfer cache; false (nothing changed) if it is full.
  bool put_batch(unsigned cls, void* head) noexcept;
  // After a failed request: hands this thread's cache back, returns the
  // spares and asks the other threads to flush.
  void reclaim() noexcept;
  // Moves blocks of the calling thread's cache back to their runs: all of
  // them, or (decay) what lies beyond one batch per bin, all of an idle bin.
  // Restores the bins' limits. Requires: cache is the calling thread's (or
  // its thread is exiting).
  void flush_cache(detail::arena_thread_cache& cache, bool everything) noexcept;
  // Answers a flush request or a zero limit (a fresh cache) on the owner's slow path.
  void serve_flush(detail::arena_thread_cache& cache) noexcept;
  // Asks every attached cache to flush at its next slow path. Requires the registry mutex.
  void request_flush_all(bool everything) noexcept;
  // Once per decay period: asks for working-set flushes and returns the spares.
  void decay_now() noexcept;
  // Central-pool links (word 0: next block), encoded when hardened. Free
  // blocks stay poisoned around them.
  [[nodiscard]] std::uintptr_t link_word(const void* at, const void* value) const noexcept;
  [[nodiscard]] void* link_get(void* block, unsigned word) const noexcept;
  void link_set(void* block, unsigned word, void* value) const noexcept;
  // The run of cls holding block p at a block boundary, or no_run (also
  // reports the block index). Lock-free; requires the pool mutex of cls for
  // the answer to stay true.
  [[nodiscard]] std::uint32_t run_of(const void* p, unsigned cls, std::size_t* index) const noexcept;
  [[nodiscard]] std::byte* run_start(std::uint32_t r) const noexcept {
    return reinterpret_cast<std::byte*>(base_ + std::size_t{r} * detail::arena_page);
  }
  void* large_allocate(std::size_t bytes, std::size_t alignment);
  // Returns false (nothing changed) if p is not a live large block of bytes.
  bool large_deallocate(void* p, std::size_t bytes) noexcept;
  // Records a handed-out block for hardened mode. Throws std::bad_alloc.
  void record_block(void* p, std::size_t bytes, std::size_t alignment);
  // Validates and forgets a block in hardened mode; false if it was misuse (reported).
  bool release_block(void* p, std::size_t bytes, std::size_t alignment) noexcept;
  // Hardened mode: whether next, read from a free block of run r, may be
  // followed: a block boundary of r, carved, not handed out; nullptr exactly
  // when the list should end. Requires the pool mutex; takes hardened_mutex_.
  bool link_valid(const void* next, unsigned cls, std::uint32_t r, bool should_end) const noexcept;
  // Counts and reports a link that failed link_valid.
  void reject_link(const void* next, unsigned cls) noexcept;
  // Moves one thread cache's blocks to their runs (its counters are folded
  // by the thread_cache_set). Requires the registry mutex.
  void drain(detail::arena_thread_cache& cache) noexcept;
  // Count on cache, or centrally (under the registry mutex) when it is nullptr.
  void count_allocation(detail::arena_thread_cache* cache, std::size_t bytes) noexcept;
  void count_deallocation(detail::arena_thread_cache* cache, std::size_t bytes) noexcept;
  void reject(misuse_kind kind, void* p, std::size_t bytes, std::size_t alignment) noexcept;
  bool invariants_hold() const noexcept;

  friend struct arena_access;  // the thread-exit hook in the .cpp

  // One class's runs with free blocks, all guarded by mutex.
  struct alignas(64) central_pool {  // apart from each other and from the read-only fields above
    mutable std::mutex mutex;
    std::uint32_t partial = no_run;  // first run with free blocks; linked through run_info
    std::uint32_t spare = no_run;    // an empty run kept for the next refill (decays)
    std::size_t runs = 0;            // runs of the class, the spare included
    std::size_t free_blocks = 0;     // free blocks in them (listed + never carved)
    // The transfer cache: whole batches a full bin handed back, kept for the
    // next refill of any thread, so blocks freed by one thread and allocated
    // by another move in O(1) per batch instead of block by block through
    // their runs. Each batch is batch_[cls] blocks linked through word 0 and
    // ending in nullptr; the batches are linked through each head's word 1.
    // At most transfer_limit_[cls] batches; all go to their runs at decay,
    // trim() and exhaustion (return_spares).
    void* batches = nullptr;
    std::uint32_t batch_count = 0;
  };
  // One per page; meaningful at a span's first page. tag says what the span
  // is (read lock-free: 0 nothing, cls + 1 a run of cls, large_tag a large
  // block); the rest of a run's record is guarded by its class's pool mutex.
  struct run_info {
    std::atomic<std::uint32_t> tag{0};
    std::uint32_t prev = no_run;  // partial list of its class
    std::uint32_t next = no_run;
    std::uint32_t carved = 0;  // blocks [0, carved) were handed out at least once; the rest never
    std::uint32_t listed = 0;  // blocks on free
    bool in_partial = false;
    bool cut = false;      // a bad link cut its list (hardened): it never empties, never returns
    void* free = nullptr;  // its free blocks, linked through word 0 (encoded when hardened)
  };
  struct block_record {
    std::size_t bytes;
    std::size_t alignment;
  };

  options options_;
  std::uint64_t id_;  // unique per arena, never reused
  // What the inline paths compare the thread's cache slot with: id_, or,
  // under a memory tool (decided at construction, once per process), a value
  // no slot holds, so every call takes the slow paths, which use the same
  // bins (they compare with id_) and poison. One compare covers both tests.
  std::uint64_t fast_id_;
  detail::link_codec codec_;  // run free-list links (hardened only)
  std::uintptr_t base_;       // region start
  std::size_t capacity_;      // region bytes (a multiple of arena_page)
  // Per class: blocks a refill takes, and blocks a bin holds before handing a batch back.
  std::array<std::uint32_t, detail::arena_class_count> batch_{};
  std::array<std::uint32_t, detail::arena_class_count> bin_limit_{};
  // Per class: batches the transfer cache holds (0: none, for one-block batches).
  std::array<std::uint32_t, detail::arena_class_count> transfer_limit_{};
  // Per class: pages of a run, and the blocks in it.
  std::array<std::uint32_t, detail::arena_class_count> run_pages_{};
  std::array<std::uint32_t, detail::arena_class_count> run_blocks_{};
  std::array<central_pool, detail::arena_class_count> pools_;

  alignas(64) mutable std::mutex region_mutex_;  // guards extents_ and the large-path figures
  detail::extent_map extents_;                   // the region's pages: runs, large blocks, free extents
  std::unique_ptr<run_info[]> runs_;             // one per page
  std::size_t large_live_ = 0;
  std::size_t large_live_bytes_ = 0;
  std::uint64_t runs_returned_ = 0;
  std::uint64_t bytes_returned_ = 0;  // to the extent allocator by runs and large frees, ever
  // Per page (guarded by region_mutex_): page_decommitted bit, page_touched bit.
  static constexpr std::uint8_t page_decommitted = 1;
  static constexpr std::uint8_t page_touched = 2;  // taken by a span since the last decay
  std::unique_ptr<std::uint8_t[]> page_state_;
  std::size_t os_page_;  // the OS page size: madvise works on whole ones
  std::size_t decommitted_pages_ = 0;
  std::uint64_t decommits_ = 0;
  std::uint64_t bytes_decommitted_ = 0;

  mutable std::mutex hardened_mutex_;  // guards handed_out_ (hardened mode only)
  std::unordered_map<const void*, block_record> handed_out_;

  detail::decay_clock decay_;
  std::atomic<std::uint64_t> trims_{0};
  std::atomic<std::uint64_t> decays_{0};

  // Guarded by the process-wide registry mutex (see the .cpp).
  detail::thread_cache_set<detail::arena_thread_cache> caches_;  // attached thread caches, owned
  std::uint64_t retired_remote_frees_ = 0;
  std::uint64_t released_blocks_ = 0;  // taken back by release(), counted as deallocations

  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> late_refusals_{
      0};  // of rejected_: deallocates a bin took and counted first  // deallocates refused as misuse
};

// ------------------------------------------------------------- fast paths
//
// The inline paths serve the common request: up to 1 KiB, alignment 1..16
// (one table load gives the class), from this thread's bin. Everything else
// goes to the out-of-line *_slow paths, which first try the same bins for
// the other classes (the class computed, then the same pop or push), then
// handle an empty or full bin, another arena's or no cache, the large path,
// hardened mode and misuse.

// Pops a block from this thread's bin: no lock, no atomic read-modify-write,
// and no call but the tail call to the slow path, so no register is saved.
// Under a memory tool every call is slow (fast_id_), where the same pop also
// unpoisons.
inline void* arena::do_allocate(std::size_t bytes, std::size_t alignment) {
  detail::arena_cache_slot& slot = detail::current_thread_cache<detail::arena_thread_cache>;
  if (bytes <= detail::arena_table_max && detail::arena_small_alignment(alignment) &&
      slot.owner_id == fast_id_) [[likely]] {
    if (void* p = detail::arena_pop<false>(*slot.cache, detail::arena_small_class_table[(bytes + 15) >> 4],
                                           bytes)) [[likely]] {
      return p;
    }
  }
  return allocate_slow(bytes, alignment);
}

// Pushes a block onto this thread's bin while it has room, whichever thread
// allocated it: the bin hands batches back to their runs when full. As
// do_allocate, it poisons only on the slow path.
inline void arena::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  detail::arena_cache_slot& slot = detail::current_thread_cache<detail::arena_thread_cache>;
  if (bytes <= detail::arena_table_max && detail::arena_small_alignment(alignment) &&
      slot.owner_id == fast_id_ && contains(p)) [[likely]] {
    const unsigned cls = detail::arena_small_class_table[(bytes + 15) >> 4];
    if (detail::arena_push<false>(*slot.cache, cls, p, bytes)) [[likely]]
      return;
  }
  deallocate_slow(p, bytes, alignment);
}

}  // namespace strata
