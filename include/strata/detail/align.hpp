// SPDX-License-Identifier: MIT
#pragma once

#include "../version.hpp"  // first: it stops a pre-C++20 build with a clear message

#include <bit>
#include <cstddef>
#include <cstdint>

// Alignment and size arithmetic shared by every resource. Not part of the public API.

namespace strata::detail {

// Not std::has_single_bit: without -mpopcnt GCC compiles that to a libgcc
// call, which costs more than the rest of an allocation fast path.
[[nodiscard]] constexpr bool is_power_of_two(std::size_t value) noexcept {
  return value != 0 && (value & (value - 1)) == 0;
}

[[nodiscard]] inline bool is_aligned(const void* pointer, std::size_t alignment) noexcept {
  return (reinterpret_cast<std::uintptr_t>(pointer) & (alignment - 1)) == 0;
}

/// Returns value rounded up to a multiple of alignment (a power of two), or
/// false in `ok` when that would wrap around.
[[nodiscard]] constexpr std::size_t round_up(std::size_t value, std::size_t alignment, bool& ok) noexcept {
  const std::size_t mask = alignment - 1;
  ok = value <= SIZE_MAX - mask;
  return (value + mask) & ~mask;
}

[[nodiscard]] inline std::uintptr_t align_up(std::uintptr_t address, std::size_t alignment) noexcept {
  return (address + (alignment - 1)) & ~static_cast<std::uintptr_t>(alignment - 1);
}

}  // namespace strata::detail
