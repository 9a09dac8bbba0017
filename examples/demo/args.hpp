// SPDX-License-Identifier: MIT
#pragma once

// strata-demo's command line: the settings, --help text and a parser whose
// every error names the argument, the value and the reason. Usage errors
// exit 2, --help and --version exit 0.

#include <charconv>
#include <cstddef>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include <strata/version.hpp>

namespace strata::demo {

inline constexpr std::size_t max_threads = 64;
inline constexpr std::size_t max_requests = 100'000'000;
inline constexpr std::size_t max_rounds = 20;

/// The backends, in the order they run and print.
inline constexpr const char* backend_keys[] = {"strata",   "arena",     "new_delete",
                                               "std_mono", "sync_pool", "mimalloc"};

enum class workload_kind { json, words };

struct settings {
  workload_kind workload = workload_kind::json;
  std::size_t requests = 0;  // 0: the workload's default
  std::size_t threads = 1;
  std::size_t rounds = 3;             // each backend runs this many times, interleaved with the others
  std::string input;                  // empty: generated documents
  std::string json_path;              // empty: no JSON; "-": stdout
  std::vector<std::string> backends;  // keys from backend_keys, in that order
  bool quiet = false;
  bool trace = true;  // count mapping system calls (seccomp + ptrace)
};

/// The default thread count: the machine's cores (at least 1, at most 64).
inline std::size_t default_threads() noexcept {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : (n > max_threads ? max_threads : n);
}

/// Requests per backend and round when --requests is not given, chosen so
/// that the default run (3 rounds of every backend) takes about 10 s on 2
/// idle cores.
inline std::size_t default_requests(workload_kind w) noexcept {
  return w == workload_kind::json ? 4'000 : 1'500;
}

inline std::string usage_text() {
  return fmt::format(
      "usage: strata-demo [options]\n"
      "Serves the same requests on several memory resources, each in a fresh child\n"
      "process, and prints throughput, latency and what each took from the OS.\n"
      "\n"
      "  --workload W     json (default): parse a JSON order batch into a pmr DOM,\n"
      "                   index it in pmr maps, build and serialize a response;\n"
      "                   words: tokenize text and count words (lighter)\n"
      "  --requests N     requests per backend and round, 1..{} (default: {} json, {} words)\n"
      "  --rounds R       runs of every backend, interleaved, 1..{} (default 3); each\n"
      "                   backend's row is its median round by req/s\n"
      "  --threads T      worker threads, 1..{} (default: the machine's cores, here {})\n"
      "  --input FILE     requests from FILE: one JSON document per line (json),\n"
      "                   or text split into ~16 KiB requests (words)\n"
      "  --backends LIST  comma-separated subset of: {}\n"
      "  --json FILE      also write the results as JSON to FILE ('-': stdout, no table)\n"
      "  --no-trace       do not count mapping system calls (no ptrace; columns show -)\n"
      "  --quiet          no progress line (it is shown only when stdout is a terminal)\n"
      "  --help           print this help and exit\n"
      "  --version        print the version and exit\n"
      "\n"
      "Exit status: 0 done, 1 runtime error, 2 usage error.\n",
      max_requests, default_requests(workload_kind::json), default_requests(workload_kind::words), max_rounds,
      max_threads, default_threads(), fmt::join(backend_keys, ","));
}

namespace detail {

/// A usage error: printed as "strata-demo: <message>" and a hint, exit 2.
struct usage_error {
  std::string message;
};

inline std::size_t parse_count(std::string_view name, std::string_view text, std::size_t low,
                               std::size_t high) {
  std::size_t n = 0;
  const auto [rest, error] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (error == std::errc::result_out_of_range)
    throw usage_error{fmt::format("{}: {} is out of range {}..{}", name, text, low, high)};
  if (text.empty() || error != std::errc{} || rest != text.data() + text.size())
    throw usage_error{fmt::format("{}: '{}' is not a whole number", name, text)};
  if (n < low || n > high)
    throw usage_error{fmt::format("{}: {} is out of range {}..{}", name, n, low, high)};
  return n;
}

inline std::vector<std::string> parse_backends(std::string_view text) {
  std::vector<bool> chosen(std::size(backend_keys), false);
  while (true) {
    const std::size_t comma = text.find(',');
    const std::string_view key = text.substr(0, comma);
    std::size_t i = 0;
    while (i < std::size(backend_keys) && key != backend_keys[i]) ++i;
    if (i == std::size(backend_keys))
      throw usage_error{fmt::format("--backends: '{}' is not one of {}", key, fmt::join(backend_keys, ","))};
    chosen[i] = true;
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  std::vector<std::string> keys;
  for (std::size_t i = 0; i < chosen.size(); ++i)
    if (chosen[i]) keys.emplace_back(backend_keys[i]);
  return keys;
}

}  // namespace detail

/// What parse() decided: run with these settings, or exit with this code.
struct parse_result {
  std::optional<settings> run;
  int exit_code = 0;
};

/// Parses argv. Prints --help and --version to stdout (exit 0) and usage
/// errors to stderr (exit 2). Options take their value as the next argument
/// or after '=' (--threads 2, --threads=2).
inline parse_result parse(int argc, char** argv) {
  settings s;
  s.threads = default_threads();
  std::size_t requests = 0;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string_view arg = argv[i];
      std::optional<std::string_view> inline_value;
      if (arg.starts_with("--")) {
        if (const std::size_t eq = arg.find('='); eq != std::string_view::npos) {
          inline_value = arg.substr(eq + 1);
          arg = arg.substr(0, eq);
        }
      }
      const auto flag = [&](std::string_view name) {
        if (arg != name) return false;
        if (inline_value)
          throw detail::usage_error{fmt::format("{} takes no value (got '{}')", name, *inline_value)};
        return true;
      };
      // The value of an option that takes one; what says what it should be.
      const auto value_of = [&](std::string_view what) -> std::string_view {
        if (inline_value) return *inline_value;
        if (i + 1 >= argc) throw detail::usage_error{fmt::format("{} needs a value ({})", arg, what)};
        return argv[++i];
      };
      if (flag("--help") || arg == "-h") {
        std::fputs(usage_text().c_str(), stdout);
        return {};
      }
      if (flag("--version")) {
        std::printf("strata-demo (strata %s)\n", strata::version_string);
        return {};
      }
      if (flag("--quiet")) {
        s.quiet = true;
      } else if (flag("--no-trace")) {
        s.trace = false;
      } else if (arg == "--requests") {
        requests = detail::parse_count("--requests", value_of(fmt::format("a count, 1..{}", max_requests)), 1,
                                       max_requests);
      } else if (arg == "--rounds") {
        s.rounds = detail::parse_count("--rounds", value_of(fmt::format("a count, 1..{}", max_rounds)), 1,
                                       max_rounds);
      } else if (arg == "--threads") {
        s.threads = detail::parse_count("--threads", value_of(fmt::format("a count, 1..{}", max_threads)), 1,
                                        max_threads);
      } else if (arg == "--workload") {
        const std::string_view w = value_of("json or words");
        if (w == "json") {
          s.workload = workload_kind::json;
        } else if (w == "words") {
          s.workload = workload_kind::words;
        } else {
          throw detail::usage_error{fmt::format("--workload: '{}' is not one of json, words", w)};
        }
      } else if (arg == "--input") {
        s.input = value_of("a file name");
        if (s.input.empty()) throw detail::usage_error{"--input: the file name is empty"};
      } else if (arg == "--json") {
        s.json_path = value_of("a file name, or - for stdout");
        if (s.json_path.empty()) throw detail::usage_error{"--json: the file name is empty"};
      } else if (arg == "--backends") {
        s.backends =
            detail::parse_backends(value_of(fmt::format("a list of {}", fmt::join(backend_keys, ","))));
      } else if (arg.starts_with("-")) {
        throw detail::usage_error{fmt::format("unknown option '{}'", arg)};
      } else {
        throw detail::usage_error{fmt::format("unexpected argument '{}'", arg)};
      }
    }
  } catch (const detail::usage_error& e) {
    std::fprintf(stderr, "strata-demo: %s\nTry 'strata-demo --help' for more information.\n",
                 e.message.c_str());
    return {std::nullopt, 2};
  }
  s.requests = requests != 0 ? requests : default_requests(s.workload);
  if (s.backends.empty()) s.backends.assign(std::begin(backend_keys), std::end(backend_keys));
  return {std::move(s), 0};
}

}  // namespace strata::demo
