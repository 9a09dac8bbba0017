// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "../stats.hpp"

// Counter blocks that fill in resource_stats. Not part of the public API.
// Both have the same members so a resource's code reads the same either way.

namespace strata::detail {

/// Plain counters for resources used by one thread at a time.
struct plain_counters {
  resource_stats value;

  void on_allocate(std::size_t bytes) noexcept {
    ++value.allocations;
    value.bytes_in_use += bytes;
    value.peak_bytes_in_use = std::max(value.peak_bytes_in_use, value.bytes_in_use);
  }
  void on_deallocate(std::size_t bytes) noexcept {
    ++value.deallocations;
    value.bytes_in_use -= bytes;
  }
  void on_failure() noexcept { ++value.failed_allocations; }
  void on_misuse() noexcept { ++value.misuse_detected; }
  // A deallocate refused as misuse: counted in misuse_detected only, so that
  // allocations - deallocations stays the live blocks, and bytes_in_use is
  // left alone because the block was never (provably) ours.
  void on_rejected_deallocate() noexcept { ++value.misuse_detected; }
  void on_upstream_allocate(std::size_t bytes) noexcept {
    ++value.upstream_allocations;
    value.bytes_reserved += bytes;
  }
  void on_upstream_deallocate(std::size_t bytes) noexcept {
    ++value.upstream_deallocations;
    value.bytes_reserved -= bytes;
  }
  [[nodiscard]] resource_stats snapshot() const noexcept { return value; }
  void reset_peak() noexcept { value.peak_bytes_in_use = value.bytes_in_use; }
  // For release(): what callers held is dropped from the books (the peak and
  // the calls stay as they were).
  void forget_bytes_in_use() noexcept { value.bytes_in_use = 0; }
};

/// Relaxed atomic counters for thread-safe resources whose every call is
/// already costly (a system call or a lock), so an atomic add is noise there.
/// Resources with a lock-free fast path keep per-thread counters instead.
class atomic_counters {
 public:
  void on_allocate(std::size_t bytes) noexcept {
    allocations_.fetch_add(1, relaxed);
    const std::size_t now = bytes_in_use_.fetch_add(bytes, relaxed) + bytes;
    std::size_t peak = peak_bytes_in_use_.load(relaxed);
    while (now > peak && !peak_bytes_in_use_.compare_exchange_weak(peak, now, relaxed)) {
    }
  }
  void on_deallocate(std::size_t bytes) noexcept {
    deallocations_.fetch_add(1, relaxed);
    bytes_in_use_.fetch_sub(bytes, relaxed);
  }
  void on_failure() noexcept { failed_allocations_.fetch_add(1, relaxed); }
  void on_misuse() noexcept { misuse_detected_.fetch_add(1, relaxed); }
  void on_rejected_deallocate() noexcept { misuse_detected_.fetch_add(1, relaxed); }  // as plain_counters
  void on_upstream_allocate(std::size_t bytes) noexcept {
    upstream_allocations_.fetch_add(1, relaxed);
    bytes_reserved_.fetch_add(bytes, relaxed);
  }
  void on_upstream_deallocate(std::size_t bytes) noexcept {
    upstream_deallocations_.fetch_add(1, relaxed);
    bytes_reserved_.fetch_sub(bytes, relaxed);
  }
  [[nodiscard]] resource_stats snapshot() const noexcept {
    resource_stats s;
    s.bytes_in_use = bytes_in_use_.load(relaxed);
    s.peak_bytes_in_use = std::max(peak_bytes_in_use_.load(relaxed), s.bytes_in_use);
    s.bytes_reserved = bytes_reserved_.load(relaxed);
    s.allocations = allocations_.load(relaxed);
    s.deallocations = deallocations_.load(relaxed);
    s.failed_allocations = failed_allocations_.load(relaxed);
    s.upstream_allocations = upstream_allocations_.load(relaxed);
    s.upstream_deallocations = upstream_deallocations_.load(relaxed);
    s.misuse_detected = misuse_detected_.load(relaxed);
    return s;
  }
  void reset_peak() noexcept { peak_bytes_in_use_.store(bytes_in_use_.load(relaxed), relaxed); }
  // For release(): what callers held is dropped from the books (the peak and
  // the calls stay as they were). Requires: no other thread uses the resource meanwhile.
  void forget_bytes_in_use() noexcept { bytes_in_use_.store(0, relaxed); }

 private:
  static constexpr auto relaxed = std::memory_order_relaxed;
  std::atomic<std::size_t> bytes_in_use_{0};
  std::atomic<std::size_t> peak_bytes_in_use_{0};
  std::atomic<std::size_t> bytes_reserved_{0};
  std::atomic<std::uint64_t> allocations_{0};
  std::atomic<std::uint64_t> deallocations_{0};
  std::atomic<std::uint64_t> failed_allocations_{0};
  std::atomic<std::uint64_t> upstream_allocations_{0};
  std::atomic<std::uint64_t> upstream_deallocations_{0};
  std::atomic<std::uint64_t> misuse_detected_{0};
};

}  // namespace strata::detail
