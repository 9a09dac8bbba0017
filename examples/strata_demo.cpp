// SPDX-License-Identifier: MIT
// strata-demo: a request-processing simulation. Each request tokenizes a
// document into std::pmr::vector<std::pmr::string>, counts the words in a
// std::pmr::unordered_map and ranks the top k, all on one memory resource.
// The same requests run on three backends:
//
//   strata      a monotonic_arena per thread, reset after every request, whose
//               upstream is one chunk_provider (shared) on system_pages()
//   new_delete  std::pmr::new_delete_resource()
//   std_mono    a std::pmr::monotonic_buffer_resource per request on new_delete
//
// and the program prints requests/s, system calls, peak bytes, and the strata
// chain's statistics. Every backend must produce the same rankings.

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <memory_resource>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include <strata/format.hpp>
#include <strata/strata.hpp>

#include "word_count.hpp"

namespace {

using strata::examples::generated_documents;
using strata::examples::process;

// ------------------------------------------------------------------ input

// A file split into documents of about 16 KiB at line ends.
std::vector<std::string> file_documents(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = fmt::format("cannot read {}: {}", path, std::strerror(errno));
    return {};
  }
  std::vector<std::string> documents(1);
  for (std::string line; std::getline(in, line);) {
    documents.back() += line;
    documents.back() += '\n';
    if (documents.back().size() >= 16 * 1024) documents.emplace_back();
  }
  if (in.bad()) {
    error = fmt::format("error reading {}", path);
    return {};
  }
  if (documents.back().empty()) documents.pop_back();
  if (documents.empty()) error = fmt::format("{} is empty", path);
  return documents;
}

// Counts calls and live bytes on their way to new_delete, for the std backends.
class counting_new_delete final : public std::pmr::memory_resource {
 public:
  std::uint64_t calls = 0;
  std::size_t live = 0;
  std::size_t peak = 0;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    ++calls;
    live += bytes;
    peak = std::max(peak, live);
    return std::pmr::new_delete_resource()->allocate(bytes, alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    live -= bytes;
    std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }
};

struct outcome {
  double seconds = 0;
  std::uint64_t checksum = 0;
  std::uint64_t system_calls = 0;  // calls reaching malloc or mmap
  std::size_t peak_bytes = 0;      // callers' bytes (per thread, summed)
};

// Runs requests on threads; each thread calls work(thread, request_text) and
// sums the checksums. Setup per thread happens before the clock starts.
template <class Thread>
outcome run(const std::vector<std::string>& documents, std::size_t requests, std::size_t threads,
            std::vector<std::unique_ptr<Thread>>& state) {
  std::vector<std::uint64_t> sums(threads, 0);
  const auto start = std::chrono::steady_clock::now();
  {
    std::vector<std::jthread> workers;
    for (std::size_t t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        for (std::size_t i = t; i < requests; i += threads) {
          sums[t] += state[t]->serve(documents[i % documents.size()]);
        }
      });
    }
  }
  outcome o;
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (std::uint64_t s : sums) o.checksum += s;
  return o;
}

struct strata_thread {
  strata::monotonic_arena arena;
  explicit strata_thread(strata::chunk_provider* chunks) : arena(chunks) {}
  std::uint64_t serve(std::string_view text) {
    const std::uint64_t sum = process(text, &arena);
    arena.reset();  // keeps its chunk for the next request
    return sum;
  }
};

struct new_delete_thread {
  counting_new_delete upstream;
  std::uint64_t serve(std::string_view text) { return process(text, &upstream); }
};

struct std_mono_thread {
  counting_new_delete upstream;
  std::uint64_t serve(std::string_view text) {
    std::pmr::monotonic_buffer_resource mono{&upstream};
    return process(text, &mono);
  }
};

// ------------------------------------------------------------------ options

struct settings {
  std::size_t requests = 4000;
  std::size_t threads = 1;
  std::string input;
};

constexpr const char* usage =
    "usage: strata-demo [--requests N] [--threads T] [--input FILE]\n"
    "  --requests N   requests to process per backend (default 4000)\n"
    "  --threads T    worker threads, one arena each (default 1, at most 64)\n"
    "  --input FILE   text to process, split into ~16 KiB requests\n"
    "                 (default: generated text built into the program)\n";

bool parse_count(const char* text, std::size_t low, std::size_t high, std::size_t& out) {
  const char* end = text + std::strlen(text);
  auto [rest, error] = std::from_chars(text, end, out);
  return error == std::errc{} && rest == end && out >= low && out <= high;
}

