// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>

#include "detail/counters.hpp"
#include "resource.hpp"

namespace strata {

/// The bottom of a chain: every allocation is its own anonymous mmap of whole
/// pages, and every deallocate unmaps it. Choose it under a chunk_provider or
/// another caching resource, never for small objects: each call is a system
/// call and each block costs at least one page.
///
/// Memory model: sizes are rounded up to the page size; alignments above the
/// page size are honoured by over-mapping and unmapping the excess, so a 2 MiB
/// block aligned to 2 MiB costs 2 MiB of address space, not 4. Blocks of
/// huge_page_threshold bytes or more get MADV_HUGEPAGE when that option is on.
/// The resource keeps no list of blocks: destroying it leaves live blocks
/// mapped (the caller owns them), and a deallocate with a wrong size cannot be
/// detected; put a tracking_resource above it to check callers.
///
/// Thread safety: thread-safe.
///
///     strata::page_resource& pages = *strata::system_pages();
///     void* p = pages.allocate(1 << 20, 1 << 20);   // 1 MiB aligned to 1 MiB
///     pages.deallocate(p, 1 << 20, 1 << 20);
class page_resource final : public resource {
 public:
  struct options {
    /// Advise transparent huge pages (MADV_HUGEPAGE) for large blocks.
    bool transparent_huge_pages = true;
    /// Smallest block that gets the huge-page advice; a power of two >= the page size.
    std::size_t huge_page_threshold = std::size_t{2} << 20;
  };

  struct details_type {
    std::size_t page_size;                ///< the OS page size
    std::uint64_t over_aligned_mappings;  ///< blocks whose alignment exceeded the page size
    std::uint64_t huge_page_advice;       ///< blocks that received MADV_HUGEPAGE
  };

  // ---------------------------------------------------------- construction

  /// Creates a page resource with default options.
  page_resource() : page_resource(options{}) {}
  /// Creates a page resource.
  /// Throws: std::invalid_argument if huge_page_threshold is not a power of two
  /// at least the page size.
  explicit page_resource(const options& opts);
  ~page_resource() override;

  // ------------------------------------------------------------- observers

  /// Returns the options this resource was created with.
  [[nodiscard]] const options& get_options() const noexcept { return options_; }
  /// Returns page-resource-specific counters.
  [[nodiscard]] details_type details() const noexcept;
  /// Returns the OS page size.
  [[nodiscard]] std::size_t page_size() const noexcept { return page_size_; }

 private:
  /// Maps round_up(bytes, page) bytes aligned to alignment.
  /// Throws: std::invalid_argument for a non-power-of-two alignment;
  /// allocation_failure (size_overflow or upstream_failed) when it cannot map.
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  /// Unmaps the block. A pointer that is not page-aligned, or not aligned to
  /// alignment, is reported as misuse and ignored.
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  resource_stats do_stats() const noexcept override { return counters_.snapshot(); }
  void do_reset_peak() noexcept override { counters_.reset_peak(); }

  options options_;                   // as given; validated
  std::size_t page_size_;             // sysconf(_SC_PAGESIZE)
  detail::atomic_counters counters_;  // every call is a system call; atomics are noise
  std::atomic<std::uint64_t> over_aligned_mappings_{0};
  std::atomic<std::uint64_t> huge_page_advice_{0};
};

/// Returns a process-wide page_resource with default options. It is never
/// destroyed, so it may be used from static destructors.
/// Thread safety: thread-safe.
[[nodiscard]] page_resource* system_pages() noexcept;

}  // namespace strata
