// SPDX-License-Identifier: MIT
#pragma once

// Runs one backend in the current process (a fresh child, see
// system_figures.hpp) on worker threads and fills a backend_result: the
// timed run's throughput and latencies, and the system figures of the
// child from before the backend existed to after the timed run.
//
// Phases, separated by a barrier of the workers and the child's main thread:
//   1. the workers exist (their stacks are mapped): the baseline is read;
//   2. the backend is made; each worker attaches and serves a warm-up pass
//      (every document once), not timed, as a server would be warm;
//   3. the clock starts and the system counters are read; the workers serve
//      their share of the requests, timing each one;
//   4. the clock stops, the counters are read again.

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <memory_resource>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "args.hpp"
#include "backends.hpp"
#include "system_figures.hpp"

namespace strata::demo {

/// What a child reports; it lives in shared memory, so it holds no pointers.
struct backend_result {
  bool finished = false;  // the child got to the end of the run
  bool available = true;  // false: the backend is not installed (mimalloc)
  char error[256] = {};   // a failure in the child, if any
  std::uint64_t requests = 0;
  std::uint64_t checksum = 0;  // sum of every response's checksum
  double seconds = 0;
  double p50_us = 0, p99_us = 0, p999_us = 0, max_us = 0;
  bool traced = false;             // run_calls and warm_calls were counted
  call_counts warm_calls;          // from the backend's construction to the end of the warm-up
  call_counts run_calls;           // during the timed run
  std::uint64_t minor_faults = 0;  // during the timed run
  std::size_t start_rss = 0;       // RSS once the workers existed, before the backend
  std::size_t peak_rss = 0;        // VmHWM from then to the end of the run
  std::size_t reserved = 0;        // VmSize at the end of the run over VmSize at the baseline
  char chain_text[16384] = {};
  char chain_json[16384] = {};
};

/// Memory shared by the parent and one child.
struct child_page {
  shared_counters counters;
  struct alignas(64) progress {
    std::atomic<std::uint64_t> done{0};  // requests this worker finished in the timed run
  };
  progress workers[max_threads];
  backend_result result;

