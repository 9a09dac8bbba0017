// SPDX-License-Identifier: MIT
// strata-demo: builds a small chain, runs pmr containers on it, and prints
// what every link saw. A placeholder for the per-request demo that arrives
// with monotonic_arena (issue 4).

#include <cstdio>
#include <cstring>
#include <memory_resource>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <strata/format.hpp>
#include <strata/strata.hpp>

int main(int argc, char** argv) {
  if (argc > 1) {
    const bool help = std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0;
    std::fprintf(help ? stdout : stderr, "usage: strata-demo\n"
                                         "Builds tracking_resource -> page_resource, fills pmr containers,\n"
                                         "and prints the chain's statistics.\n");
    return help ? 0 : 2;
  }

  strata::tracking_resource checked{strata::system_pages()};
  {
    std::pmr::vector<std::pmr::string> words{&checked};
    for (int i = 0; i < 1000; ++i) words.emplace_back(fmt::format("word-{}-with-some-padding", i));
    fmt::print("{} words on the chain; while they are live:\n\n{}\n", words.size(),
               strata::format_chain(&checked));
  }
  fmt::print("after the containers are gone:\n\n{}", strata::format_chain(&checked));
  return checked.live_blocks() == 0 ? 0 : 1;
}
