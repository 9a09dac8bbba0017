// SPDX-License-Identifier: MIT
#pragma once

#include "version.hpp"  // first: it stops a pre-C++20 build with a clear message

#include <cstddef>
#include <memory>
#include <memory_resource>
#include <new>
#include <utility>

namespace strata {

/// A unique_ptr deleter that knows the resource its object came from:
/// destroys the object and gives its storage back to that resource with the
/// size and alignment of T. Holds the resource without owning it.
/// Thread safety: as the resource's deallocate.
template <class T>
class resource_deleter {
 public:
  /// Requires: r is the resource the object was allocated from, and outlives it.
  explicit resource_deleter(std::pmr::memory_resource* r) noexcept : resource_(r) {}

  void operator()(T* p) const noexcept {
    p->~T();
    resource_->deallocate(p, sizeof(T), alignof(T));
  }
  /// Returns the resource the object goes back to.
  [[nodiscard]] std::pmr::memory_resource* resource() const noexcept { return resource_; }

 private:
  std::pmr::memory_resource* resource_;  // held, not owned; never null
};

/// A unique_ptr whose deleter returns the object to its resource.
template <class T>
using resource_unique_ptr = std::unique_ptr<T, resource_deleter<T>>;

/// Allocates a T from r and constructs it from args: the pmr counterpart of
/// std::make_unique, whose pointer frees itself to the right resource. If
/// the constructor throws, the storage goes back to r and the exception
/// passes through; if r throws (bad_alloc, allocation_failure), nothing was
/// constructed. For an unbounded array, or a T whose alignment exceeds what
/// r honours, use the resource directly.
///
///     auto session = strata::allocate_unique<session_state>(&scratch, request_id);
template <class T, class... Args>
[[nodiscard]] resource_unique_ptr<T> allocate_unique(std::pmr::memory_resource* r, Args&&... args) {
  static_assert(!std::is_array_v<T>, "allocate_unique makes one object, not an array");
  void* storage = r->allocate(sizeof(T), alignof(T));
  try {
    T* object = ::new (storage) T(std::forward<Args>(args)...);
    return resource_unique_ptr<T>{object, resource_deleter<T>{r}};
  } catch (...) {
    r->deallocate(storage, sizeof(T), alignof(T));
    throw;
  }
}

}  // namespace strata
