// SPDX-License-Identifier: MIT
// strata-demo: the same server requests on several memory resources, side by
// side. Each request of the default workload parses a JSON order batch into a
// pmr DOM, indexes it in pmr maps and builds and serializes a response
// (examples/demo/json_workload.hpp); --workload words tokenizes text and
// counts words instead (examples/word_count.hpp). Each backend runs in a
// fresh child process, so its system figures are its own: mapping system
// calls counted by the kernel, minor page faults, peak RSS and reserved
// address space (examples/demo/system_figures.hpp). The strata chain is
// printed with strata::format_chain, and every backend must produce the
// same responses.
//
// The pieces, one job each, under examples/demo/:
//   args.hpp            the command line
//   json_workload.hpp   the JSON workload (generator, DOM, parser, request)
//   backends.hpp        the memory resources compared
//   system_figures.hpp  fork, seccomp + ptrace counting, /proc and getrusage
//   measure.hpp         one backend's run inside its child
//   report.hpp          progress line, table, JSON

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include <fmt/format.h>

#include "demo/args.hpp"
#include "demo/backends.hpp"
#include "demo/json_workload.hpp"
#include "demo/measure.hpp"
#include "demo/report.hpp"
#include "demo/system_figures.hpp"
#include "word_count.hpp"

namespace {

using namespace strata::demo;

/// A runtime error: printed as "strata-demo: <what>", exit 1.
struct runtime_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::vector<std::string> read_lines(const std::string& path, bool words) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw runtime_failure(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::vector<std::string> documents;
  if (words) documents.emplace_back();
  std::size_t number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (!words) {
      // JSON Lines: one document per line; each is checked here, once, so a
      // malformed one is reported with its place instead of failing a child.
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      try {
        strata::examples::json::parser(line, std::pmr::new_delete_resource()).parse();
      } catch (const strata::examples::json::parse_error& e) {
        throw runtime_failure(
            fmt::format("{}:{}: not JSON at byte {}: {}", path, number, e.offset() + 1, e.what()));
      }
      documents.push_back(std::move(line));
      continue;
    }
    documents.back() += line;  // text split into documents of about 16 KiB at line ends
    documents.back() += '\n';
    if (documents.back().size() >= std::size_t{16} * 1024) documents.emplace_back();
  }
  if (in.bad()) throw runtime_failure(fmt::format("error reading {}", path));
  if (!documents.empty() && documents.back().empty()) documents.pop_back();
  if (documents.empty())
    throw runtime_failure(fmt::format("{} holds no {}", path, words ? "text" : "JSON document"));
  return documents;
}

std::string describe_tracing(const settings& s, const std::vector<row>& rows) {
  if (!s.trace) return "not counted (--no-trace)";
  for (const row& r : rows)
    if (r.ok() && !r.result.traced) return "not counted: this system refuses ptrace or seccomp to the demo";
  return "counted by the kernel: a seccomp filter stops the child at each, its parent (ptrace) counts";
}

