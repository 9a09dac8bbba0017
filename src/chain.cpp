// SPDX-License-Identifier: MIT
#include "strata/chain.hpp"

namespace strata {

std::string_view link_name(const std::pmr::memory_resource* r) noexcept {
  if (const auto* link = dynamic_cast<const strata::resource*>(r)) return link->name();
  if (r == std::pmr::new_delete_resource()) return "new_delete_resource";
  if (r == std::pmr::null_memory_resource()) return "null_memory_resource";
  if (dynamic_cast<const std::pmr::monotonic_buffer_resource*>(r) != nullptr) {
    return "monotonic_buffer_resource";
  }
  if (dynamic_cast<const std::pmr::unsynchronized_pool_resource*>(r) != nullptr) {
    return "unsynchronized_pool_resource";
  }
  if (dynamic_cast<const std::pmr::synchronized_pool_resource*>(r) != nullptr) {
    return "synchronized_pool_resource";
  }
  return "memory_resource";
}

std::string_view chain_link::name() const noexcept {
  return link_name(resource);
}

}  // namespace strata
