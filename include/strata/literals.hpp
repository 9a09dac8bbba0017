// SPDX-License-Identifier: MIT
#pragma once

#include "version.hpp"  // first: it stops a pre-C++20 build with a clear message

#include <cstddef>
#include <cstdint>

// Size literals for options and requests: `4_GiB` instead of `4 << 30`,
// which is an int expression that overflows (undefined behaviour, 0 in
// practice) before it is converted to std::size_t, so a budget written that
// way compiles silently and makes every allocation fail (issue 17). The
// operators are consteval: a literal whose value does not fit in
// std::size_t is a compile error, never a wrapped value.
//
//     using namespace strata::literals;
//     strata::chunk_provider chunks{{.max_chunk_size = 1_MiB, .byte_budget = 4_GiB},
//                                   strata::system_pages()};

namespace strata::detail {

// Returns value * 2^shift; a value that does not fit makes the call a
// non-constant expression, which a consteval caller turns into a compile error.
consteval std::size_t scaled(unsigned long long value, unsigned shift) {
  if (value > (SIZE_MAX >> shift)) {
    throw "strata size literal overflows std::size_t";  // not a constant expression: compile error
  }
  return static_cast<std::size_t>(value) << shift;
}

}  // namespace strata::detail

namespace strata {
inline namespace literals {

/// Returns value kibibytes (value * 1024) as a std::size_t.
consteval std::size_t operator""_KiB(unsigned long long value) {
  return detail::scaled(value, 10);
}
/// Returns value mebibytes (value * 2^20) as a std::size_t.
consteval std::size_t operator""_MiB(unsigned long long value) {
  return detail::scaled(value, 20);
}
/// Returns value gibibytes (value * 2^30) as a std::size_t.
consteval std::size_t operator""_GiB(unsigned long long value) {
  return detail::scaled(value, 30);
}

}  // namespace literals
}  // namespace strata
