// SPDX-License-Identifier: MIT
// tracking_resource: a checking decorator. Every call takes the mutex; this
// resource is a test and debug tool, so clarity beats speed throughout.

#include "strata/tracking_resource.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <new>
#include <optional>

#include <fmt/format.h>

#include "strata/detail/assert.hpp"

namespace strata {

namespace {

constexpr std::string_view resource_name = "tracking_resource";

// A zero-byte block still occupies one address for overlap checks.
std::uintptr_t block_end(std::uintptr_t start, std::size_t bytes) noexcept {
  return start + std::max<std::size_t>(bytes, 1);
}

void print_leaks(const tracking_resource::leak_report& report) {
  fmt::print(stderr, "strata::tracking_resource: {} block(s), {} byte(s) leaked\n", report.blocks,
             report.bytes);
  constexpr std::size_t shown = 8;
  for (std::size_t i = 0; i < report.leaked.size() && i < shown; ++i) {
    const auto& b = report.leaked[i];
    fmt::print(stderr, "  #{} at {}: {} bytes aligned to {}\n", b.serial, b.pointer, b.bytes, b.alignment);
  }
  if (report.leaked.size() > shown) {
    fmt::print(stderr, "  ... and {} more\n", report.leaked.size() - shown);
  }
}

}  // namespace

// ------------------------------------------------------------ construction

tracking_resource::tracking_resource(options opts, std::pmr::memory_resource* upstream)
    : resource(resource_name, upstream),
      options_(std::move(opts)),
      allocations_left_(options_.allocation_limit) {
  detail::check_upstream(resource_name, upstream);
}

tracking_resource::~tracking_resource() {
  std::vector<block> leaked = live_block_list();
  if (!leaked.empty()) {
    std::size_t bytes = 0;
    for (const block& b : leaked) bytes += b.bytes;
    const leak_report report{leaked.size(), bytes, leaked};
    if (options_.on_leak) {
      options_.on_leak(report);
    } else {
      print_leaks(report);
    }
  }
  if (options_.release_leaks) release();
}

// -------------------------------------------------------------- allocation

void* tracking_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  detail::check_alignment(resource_name, alignment);
  {
    std::lock_guard lock(mutex_);
    if (allocations_left_ != unlimited) {
      if (allocations_left_ == 0) {
        allocations_left_ = unlimited;  // spent: exactly one throw per arming
        ++details_.limit_failures;
        counters_.on_failure();
        detail::throw_allocation_failure(resource_name, bytes, alignment, failure_reason::allocation_limit);
      }
      --allocations_left_;
    }
  }
  void* p = nullptr;
  try {
    p = upstream_resource()->allocate(bytes, alignment);
  } catch (...) {
    std::lock_guard lock(mutex_);
    counters_.on_failure();
    throw;  // exception neutral: the upstream's exception passes unchanged
  }
  bool duplicate = false;
  try {
    std::lock_guard lock(mutex_);
    if (!insert_locked(p, bytes, alignment)) {
      // The upstream handed out memory overlapping a live block: count it and
      // keep the block out of the books, since trusting it would hide the bug.
      counters_.on_misuse();
      ++details_.duplicate_handouts;
      duplicate = true;
    }
  } catch (...) {
    upstream_resource()->deallocate(p, bytes, alignment);  // the map could not grow: lose nothing
    std::lock_guard lock(mutex_);
    counters_.on_failure();
    throw;
  }
  if (duplicate) {
    // Reported outside the mutex: a handler may call back into this resource.
    report_misuse({resource_name, misuse_kind::duplicate_handout, p, bytes, alignment});
    return p;  // not filled: the fill would overwrite the live block it overlaps
  }
  if (options_.fill_on_allocate) std::memset(p, *options_.fill_on_allocate, bytes);
  return p;
}

bool tracking_resource::insert_locked(const void* p, std::size_t bytes, std::size_t alignment) {
  const auto start = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t end = block_end(start, bytes);
  auto next = live_.lower_bound(start);
  if (next != live_.end() && next->first < end) return false;
  if (next != live_.begin()) {
    const auto prev = std::prev(next);
    if (block_end(prev->first, prev->second.bytes) > start) return false;
  }
  // The upstream reused these addresses: a later free of one is this block's.
  freed_.erase(freed_.lower_bound(start), freed_.lower_bound(end));
  live_.emplace_hint(next, start, record{bytes, alignment, next_serial_++});
  live_bytes_ += bytes;
  details_.largest_alignment = std::max(details_.largest_alignment, alignment);
  counters_.on_allocate(bytes);
  counters_.on_upstream_allocate(bytes);
  STRATA_ASSERT_EXPENSIVE(invariants_hold(), "tracking_resource books drifted");
  return true;
}

