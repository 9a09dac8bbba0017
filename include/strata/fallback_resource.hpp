// SPDX-License-Identifier: MIT
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <mutex>
#include <new>
#include <unordered_map>

#include "detail/counters.hpp"
#include "resource.hpp"

namespace strata {

/// A composition of two resources: every request goes to the primary, and
/// one the primary refuses with std::bad_alloc is retried on the fallback.
/// Put a fast bounded resource (a slab, a byte_limit_resource, a budgeted
/// chunk_provider) in front of a general one, so exhaustion degrades to a
/// slower path instead of an exception.
///
/// Deallocation reaches the resource that allocated the block. A general
/// std::pmr primary cannot say whether it owns a pointer, so the blocks the
/// fallback served (the rare path) are recorded with their size and
/// alignment in a hash map, and every other block is the primary's. While
/// no fallback block is live, a deallocate is one relaxed load in front of
/// the primary's; while some are, it looks the pointer up under a mutex.
/// A fallback block returned with the wrong size or alignment is counted
/// as misuse and returned with the recorded ones; a pointer neither side
/// handed out is not provable here (it is passed to the primary, whose own
/// checks, if it is a strata resource, count it).
///
/// upstream_resource() is the primary, so a chain walk follows the normal
/// path; the fallback is in details() and in format_chain's details.
///
/// Exhaustion: when both refuse, the fallback's exception reaches the caller
/// and nothing is recorded. Exception neutral: a primary exception other
/// than std::bad_alloc passes through without a retry.
///
/// Complexity: allocate O(1) plus the primary's call, and on refusal the
/// fallback's call and a hash insert; deallocate O(1) expected.
///
/// Thread safety: thread-safe when both resources are.
///
///     strata::byte_limit_resource quota{{.max_bytes = 1_MiB}, &fast};
///     strata::fallback_resource r{&quota, std::pmr::new_delete_resource()};
///     void* p = r.allocate(2_MiB);   // refused by quota, served by new_delete
class fallback_resource final : public resource {
 public:
  struct details_type {
    const std::pmr::memory_resource* fallback;  ///< the other link (upstream_resource() is the primary)
    std::uint64_t primary_allocations;          ///< allocations the primary served
    std::uint64_t fallback_allocations;         ///< allocations the fallback served
    std::uint64_t fallbacks_taken;              ///< primary refusals retried on the fallback
    std::size_t fallback_live_blocks;           ///< fallback blocks not yet returned
    std::size_t fallback_live_bytes;            ///< their bytes
  };

  // ---------------------------------------------------------- construction

  /// Serves from primary, and from fallback what primary refuses (both held, not owned).
  /// Throws: std::invalid_argument if either is null.
  fallback_resource(std::pmr::memory_resource* primary, std::pmr::memory_resource* fallback);
  /// Blocks still live belong to their callers: the adapter holds no memory
  /// of its own and returns none (its record of fallback blocks is dropped).
  ~fallback_resource() override;

  // ------------------------------------------------------------- observers

  /// Returns the primary resource, the same as upstream_resource().
  [[nodiscard]] std::pmr::memory_resource* primary() const noexcept { return upstream_resource(); }
  /// Returns the fallback resource (held, not owned).
  [[nodiscard]] std::pmr::memory_resource* fallback() const noexcept { return fallback_; }
  /// Returns true if p is a live block the fallback served.
  /// Complexity: O(1) expected. Thread safety: thread-safe.
  [[nodiscard]] bool served_by_fallback(const void* p) const;
  /// Returns the routing counters.
  [[nodiscard]] details_type details() const;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  resource_stats do_stats() const noexcept override { return counters_.snapshot(); }
  void do_reset_peak() noexcept override { counters_.reset_peak(); }

  // The rare paths, out of line: the retry on the fallback, and a deallocate
  // while fallback blocks are live.
  void* allocate_from_fallback(std::size_t bytes, std::size_t alignment);
  void deallocate_slow(void* p, std::size_t bytes, std::size_t alignment) noexcept;

  struct record {
    std::size_t bytes;
    std::size_t alignment;
  };

  std::pmr::memory_resource* fallback_;  // fallback resource (held, not owned); never null
  // The primary path never takes mutex_: allocate calls the primary and
  // bumps relaxed counters; deallocate reads fallback_live_ and, when it is
  // 0, goes straight to the primary. Only the fallback path (recording a
  // block, and finding one among the live ones) locks.
  mutable std::mutex mutex_;                                 // guards fallback_blocks_ and fallback_bytes_
  std::unordered_map<const void*, record> fallback_blocks_;  // live fallback blocks (global operator new)
  std::size_t fallback_bytes_ = 0;                           // sum of fallback_blocks_[*].bytes
  // fallback_blocks_.size(), written under mutex_ and read without it. A
  // block's insertion happens before the pointer reaches any caller, so a
  // deallocate of that block always sees a non-zero count.
  std::atomic<std::size_t> fallback_live_{0};
  std::atomic<std::uint64_t> primary_allocations_{0};
  std::atomic<std::uint64_t> fallback_allocations_{0};
  std::atomic<std::uint64_t> fallbacks_taken_{0};
  detail::atomic_counters counters_;  // upstream_* count blocks from either resource
};

// ------------------------------------------------------------ inline bodies

inline void* fallback_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  detail::check_alignment(name(), alignment);
  void* p = nullptr;
  try {
    p = upstream_resource()->allocate(bytes, alignment);
  } catch (const std::bad_alloc&) {
    return allocate_from_fallback(bytes, alignment);
  }
  primary_allocations_.fetch_add(1, std::memory_order_relaxed);
  counters_.on_allocate(bytes);
  counters_.on_upstream_allocate(bytes);
  return p;
}

inline void fallback_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  if (fallback_live_.load(std::memory_order_relaxed) != 0) [[unlikely]] {
    deallocate_slow(p, bytes, alignment);
    return;
  }
  upstream_resource()->deallocate(p, bytes, alignment);
  counters_.on_deallocate(bytes);
  counters_.on_upstream_deallocate(bytes);
}

}  // namespace strata