int run(const settings& s) {
  const bool words = s.workload == workload_kind::words;
  const std::vector<std::string> documents = !s.input.empty()
                                                 ? read_lines(s.input, words)
                                                 : (words ? strata::examples::generated_documents(64)
                                                          : strata::examples::json::generated_documents(64));
  const work_fn work = words ? static_cast<work_fn>(&strata::examples::process)
                             : static_cast<work_fn>(&strata::examples::json::process);

  run_info run;
  run.s = &s;
  read_load(run.load);
  run.documents = documents.size();
  run.smallest = SIZE_MAX;
  for (const std::string& d : documents) {
    run.document_bytes += d.size();
    run.smallest = std::min(run.smallest, d.size());
    run.largest = std::max(run.largest, d.size());
  }
  const bool json_to_stdout = s.json_path == "-";
  const bool table = !json_to_stdout;
  // Opened now, so that an unwritable path fails before the run, not after.
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> json_file{nullptr, &std::fclose};
  if (!s.json_path.empty() && !json_to_stdout) {
    json_file.reset(std::fopen(s.json_path.c_str(), "w"));
    if (!json_file)
      throw runtime_failure(fmt::format("cannot write {}: {}", s.json_path, std::strerror(errno)));
  }
  if (table) print_header(run);

  const std::size_t backends = s.backends.size();
  progress_line progress(table && !s.quiet && ::isatty(STDOUT_FILENO) == 1, s.rounds * backends, s.requests);
  std::vector<row> rows(backends);
  std::vector<std::vector<backend_result>> rounds(backends);
  // Round by round, every backend once: a change in the machine's load
  // during the run then falls on every backend alike.
  for (std::size_t round = 0; round < s.rounds; ++round) {
    for (std::size_t i = 0; i < backends; ++i) {
      row& r = rows[i];
      r.key = s.backends[i];
      if (!r.failure.empty() || !r.result.available) continue;  // failed or not installed: once is enough
      shared_object<child_page> page;
      progress.start(round * backends + i, s.rounds == 1 ? std::string(info_of(r.key).name)
                                                         : fmt::format("{}, round {}/{}", info_of(r.key).name,
                                                                       round + 1, s.rounds));
      const child_status status = run_isolated([&] { return measure(r.key, s, documents, work, *page); },
                                               page->counters, s.trace, [&] { progress.show(page->done()); });
      r.result = page->result;
      if (page->result.error[0] != '\0') {
        r.failure = page->result.error;
      } else if (!status.exited) {
        r.failure =
            fmt::format("the child was killed by signal {} ({})", status.code, strsignal(status.code));
      } else if (status.code != 0 || (!page->result.finished && page->result.available)) {
        r.failure = fmt::format("the child exited with status {}", status.code);
      } else if (page->result.finished) {
        rounds[i].push_back(page->result);
        r.round_rates.push_back(rate_of(page->result));
        r.round_checksums.push_back(page->result.checksum);
      }
    }
  }
  for (std::size_t i = 0; i < backends; ++i) {
    if (rounds[i].empty() || !rows[i].failure.empty()) continue;
    std::vector<std::size_t> order(rounds[i].size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return rows[i].round_rates[a] < rows[i].round_rates[b]; });
    rows[i].median_round = order[order.size() / 2];
    rows[i].result = rounds[i][rows[i].median_round];
  }
  progress.clear();
  run.tracing = describe_tracing(s, rows);

  int code = 0;
  if (table) {
    print_table(run, rows);
    for (const row& r : rows) {
      if (r.key == "strata" && r.ok())
        fmt::print("\nThe strata chain, from thread 0's arena:\n\n{}", r.result.chain_text);
    }
    print_summary(rows);
  }
  const row* reference = nullptr;
  for (const row& r : rows) {
    if (!r.ok()) {
      if (r.result.available) {
        std::fprintf(stderr, "strata-demo: %s failed: %s\n", r.key.c_str(), r.failure.c_str());
        code = 1;
      }
      continue;
    }
    if (reference == nullptr) reference = &r;
    for (const std::uint64_t sum : r.round_checksums) {
      if (sum != reference->result.checksum) {
        std::fprintf(stderr, "strata-demo: %s and %s produced different responses\n", reference->key.c_str(),
                     r.key.c_str());
        code = 1;
        break;
      }
    }
  }
  if (table && code == 0 && reference != nullptr)
    fmt::print("\nAll backends produced the same responses (checksum {:016x}).\n",
               reference->result.checksum);

  if (!s.json_path.empty()) {
    const std::string text = results_json(run, rows);
    if (json_to_stdout) {
      std::fputs(text.c_str(), stdout);
    } else if (std::fputs(text.c_str(), json_file.get()) < 0 || std::fclose(json_file.release()) != 0) {
      throw runtime_failure(fmt::format("cannot write {}: {}", s.json_path, std::strerror(errno)));
    }
  }
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  const parse_result parsed = parse(argc, argv);
  if (!parsed.run) return parsed.exit_code;
  try {
    return run(*parsed.run);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "strata-demo: %s\n", e.what());
    return 1;
  }
}
