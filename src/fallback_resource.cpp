// SPDX-License-Identifier: MIT
// fallback_resource: the rare paths. The primary path is inline in the
// header and takes no lock; everything here runs only when the primary has
// refused a request or while some fallback block is live.

#include "strata/fallback_resource.hpp"

#include <optional>

#include "strata/detail/assert.hpp"

namespace strata {

namespace {

constexpr std::string_view resource_name = "fallback_resource";
constexpr auto relaxed = std::memory_order_relaxed;

}  // namespace

// ------------------------------------------------------------ construction

fallback_resource::fallback_resource(std::pmr::memory_resource* primary, std::pmr::memory_resource* fallback)
    : resource(resource_name, primary), fallback_(fallback) {
  if (primary == nullptr) detail::throw_bad_option(resource_name, "primary", "must not be null");
  if (fallback == nullptr) detail::throw_bad_option(resource_name, "fallback", "must not be null");
}

fallback_resource::~fallback_resource() = default;

// -------------------------------------------------------------- allocation

void* fallback_resource::allocate_from_fallback(std::size_t bytes, std::size_t alignment) {
  fallbacks_taken_.fetch_add(1, relaxed);
  void* p = nullptr;
  try {
    p = fallback_->allocate(bytes, alignment);
  } catch (...) {
    counters_.on_failure();
    throw;  // exception neutral: the fallback's exception is the caller's
  }
  try {
    std::lock_guard lock(mutex_);
    const bool inserted = fallback_blocks_.emplace(p, record{bytes, alignment}).second;
    STRATA_ASSERT(inserted, "the fallback handed out a block that is still live");
    if (inserted) fallback_bytes_ += bytes;
    fallback_live_.store(fallback_blocks_.size(), relaxed);
  } catch (...) {
    fallback_->deallocate(p, bytes, alignment);  // the map could not grow: lose nothing
    counters_.on_failure();
    throw;
  }
  fallback_allocations_.fetch_add(1, relaxed);
  counters_.on_allocate(bytes);
  counters_.on_upstream_allocate(bytes);
  return p;
}

// ------------------------------------------------------------ deallocation

void fallback_resource::deallocate_slow(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  std::optional<record> found;
  {
    std::lock_guard lock(mutex_);
    const auto it = fallback_blocks_.find(p);
    if (it != fallback_blocks_.end()) {
      found = it->second;
      fallback_bytes_ -= found->bytes;
      fallback_blocks_.erase(it);
      fallback_live_.store(fallback_blocks_.size(), relaxed);
    }
  }
  if (!found) {  // not the fallback's, so the primary's
    upstream_resource()->deallocate(p, bytes, alignment);
    counters_.on_deallocate(bytes);
    counters_.on_upstream_deallocate(bytes);
    return;
  }
  // The fallback gets what it handed out; a different size or alignment from
  // the caller is provably wrong, and is counted and reported, not obeyed.
  if (found->bytes != bytes || found->alignment != alignment) {
    counters_.on_misuse();
    report_misuse({resource_name,
                   found->bytes != bytes ? misuse_kind::size_mismatch : misuse_kind::alignment_mismatch, p,
                   bytes, alignment});
  }
  fallback_->deallocate(p, found->bytes, found->alignment);
  counters_.on_deallocate(found->bytes);
  counters_.on_upstream_deallocate(found->bytes);
}

// --------------------------------------------------------------- observers

bool fallback_resource::served_by_fallback(const void* p) const {
  std::lock_guard lock(mutex_);
  return fallback_blocks_.contains(p);
}

fallback_resource::details_type fallback_resource::details() const {
  details_type d{fallback_,
                 primary_allocations_.load(relaxed),
                 fallback_allocations_.load(relaxed),
                 fallbacks_taken_.load(relaxed),
                 0,
                 0};
  std::lock_guard lock(mutex_);
  d.fallback_live_blocks = fallback_blocks_.size();
  d.fallback_live_bytes = fallback_bytes_;
  return d;
}

}  // namespace strata
