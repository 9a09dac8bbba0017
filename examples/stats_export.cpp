// SPDX-License-Identifier: MIT
// Printing and exporting statistics.
//
// Every strata resource reports the same counters (resource_stats), and a
// chain can be walked from any link. format.hpp renders that walk two ways:
//   format_chain       an aligned table, for logs and people;
//   format_chain_json  one line of JSON, for dashboards and scripts.
// format.hpp is the only strata header that includes fmt: include it only in
// the files that print.
//
// Usage: stats-export [FILE]   also writes the JSON to FILE

#include <cstdio>
#include <fstream>
#include <memory_resource>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <strata/chunk_provider.hpp>
#include <strata/format.hpp>
#include <strata/literals.hpp>
#include <strata/monotonic_arena.hpp>
#include <strata/page_resource.hpp>

namespace {

bool all_ok = true;
void check(bool condition, const char* claim) {
  fmt::print("{}: {}\n", condition ? "ok  " : "FAIL", claim);
  all_ok = all_ok && condition;
}

std::size_t count(std::string_view text, std::string_view what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace strata::literals;  // 1_MiB: a std::size_t, checked at compile time
  strata::chunk_provider chunks{{.max_chunk_size = 1_MiB}, strata::system_pages()};
  strata::monotonic_arena scratch{&chunks};
  const auto fill = [](std::pmr::vector<std::pmr::string>& lines) {
    for (int i = 0; i < 300; ++i) lines.emplace_back(40, 'x');
  };
  for (int request = 0; request < 19; ++request) {
    {
      std::pmr::vector<std::pmr::string> lines{&scratch};
      fill(lines);
    }
    scratch.reset();
  }
  std::pmr::vector<std::pmr::string> live{&scratch};  // a request in progress, so there is something to see
  fill(live);

  // One link on one line, through the fmt formatter.
  fmt::print("arena: {}\n\n", scratch.stats());

  // The whole chain as a table: arena, provider, page_resource.
  const std::string table = strata::format_chain(&scratch);
  fmt::print("{}\n", table);
  check(count(table, "\n") == 4, "table: a header and one row per link");

  // The same walk as JSON: [{"depth":0,"name":"monotonic_arena","strata":true,"stats":{...}}, ...].
  // Field names are the resource_stats member names. A non-strata link (say a
  // std::pmr pool) would appear with "strata":false and "stats":null, and end the walk.
  const std::string json = strata::format_chain_json(&scratch);
  fmt::print("{}\n\n", json);
  check(json.starts_with(R"({"version":2,"links":[)") && json.ends_with("]}"),
        "json: versioned, one array of links");
  check(json.find(R"("name":"monotonic_arena")") < json.find(R"("name":"chunk_provider")") &&
            json.find(R"("name":"chunk_provider")") < json.find(R"("name":"page_resource")"),
        "json: links in walk order, top first");
  for (const char* field :
       {"bytes_in_use", "peak_bytes_in_use", "bytes_reserved", "allocations", "deallocations",
        "failed_allocations", "upstream_allocations", "upstream_deallocations", "misuse_detected"}) {
    check(count(json, fmt::format("\"{}\":", field)) == 3, field);
  }
  const std::string in_use = fmt::format(R"("bytes_in_use":{},)", scratch.stats().bytes_in_use);
  check(json.find(in_use) != std::string::npos, "json: the arena's figures are the live ones");

  // A dashboard agent would poll this and ship the line; here, a file.
  if (argc > 1) {
    std::ofstream out(argv[1]);
    out << json << '\n';  // a JSON Lines record
    check(static_cast<bool>(out), "json written to the file");
  }
  return all_ok ? 0 : 1;
}
