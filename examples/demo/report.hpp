// SPDX-License-Identifier: MIT
#pragma once

// What strata-demo prints: the live progress line, the results table with
// what each column measures, and the same results as JSON (--json).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <strata/version.hpp>

#include "args.hpp"
#include "backends.hpp"
#include "measure.hpp"

namespace strata::demo {

/// One backend's row: its key, what each round's child reported, and the
/// round shown (the median by req/s).
struct row {
  std::string key;
  backend_result result;            // the median round (or the last, if none finished)
  std::vector<double> round_rates;  // req/s of each round, in run order
  std::vector<std::uint64_t> round_checksums;
  std::size_t median_round = 0;  // index into round_rates
  std::string failure;           // why a child failed (empty: none did)
  [[nodiscard]] bool ok() const { return failure.empty() && result.finished; }
};

/// The run as a whole, for the header and the JSON.
struct run_info {
  const settings* s = nullptr;
  std::size_t documents = 0;
  std::size_t document_bytes = 0;  // all documents together
  std::size_t smallest = 0, largest = 0;
  std::string tracing;            // how mapping calls were counted, or why not
  double load[3] = {-1, -1, -1};  // /proc/loadavg when the run started (-1: unknown)
};

/// Returns the 1, 5 and 15 minute load averages, or -1s: on a shared
/// machine they say how far the figures can be trusted.
inline void read_load(double (&load)[3]) {
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = load[1] = load[2] = -1;
    std::fclose(f);
  }
}

/// Returns bytes as "12.3 MiB", short enough for a table cell.
inline std::string short_bytes(std::size_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (bytes < (std::size_t{1} << 20)) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / 1024);
  if (bytes < (std::size_t{1} << 30))
    return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
  return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1 << 30));
}

// ------------------------------------------------------------- progress

/// The live progress line: one line rewritten in place ("\r", erase to the
/// end), only when enabled (stdout is a terminal and not --quiet).
class progress_line {
 public:
  progress_line(bool enabled, std::size_t backends, std::size_t requests)
      : enabled_(enabled), backends_(backends), requests_(requests) {}

  /// Starts run number index (from 0) of backends (rounds x backends).
  void start(std::size_t index, std::string_view name) {
    index_ = index;
    name_ = name;
    first_.reset();
  }
  /// Shows done requests of the current backend (called about every 100 ms).
  void show(std::uint64_t done) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    std::string text = fmt::format("[{}/{}] {}: ", index_ + 1, backends_, name_);
    if (done == 0) {
      text += "warming up";
    } else {
      if (!first_) first_ = std::pair{now, done};
      text += fmt::format("{}/{} requests", done, requests_);
      const double seconds = std::chrono::duration<double>(now - first_->first).count();
      if (seconds > 0.15 && done > first_->second) {
        const double rate = static_cast<double>(done - first_->second) / seconds;
        const double left = static_cast<double>(requests_ - done) / rate;
        const double all =
            left + static_cast<double>(backends_ - index_ - 1) * static_cast<double>(requests_) / rate;
        text += fmt::format(", {:.0f} req/s, ETA {:.0f} s (all backends ~{:.0f} s)", rate, left, all);
      }
    }
    std::fputs(("\r\x1b[K" + text).c_str(), stdout);
    std::fflush(stdout);
    shown_ = true;
  }
  /// Erases the line, if one is shown.
  void clear() {
    if (!shown_) return;
    std::fputs("\r\x1b[K", stdout);
    std::fflush(stdout);
    shown_ = false;
  }

 private:
  bool enabled_;
  std::size_t backends_;
  std::size_t requests_;
  std::size_t index_ = 0;
  std::string name_;
  std::optional<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>> first_;
  bool shown_ = false;
};

// ---------------------------------------------------------------- table

inline const char* workload_name(workload_kind w) {
  return w == workload_kind::json ? "json" : "words";
}

