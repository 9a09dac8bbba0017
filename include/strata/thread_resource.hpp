// SPDX-License-Identifier: MIT
#pragma once

#include "version.hpp"  // first: it stops a pre-C++20 build with a clear message

#include <memory_resource>

namespace strata {

// A per-thread "current resource" for one scope: code deep in a request's
// call stack reaches the request's arena without it being passed down.
//
//     strata::monotonic_arena scratch{&chunks};              // this worker's arena
//     strata::thread_resource_scope use{&scratch};           // until the end of the scope
//     ...
//     std::pmr::vector<int> ids{strata::this_thread_resource()};   // on scratch
//
// Why not std::pmr::set_default_resource: it is process-wide, so one
// thread's arena would become every thread's default. And why not a
// thread-local default behind a dispatching resource installed as the
// process default: a container captures the resource pointer it was built
// with, so a container built before the scope (or one outliving it) would
// allocate from one resource and free into another. Here a container
// captures the real resource, so its frees always reach the resource that
// allocated; the scope only decides which resource new containers get.
//
// Thread safety: each thread has its own current resource; a scope must be
// destroyed on the thread that made it (scopes on one thread nest, last in,
// first out, as automatic objects do).

namespace detail {
// The innermost scope's resource on this thread; nullptr outside every scope.
inline thread_local std::pmr::memory_resource* thread_resource = nullptr;
}  // namespace detail

/// Returns the resource of this thread's innermost thread_resource_scope, or
/// std::pmr::get_default_resource() (as it is now) outside every scope.
[[nodiscard]] inline std::pmr::memory_resource* this_thread_resource() noexcept {
  std::pmr::memory_resource* r = detail::thread_resource;
  return r != nullptr ? r : std::pmr::get_default_resource();
}

/// Makes r this thread's current resource (this_thread_resource()) until the
/// scope ends, then restores the previous one. Holds r without owning it.
class thread_resource_scope {
 public:
  /// Requires: r is not null and outlives the scope.
  explicit thread_resource_scope(std::pmr::memory_resource* r) noexcept : previous_(detail::thread_resource) {
    detail::thread_resource = r;
  }
  ~thread_resource_scope() { detail::thread_resource = previous_; }
  thread_resource_scope(const thread_resource_scope&) = delete;
  thread_resource_scope& operator=(const thread_resource_scope&) = delete;

 private:
  std::pmr::memory_resource* previous_;
};

}  // namespace strata