void tracking_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  record found{};
  std::optional<misuse_kind> misuse;  // reported after unlocking: a handler may call back into us
  bool forward = true;
  {
    std::lock_guard lock(mutex_);
    const auto start = reinterpret_cast<std::uintptr_t>(p);
    const auto it = live_.find(start);
    if (it == live_.end()) {
      const bool recent = freed_.contains(start);
      counters_.on_rejected_deallocate();
      ++(recent ? details_.double_frees : details_.unknown_pointers);
      misuse = recent ? misuse_kind::double_free : misuse_kind::unknown_pointer;
      forward = false;  // never forwarded: the upstream would be corrupted
    } else {
      found = it->second;
      live_.erase(it);
      live_bytes_ -= found.bytes;
      try {
        freed_.insert(start);
      } catch (const std::bad_alloc&) {
        // Deallocate does not throw. Unremembered, a second free of p is
        // still refused, as an unknown pointer rather than a double free.
      }
      counters_.on_deallocate(found.bytes);
      counters_.on_upstream_deallocate(found.bytes);
      // Mismatches are corrected: the upstream gets what it handed out.
      if (found.bytes != bytes) {
        ++details_.size_mismatches;
        misuse = misuse_kind::size_mismatch;
      } else if (found.alignment != alignment) {
        ++details_.alignment_mismatches;
        misuse = misuse_kind::alignment_mismatch;
      }
      if (misuse) counters_.on_misuse();
    }
  }
  if (misuse) report_misuse({resource_name, *misuse, p, bytes, alignment});
  if (forward) forward_deallocate(p, found.bytes, found.alignment);
}

void tracking_resource::forward_deallocate(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  if (options_.fill_on_deallocate) std::memset(p, *options_.fill_on_deallocate, bytes);
  upstream_resource()->deallocate(p, bytes, alignment);
}

// ---------------------------------------------------------- housekeeping

void tracking_resource::set_allocation_limit(std::uint64_t n) {
  std::lock_guard lock(mutex_);
  allocations_left_ = n;
}

void tracking_resource::release() noexcept {
  std::map<std::uintptr_t, record> blocks;
  {
    std::lock_guard lock(mutex_);
    blocks.swap(live_);
    for (const auto& [start, r] : blocks) {
      counters_.on_deallocate(r.bytes);
      counters_.on_upstream_deallocate(r.bytes);
    }
    live_bytes_ = 0;
  }
  for (const auto& [start, r] : blocks) {
    forward_deallocate(reinterpret_cast<void*>(start), r.bytes, r.alignment);
  }
}

// --------------------------------------------------------------- observers

bool tracking_resource::owns(const void* p) const {
  std::lock_guard lock(mutex_);
  return live_.contains(reinterpret_cast<std::uintptr_t>(p));
}

std::size_t tracking_resource::live_blocks() const {
  std::lock_guard lock(mutex_);
  return live_.size();
}

std::vector<tracking_resource::block> tracking_resource::live_block_list() const {
  std::vector<block> blocks;
  {
    std::lock_guard lock(mutex_);
    blocks.reserve(live_.size());
    for (const auto& [start, r] : live_) {
      blocks.push_back({reinterpret_cast<const void*>(start), r.bytes, r.alignment, r.serial});
    }
  }
  std::sort(blocks.begin(), blocks.end(), [](const block& a, const block& b) { return a.serial < b.serial; });
  return blocks;
}

tracking_resource::details_type tracking_resource::details() const {
  std::lock_guard lock(mutex_);
  details_type d = details_;
  d.live_blocks = live_.size();
  d.live_bytes = live_bytes_;
  return d;
}

resource_stats tracking_resource::do_stats() const noexcept {
  std::lock_guard lock(mutex_);
  return counters_.snapshot();
}

void tracking_resource::do_reset_peak() noexcept {
  std::lock_guard lock(mutex_);
  counters_.reset_peak();
}

bool tracking_resource::invariants_hold() const noexcept {
  std::size_t bytes = 0;
  for (const auto& [start, r] : live_) bytes += r.bytes;
  return bytes == live_bytes_ && live_bytes_ == counters_.value.bytes_in_use &&
         counters_.value.bytes_in_use == counters_.value.bytes_reserved;
}

}  // namespace strata
