// SPDX-License-Identifier: MIT
#pragma once

#include "version.hpp"  // first: it stops a pre-C++20 build with a clear message

#include <cstddef>
#include <cstdint>

namespace strata {

/// The counters every strata resource reports through `resource::stats()`.
///
/// Counters are exact when no other thread is using the resource and a
/// best-effort snapshot otherwise. A plain value type: copy it, compare it,
/// subtract two snapshots to see what a piece of work did.
struct resource_stats {
  /// Bytes callers hold: the sizes passed to allocate, minus the sizes passed to
  /// deallocate (every deallocate lowers it, even where the memory is not reused).
  std::size_t bytes_in_use = 0;
  /// Highest bytes_in_use since construction or the last reset_peak().
  std::size_t peak_bytes_in_use = 0;
  /// Bytes obtained from the upstream (or the OS) and not yet returned.
  std::size_t bytes_reserved = 0;
  /// Calls to allocate that returned a block.
  std::uint64_t allocations = 0;
  /// Calls to deallocate that were obeyed. A call refused as misuse counts in
  /// misuse_detected only, so allocations - deallocations is the number of
  /// live blocks when no thread is allocating.
  std::uint64_t deallocations = 0;
  /// Calls to allocate that threw std::bad_alloc (never std::invalid_argument).
  std::uint64_t failed_allocations = 0;
  /// Blocks obtained from the upstream (or OS mappings made).
  std::uint64_t upstream_allocations = 0;
  /// Blocks returned to the upstream (or OS mappings removed).
  std::uint64_t upstream_deallocations = 0;
  /// Deallocations the resource proved wrong: foreign pointer, double free,
  /// size or alignment mismatch. Each was ignored or repaired, never obeyed blindly.
  std::uint64_t misuse_detected = 0;

  friend bool operator==(const resource_stats&, const resource_stats&) = default;

  /// What happened between two snapshots of one resource, later - earlier:
  /// the call counters are differences; the levels (bytes_in_use,
  /// peak_bytes_in_use, bytes_reserved) are the later snapshot's, since a
  /// level's difference is not a count of anything. Requires: earlier was
  /// taken first, from the same resource (no reset in between).
  friend resource_stats operator-(const resource_stats& later, const resource_stats& earlier) noexcept {
    resource_stats d = later;
    d.allocations -= earlier.allocations;
    d.deallocations -= earlier.deallocations;
    d.failed_allocations -= earlier.failed_allocations;
    d.upstream_allocations -= earlier.upstream_allocations;
    d.upstream_deallocations -= earlier.upstream_deallocations;
    d.misuse_detected -= earlier.misuse_detected;
    return d;
  }
};

}  // namespace strata
