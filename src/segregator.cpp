// SPDX-License-Identifier: MIT
// segregator: construction and observers; the routing itself is inline in
// the header, since it is a compare in front of a virtual call.

#include "strata/segregator.hpp"

namespace strata {

namespace {

constexpr std::string_view resource_name = "segregator";

}  // namespace

segregator::segregator(options opts, std::pmr::memory_resource* small, std::pmr::memory_resource* large)
    : resource(resource_name, large), options_(opts), small_(small) {
  if (small == nullptr) detail::throw_bad_option(resource_name, "small", "must not be null");
  if (large == nullptr) detail::throw_bad_option(resource_name, "large", "must not be null");
  if (options_.threshold == 0) detail::throw_bad_option(resource_name, "threshold", "must not be 0");
  if (!detail::is_power_of_two(options_.max_small_alignment)) {
    detail::throw_bad_option(resource_name, "max_small_alignment", "must be a power of two");
  }
}

segregator::~segregator() = default;

segregator::details_type segregator::details() const noexcept {
  return {small_, options_.threshold, options_.max_small_alignment,
          small_allocations_.load(std::memory_order_relaxed),
          large_allocations_.load(std::memory_order_relaxed)};
}

}  // namespace strata
