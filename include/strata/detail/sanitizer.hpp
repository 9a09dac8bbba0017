// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>

// AddressSanitizer hooks for memory a resource keeps after the caller has
// given it back (caches, free lists, rewound arena space): poisoned memory
// makes a use-after-free fail loudly under ASan. Without ASan the functions
// compile to nothing. Not part of the public API.

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

inline void poison_memory(const void* address, std::size_t bytes) noexcept {
#if defined(STRATA_HAS_ASAN)
  ASAN_POISON_MEMORY_REGION(address, bytes);
#else
  static_cast<void>(address);
  static_cast<void>(bytes);
#endif
}

inline void unpoison_memory(const void* address, std::size_t bytes) noexcept {
#if defined(STRATA_HAS_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(address, bytes);
#else
  static_cast<void>(address);
  static_cast<void>(bytes);
#endif
}

}  // namespace strata::detail
