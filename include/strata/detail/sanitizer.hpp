// SPDX-License-Identifier: MIT
#pragma once

#include <atomic>
#include <cstddef>

// Memory-error tool hooks for memory a resource keeps after the caller has
// given it back (caches, free lists, rewound arena space): poisoned memory
// makes a use-after-free fail loudly under AddressSanitizer and valgrind's
// memcheck. Not part of the public API.
//
// Whether a tool is present is decided at run time, once per process, by the
// library (src/sanitizer.cpp), never by macros in the including TU: the inline
// functions below compile to the same code in every TU (no ODR hazard), and a
// release libstrata poisons for an application built with -fsanitize=address.
// With no tool present the cost is one relaxed load and a well-predicted
// branch; the calls into the tool are out of line.
//
// Thread-safety: any thread may call these; the state word is written only
// with the value every thread computes (it never changes after that).

// For strata's own tests, which ask ASan whether an address is poisoned:
// STRATA_HAS_ASAN and the ASan interface's declarations when this TU is built
// with ASan. They change no inline function below.
#if defined(__SANITIZE_ADDRESS__)
#define STRATA_HAS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRATA_HAS_ASAN 1
#endif
#endif
#if defined(STRATA_HAS_ASAN)
#include <sanitizer/asan_interface.h>
#endif

namespace strata::detail {

enum class memory_tool_state : unsigned char {
  unknown,  // not looked at yet: the first call decides
  absent,   // no ASan runtime, not under valgrind, or STRATA_POISON=0
  present,
};

// Constant-initialized, so a resource used during static initialization sees
// `unknown` rather than garbage. Defined in src/sanitizer.cpp.
extern std::atomic<memory_tool_state> memory_tool;

// Out of line: decide the state if unknown, then tell every present tool.
void poison_memory_slow(const void* address, std::size_t bytes) noexcept;
// Out of line: decides the state if unknown and returns whether a tool is
// present. For resources whose inline fast paths do no poisoning at all
// (slab, extendable_slab, chunk_provider, arena): they ask once, at construction,
// and when a tool is present send every call to their out-of-line paths,
// which poison (the state never changes once decided).
[[nodiscard]] bool memory_tool_present() noexcept;
void unpoison_memory_slow(const void* address, std::size_t bytes) noexcept;

inline void poison_memory(const void* address, std::size_t bytes) noexcept {
  if (memory_tool.load(std::memory_order_relaxed) != memory_tool_state::absent) [[unlikely]]
    poison_memory_slow(address, bytes);
}

inline void unpoison_memory(const void* address, std::size_t bytes) noexcept {
  if (memory_tool.load(std::memory_order_relaxed) != memory_tool_state::absent) [[unlikely]]
    unpoison_memory_slow(address, bytes);
}

}  // namespace strata::detail