  [[nodiscard]] std::uint64_t done() const noexcept {
    std::uint64_t sum = 0;
    for (const progress& p : workers) sum += p.done.load(std::memory_order_relaxed);
    return sum;
  }
};

namespace detail {

inline void copy_text(char* to, std::size_t size, const std::string& from) {
  const std::size_t n = std::min(size - 1, from.size());
  std::memcpy(to, from.data(), n);
  to[n] = '\0';
}

}  // namespace detail

/// Runs backend key on s.threads workers over documents; returns the exit
/// code for the child.
inline int measure(std::string_view key, const settings& s, const std::vector<std::string>& documents,
                   work_fn work, child_page& page) {
  backend_result& r = page.result;
  const std::size_t threads = s.threads;
  const std::size_t requests = s.requests;
  const std::size_t warm = std::min(requests, std::max(documents.size(), 2 * threads));
  // Worker t serves requests t, t + threads, ...: the same on every backend.
  const auto share = [&](std::size_t t) { return t < requests ? (requests - t + threads - 1) / threads : 0; };
  using clock = std::chrono::steady_clock;

  // Touched now, so that recording latencies faults no page in the timed run.
  std::vector<std::vector<std::uint32_t>> latencies(threads);
  for (std::size_t t = 0; t < threads; ++t) latencies[t].resize(share(t));
  std::vector<std::uint64_t> sums(threads, 0);
  std::vector<std::string> errors(threads);
  std::unique_ptr<backend> b;
  std::atomic<bool> failed{false};

  std::barrier sync(static_cast<std::ptrdiff_t>(threads + 1));
  std::vector<std::jthread> workers;
  for (std::size_t t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      // glibc gives a thread its own malloc arena (a 64 MiB reservation) at
      // its first malloc: made here, before the baseline, it counts for no
      // backend, whether or not the backend calls malloc on this thread.
      void* volatile first = std::malloc(1);  // volatile: or the pair is optimized away
      std::free(first);
      sync.arrive_and_wait();  // 1: the workers exist
      sync.arrive_and_wait();  // 2: the backend exists (or not)
      const auto guarded = [&](auto&& step) {
        if (!b || failed.load(std::memory_order_relaxed)) return;
        try {
          step();
        } catch (const std::exception& e) {
          errors[t] = e.what();
          failed.store(true);
        }
      };
      guarded([&] {
        b->attach(t);
        for (std::size_t i = t; i < warm; i += threads)
          sums[t] += b->serve(t, work, documents[i % documents.size()]);
      });
      sync.arrive_and_wait();  // 3: warm
      sync.arrive_and_wait();  // 4: the clock runs
      sums[t] = 0;
      guarded([&] {
        std::uint64_t n = 0;
        for (std::size_t i = t; i < requests; i += threads) {
          const auto start = clock::now();
          sums[t] += b->serve(t, work, documents[i % documents.size()]);
          const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - start).count();
          latencies[t][n] = static_cast<std::uint32_t>(std::min<std::int64_t>(ns, UINT32_MAX));
          page.workers[t].done.store(++n, std::memory_order_relaxed);
        }
      });
      sync.arrive_and_wait();  // 5: done
      sync.arrive_and_wait();  // 6: figures read
      if (b) b->detach(t);
    });
  }

  // Every allocation of a request must reach the backend under test: one
  // that fell back to the default resource would throw instead of being
  // measured on another allocator.
  std::pmr::set_default_resource(std::pmr::null_memory_resource());
  sync.arrive_and_wait();  // 1
  const std::size_t base_vm = proc_status_bytes("VmSize");
  reset_peak_rss();
  r.start_rss = proc_status_bytes("VmRSS");
  const call_counts at_start = page.counters.snapshot();
  try {
    b = make_backend(key, threads);
    r.available = b != nullptr;
  } catch (const std::exception& e) {
    errors[0] = e.what();
    failed.store(true);
  }
  sync.arrive_and_wait();  // 2
  sync.arrive_and_wait();  // 3
  const call_counts at_run = page.counters.snapshot();
  const std::uint64_t faults = minor_faults();
  const auto start = clock::now();
  sync.arrive_and_wait();  // 4
  sync.arrive_and_wait();  // 5
  r.seconds = std::chrono::duration<double>(clock::now() - start).count();
  r.minor_faults = minor_faults() - faults;
  r.run_calls = page.counters.snapshot() - at_run;
  r.warm_calls = at_run - at_start;
  r.traced = page.counters.traced.load(std::memory_order_acquire);
  r.peak_rss = proc_status_bytes("VmHWM");
  r.reserved = proc_status_bytes("VmSize") - base_vm;
  if (b) {
    detail::copy_text(r.chain_text, sizeof r.chain_text, b->chain_text());
    detail::copy_text(r.chain_json, sizeof r.chain_json, b->chain_json());
  }
  sync.arrive_and_wait();  // 6
  workers.clear();         // joins

  for (const std::string& e : errors) {
    if (!e.empty()) {
      detail::copy_text(r.error, sizeof r.error, e);
      return 1;
    }
  }
  if (!b) return 0;
  r.requests = requests;
  for (const std::uint64_t sum : sums) r.checksum += sum;
  std::vector<std::uint32_t> all;
  all.reserve(requests);
  for (std::size_t t = 0; t < threads; ++t) all.insert(all.end(), latencies[t].begin(), latencies[t].end());
  const auto percentile = [&](double q) {
    const auto k = static_cast<std::ptrdiff_t>(q * static_cast<double>(all.size() - 1));
    std::nth_element(all.begin(), all.begin() + k, all.end());
    return all[static_cast<std::size_t>(k)] / 1000.0;
  };
  r.p50_us = percentile(0.50);
  r.p99_us = percentile(0.99);
  r.p999_us = percentile(0.999);
  r.max_us = percentile(1.0);
  r.finished = true;
  return 0;
}

}  // namespace strata::demo