inline void print_header(const run_info& run) {
  const settings& s = *run.s;
  fmt::print("strata-demo {}: {} workload, {} requests per backend and round, {} round(s), {} thread(s)\n",
             strata::version_string, workload_name(s.workload), s.requests, s.rounds, s.threads);
  if (run.load[0] >= 0)
    fmt::print("{} hardware threads, load average {:.2f} {:.2f} {:.2f} (1, 5, 15 min) at the start\n",
               default_threads(), run.load[0], run.load[1], run.load[2]);
  fmt::print("requests: {} {} ({} to {} each, {} in all); each backend runs in a fresh child process\n\n",
             run.documents,
             s.input.empty() ? (s.workload == workload_kind::json ? "generated JSON order batches"
                                                                  : "generated text documents")
                             : fmt::format("documents from {}", s.input),
             short_bytes(run.smallest), short_bytes(run.largest), short_bytes(run.document_bytes));
}

inline const row* find_row(const std::vector<row>& rows, std::string_view key) {
  for (const row& r : rows)
    if (r.key == key && r.ok()) return &r;
  return nullptr;
}

inline double rate_of(const backend_result& r) {
  return static_cast<double>(r.requests) / r.seconds;
}

inline void print_table(const run_info& run, const std::vector<row>& rows) {
  const row* glibc = find_row(rows, "new_delete");
  fmt::print("{:<28} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10} {:>10} {:>10}\n", "backend", "req/s",
             "vs glibc", "p50 µs", "p99 µs", "p99.9 µs", "mem calls", "faults/req", "peak RSS", "reserved");
  std::size_t start_rss = 0;
  for (const row& r : rows) {
    const char* name = info_of(r.key).name;
    if (!r.result.available) {
      fmt::print("{:<28} not installed (libmimalloc.so.2 not found)\n", name);
      continue;
    }
    if (!r.ok()) {
      fmt::print("{:<28} failed: {}\n", name, r.failure);
      continue;
    }
    const backend_result& b = r.result;
    start_rss = std::max(start_rss, b.start_rss);
    const std::string versus =
        glibc != nullptr ? fmt::format("{:.2f}x", rate_of(b) / rate_of(glibc->result)) : "-";
    const std::string calls = b.traced ? fmt::format("{}", b.run_calls.mapping()) : "-";
    fmt::print("{:<28} {:>8.0f} {:>8} {:>8.1f} {:>8.1f} {:>9.1f} {:>9} {:>10.2f} {:>10} {:>10}\n", name,
               rate_of(b), versus, b.p50_us, b.p99_us, b.p999_us, calls,
               static_cast<double>(b.minor_faults) / static_cast<double>(b.requests), short_bytes(b.peak_rss),
               short_bytes(b.reserved));
  }
  fmt::print(
      "\nWhat the columns measure, the same way for every backend, each in its own child process:\n"
      "  req/s, vs glibc  requests per second in the timed run (after one untimed warm-up pass), and over\n"
      "                   new_delete's; each row is its backend's median round of {}, rounds interleaved\n"
      "  p50 p99 p99.9    request latency in microseconds (steady_clock around each request)\n"
      "  mem calls        mmap + munmap + mremap + mprotect + brk + madvise system calls in the timed run,\n"
      "                   {}\n"
      "  faults/req       minor page faults in the timed run (getrusage), per request\n"
      "  peak RSS         the child's peak resident memory (VmHWM; each child started at {})\n"
      "  reserved         address space the child holds mapped at the end of the timed run beyond what\n"
      "                   it had before the backend existed (VmSize growth): what the backend took from\n"
      "                   the OS, touched or not (each worker's glibc malloc arena, 64 MiB, is made\n"
      "                   before, for every backend alike)\n",
      run.s->rounds, run.tracing, short_bytes(start_rss));
  fmt::print("\nThe backends:\n");
  for (const row& r : rows) fmt::print("  {:<27} {}\n", info_of(r.key).name, info_of(r.key).about);
}

