// SPDX-License-Identifier: MIT
// Built by test/consumers/run with -fsanitize=address (and without, for
// valgrind) against a release, unsanitized libstrata: strata's poisoning must
// reach the application's memory-error tool all the same (issue 14).
//   misuse clean            uses every resource correctly; must run clean
//   misuse use-after-reset  reads a monotonic_arena block after reset()
//   misuse slab-free        reads a slab slot after deallocate
//   misuse arena-free       reads an arena block after deallocate
#include <cstdio>
#include <cstring>
#include <memory_resource>

#include <strata/arena.hpp>
#include <strata/chunk_provider.hpp>
#include <strata/monotonic_arena.hpp>
#include <strata/page_resource.hpp>
#include <strata/slab.hpp>

namespace {

// The read the tool must catch: volatile, so the compiler keeps it.
int read_byte(const void* p) {
  return *static_cast<const volatile unsigned char*>(p);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fputs("usage: misuse clean|use-after-reset|slab-free|arena-free\n", stderr);
    return 2;
  }
  const char* what = argv[1];
  const bool clean = std::strcmp(what, "clean") == 0;
  int sum = 0;
  {
    strata::chunk_provider chunks{strata::system_pages()};
    strata::monotonic_arena scratch{&chunks};
    void* p = scratch.allocate(64);
    std::memset(p, 1, 64);
    sum += read_byte(p);
    scratch.reset();
    if (std::strcmp(what, "use-after-reset") == 0) sum += read_byte(p);
  }
  {
    strata::slab slots{{.slot_size = 64, .capacity = 16}, strata::system_pages()};
    void* p = slots.allocate(64);
    std::memset(p, 2, 64);
    sum += read_byte(static_cast<char*>(p) + 32);
    slots.deallocate(p, 64);
    if (std::strcmp(what, "slab-free") == 0) sum += read_byte(static_cast<char*>(p) + 32);
  }
  {
    strata::arena blocks{strata::system_pages()};
    void* p = blocks.allocate(48);
    std::memset(p, 3, 48);
    sum += read_byte(static_cast<char*>(p) + 16);
    blocks.deallocate(p, 48);
    if (std::strcmp(what, "arena-free") == 0) sum += read_byte(static_cast<char*>(p) + 16);
  }
  std::printf("%s: %d\n", what, sum);
  return clean || sum == 0 ? 0 : 3;  // a misuse that went unreported exits 3
}