// Returns 0 to go on, or the exit code.
int parse(int argc, char** argv, settings& s) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(usage, stdout);
      return -1;
    }
    const bool has_value = i + 1 < argc;
    if (arg == "--requests" && has_value && parse_count(argv[i + 1], 1, 100'000'000, s.requests)) {
      ++i;
    } else if (arg == "--threads" && has_value && parse_count(argv[i + 1], 1, 64, s.threads)) {
      ++i;
    } else if (arg == "--input" && has_value) {
      s.input = argv[++i];
    } else {
      std::fprintf(stderr, "strata-demo: bad argument '%s'%s\n%s", argv[i],
                   has_value || !arg.starts_with("--") ? "" : " (missing value)", usage);
      return 2;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  if (const int code = parse(argc, argv, s); code != 0) return code < 0 ? 0 : code;

  std::string error;
  const std::vector<std::string> documents =
      s.input.empty() ? generated_documents(64) : file_documents(s.input, error);
  if (!error.empty()) {
    std::fprintf(stderr, "strata-demo: %s\n", error.c_str());
    return 1;
  }

  // The strata chain: arenas (one per thread) -> chunk_provider -> pages.
  strata::chunk_provider chunks{{.max_chunk_size = std::size_t{4} << 20}, strata::system_pages()};
  std::vector<std::unique_ptr<strata_thread>> strata_state;
  std::vector<std::unique_ptr<new_delete_thread>> new_delete_state;
  std::vector<std::unique_ptr<std_mono_thread>> mono_state;
  for (std::size_t t = 0; t < s.threads; ++t) {
    strata_state.push_back(std::make_unique<strata_thread>(&chunks));
    new_delete_state.push_back(std::make_unique<new_delete_thread>());
    mono_state.push_back(std::make_unique<std_mono_thread>());
  }

  fmt::print("strata-demo: {} requests on {} thread(s), {} documents ({})\n\n", s.requests, s.threads,
             documents.size(), s.input.empty() ? "generated text" : s.input);

  // Warm-up: one pass of each document through every backend, not timed.
  const std::size_t warm = std::min(documents.size(), s.requests);
  run(documents, warm, s.threads, strata_state);
  run(documents, warm, s.threads, new_delete_state);
  run(documents, warm, s.threads, mono_state);
  const std::uint64_t warm_system_calls = chunks.stats().upstream_allocations;
  std::uint64_t warm_new_delete = 0;
  std::uint64_t warm_mono = 0;
  for (auto& t : new_delete_state) warm_new_delete += t->upstream.calls;
  for (auto& t : mono_state) warm_mono += t->upstream.calls;
  chunks.reset_peak();
  for (auto& t : strata_state) t->arena.reset_peak();

  outcome strata_run = run(documents, s.requests, s.threads, strata_state);
  strata_run.system_calls = chunks.stats().upstream_allocations - warm_system_calls;
  for (auto& t : strata_state) strata_run.peak_bytes += t->arena.stats().peak_bytes_in_use;

  outcome new_delete_run = run(documents, s.requests, s.threads, new_delete_state);
  for (auto& t : new_delete_state) {
    new_delete_run.system_calls += t->upstream.calls;
    new_delete_run.peak_bytes += t->upstream.peak;
  }
  new_delete_run.system_calls -= warm_new_delete;

  outcome mono_run = run(documents, s.requests, s.threads, mono_state);
  for (auto& t : mono_state) {
    mono_run.system_calls += t->upstream.calls;
    mono_run.peak_bytes += t->upstream.peak;
  }
  mono_run.system_calls -= warm_mono;

  const auto row = [&](const char* name, const outcome& o) {
    const double rate = static_cast<double>(s.requests) / o.seconds;
    const double base = static_cast<double>(s.requests) / new_delete_run.seconds;
    fmt::print("{:<34} {:>12.0f} {:>9.2f}x {:>14} {:>24}\n", name, rate, rate / base, o.system_calls,
               strata::format_bytes(o.peak_bytes));
  };
  fmt::print("{:<34} {:>12} {:>10} {:>14} {:>24}\n", "backend", "requests/s", "vs new", "system calls",
             "peak bytes in use");
  row("strata monotonic_arena + chunks", strata_run);
  row("std::pmr::new_delete_resource", new_delete_run);
  row("std::pmr::monotonic_buffer_res.", mono_run);
  fmt::print("\nsystem calls: calls that reached malloc (std backends) or mmap (strata), after warm-up.\n\n");

  fmt::print("strata chain, from thread 0's arena:\n\n{}",
             strata::format_chain(&strata_state.front()->arena));
  const auto d = strata_state.front()->arena.details();
  fmt::print("\narena 0: {} chunk(s) held, largest request footprint {}, {} resets\n", d.chunks,
             strata::format_bytes(d.largest_request_footprint), d.resets);

  if (strata_run.checksum != new_delete_run.checksum || strata_run.checksum != mono_run.checksum) {
    std::fprintf(stderr, "strata-demo: backends disagree on the results\n");
    return 1;
  }
  fmt::print("all backends produced the same rankings (checksum {:016x})\n", strata_run.checksum);
  return 0;
}
