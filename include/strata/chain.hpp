// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <memory_resource>
#include <string_view>

#include "resource.hpp"

// Walking a chain of resources from any link down to its bottom.

namespace strata {

/// One link of a chain, as visited by for_each_link.
struct chain_link {
  const std::pmr::memory_resource* resource;  ///< the link itself; never null
  const strata::resource* strata;             ///< the same object if it is a strata resource, else nullptr
  std::size_t depth;                          ///< 0 for the link the walk started from

  /// Returns the strata name, or for a foreign link a descriptive name:
  /// "new_delete_resource", "null_memory_resource",
  /// "monotonic_buffer_resource", "unsynchronized_pool_resource",
  /// "synchronized_pool_resource", or "memory_resource" for anything else.
  [[nodiscard]] std::string_view name() const noexcept;
};

/// Returns the name a chain_link would report for r (r must not be null).
[[nodiscard]] std::string_view link_name(const std::pmr::memory_resource* r) noexcept;

/// Calls visit(chain_link) for r and then for each upstream in turn. A link
/// that is not a strata resource (new_delete_resource(), a std pool, a user's
/// own resource) is visited as an opaque link and ends the walk, since the
/// memory_resource interface cannot say what is below it. Does nothing when
/// r is nullptr.
/// Complexity: O(length of the chain). Thread safety: as thread-safe as the
/// links' stats(), which is const thread-safe for every strata resource.
template <class Visitor>
void for_each_link(const std::pmr::memory_resource* r, Visitor&& visit) {
  for (std::size_t depth = 0; r != nullptr; ++depth) {
    const auto* link = dynamic_cast<const strata::resource*>(r);
    visit(chain_link{r, link, depth});
    r = link != nullptr ? link->upstream_resource() : nullptr;
  }
}

}  // namespace strata
