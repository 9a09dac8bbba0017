// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <vector>

// Pieces of the per-thread cache machinery that a thread-safe resource with a
// lock-free fast path needs: the parts its inline fast paths read. The slow
// parts (the registry of live resources, attaching, the thread-exit hook,
// summing counters, peaks, flush requests) are written once: thread_cache_set
// below (one resource's caches) and the registry in
// src/thread_cache_registry.hpp, used by chunk_provider, extendable_slab and
// arena. Not part of the public API.
//
// The lifetime scheme every user follows:
// - each resource has an id that is never reused, and registers itself in a
//   process-wide table of live resources while it exists;
// - a constinit thread_local slot (id, cache*) remembers the cache the thread
//   used last, so the fast path reads one TLS word pair and compares the id;
// - a thread_local list of (id, cache*) attachments has a destructor that, at
//   thread exit and under the table's mutex, hands the cache back to its
//   resource if that id is still live;
// - a resource that dies first deletes the caches of threads still running;
//   their stale slot and attachments carry an id no live resource has, so
//   they are never followed;
// - after a thread's exit hooks have run (thread_caches_closed), nothing
//   touches its attachment lists again.

namespace strata::detail {

/// Set on a thread once any strata resource's thread-exit hook has run. From
/// then on that thread's attachment lists may already be destroyed, so no
/// resource may touch them: frees from thread_local destructors that run
/// later, or from static destructors on the main thread, take a path that
/// does not (each resource documents which).
inline constinit thread_local bool thread_caches_closed = false;

/// The calling thread's most recently used cache of one kind (Cache is the
/// resource's per-thread cache type): the id of the resource it belongs to and
/// the cache. constinit and trivially destructible, so a fast path reads it
/// without a TLS wrapper call: one TLS read and an id compare decide whether
/// the cache may be used. Only the owning thread reads or writes it. Ids are
/// never reused, so a slot naming a dead resource is never followed.
template <class Cache>
struct thread_cache_slot {
  std::uint64_t owner_id;  // 0: none (ids start at 1)
  Cache* cache;
};
/// The slot uses the initial-exec TLS model: in position-independent code
/// (libstrata.so, a user's shared library, the static library built with
/// -fPIC) the default general-dynamic model reads the slot through a call to
/// __tls_get_addr, which also makes the fast path save and restore registers
/// around it; with initial-exec it is one %fs-relative load. The cost: a
/// shared library that holds this slot takes a few bytes of static TLS, which
/// glibc provides for libraries loaded at startup and, from its reserve, for
/// dlopen'ed ones.
template <class Cache>
[[gnu::tls_model("initial-exec")]] inline constinit thread_local thread_cache_slot<Cache>
    current_thread_cache{0, nullptr};

/// A counter with a single writer (its thread): the writer updates it with a
/// relaxed load and store, never a read-modify-write, and other threads may
/// read it for statistics.
using single_writer_counter = std::atomic<std::uint64_t>;

#if defined(__SANITIZE_THREAD__)
#define STRATA_SINGLE_WRITER_ATOMIC_PAIR 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRATA_SINGLE_WRITER_ATOMIC_PAIR 1
#endif
#endif

/// Adds by to counter (a relaxed load, add and store; by may be a negated
/// value). Requires: the calling thread is counter's only writer.
/// On x86-64 it is one instruction, an add to memory: it loads and stores
/// the aligned word (not a locked read-modify-write), so other threads'
/// relaxed loads see the old or the new value, as with the atomic pair, for
/// which GCC 12 emits a load, an add and a store. On the chunk_provider pair
/// that was 1.7x the floor against 1.5x with the one instruction (issue 15).
/// Under ThreadSanitizer the atomic pair is kept, so every access is checked.
inline void single_writer_add(single_writer_counter& counter, std::uint64_t by = 1) noexcept {
#if defined(__x86_64__) && !defined(STRATA_SINGLE_WRITER_ATOMIC_PAIR)
  asm volatile("addq %1, %0" : "+m"(counter) : "er"(by) : "cc");  // volatile: never dropped as unused
#else
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
#endif
}

/// What every per-thread cache keeps for the shared bookkeeping in
/// thread_cache_set below (stats summing, thread-exit hand-back, peaks,
/// flush requests). A resource's cache type derives from it and adds its
/// bins and `allocations()` / `deallocations()` observers (counted in the way
/// its fast paths find cheapest), so one scheme sums them all.
///
/// The caller's bytes are two monotonic counters, allocated and deallocated
/// on this thread (modulo 2^64); bytes_in_use() is their difference in two's
/// complement: it goes "below zero" on a thread that frees what others
/// allocated, and the sum over threads is exact. Two counters, not one
/// running figure: a pair of calls on one running word is two dependent
/// read-modify-writes through memory, and that chain set the speed of the
/// chunk_provider pair (4.4 ns against 2.6 ns for the floor on the bench
/// machine of 2026-12-04); with two words each call adds to its own. The
/// peak is this thread's own high-water mark. All three have one writer,
/// the thread.
struct thread_cache_base {
  single_writer_counter bytes_allocated{0};
  single_writer_counter bytes_deallocated{0};
  single_writer_counter peak_bytes_in_use{0};
  /// Set by another thread (trim(), or a resource draining idle caches) to
  /// ask the owner to hand its cache back at its next slow-path call; the
  /// owner clears it (take_flush_request). Read with a relaxed load.
  std::atomic<bool> flush_requested{false};

