// SPDX-License-Identifier: MIT
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>

#include "detail/counters.hpp"
#include "resource.hpp"

namespace strata {

/// A decorator that caps the bytes callers may hold: it forwards to its
/// upstream while the bytes it has handed out and not got back stay within
/// max_bytes, and beyond that throws allocation_failure (reason budget)
/// without calling the upstream, so a refused request loses nothing and the
/// resource stays fully usable. It counts the sizes callers pass, not what
/// the upstream rounds them to. Use it to give one subsystem a quota on a
/// shared resource, or as the primary of a fallback_resource.
///
/// Exception neutral: whatever the upstream throws passes through, and the
/// charge for that request is given back first.
///
/// Complexity: O(1) per call (a CAS on one atomic, then the upstream's call).
///
/// Thread safety: thread-safe; it calls its upstream concurrently, so the
/// upstream must be thread-safe too when callers are on several threads.
///
///     strata::byte_limit_resource quota{{.max_bytes = 64_MiB}, &shared};
///     std::pmr::vector<int> v{&quota};   // throws bad_alloc past 64 MiB
class byte_limit_resource final : public resource {
 public:
  struct options {
    /// The most bytes callers may hold at once (the sum of the sizes passed
    /// to allocate and not yet passed back to deallocate). The default is no limit.
    std::size_t max_bytes = SIZE_MAX;
  };

  struct details_type {
    std::size_t max_bytes;            ///< as configured
    std::size_t bytes_charged;        ///< bytes counted against the limit now
    std::uint64_t limit_failures;     ///< allocations refused because of the limit
    std::uint64_t upstream_failures;  ///< allocations the upstream refused
  };

  // ---------------------------------------------------------- construction

  /// Limits nothing, over the default resource.
  byte_limit_resource() : byte_limit_resource(options{}, std::pmr::get_default_resource()) {}
  /// Limits nothing, over upstream (held, not owned).
  /// Throws: std::invalid_argument if upstream is null.
  explicit byte_limit_resource(std::pmr::memory_resource* upstream)
      : byte_limit_resource(options{}, upstream) {}
  /// Limits what callers hold to opts.max_bytes, over upstream (held, not owned).
  /// Throws: std::invalid_argument if upstream is null.
  byte_limit_resource(options opts, std::pmr::memory_resource* upstream);
  /// Blocks still live belong to their callers: the adapter holds no memory of its own.
  ~byte_limit_resource() override;

  // ------------------------------------------------------------- observers

  /// Returns the options the resource was built with.
  [[nodiscard]] const options& get_options() const noexcept { return options_; }
  /// Returns max_bytes minus the bytes charged now (a snapshot under concurrency).
  [[nodiscard]] std::size_t bytes_available() const noexcept {
    return options_.max_bytes - charged_.load(std::memory_order_relaxed);
  }
  /// Returns the limit's own counters.
  [[nodiscard]] details_type details() const noexcept;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  resource_stats do_stats() const noexcept override { return counters_.snapshot(); }
  void do_reset_peak() noexcept override { counters_.reset_peak(); }

  options options_;
  // The bytes charged against the limit. An atomic read-modify-write is
  // needed here by design: the limit is a property of the sum over every
  // thread, so a per-thread or sharded count could not refuse the request
  // that crosses it. A request charges itself with a CAS before calling the
  // upstream, so two threads can never both pass the last free byte.
  // Invariant: charged_ <= options_.max_bytes.
  std::atomic<std::size_t> charged_{0};
  std::atomic<std::uint64_t> limit_failures_{0};
  std::atomic<std::uint64_t> upstream_failures_{0};
  detail::atomic_counters counters_;  // the resource_stats; exact when quiescent
};

}  // namespace strata
