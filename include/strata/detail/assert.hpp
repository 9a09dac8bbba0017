// SPDX-License-Identifier: MIT
#pragma once

// Internal assertions. Not part of the public API.
//
// STRATA_ASSERT checks a cheap invariant whenever NDEBUG is not defined. It
// is for src/ only: there it follows the library's own build, compiled once.
// Inline code in a header must not use it (nor NDEBUG or assert), because the
// user's NDEBUG may differ from the library's and the header would then
// behave differently in different TUs, an ODR violation (docs/reliability.md;
// test/check_header_macros.sh enforces it). Checks in headers are keyed on
// options stored in the object, or on a macro the build carries to users.
// STRATA_ASSERT_EXPENSIVE walks whole structures and is on only with the meson
// option expensive_checks (which defines STRATA_EXPENSIVE_CHECKS for the
// library and, through the dependency, pkg-config and CMake, for its users).
// STRATA_SLOW_PATH marks the out-of-line refill/upstream functions so the
// compiler keeps them away from the inlined fast paths.

namespace strata::detail {

/// Prints the failed condition with its message and aborts.
[[noreturn, gnu::cold]] void assertion_failed(const char* condition, const char* message, const char* file,
                                              int line) noexcept;

}  // namespace strata::detail

#if defined(NDEBUG)
#define STRATA_ASSERT(condition, message) static_cast<void>(sizeof(static_cast<bool>(condition)))
#else
#define STRATA_ASSERT(condition, message) \
  (static_cast<bool>(condition)           \
       ? static_cast<void>(0)             \
       : ::strata::detail::assertion_failed(#condition, message, __FILE__, __LINE__))
#endif

#if defined(STRATA_EXPENSIVE_CHECKS)
#define STRATA_ASSERT_EXPENSIVE(condition, message) \
  (static_cast<bool>(condition)                     \
       ? static_cast<void>(0)                       \
       : ::strata::detail::assertion_failed(#condition, message, __FILE__, __LINE__))
#else
#define STRATA_ASSERT_EXPENSIVE(condition, message) static_cast<void>(0)
#endif

#define STRATA_SLOW_PATH [[gnu::noinline, gnu::cold]]
