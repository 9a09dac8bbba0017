// SPDX-License-Identifier: MIT
// The slow half of the per-thread cache lifetime scheme described in
// include/strata/detail/thread_cache.hpp, written once for every resource with
// thread caches (chunk_provider, extendable_slab, arena): one process-wide
// table of the live resources of a type, each thread's attachments, and the
// thread-exit hook that hands a cache back to its resource's
// thread_cache_set. Private to src/: only the resources' .cpp files (and the
// core's own test) include it, so the template is instantiated once per
// resource type.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "strata/detail/thread_cache.hpp"

namespace strata::detail {

/// One process-wide registry per resource type (Owner), with that type's
/// per-thread caches (Cache). Access provides two static hooks:
/// - `thread_cache_set<Cache>& caches(Owner&)`: the resource's set;
/// - `void drain(Owner&, Cache&)`: moves the cache's contents (bins) into the
///   resource, run under mutex() when the cache's thread exits. It must not
///   call any upstream: an upstream may be another resource whose own
///   thread-exit path needs a registry mutex.
///
/// Thread safety: every member may be called from any thread. mutex() guards
/// the live table and every resource's thread_cache_set of this type. Each
/// thread's attachment list is touched only by that thread, without the lock.
template <class Owner, class Cache, class Access>
class thread_cache_registry {
 public:
  /// The registry, leaked on purpose: threads may exit (and run the hook
  /// below) after static destruction has begun.
  static thread_cache_registry& instance() {
    static thread_cache_registry* const registry = new thread_cache_registry;
    return *registry;
  }

  [[nodiscard]] std::mutex& mutex() noexcept { return mutex_; }

  /// A fresh id, never reused in the process (0 is never handed out).
  [[nodiscard]] static std::uint64_t new_id() noexcept {
    return next_id_.fetch_add(1, std::memory_order_relaxed);
  }

  /// Makes the resource visible to exiting threads. Call last in its
  /// constructor, once nothing else can throw.
  void enroll(std::uint64_t id, Owner& owner) {
    std::lock_guard lock(mutex_);
    live_.emplace(id, &owner);
  }

  /// Removes the resource and deletes the caches of threads still running.
  /// Call first in its destructor. Their stale slots and attachment entries
  /// carry an id no live resource has, so they are never followed again.
  void withdraw(std::uint64_t id, thread_cache_set<Cache>& set) noexcept {
    std::lock_guard lock(mutex_);
    live_.erase(id);
    set.delete_all();
  }

  /// The calling thread's cache for the resource with this id if it has one
  /// (the MRU slot, else its attachment list), without creating one and
  /// without a lock; nullptr otherwise. Leaves the slot alone.
  [[nodiscard]] Cache* find(std::uint64_t id) noexcept {
    const thread_cache_slot<Cache>& slot = current_thread_cache<Cache>;
    if (slot.owner_id == id) return slot.cache;
    if (thread_caches_closed) return nullptr;
    // An entry with a live resource's id points at a cache only that resource
    // (alive: the caller is in it) or this thread frees.
    for (const auto& [entry_id, cache] : attachments.caches) {
      if (entry_id == id) return cache;
    }
    return nullptr;
  }

  /// The calling thread's cache for the resource with this id: the MRU slot,
  /// else the thread's own attachment list (no lock, so a thread switching
  /// between resources stays off the mutex), else a new cache adopted by set
  /// and listed for the thread-exit hand-back. The slot is pointed at the
  /// cache only when arm is true (a resource whose fast path must stay off
  /// leaves it alone). Returns nullptr once this thread's exit hooks have run
  /// (thread_caches_closed): the caller then takes its cache-less path, so
  /// that nothing is attached that no hook would hand back. Throws
  /// std::bad_alloc and then changes nothing.
  [[nodiscard]] Cache* attach(std::uint64_t id, thread_cache_set<Cache>& set, bool arm) {
    thread_cache_slot<Cache>& slot = current_thread_cache<Cache>;
    if (slot.owner_id == id) return slot.cache;
    if (thread_caches_closed) return nullptr;
    if (Cache* cache = find(id)) {
      if (arm) slot = thread_cache_slot<Cache>{id, cache};
      return cache;
    }
    thread_attachments& mine = attachments;
    std::lock_guard lock(mutex_);
    std::erase_if(mine.caches, [&](const auto& entry) { return !live_.contains(entry.first); });
    auto owned = std::make_unique<Cache>();
    mine.caches.reserve(mine.caches.size() + 1);
    set.reserve_one();
    set.adopt(owned.get());                     // cannot throw: reserved
    mine.caches.emplace_back(id, owned.get());  // cannot throw: reserved
    if (arm) slot = thread_cache_slot<Cache>{id, owned.get()};
    return owned.release();
  }

  /// Hands the calling thread's cache for the resource back now (as its exit
  /// would): drained into the resource, retired and forgotten by the thread.
  /// Its next call attaches a fresh one. Returns whether it had one.
  bool detach_mine(std::uint64_t id, Owner& owner) noexcept {
    if (thread_caches_closed) return false;
    Cache* cache = find(id);
    if (cache == nullptr) return false;
    std::lock_guard lock(mutex_);
    Access::drain(owner, *cache);
    Access::caches(owner).retire(cache);
    std::erase_if(attachments.caches, [&](const auto& entry) { return entry.first == id; });
    thread_cache_slot<Cache>& slot = current_thread_cache<Cache>;
    if (slot.owner_id == id) slot = thread_cache_slot<Cache>{0, nullptr};
    return true;
  }

 private:
  // The caches this thread has attached, handed back at thread exit. Touched
  // only on slow paths and only by its thread.
  struct thread_attachments {
    std::vector<std::pair<std::uint64_t, Cache*>> caches;
    ~thread_attachments() {
      thread_cache_registry& r = instance();
      std::lock_guard lock(r.mutex_);
      for (const auto& [id, cache] : caches) {
        const auto it = r.live_.find(id);
        if (it == r.live_.end()) continue;  // the resource is gone and deleted the cache itself
        Access::drain(*it->second, *cache);
        Access::caches(*it->second).retire(cache);
      }
      caches.clear();
      current_thread_cache<Cache> = thread_cache_slot<Cache>{0, nullptr};
      thread_caches_closed = true;  // later calls on this thread take the cache-less path
    }
  };

  thread_cache_registry() = default;

  static inline std::atomic<std::uint64_t> next_id_{1};
  static inline thread_local thread_attachments attachments;

  std::mutex mutex_;
  std::unordered_map<std::uint64_t, Owner*> live_;  // by id; guarded by mutex_
};

}  // namespace strata::detail
