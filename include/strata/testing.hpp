// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <mutex>
#include <vector>

#include "resource.hpp"
#include "stats.hpp"
#include "tracking_resource.hpp"

// The strata test kit: what strata's own tests use, for yours. It depends on
// no test framework (use it with Boost.Test, GoogleTest or a plain main) and
// is header-only, so it adds nothing to libstrata for programs that never
// test; everything it needs from the library (set_misuse_hook,
// tracking_resource) is already public.
//
//     strata::testing::misuse_recorder misuse;       // reports recorded, not printed
//     strata::testing::default_resource_guard none;  // stray default allocations throw
//     strata::testing::stats_monitor monitor{tracked};
//     ... code under test ...
//     assert(misuse.count() == 0 && monitor.is_in_use_same());

namespace strata::testing {

// ---------------------------------------------------------- misuse_recorder

/// Records every misuse report while it lives, in place of the handler that
/// was installed before, which it restores at destruction. Recorders nest:
/// the innermost one records. Each keeps its own list (the context of its
/// hook), so nothing global is written by hand.
///
/// Thread safety: thread-safe: resources on any thread may report into it,
/// and its observers may be called meanwhile. Construct and destroy it on
/// one thread, in scope order with other recorders.
class misuse_recorder {
 public:
  /// Installs this recorder as the process's misuse handler.
  misuse_recorder() noexcept : previous_(set_misuse_hook({&record, this})) {}
  /// Restores the previous handler; waits for reports running on other threads.
  ~misuse_recorder() { set_misuse_hook(previous_); }
  // The installed hook points at this object: no copy, no move.
  misuse_recorder(const misuse_recorder&) = delete;
  misuse_recorder& operator=(const misuse_recorder&) = delete;

  /// Returns a copy of the reports so far, in the order they arrived.
  [[nodiscard]] std::vector<misuse_report> taken() const {
    const std::lock_guard lock(mutex_);
    return reports_;
  }
  /// Returns the number of reports so far.
  [[nodiscard]] std::size_t count() const {
    const std::lock_guard lock(mutex_);
    return reports_.size();
  }
  /// Returns the number of reports of kind so far.
  [[nodiscard]] std::size_t count(misuse_kind kind) const {
    const std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const misuse_report& r : reports_) n += r.kind == kind ? 1 : 0;
    return n;
  }
  /// Forgets the reports so far.
  void clear() {
    const std::lock_guard lock(mutex_);
    reports_.clear();
  }

 private:
  static void record(const misuse_report& report, void* context) noexcept {
    auto* self = static_cast<misuse_recorder*>(context);
    const std::lock_guard lock(self->mutex_);
    try {
      self->reports_.push_back(report);
    } catch (...) {
      // Out of memory in a handler that must not throw: the report is lost,
      // but the resource still counted it in misuse_detected.
    }
  }

  mutable std::mutex mutex_;            // guards reports_
  std::vector<misuse_report> reports_;  // resource names are static strings
  misuse_hook previous_;                // restored at destruction
};

// --------------------------------------------------- default_resource_guard

/// Makes r the default resource (std::pmr::set_default_resource) for one
/// scope and restores the previous default at its end. The default argument,
/// the null resource, makes any allocation that silently falls back to the
/// default throw, which is BDE's default-allocator guard in pmr terms.
/// Thread safety: not thread-safe (the default resource is process-wide).
class default_resource_guard {
 public:
  explicit default_resource_guard(std::pmr::memory_resource* r = std::pmr::null_memory_resource()) noexcept
      : previous_(std::pmr::set_default_resource(r)) {}
  ~default_resource_guard() { std::pmr::set_default_resource(previous_); }
  default_resource_guard(const default_resource_guard&) = delete;
  default_resource_guard& operator=(const default_resource_guard&) = delete;

  /// Returns the default resource in force before this guard.
  [[nodiscard]] std::pmr::memory_resource* previous() const noexcept { return previous_; }

 private:
  std::pmr::memory_resource* previous_;  // held, not owned
};

// ------------------------------------------------------------ stats_monitor

/// Compares a resource's statistics with a snapshot, as BDE's
/// bslma::TestAllocatorMonitor does: take it before the code under test and
/// ask afterwards whether bytes in use went up, down or stayed the same,
/// whether the peak rose and whether anything was allocated at all.
///
/// Thread safety: const thread-safe (it reads the resource's stats()).
///
///     strata::testing::stats_monitor monitor{arena};
///     v.push_back(x);
///     assert(monitor.is_total_up() && monitor.is_in_use_up());
class stats_monitor {
 public:
  /// Snapshots r's stats; r must outlive the monitor (held, not owned).
  explicit stats_monitor(const resource& r) noexcept : resource_(&r), snapshot_(r.stats()) {}

