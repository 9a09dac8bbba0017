// SPDX-License-Identifier: MIT
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>

#include "detail/counters.hpp"
#include "resource.hpp"

namespace strata {

/// A router between two resources by request shape: a request of at most
/// `threshold` bytes with an alignment of at most `max_small_alignment` goes
/// to the small resource (a slab or an arena, typically), every other
/// request to the large one. Deallocate applies the same rule to the size and
/// alignment std::pmr passes back, so there is no per-block bookkeeping and
/// both paths are a compare and a virtual call. Choose it to put a pool in
/// front of a general resource without teaching the pool to forward.
///
/// upstream_resource() is the large resource: it is the one every request
/// could go to, so a chain walk from here follows the general path down;
/// the small resource is in details() and in format_chain's details.
///
/// Exhaustion: whatever the chosen resource throws passes through (exception
/// neutral); the other is not tried (compose with fallback_resource for that).
///
/// Complexity: O(1) per call (two compares, then one resource's call).
///
/// Thread safety: thread-safe when both resources are (its own state is
/// relaxed atomic counters).
///
///     strata::slab nodes{{.slot_size = 64, .capacity = 4096}, &general};
///     strata::segregator route{{.threshold = 64}, &nodes, &general};
///     std::pmr::list<int> l{&route};   // nodes from the slab, the rest from general
class segregator final : public resource {
 public:
  struct options {
    /// Requests of at most this many bytes may go to the small resource; must not be 0.
    std::size_t threshold = 256;
    /// Requests aligned to at most this may go to the small resource; a power of two.
    std::size_t max_small_alignment = alignof(std::max_align_t);
  };

  struct details_type {
    const std::pmr::memory_resource*
        small_resource;  ///< the other link (upstream_resource() is the large one)
    std::size_t threshold;
    std::size_t max_small_alignment;
    std::uint64_t small_allocations;  ///< allocations served by the small resource
    std::uint64_t large_allocations;  ///< allocations served by the large resource
  };

  // ---------------------------------------------------------- construction

  /// Routes with the default options between small and large (held, not owned).
  /// Throws: std::invalid_argument if either is null.
  segregator(std::pmr::memory_resource* small, std::pmr::memory_resource* large)
      : segregator(options{}, small, large) {}
  /// Routes with opts between small and large (held, not owned).
  /// Throws: std::invalid_argument if either is null, threshold is 0, or
  /// max_small_alignment is not a power of two (naming the field).
  segregator(options opts, std::pmr::memory_resource* small, std::pmr::memory_resource* large);
  /// Blocks still live belong to their callers: the router holds no memory of its own.
  ~segregator() override;

  // ------------------------------------------------------------- observers

  /// Returns the options the router was built with.
  [[nodiscard]] const options& get_options() const noexcept { return options_; }
  /// Returns the small resource (held, not owned).
  [[nodiscard]] std::pmr::memory_resource* small_resource() const noexcept { return small_; }
  /// Returns the large resource, the same as upstream_resource().
  [[nodiscard]] std::pmr::memory_resource* large_resource() const noexcept { return upstream_resource(); }
  /// Returns true if a request of bytes aligned to alignment goes to the small resource.
  [[nodiscard]] bool routes_to_small(std::size_t bytes, std::size_t alignment) const noexcept {
    return bytes <= options_.threshold && alignment <= options_.max_small_alignment;
  }
  /// Returns the routing counters.
  [[nodiscard]] details_type details() const noexcept;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  resource_stats do_stats() const noexcept override { return counters_.snapshot(); }
  void do_reset_peak() noexcept override { counters_.reset_peak(); }

  options options_;
  std::pmr::memory_resource* small_;  // small resource (held, not owned); never null
  std::atomic<std::uint64_t> small_allocations_{0};
  std::atomic<std::uint64_t> large_allocations_{0};
  detail::atomic_counters counters_;  // upstream_* count calls to either resource
};

// ------------------------------------------------------------ inline bodies

inline void* segregator::do_allocate(std::size_t bytes, std::size_t alignment) {
  detail::check_alignment(name(), alignment);
  const bool small = routes_to_small(bytes, alignment);
  void* p = nullptr;
  try {
    p = (small ? small_ : upstream_resource())->allocate(bytes, alignment);
  } catch (...) {
    counters_.on_failure();
    throw;  // exception neutral
  }
  (small ? small_allocations_ : large_allocations_).fetch_add(1, std::memory_order_relaxed);
  counters_.on_allocate(bytes);
  counters_.on_upstream_allocate(bytes);
  return p;
}

inline void segregator::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  (routes_to_small(bytes, alignment) ? small_ : upstream_resource())->deallocate(p, bytes, alignment);
  counters_.on_deallocate(bytes);
  counters_.on_upstream_deallocate(bytes);
}

}  // namespace strata