  /// The caller's bytes held through this thread, in two's complement. From
  /// another thread, a snapshot of two relaxed loads (exact when quiescent).
  [[nodiscard]] std::uint64_t bytes_in_use() const noexcept {
    return bytes_allocated.load(std::memory_order_relaxed) -
           bytes_deallocated.load(std::memory_order_relaxed);
  }
  /// Counts bytes handed out on this thread and keeps the peak.
  void note_allocated(std::uint64_t bytes) noexcept {
    single_writer_add(bytes_allocated, bytes);
    const std::uint64_t in_use = bytes_in_use();
    // The signed view keeps a thread that freed others' blocks from raising the peak.
    if (static_cast<std::int64_t>(in_use) >
        static_cast<std::int64_t>(peak_bytes_in_use.load(std::memory_order_relaxed))) [[unlikely]] {
      peak_bytes_in_use.store(in_use, std::memory_order_relaxed);
    }
  }
  /// Counts bytes given back on this thread.
  void note_deallocated(std::uint64_t bytes) noexcept { single_writer_add(bytes_deallocated, bytes); }
  /// Makes bytes_in_use() zero. Requires: the owner is not using the cache.
  void forget_bytes_in_use() noexcept {
    bytes_deallocated.store(bytes_allocated.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
  /// Whether a flush was requested, clearing the request. Only the owner
  /// calls it, on a slow path. A request arriving between the load and the
  /// store is answered by the flush the caller does next.
  [[nodiscard]] bool take_flush_request() noexcept {
    if (!flush_requested.load(std::memory_order_relaxed)) return false;
    flush_requested.store(false, std::memory_order_relaxed);
    return true;
  }
};

/// Sums of a resource's thread-cache counters: calls, the caller's bytes held
/// (exact as a sum, modulo 2^64 per part) and the best-known peak.
struct cache_totals {
  std::uint64_t allocations = 0;
  std::uint64_t deallocations = 0;
  std::uint64_t bytes_in_use = 0;  // two's complement: add other parts, then read as a size
  std::size_t peak_bytes_in_use = 0;
};

/// One resource's thread caches (owned) and the counters of caches that are
/// gone. Cache derives from thread_cache_base and has
/// `std::uint64_t allocations() const noexcept` and `deallocations()`.
///
/// Thread safety: every member requires the registry mutex of the resource's
/// type (thread_cache_registry::mutex()), except raise_peak and the
/// count_cacheless_ pair, which are lock-free. A cache's counters are read
/// here while its thread writes them: relaxed loads of single-writer
/// atomics, so a sum taken while threads allocate is a snapshot, exact when
/// they are quiescent.
template <class Cache>
class thread_cache_set {
 public:
  thread_cache_set() = default;
  thread_cache_set(const thread_cache_set&) = delete;
  thread_cache_set& operator=(const thread_cache_set&) = delete;
  ~thread_cache_set() { delete_all(); }

  /// The attached caches, oldest first.
  [[nodiscard]] const std::vector<Cache*>& caches() const noexcept { return caches_; }
  [[nodiscard]] std::size_t size() const noexcept { return caches_.size(); }

  /// Makes room to adopt one more cache (so adopt cannot throw). Throws std::bad_alloc.
  void reserve_one() { caches_.reserve(caches_.size() + 1); }
  /// Takes ownership of cache. Requires: reserve_one() since the last adopt.
  void adopt(Cache* cache) noexcept { caches_.push_back(cache); }

  /// Folds cache's counters into the totals and deletes it. The resource must
  /// have moved its contents (bins) elsewhere first.
  void retire(Cache* cache) noexcept {
    retired_allocations_ += cache->allocations();
    retired_deallocations_ += cache->deallocations();
    retired_bytes_in_use_ += cache->bytes_in_use();
    raise_peak(signed_peak(*cache));
    std::erase(caches_, cache);
    delete cache;
  }

  /// Deletes every cache without folding it (the resource is dying).
  void delete_all() noexcept {
    for (Cache* cache : caches_) delete cache;
    caches_.clear();
  }

  /// Counts a call made on a thread without a cache (exiting, out of memory
  /// for one, or a hardened mode that has none), and raises the peak by what
  /// such calls hold. Lock-free: in hardened mode every call comes here, and
  /// the registry mutex for each was a sixth of the arena's hardened pair.
  void count_cacheless_allocation(std::size_t bytes) noexcept {
    cacheless_allocations_.fetch_add(1, std::memory_order_relaxed);
    const auto in_use = static_cast<std::int64_t>(
        cacheless_bytes_in_use_.fetch_add(bytes, std::memory_order_relaxed) + bytes);
    if (in_use > 0) raise_peak(static_cast<std::size_t>(in_use));
  }
  /// As count_cacheless_allocation (lock-free).
  void count_cacheless_deallocation(std::size_t bytes) noexcept {
    cacheless_deallocations_.fetch_add(1, std::memory_order_relaxed);
    cacheless_bytes_in_use_.fetch_sub(bytes, std::memory_order_relaxed);
  }

  /// The sums over attached and retired caches. Complexity: O(caches).
  [[nodiscard]] cache_totals totals() const noexcept {
    cache_totals t{retired_allocations_ + cacheless_allocations_.load(std::memory_order_relaxed),
                   retired_deallocations_ + cacheless_deallocations_.load(std::memory_order_relaxed),
                   retired_bytes_in_use_ + cacheless_bytes_in_use_.load(std::memory_order_relaxed),
                   peak_.load(std::memory_order_relaxed)};
    for (const Cache* cache : caches_) {
      t.allocations += cache->allocations();
      t.deallocations += cache->deallocations();
      t.bytes_in_use += cache->bytes_in_use();
      t.peak_bytes_in_use = std::max(t.peak_bytes_in_use, signed_peak(*cache));
    }
    return t;
  }

  /// Restarts every peak from what each thread holds now. Best effort while
  /// threads allocate: a cache's peak has one writer, its thread, which may
  /// overwrite this store with its own newer figure. The resource sets its
  /// own peak to max(peak, bytes_in_use) when it reads the stats.
  void reset_peak() noexcept {
    for (Cache* cache : caches_) {
      const auto in_use = static_cast<std::int64_t>(cache->bytes_in_use());
      cache->peak_bytes_in_use.store(in_use > 0 ? static_cast<std::uint64_t>(in_use) : 0,
                                     std::memory_order_relaxed);
    }
    peak_.store(0, std::memory_order_relaxed);
  }

  /// For release(): what callers held is dropped from the books, so
  /// bytes_in_use (and the peaks, after a reset_peak) start again from zero.
  /// Calls stay counted: allocations - deallocations then exceeds the live
  /// blocks by the blocks release() took back, which the resource reports
  /// as it sees fit. Requires: no other thread uses the resource meanwhile.
  void forget_bytes_in_use() noexcept {
    for (Cache* cache : caches_) cache->forget_bytes_in_use();
    retired_bytes_in_use_ = 0;
    cacheless_bytes_in_use_.store(0, std::memory_order_relaxed);
  }

  /// Asks every attached cache's thread to hand its cache back at its next
  /// slow-path call (each resource says which calls reach its slow path).
  void request_flush() noexcept {
    for (Cache* cache : caches_) cache->flush_requested.store(true, std::memory_order_relaxed);
  }

  /// Raises the peak kept for retired caches and paths without a cache
  /// (lock-free: any thread, any time).
  void raise_peak(std::size_t bytes) noexcept {
    std::size_t peak = peak_.load(std::memory_order_relaxed);
    while (bytes > peak && !peak_.compare_exchange_weak(peak, bytes, std::memory_order_relaxed)) {
    }
  }

 private:
  // A thread that freed others' blocks may hold a "negative" peak: it counts as 0.
  static std::size_t signed_peak(const Cache& cache) noexcept {
    const auto peak = static_cast<std::int64_t>(cache.peak_bytes_in_use.load(std::memory_order_relaxed));
    return peak > 0 ? static_cast<std::size_t>(peak) : 0;
  }

  std::vector<Cache*> caches_;
  std::uint64_t retired_allocations_ = 0;
  std::uint64_t retired_deallocations_ = 0;
  std::uint64_t retired_bytes_in_use_ = 0;  // modulo 2^64
  std::atomic<std::size_t> peak_{0};        // of retired caches, and reset_peak's floor
  // Calls on threads without a cache (lock-free; bytes modulo 2^64).
  std::atomic<std::uint64_t> cacheless_allocations_{0};
  std::atomic<std::uint64_t> cacheless_deallocations_{0};
  std::atomic<std::uint64_t> cacheless_bytes_in_use_{0};
};

/// A wall-clock period shared by the threads of one resource: due() answers
/// true at most once per period, to the first slow path that asks after it
/// elapsed, so idle memory is examined on a timer without a thread of our
/// own. A zero period means never. Thread safety: any thread; lock-free.
///
/// Time is the kernel's coarse monotonic clock where there is one
/// (CLOCK_MONOTONIC_COARSE: about 4 ns to read through the vDSO, against about
/// 18 ns for steady_clock, and every slow path reads it; in hardened mode that
/// is every call). Its resolution is one kernel tick (1-10 ms), so a period is
/// acted on between period - tick and period + tick after it began; decay
/// periods are seconds by default and tens of milliseconds at the least useful.
class decay_clock {
 public:
  /// Periods above a century are treated as a century (a longer one would
  /// overflow the nanosecond arithmetic and wrap to a short period).
  explicit decay_clock(std::chrono::milliseconds period) noexcept
      : period_(saturated_ns(period)), next_due_(now_ns() + period_) {}

  [[nodiscard]] std::int64_t period_ns() const noexcept { return period_; }

  /// Whether the period has elapsed since the last time due() said so (or
  /// construction); if so, the next period starts now.
  [[nodiscard]] bool due() noexcept {
    if (period_ <= 0) return false;
    const std::int64_t now = now_ns();
    std::int64_t next = next_due_.load(std::memory_order_relaxed);
    return now >= next && next_due_.compare_exchange_strong(next, now + period_, std::memory_order_relaxed);
  }

  /// period in nanoseconds, at most a century.
  [[nodiscard]] static std::int64_t saturated_ns(std::chrono::milliseconds period) noexcept {
    constexpr std::int64_t century_ms = std::int64_t{100} * 365 * 24 * 3600 * 1000;
    return std::min<std::int64_t>(period.count(), century_ms) * 1'000'000;
  }

  /// Monotonic nanoseconds on the clock described above.
  [[nodiscard]] static std::int64_t now_ns() noexcept {
#ifdef CLOCK_MONOTONIC_COARSE
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    return std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
#else
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
#endif
  }

 private:
  std::int64_t period_;
  std::atomic<std::int64_t> next_due_;
};

}  // namespace strata::detail
