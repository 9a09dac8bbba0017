// SPDX-License-Identifier: MIT
// The slow half of the per-thread cache lifetime scheme described in
// include/strata/detail/thread_cache.hpp, shared by every resource with
// thread caches (chunk_provider, extendable_slab, arena). Private to src/:
// only the resources' .cpp files include it, so the template is instantiated
// once per resource type, in that resource's translation unit.
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
/// per-thread caches (Cache). Access::detach(Owner&, Cache*) is the resource
/// hook run at thread exit, under mutex(), for each cache of a still-live
/// resource: it must move the cache's contents and counters into the
/// resource, drop the cache from the resource's list and delete it, and must
/// not call any upstream (an upstream may be another resource whose own
/// thread-exit path needs a registry mutex).
///
/// Thread safety: every member may be called from any thread. mutex() guards
/// the live table and, by the resources' convention, their lists of attached
/// caches and the totals of detached ones. Each thread's attachment list is
/// touched only by that thread, without the lock.
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
  void withdraw(std::uint64_t id, std::vector<Cache*>& caches) noexcept {
    std::lock_guard lock(mutex_);
    live_.erase(id);
    for (Cache* cache : caches) delete cache;
    caches.clear();
  }

  /// The calling thread's cache for the resource with this id: the MRU slot,
  /// else the thread's own attachment list (no lock, so a thread switching
  /// between resources stays off the mutex), else a new cache added to both
  /// lists and to caches (the resource's list, guarded by mutex()). The slot
  /// is pointed at the cache only when arm is true (a resource whose fast
  /// path must stay off leaves it alone). Returns nullptr once this thread's
  /// exit hooks have run (thread_caches_closed). Throws std::bad_alloc and
  /// then changes nothing.
  [[nodiscard]] Cache* attach(std::uint64_t id, std::vector<Cache*>& caches, bool arm) {
    thread_cache_slot<Cache>& slot = current_thread_cache<Cache>;
    if (slot.owner_id == id) return slot.cache;
    if (thread_caches_closed) return nullptr;
    thread_attachments& mine = attachments;
    // An entry with a live resource's id points at a cache only that resource
    // (alive: the caller is in it) or this thread frees.
    for (const auto& [entry_id, cache] : mine.caches) {
      if (entry_id == id) {
        if (arm) slot = thread_cache_slot<Cache>{id, cache};
        return cache;
      }
    }
    std::lock_guard lock(mutex_);
    std::erase_if(mine.caches, [&](const auto& entry) { return !live_.contains(entry.first); });
    auto owned = std::make_unique<Cache>();
    mine.caches.reserve(mine.caches.size() + 1);
    caches.reserve(caches.size() + 1);
    caches.push_back(owned.get());              // cannot throw: reserved
    mine.caches.emplace_back(id, owned.get());  // cannot throw: reserved
    if (arm) slot = thread_cache_slot<Cache>{id, owned.get()};
    return owned.release();
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
        if (it != r.live_.end()) Access::detach(*it->second, cache);
        // else the resource is gone and deleted the cache itself
      }
      caches.clear();
      current_thread_cache<Cache> = thread_cache_slot<Cache>{0, nullptr};
      thread_caches_closed = true;  // later frees on this thread take the cache-less path
    }
  };

  thread_cache_registry() = default;

  static inline std::atomic<std::uint64_t> next_id_{1};
  static inline thread_local thread_attachments attachments;

  std::mutex mutex_;
  std::unordered_map<std::uint64_t, Owner*> live_;  // by id; guarded by mutex_
};

}  // namespace strata::detail