/// Prints the strata rows' throughput over each other backend's, as measured.
inline void print_summary(const std::vector<row>& rows) {
  const row* best = nullptr;
  for (const row& r : rows)
    if (r.ok() && (best == nullptr || rate_of(r.result) > rate_of(best->result))) best = &r;
  if (best == nullptr) return;
  fmt::print("\nMeasured: highest req/s {} ({:.0f}). Each strata row's req/s over the others':\n",
             info_of(best->key).name, rate_of(best->result));
  for (const char* mine : {"strata", "arena"}) {
    const row* m = find_row(rows, mine);
    if (m == nullptr) continue;
    std::string line = fmt::format("  {:<28}", info_of(mine).name);
    for (const row& r : rows) {
      if (r.ok() && r.key != "strata" && r.key != "arena")
        line += fmt::format(" {:.2f}x {}", rate_of(m->result) / rate_of(r.result), r.key);
    }
    fmt::print("{}\n", line);
  }
}

// ----------------------------------------------------------------- JSON

inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out += c;
    }
  }
  return out + '"';
}

inline std::string calls_json(const call_counts& c) {
  std::string out = "{";
  for (unsigned i = 0; i < map_call_count; ++i) out += fmt::format("\"{}\":{},", map_call_names[i], c.n[i]);
  return out + fmt::format("\"mapping\":{}}}", c.mapping());
}

/// Returns the results as one JSON object (see docs/guide.md, "The demo").
inline std::string results_json(const run_info& run, const std::vector<row>& rows) {
  const settings& s = *run.s;
  std::string out = fmt::format(
      "{{\"program\":\"strata-demo\",\"version\":\"{}\",\"workload\":\"{}\",\"requests\":{},\"threads\":{},"
      "\"rounds\":{},\"hardware_threads\":{},\"load_average\":[{}],\"input\":{},\"documents\":{},\"document_"
      "bytes\":{},\"syscall_"
      "counting\":{},"
      "\"backends\":[",
      strata::version_string, workload_name(s.workload), s.requests, s.threads, s.rounds, default_threads(),
      fmt::join(run.load, ","), s.input.empty() ? "null" : json_string(s.input), run.documents,
      run.document_bytes, json_string(run.tracing));
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const row& r = rows[i];
    const backend_result& b = r.result;
    const backend_info& info = info_of(r.key);
    out += fmt::format("{}{{\"key\":\"{}\",\"name\":{},\"about\":{},\"available\":{},\"ok\":{}",
                       i == 0 ? "" : ",", r.key, json_string(info.name), json_string(info.about), b.available,
                       r.ok());
    if (!r.failure.empty()) out += fmt::format(",\"error\":{}", json_string(r.failure));
    if (r.ok()) {
      out += fmt::format(
          ",\"seconds\":{:.6f},\"requests_per_second\":{:.1f},\"latency_us\":{{\"p50\":{:.2f},\"p99\":{:.2f},"
          "\"p999\":{:.2f},\"max\":{:.2f}}},\"checksum\":\"{:016x}\",\"syscalls_counted\":{},"
          "\"round_requests_per_second\":[{:.1f}],\"median_round\":{}",
          b.seconds, rate_of(b), b.p50_us, b.p99_us, b.p999_us, b.max_us, b.checksum, b.traced,
          fmt::join(r.round_rates, ","), r.median_round);
      if (b.traced)
        out += fmt::format(",\"map_calls\":{},\"warmup_map_calls\":{}", calls_json(b.run_calls),
                           calls_json(b.warm_calls));
      out += fmt::format(
          ",\"minor_faults\":{},\"minor_faults_per_request\":{:.4f},\"start_rss_bytes\":{},\"peak_rss_"
          "bytes\":{},"
          "\"reserved_bytes\":{}",
          b.minor_faults, static_cast<double>(b.minor_faults) / static_cast<double>(b.requests), b.start_rss,
          b.peak_rss, b.reserved);
      if (b.chain_json[0] != '\0') out += fmt::format(",\"chain\":{}", b.chain_json);
    }
    out += '}';
  }
  return out + "]}\n";
}

}  // namespace strata::demo