  /// Takes a new snapshot.
  void reset() noexcept { snapshot_ = resource_->stats(); }

  /// Returns true if bytes_in_use equals the snapshot's.
  [[nodiscard]] bool is_in_use_same() const noexcept { return now().bytes_in_use == snapshot_.bytes_in_use; }
  /// Returns true if bytes_in_use is above the snapshot's.
  [[nodiscard]] bool is_in_use_up() const noexcept { return now().bytes_in_use > snapshot_.bytes_in_use; }
  /// Returns true if bytes_in_use is below the snapshot's.
  [[nodiscard]] bool is_in_use_down() const noexcept { return now().bytes_in_use < snapshot_.bytes_in_use; }
  /// Returns true if peak_bytes_in_use is above the snapshot's.
  [[nodiscard]] bool is_max_up() const noexcept {
    return now().peak_bytes_in_use > snapshot_.peak_bytes_in_use;
  }
  /// Returns true if peak_bytes_in_use equals the snapshot's.
  [[nodiscard]] bool is_max_same() const noexcept {
    return now().peak_bytes_in_use == snapshot_.peak_bytes_in_use;
  }
  /// Returns true if any allocation succeeded since the snapshot.
  [[nodiscard]] bool is_total_up() const noexcept { return now().allocations > snapshot_.allocations; }
  /// Returns true if no allocation succeeded since the snapshot.
  [[nodiscard]] bool is_total_same() const noexcept { return now().allocations == snapshot_.allocations; }

  /// Returns the snapshot.
  [[nodiscard]] const resource_stats& snapshot() const noexcept { return snapshot_; }

 private:
  [[nodiscard]] resource_stats now() const noexcept { return resource_->stats(); }

  const resource* resource_;  // monitored (held, not owned)
  resource_stats snapshot_;
};

// ---------------------------------------------------- exception_safety_loop

/// What exception_safety_loop found.
struct exception_safety_result {
  std::uint64_t runs = 0;          ///< calls of the body, the last one completing
  std::uint64_t leaking_runs = 0;  ///< runs after whose exception blocks were still live
  std::uint64_t first_leak_limit = tracking_resource::unlimited;  ///< allocation limit of the first such run
  std::size_t leaked_blocks = 0;  ///< blocks left live by all leaking runs together

  /// Returns true if no run leaked.
  [[nodiscard]] bool ok() const noexcept { return leaking_runs == 0; }
};

/// Runs body() with tracked's allocation limit set to 0, 1, 2, ... (the
/// n-th run lets n allocations succeed and makes the next one throw
/// allocation_failure with reason allocation_limit) until a run completes
/// without the limit firing. After each run that ends in that exception it
/// checks that tracked holds no more live blocks than before the run, which
/// is what "exception safe and leak free" means for the body. This is BDE's
/// BSLMA_TESTALLOCATOR_EXCEPTION_TEST loop; body must allocate through
/// tracked (or a chain above it) and be repeatable.
///
/// Leaked blocks stay live (tracked reports them at its destruction, or the
/// caller releases them). Exceptions other than the limit's pass through,
/// with the limit disarmed. Returns the result of all runs.
/// Throws: whatever body throws besides the limit's allocation_failure.
/// Thread safety: not thread-safe (the limit is tracked's, for all threads).
template <class Body>
exception_safety_result exception_safety_loop(tracking_resource& tracked, Body&& body) {
  exception_safety_result result;
  for (std::uint64_t limit = 0;; ++limit) {
    const std::size_t live_before = tracked.live_blocks();
    const std::uint64_t failures_before = tracked.details().limit_failures;
    tracked.set_allocation_limit(limit);
    ++result.runs;
    try {
      body();
    } catch (const allocation_failure& failure) {
      if (failure.reason() != failure_reason::allocation_limit) {
        tracked.set_allocation_limit(tracking_resource::unlimited);
        throw;
      }
      const std::size_t live_after = tracked.live_blocks();
      if (live_after > live_before) {
        if (result.leaking_runs == 0) result.first_leak_limit = limit;
        ++result.leaking_runs;
        result.leaked_blocks += live_after - live_before;
      }
      continue;
    } catch (...) {
      tracked.set_allocation_limit(tracking_resource::unlimited);
      throw;
    }
    // The body returned. If it swallowed the limit's exception, the run was
    // not a clean completion: try the next limit.
    if (tracked.details().limit_failures == failures_before) break;
  }
  tracked.set_allocation_limit(tracking_resource::unlimited);
  return result;
}

}  // namespace strata::testing
