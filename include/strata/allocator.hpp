// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <limits>
#include <new>
#include <type_traits>

#include "resource.hpp"

namespace strata {

/// A standard allocator bound to one concrete strata resource type R (slab,
/// monotonic_arena, extendable_slab, arena): the typed path. Where
/// std::pmr::polymorphic_allocator reaches its resource through a virtual
/// call, allocator<T, R> calls R's own allocate and deallocate bodies by
/// qualified name, so R's inline fast path is inlined into the container.
/// The resource is the same object either way: a block from the typed path
/// may be freed through pmr and the other way round, and stats(), checks and
/// misuse reports are exactly those of the pmr path.
///
/// Propagation follows polymorphic_allocator: a container keeps the resource
/// it was built with (no propagation on copy-assign, move-assign or swap),
/// and a copied container uses the same resource as its source
/// (select_on_container_copy_construction returns a copy, as there is no
/// default object of type R). Two allocators are equal when they use the
/// same resource, whatever their value types.
///
/// Thread safety: the allocator is a pointer; using it is as thread-safe as R.
///
///     strata::slab nodes{strata::slab::options{.slot_size = 64}, &chunks};
///     std::list<int, strata::allocator<int, strata::slab>> l{&nodes};
///     std::pmr::list<int> same_slab{&nodes};   // the same resource through pmr
template <class T, class R>
class allocator {
  static_assert(std::is_base_of_v<strata::resource, R> && std::is_final_v<R>,
                "strata::allocator needs a final strata resource: the typed path names its exact type");

 public:
  using value_type = T;
  using resource_type = R;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using propagate_on_container_copy_assignment = std::false_type;
  using propagate_on_container_move_assignment = std::false_type;
  using propagate_on_container_swap = std::false_type;
  using is_always_equal = std::false_type;

  template <class U>
  struct rebind {
    using other = allocator<U, R>;
  };

  // ---------------------------------------------------------- construction

  /// Creates an allocator that allocates from r (held, not owned).
  /// Requires: r is not null and outlives every container using it.
  allocator(R* r) noexcept : resource_(r) {}  // NOLINT(google-explicit-constructor): as polymorphic_allocator
  /// Creates an allocator of T using other's resource (rebinding).
  template <class U>
  allocator(const allocator<U, R>& other) noexcept : resource_(other.resource()) {}  // NOLINT
  allocator(const allocator&) noexcept = default;
  // As polymorphic_allocator: an allocator never changes resource once made.
  allocator& operator=(const allocator&) = delete;

  // ------------------------------------------------------- allocation API

  /// Returns storage for n objects of T from the resource, by R's inline
  /// fast path where R has one.
  /// Throws: std::bad_array_new_length if n > max_size(); whatever R throws
  /// (allocation_failure on exhaustion).
  [[nodiscard]] T* allocate(std::size_t n) {
    if (n > max_size()) [[unlikely]] {
      throw_bad_array_new_length();
    }
    return static_cast<T*>(resource_->R::do_allocate(n * sizeof(T), alignof(T)));
  }

  /// Returns storage from allocate(n) to the resource; a misuse R can prove
  /// is counted and reported as through pmr.
  void deallocate(T* p, std::size_t n) noexcept { resource_->R::do_deallocate(p, n * sizeof(T), alignof(T)); }

  // ------------------------------------------------------------- observers

  /// Returns the largest n allocate accepts: the byte count must fit in size_t.
  [[nodiscard]] static constexpr std::size_t max_size() noexcept {
    return std::numeric_limits<std::size_t>::max() / sizeof(T);
  }
  /// Returns the resource this allocator uses.
  [[nodiscard]] R* resource() const noexcept { return resource_; }
  /// Returns a copy: a copied container keeps its source's resource.
  [[nodiscard]] allocator select_on_container_copy_construction() const noexcept { return *this; }

 private:
  // Out of line and cold, so allocate keeps one compare on its fast path.
  [[noreturn, gnu::cold, gnu::noinline]] static void throw_bad_array_new_length() {
    throw std::bad_array_new_length();
  }

  R* resource_;  // resource (held, not owned); never null
};

/// Returns whether a and b use the same resource (memory from one may be freed by the other).
template <class T, class U, class R>
[[nodiscard]] bool operator==(const allocator<T, R>& a, const allocator<U, R>& b) noexcept {
  return a.resource() == b.resource();
}

}  // namespace strata
