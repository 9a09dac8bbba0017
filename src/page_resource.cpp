// SPDX-License-Identifier: MIT
// page_resource: anonymous mmap per block. Every path here is a system call,
// so there is no separate fast path to keep inline.

#include "strata/page_resource.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <new>

#include "strata/detail/align.hpp"
#include "strata/detail/assert.hpp"

namespace strata {

namespace {

constexpr std::string_view resource_name = "page_resource";

std::size_t os_page_size() noexcept {
  const long size = ::sysconf(_SC_PAGESIZE);
  return size > 0 ? static_cast<std::size_t>(size) : 4096;
}

}  // namespace

// ------------------------------------------------------------ construction

page_resource::page_resource(const options& opts)
    : resource(resource_name, nullptr), options_(opts), page_size_(os_page_size()) {
  if (!detail::is_power_of_two(opts.huge_page_threshold) || opts.huge_page_threshold < page_size_) {
    detail::throw_bad_option(resource_name, "huge_page_threshold",
                             "must be a power of two no smaller than the page size");
  }
}

// Holds no blocks of its own: live blocks belong to their callers.
page_resource::~page_resource() = default;

page_resource* system_pages() noexcept {
  // Constructed on first use and never destroyed, like new_delete_resource(),
  // so static destructors elsewhere may still return blocks to it.
  alignas(page_resource) static unsigned char storage[sizeof(page_resource)];
  static page_resource* const instance = ::new (static_cast<void*>(storage)) page_resource();
  return instance;
}

// -------------------------------------------------------------- allocation

void* page_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  detail::check_alignment(resource_name, alignment);
  // Size 0 still maps a page, so every call returns a unique block.
  bool ok = true;
  const std::size_t length = detail::round_up(bytes == 0 ? 1 : bytes, page_size_, ok);
  // Over-aligned blocks map alignment - page_size extra bytes and trim them.
  const std::size_t slack = alignment > page_size_ ? alignment - page_size_ : 0;
  if (!ok || length > SIZE_MAX - slack) [[unlikely]] {
    counters_.on_failure();
    detail::throw_allocation_failure(resource_name, bytes, alignment, failure_reason::size_overflow);
  }
  void* mapped = ::mmap(nullptr, length + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) [[unlikely]] {
    counters_.on_failure();
    detail::throw_allocation_failure(resource_name, bytes, alignment, failure_reason::upstream_failed);
  }
  auto* block = static_cast<std::byte*>(mapped);
  if (slack != 0) {
    const auto start = reinterpret_cast<std::uintptr_t>(mapped);
    block = reinterpret_cast<std::byte*>(detail::align_up(start, alignment));
    const std::size_t head = static_cast<std::size_t>(block - static_cast<std::byte*>(mapped));
    const std::size_t tail = slack - head;
    if (head != 0) ::munmap(mapped, head);
    if (tail != 0) ::munmap(block + length, tail);
    over_aligned_mappings_.fetch_add(1, std::memory_order_relaxed);
  }
  if (options_.transparent_huge_pages && length >= options_.huge_page_threshold) {
    // Advice only: a kernel without THP refuses it and the block still works.
    if (::madvise(block, length, MADV_HUGEPAGE) == 0) {
      huge_page_advice_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  counters_.on_upstream_allocate(length);
  counters_.on_allocate(bytes);
  return block;
}

void page_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  const std::size_t checked_alignment = detail::is_power_of_two(alignment) ? alignment : 1;
  bool ok = true;
  const std::size_t length = detail::round_up(bytes == 0 ? 1 : bytes, page_size_, ok);
  // Only what can be proved wrong without a block list: a pointer that is not
  // page-aligned, or less aligned than the caller says, never came from here.
  if (p == nullptr || !ok || !detail::is_aligned(p, page_size_) ||
      !detail::is_aligned(p, checked_alignment) || checked_alignment != alignment) [[unlikely]] {
    counters_.on_rejected_deallocate();
    report_misuse(
        {resource_name,
         checked_alignment != alignment ? misuse_kind::alignment_mismatch : misuse_kind::unknown_pointer, p,
         bytes, alignment});
    return;
  }
  ::munmap(p, length);
  counters_.on_deallocate(bytes);
  counters_.on_upstream_deallocate(length);
}

// --------------------------------------------------------------- observers

page_resource::details_type page_resource::details() const noexcept {
  return {page_size_, over_aligned_mappings_.load(std::memory_order_relaxed),
          huge_page_advice_.load(std::memory_order_relaxed)};
}

}  // namespace strata
