// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory_resource>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <vector>

#include "detail/counters.hpp"
#include "resource.hpp"

namespace strata {

/// A checking decorator for any upstream, std or strata: it forwards every
/// call and records every live block, so it proves what a chain did. Put it
/// in tests and debug builds, above the link you want to check or below the
/// one whose upstream traffic you want to see.
///
/// It detects: deallocate of a pointer it never handed out, double free (of
/// any block freed earlier whose address the upstream has not handed out
/// again: only then is a second free provably a double free and not a free
/// of the new block), size and alignment mismatch on deallocate,
/// an upstream that hands out a block overlapping a live one (such a block
/// is returned unrecorded, so its later deallocate is refused), and blocks
/// still live at destruction (leaks). A misuse is counted, reported to the
/// misuse handler, and never obeyed blindly: an unknown pointer is not
/// forwarded, a mismatched size or alignment is corrected to the recorded
/// one before forwarding. Optional extras: an allocation limit that makes the
/// N-th allocation throw (for exception-safety loops, as BDE's test allocator
/// does) and byte patterns written on allocate and on deallocate.
///
/// Its bookkeeping (a std::map of live blocks, a std::set of freed
/// addresses) uses the global operator new, never the upstream or the
/// default resource. The freed set holds one node (about 40 bytes) per
/// freed address the upstream has not reused; an upstream that never reuses
/// addresses makes it grow with the frees, which is the price of proving
/// every double free. Every call takes a mutex.
///
/// Thread safety: thread-safe; it calls its upstream concurrently, so the
/// chain below must be thread-safe too when callers are on several threads.
///
///     strata::tracking_resource checked{strata::system_pages()};
///     std::pmr::vector<int> v{{1, 2, 3}, &checked};
///     assert(checked.live_blocks() == 1);
class tracking_resource final : public resource {
 public:
  /// A live block as recorded.
  struct block {
    const void* pointer;
    std::size_t bytes;
    std::size_t alignment;
    std::uint64_t serial;  ///< 0 for the first allocation, then 1, 2, ...
  };

  /// What the leak handler receives at destruction: every block still live,
  /// in allocation order.
  struct leak_report {
    std::size_t blocks;
    std::size_t bytes;
    std::span<const block> leaked;
  };

  using leak_handler = std::function<void(const leak_report&)>;

  static constexpr std::uint64_t unlimited = std::numeric_limits<std::uint64_t>::max();

  struct options {
    /// How many allocations succeed before exactly one throws
    /// allocation_failure (reason allocation_limit); after that throw the
    /// limit is spent and allocation goes on normally. unlimited disables it.
    std::uint64_t allocation_limit = unlimited;
    /// Byte written over every block handed out, if set.
    std::optional<unsigned char> fill_on_allocate{};
    /// Byte written over every block before it goes back upstream, if set.
    std::optional<unsigned char> fill_on_deallocate{};
    /// Called at destruction when blocks are still live; empty means print a
    /// summary and the first few blocks to stderr.
    leak_handler on_leak{};
    /// Whether destruction returns leaked blocks to the upstream (after the
    /// report), so the chain below balances; turn off if leaked memory may
    /// still be used afterwards.
    bool release_leaks = true;
  };

  struct details_type {
    std::size_t live_blocks;
    std::size_t live_bytes;
    std::uint64_t unknown_pointers;      ///< deallocates of pointers never handed out
    std::uint64_t double_frees;          ///< deallocates of pointers already freed (and not reused)
    std::uint64_t size_mismatches;       ///< corrected before forwarding
    std::uint64_t alignment_mismatches;  ///< corrected before forwarding
    std::uint64_t duplicate_handouts;    ///< upstream returned memory overlapping a live block
    std::uint64_t limit_failures;        ///< throws caused by allocation_limit
    std::size_t largest_alignment;       ///< largest alignment ever requested
  };

  // ---------------------------------------------------------- construction

  /// Tracks blocks from the default resource.
  tracking_resource() : tracking_resource(options{}, std::pmr::get_default_resource()) {}
  /// Tracks blocks from upstream (held, not owned).
  /// Throws: std::invalid_argument if upstream is null.
  explicit tracking_resource(std::pmr::memory_resource* upstream) : tracking_resource(options{}, upstream) {}
  /// Tracks blocks from upstream (held, not owned) with opts.
  /// Throws: std::invalid_argument if upstream is null.
  tracking_resource(options opts, std::pmr::memory_resource* upstream);
  /// Reports leaks through on_leak and, with release_leaks, returns them upstream.
  ~tracking_resource() override;

  // ------------------------------------------------------------- observers

  /// Returns the options it was made with (set_allocation_limit() re-arms the
  /// limit without changing them). Named get_options, as on every strata
  /// resource: options() would hide the nested type options.
  [[nodiscard]] const options& get_options() const noexcept { return options_; }
  /// Returns true if p is the start of a live block from this resource.
  /// Complexity: O(log live blocks).
  [[nodiscard]] bool owns(const void* p) const;
  /// Returns the number of live blocks.
  [[nodiscard]] std::size_t live_blocks() const;
  /// Returns the live blocks in allocation order.
  /// Complexity: O(n log n) in live blocks.
  [[nodiscard]] std::vector<block> live_block_list() const;
  /// Returns tracking-specific counters.
  [[nodiscard]] details_type details() const;

  // ---------------------------------------------------------- housekeeping

  /// Arms the allocation limit: the next n allocations succeed, the one
  /// after throws once. unlimited disarms it.
  void set_allocation_limit(std::uint64_t n);
  /// Returns every live block to the upstream without reporting leaks.
  /// Complexity: O(live blocks).
  void release() noexcept;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  resource_stats do_stats() const noexcept override;
  void do_reset_peak() noexcept override;

  struct record {
    std::size_t bytes;
    std::size_t alignment;
    std::uint64_t serial;
  };
  // Records p, or returns false if it overlaps a live block; forgets the
  // freed addresses the block covers. Requires mutex_.
  bool insert_locked(const void* p, std::size_t bytes, std::size_t alignment);
  // Fills per the options and returns the recorded block to upstream.
  void forward_deallocate(void* p, std::size_t bytes, std::size_t alignment) noexcept;
  bool invariants_hold() const noexcept;  // requires mutex_

  options options_;
  mutable std::mutex mutex_;               // guards everything below
  std::map<std::uintptr_t, record> live_;  // address -> block; ordered to find overlaps
  std::size_t live_bytes_ = 0;             // sum of live_[*].bytes
  std::uint64_t next_serial_ = 0;
  std::uint64_t allocations_left_;  // allocation limit countdown
  // Starts of freed blocks the upstream has not handed out again: a
  // deallocate of one of these is a double free. Ordered, so a new block
  // erases every freed start it covers in O(log n).
  std::set<std::uintptr_t> freed_;
  detail::plain_counters counters_;  // plain: always updated under mutex_
  details_type details_{};
};

}  // namespace strata
