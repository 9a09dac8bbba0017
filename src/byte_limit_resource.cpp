// SPDX-License-Identifier: MIT
// byte_limit_resource: a quota decorator. The whole resource is this file's
// two calls; the charge is a CAS loop on one atomic, so a refused request
// never reaches the upstream.

#include "strata/byte_limit_resource.hpp"

namespace strata {

namespace {

constexpr std::string_view resource_name = "byte_limit_resource";
constexpr auto relaxed = std::memory_order_relaxed;

}  // namespace

// ------------------------------------------------------------ construction

byte_limit_resource::byte_limit_resource(options opts, std::pmr::memory_resource* upstream)
    : resource(resource_name, upstream), options_(opts) {
  detail::check_upstream(resource_name, upstream);
}

byte_limit_resource::~byte_limit_resource() = default;

// -------------------------------------------------------------- allocation

void* byte_limit_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  detail::check_alignment(resource_name, alignment);
  // Charge first: once the CAS succeeds the bytes are ours, whatever other
  // threads do, and the comparison is written so that no sum can wrap.
  std::size_t charged = charged_.load(relaxed);
  do {
    if (bytes > options_.max_bytes - charged) [[unlikely]] {
      limit_failures_.fetch_add(1, relaxed);
      counters_.on_failure();
      detail::throw_allocation_failure(resource_name, bytes, alignment, failure_reason::budget);
    }
    // Acquire pairs with deallocate's release: a charge freed by another thread
    // comes with that thread's uncounting (see do_deallocate).
  } while (!charged_.compare_exchange_weak(charged, charged + bytes, std::memory_order_acquire, relaxed));
  void* p = nullptr;
  try {
    p = upstream_resource()->allocate(bytes, alignment);
  } catch (...) {
    charged_.fetch_sub(bytes, relaxed);  // refused upstream: give the charge back
    upstream_failures_.fetch_add(1, relaxed);
    counters_.on_failure();
    throw;  // exception neutral
  }
  counters_.on_allocate(bytes);
  counters_.on_upstream_allocate(bytes);
  return p;
}

void byte_limit_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  // A size larger than anything charged is provably wrong (no block of it is
  // live); it is refused rather than forwarded, so the charge cannot wrap.
  if (bytes > charged_.load(relaxed)) [[unlikely]] {
    counters_.on_rejected_deallocate();
    report_misuse({resource_name, misuse_kind::size_mismatch, p, bytes, alignment});
    return;
  }
  upstream_resource()->deallocate(p, bytes, alignment);
  // The counters first, the charge last, as allocate charges first and counts
  // last: then the counters' bytes_in_use never exceeds the charge, so their
  // peak never exceeds max_bytes. (Released first, the charge let another
  // thread's block be counted before this one was uncounted: a peak of 576
  // under a limit of 512 was seen in CI.)
  counters_.on_deallocate(bytes);
  counters_.on_upstream_deallocate(bytes);
  charged_.fetch_sub(bytes, std::memory_order_release);
}

// --------------------------------------------------------------- observers

byte_limit_resource::details_type byte_limit_resource::details() const noexcept {
  return {options_.max_bytes, charged_.load(relaxed), limit_failures_.load(relaxed),
          upstream_failures_.load(relaxed)};
}

}  // namespace strata
