// SPDX-License-Identifier: MIT
#pragma once

#include <atomic>
#include <cstdint>

// Pieces of the per-thread cache machinery that a thread-safe resource with a
// lock-free fast path needs: the parts its inline fast paths read. The slow
// parts (the registry of live resources, attaching, the thread-exit hook) are
// one template in src/thread_cache_registry.hpp, used by chunk_provider,
// extendable_slab and arena. Not part of the public API.
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

/// Adds by to counter. Requires: the calling thread is counter's only writer.
inline void single_writer_add(single_writer_counter& counter, std::uint64_t by = 1) noexcept {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

/// The per-thread counters a cache keeps for resource_stats: calls, the
/// caller's bytes this thread holds (it may go below zero on a thread that
/// frees what others allocated; the sum over threads is exact), and the
/// high-water mark of this thread's own view. Two or three stores per call.
struct thread_counters {
  single_writer_counter allocations{0};
  single_writer_counter deallocations{0};
  single_writer_counter bytes_in_use{0};  // as two's complement: may "wrap below zero"
  single_writer_counter peak_bytes_in_use{0};

  void on_allocate(std::uint64_t bytes) noexcept {
    single_writer_add(allocations);
    const std::uint64_t in_use = bytes_in_use.load(std::memory_order_relaxed) + bytes;
    bytes_in_use.store(in_use, std::memory_order_relaxed);
    // The signed view keeps a thread that freed others' blocks from raising the peak.
    if (static_cast<std::int64_t>(in_use) >
        static_cast<std::int64_t>(peak_bytes_in_use.load(std::memory_order_relaxed))) {
      peak_bytes_in_use.store(in_use, std::memory_order_relaxed);
    }
  }
  void on_deallocate(std::uint64_t bytes) noexcept {
    single_writer_add(deallocations);
    bytes_in_use.store(bytes_in_use.load(std::memory_order_relaxed) - bytes, std::memory_order_relaxed);
  }
};

}  // namespace strata::detail
