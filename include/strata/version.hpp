// SPDX-License-Identifier: MIT
#pragma once

/// \file
/// The library's version, and the one language requirement every strata header
/// has. Every public header includes this one (through stats.hpp or
/// detail/align.hpp), so a build without C++20 stops here with a message that
/// names the fix, instead of dozens of errors deep inside the headers.

#if !defined(__cplusplus) || __cplusplus < 202002L
#error \
    "strata needs C++20: compile with -std=c++20 (meson: default_options : ['cpp_std=c++20'], CMake: the strata::strata target carries cxx_std_20)"
#endif

/// Version of strata, as MAJOR * 10000 + MINOR * 100 + PATCH (0.2.0 is 200).
/// Kept equal to meson.build's project version by the `version_header` test.
#define STRATA_VERSION_MAJOR 0
#define STRATA_VERSION_MINOR 2
#define STRATA_VERSION_PATCH 0
#define STRATA_VERSION (STRATA_VERSION_MAJOR * 10000 + STRATA_VERSION_MINOR * 100 + STRATA_VERSION_PATCH)
#define STRATA_VERSION_STRING "0.2.0"

namespace strata {

/// The version the headers in use belong to, for code that prefers a value to
/// a macro (e.g. to print it next to a chain's statistics).
inline constexpr int version_major = STRATA_VERSION_MAJOR;
inline constexpr int version_minor = STRATA_VERSION_MINOR;
inline constexpr int version_patch = STRATA_VERSION_PATCH;
inline constexpr const char* version_string = STRATA_VERSION_STRING;

}  // namespace strata
