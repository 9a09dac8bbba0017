// SPDX-License-Identifier: MIT
// The program every downstream consumer in test/consumers builds (test/consumers/run
// copies it next to each build file): a per-request arena over a chunk cache over
// OS pages, some pmr allocations, then the chain as format_chain prints it.
#include <cstdio>
#include <memory_resource>
#include <string>
#include <vector>

#include <strata/format.hpp>
#include <strata/strata.hpp>

int main() {
  strata::chunk_provider chunks{strata::system_pages()};
  strata::monotonic_arena scratch{&chunks};
  {
    std::pmr::vector<std::pmr::string> words{&scratch};
    for (int i = 0; i < 1000; ++i) {
      words.emplace_back("a word long enough to be allocated from the arena");
    }
  }
  std::printf("strata %s\n", strata::version_string);
  std::fputs(strata::format_chain(&scratch).c_str(), stdout);
#if defined(STRATA_HARDENED)
  std::puts("STRATA_HARDENED defined");
#else
  std::puts("STRATA_HARDENED not defined");
#endif
  return scratch.stats().allocations > 0 && chunks.stats().upstream_allocations > 0 ? 0 : 1;
}
