// SPDX-License-Identifier: MIT
// Run-time detection of the memory-error tools behind detail/sanitizer.hpp.
//
// AddressSanitizer: its interface functions are declared weak, so this file
// links in every build; their address is non-null exactly when the process
// has the ASan runtime (the application or the library was built with
// -fsanitize=address), whatever flags libstrata itself was compiled with.
// Valgrind: memcheck client requests, when the library was built with
// <valgrind/memcheck.h> (STRATA_HAVE_VALGRIND, a decision of the library's own
// build, seen by no inline code); outside valgrind they do nothing.

#include "strata/detail/sanitizer.hpp"

#include <cstdlib>
#include <cstring>

#if defined(STRATA_HAVE_VALGRIND)
#include <valgrind/memcheck.h>
#endif

// The ASan runtime's declarations, weak; same signatures as in
// <sanitizer/asan_interface.h>, which is not included so that the
// declarations stay weak in sanitized builds too.
// The ASan runtime's own names, reserved identifiers by design:
// NOLINTBEGIN(bugprone-reserved-identifier)
extern "C" {
[[gnu::weak]] void __asan_poison_memory_region(void const volatile* address, std::size_t bytes);
[[gnu::weak]] void __asan_unpoison_memory_region(void const volatile* address, std::size_t bytes);
}
// NOLINTEND(bugprone-reserved-identifier)

namespace strata::detail {

constinit std::atomic<memory_tool_state> memory_tool{memory_tool_state::unknown};

namespace {

bool asan_present() noexcept {
  return __asan_poison_memory_region != nullptr;
}

bool valgrind_present() noexcept {
#if defined(STRATA_HAVE_VALGRIND)
  return RUNNING_ON_VALGRIND != 0;
#else
  return false;
#endif
}

// STRATA_POISON=0 in the environment turns the annotations off (for a tool
// whose reports on strata's kept memory are not wanted).
bool turned_off() noexcept {
  const char* value = std::getenv("STRATA_POISON");
  return value != nullptr && std::strcmp(value, "0") == 0;
}

// Decides once; racing first callers compute and store the same value.
bool tool_present() noexcept {
  auto state = memory_tool.load(std::memory_order_relaxed);
  if (state == memory_tool_state::unknown) {
    state = !turned_off() && (asan_present() || valgrind_present()) ? memory_tool_state::present
                                                                    : memory_tool_state::absent;
    memory_tool.store(state, std::memory_order_relaxed);
  }
  return state == memory_tool_state::present;
}

}  // namespace

bool memory_tool_present() noexcept {
  return tool_present();
}

void poison_memory_slow(const void* address, std::size_t bytes) noexcept {
  if (!tool_present()) return;
  if (asan_present()) __asan_poison_memory_region(address, bytes);
#if defined(STRATA_HAVE_VALGRIND)
  VALGRIND_MAKE_MEM_NOACCESS(address, bytes);
#endif
}

// Defined, not undefined, for valgrind: the library reads the link word it
// stored in a free block after opening it, and memcheck forgot its value
// when the block was made unaddressable.
void unpoison_memory_slow(const void* address, std::size_t bytes) noexcept {
  if (!tool_present()) return;
  if (asan_present()) __asan_unpoison_memory_region(address, bytes);
#if defined(STRATA_HAVE_VALGRIND)
  VALGRIND_MAKE_MEM_DEFINED(address, bytes);
#endif
}

}  // namespace strata::detail
