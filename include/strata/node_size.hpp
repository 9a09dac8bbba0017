// SPDX-License-Identifier: MIT
#pragma once

#include "version.hpp"  // first: it stops a pre-C++20 build with a clear message

#include <cstddef>
#include <memory>
#include <memory_resource>
#include <new>
#include <type_traits>

namespace strata {

/// The size and alignment of one node of a node-based container.
struct node_layout {
  std::size_t size = 0;       ///< bytes of one node; 0 when the container allocated no single-object block
  std::size_t alignment = 0;  ///< its alignment
};

namespace detail {

// What node_layout_of() saw: the largest single-object allocation.
struct node_record {
  node_layout largest;
};

// An allocator that allocates from operator new and records every request
// for exactly one object (a node: bucket arrays, deque blocks and vector
// buffers of several elements are n > 1). Rebinding keeps the record, so the
// container's private node type is seen when it allocates one.
template <class T>
struct node_recorder {
  using value_type = T;
  node_record* record;

  explicit node_recorder(node_record* r) noexcept : record(r) {}
  template <class U>
  node_recorder(const node_recorder<U>& other) noexcept : record(other.record) {}  // NOLINT: rebinding

  T* allocate(std::size_t n) {
    if (n == 1 && sizeof(T) > record->largest.size) record->largest = {sizeof(T), alignof(T)};
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{alignof(T)}));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    ::operator delete (p, n * sizeof(T), std::align_val_t{alignof(T)});
  }
  template <class U>
  bool operator==(const node_recorder<U>& other) const noexcept {
    return record == other.record;
  }
};

// Container<..., polymorphic_allocator<X> or allocator<X>, ...> with that
// argument replaced by node_recorder<X>.
template <class Arg>
struct with_recorder_argument {
  using type = Arg;
};
template <class X>
struct with_recorder_argument<std::pmr::polymorphic_allocator<X>> {
  using type = node_recorder<X>;
};
template <class X>
struct with_recorder_argument<std::allocator<X>> {
  using type = node_recorder<X>;
};
template <class Container>
struct with_recorder;
template <template <class...> class Container, class... Args>
struct with_recorder<Container<Args...>> {
  using type = Container<typename with_recorder_argument<Args>::type...>;
};

}  // namespace detail

/// Measures the node of a node-based standard container (map, set, list,
/// forward_list, unordered_map, ... in their std or std::pmr spelling) on
/// this standard library: it builds the container with a recording allocator,
/// inserts `sample`, and returns the largest single-object block the insert
/// asked for. That is the node, whose type is private to the library and
/// whose size differs between libraries and value types (std::pmr::map<long,
/// T> needs sizeof(T) + 40 bytes on libstdc++, x86-64, not sizeof(T) + 32).
/// Use it to size a slab or extendable_slab for the container:
///
///     const auto node = strata::node_layout_of<std::pmr::map<long, order>>();
///     strata::slab nodes{{.slot_size = node.size, .slot_alignment = node.alignment, .capacity = n},
///     &chunks};
///
/// Bucket arrays (unordered containers) are several objects and are not the
/// node: they go to the slab's upstream as too large, as they should. For a
/// container that allocates no single-object block on its first insert (a
/// deque) the result is {0, 0}; a vector gives its element.
/// Cost: one container built and destroyed, one insert, on operator new.
/// Requires: the container's allocator argument is std::pmr::polymorphic_allocator
/// or std::allocator, and its value_type is copy-constructible.
template <class Container>
[[nodiscard]] node_layout node_layout_of(const typename Container::value_type& sample = {}) {
  detail::node_record record;
  using recording = typename detail::with_recorder<Container>::type;
  static_assert(!std::is_same_v<recording, Container>,
                "node_layout_of: the container's allocator must be polymorphic_allocator or std::allocator");
  recording container{typename recording::allocator_type{&record}};
  if constexpr (requires { container.insert_after(container.before_begin(), sample); }) {
    container.insert_after(container.before_begin(), sample);  // forward_list
  } else {
    container.insert(container.end(), sample);
  }
  return record.largest;
}

}  // namespace strata
