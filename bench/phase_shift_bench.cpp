// SPDX-License-Identifier: MIT
// phase_shift: how much memory each contender holds over the life of a
// long-running server whose request mix shifts (issue 13). Not a timing
// benchmark: nothing here is timed against anything, so it never fails on
// timing, and it does not use Google Benchmark (whose repetitions and
// per-iteration model do not fit one long deterministic run per contender).
//
// The workload, the same for every contender (fixed seed):
//
//   small        16-128 B, uniform            a live set of `live` bytes is built,
//   medium       256 B-4 KiB, log-uniform     then churned: while the live bytes are
//   large        16 KiB-1 MiB, log-uniform    below the target a block of the
//   small again  16-128 B                     phase's mix is allocated (and written
//                                             whole), otherwise a random live block
//                                             (of any phase) is freed, 1 in 4 of
//                                             them on a second thread
//   idle         every block freed; then idle_seconds of waiting, with one
//                64 B allocate+free on each thread per sample (a heartbeat:
//                allocators that decay lazily only act inside a call);
//                then the contender's trim, where it has one
//
// Each phase allocates `turnover` times the live target in bytes, so the
// previous mix is mostly, but not entirely, freed (random victims leave
// long-lived survivors, as servers do). Footprint is sampled `samples`
// times per phase, every phase_ops / samples operations, and idle_samples
// times while idle.
//
// Footprint, the same measure for every contender: the resident set
// (/proc/self/statm) of a fresh child process per contender, less the
// resident set just before the contender was constructed (after the
// bookkeeping, the second thread and the peers' libraries were in place).
// It counts what the allocator has touched and not given back to the
// kernel, metadata included. Each contender's own count is recorded too:
// strata's stats().bytes_reserved, glibc's mallinfo2() arena + hblkhd,
// mimalloc's committed bytes (mi_process_info), and the std pools' bytes
// outstanding at their upstream.
//
// Contenders: strata::arena on system_pages() (capacity twice the live
// target, as an operator sizes a fixed region, or --arena-capacity; an
// arena that keeps freed blocks in their size class can run out when the
// mix shifts: each failed allocation is counted, and the run goes on),
// strata::chunk_provider on system_pages() (the large phase only: it hands
// out chunks of at least min_chunk_size, 4 KiB, so it is not a small-block
// allocator), new_delete_resource (glibc), mimalloc (peers.hpp, when
// libmimalloc is installed), std::pmr::synchronized_pool_resource and
// unsynchronized_pool_resource on new_delete. strata::extendable_slab is
// left out: it serves one block size, and a set of them per size class
// would be an allocator written in this bench, measuring its class spacing
// rather than the library.
//
// Cross-thread frees are handed to the second thread in batches of 256 and
// the main thread waits until they are freed: the frees still happen on
// another thread, the footprint at each sample is deterministic, and the
// unsynchronized pool (never used by two threads at once) stays legal.
//
//   build/bench/phase_shift_bench [--quick] [--idle-seconds S] [--arena-capacity MiB] [--out
//   phase_shift.json] python3 bench/report.py --phase-shift phase_shift.json --update docs/benchmarks.md
//   --plots docs/bench
//
// Without --contender it runs every contender in a child process of its own
// (itself, re-executed), prints one summary line per contender and writes
// their samples to --out (JSON). --contender ID runs one in this process and
// writes JSON lines to stdout: the description, one array per sample, and
// an end record. Exit status 1 if a contender crashed, else 0.

#include <fcntl.h>
#include <gnu/libc-version.h>
#include <malloc.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory_resource>
#include <mutex>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <strata/arena.hpp>
#include <strata/chunk_provider.hpp>
#include <strata/page_resource.hpp>

#include "support/peers.hpp"

extern char** environ;

namespace {

// ------------------------------------------------------------- the workload

struct size_mix {
  const char* name;
  std::size_t min, max;  // bytes, inclusive
  bool log_uniform;      // else uniform

  /// The mean request, from which a phase's operation count follows.
  [[nodiscard]] double mean() const {
    if (!log_uniform) return (static_cast<double>(min) + static_cast<double>(max)) / 2;
    return static_cast<double>(max - min) / std::log(static_cast<double>(max) / static_cast<double>(min));
  }
  /// A request size. Written out (not std::uniform_*_distribution, whose
  /// algorithms are unspecified) so every build draws the same sequence.
  [[nodiscard]] std::size_t draw(std::mt19937_64& rng) const {
    if (!log_uniform) return min + rng() % (max - min + 1);
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    const double ratio = static_cast<double>(max) / static_cast<double>(min);
    return static_cast<std::size_t>(static_cast<double>(min) * std::pow(ratio, u));
  }
};

// Indices 0-3 are the phases; 4 is idle and 5 after trim (x positions in the plot).
const size_mix phase_mixes[] = {{"small", 16, 128, false},
                                {"medium", 256, 4096, true},
                                {"large", 16 << 10, 1 << 20, true},
                                {"small again", 16, 128, false}};
constexpr int phase_count = 4;
constexpr int idle_phase = 4;
constexpr int trim_phase = 5;

struct config {
  bool quick = false;
  std::size_t live = std::size_t{32} << 20;  // live target, bytes
  double turnover = 3;                       // bytes allocated per phase / live
  int samples = 40;                          // per phase
  double idle_seconds = 5;
  int idle_samples = 10;
  std::uint64_t seed = 13;
  std::size_t remote_batch = 256;  // cross-thread frees handed over at once
  unsigned remote_one_in = 4;      // 1 in this many frees is cross-thread
  std::size_t arena_capacity = 0;  // strata::arena's region; 0: twice the live target

  [[nodiscard]] std::size_t phase_ops(int phase) const {
    // Each allocation is paired with about one free once the live set is built.
    return static_cast<std::size_t>(2 * turnover * static_cast<double>(live) / phase_mixes[phase].mean());
  }
};

config make_config(bool quick, double idle_seconds, std::size_t arena_capacity) {
  config c;
  if (quick) {  // a few seconds for every contender together
    c.quick = true;
    c.live = std::size_t{4} << 20;
    c.turnover = 2;
    c.samples = 10;
    c.idle_seconds = 0.2;
    c.idle_samples = 4;
  }
  if (idle_seconds >= 0) c.idle_seconds = idle_seconds;
  // An operator sizes a fixed region with headroom over the peak live set.
  c.arena_capacity = arena_capacity != 0 ? arena_capacity : 2 * c.live;
  return c;
}

/// The alignment a C++ object of that size can have: its lowest set bit,
/// at most 16 (what a pmr container of such objects asks for).
std::size_t natural_alignment(std::size_t bytes) {
  const std::size_t low = bytes & (~bytes + 1);
  return low < 16 ? low : 16;
}

/// Resident bytes of this process, read without allocating (fopen would
/// allocate from the heap new_delete is measured on).
std::size_t resident_bytes() {
  const int fd = ::open("/proc/self/statm", O_RDONLY);
  if (fd < 0) return 0;
  char text[128] = {};
  const ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return 0;
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(text, "%llu %llu", &size, &resident) != 2) return 0;
  return static_cast<std::size_t>(resident) * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

struct block {
  std::byte* p;
  std::size_t size;
};

/// One 64 B allocate+free: what an idle server still does now and then.
/// An exhausted contender's failure here is not counted (it is idle).
void heartbeat_call(std::pmr::memory_resource* r) {
  try {
    r->deallocate(r->allocate(64, 16), 64, 16);
  } catch (const std::bad_alloc&) {
  }
}

/// A contender as the workload sees it.
struct subject {
  std::pmr::memory_resource* resource;
  std::function<std::size_t()> own;   // its own count of bytes held; empty: none
  std::function<void()> trim;         // gives back what is free now; empty: none
  std::function<void()> worker_trim;  // the same, on the second thread; empty: none
};

/// The second thread: frees the batches the main thread hands it, one at a
/// time, while the main thread waits (see the file comment).
class second_thread {
 public:
  second_thread() : thread_([this] { loop(); }) {}
  ~second_thread() {
    run(task::stop);
    thread_.join();
  }
  second_thread(const second_thread&) = delete;
  second_thread& operator=(const second_thread&) = delete;

  void free_batch(std::pmr::memory_resource* r, const block* blocks, std::size_t count) {
    resource_ = r;
    blocks_ = blocks;
    count_ = count;
    run(task::free_batch);
  }
  void heartbeat(std::pmr::memory_resource* r) {
    resource_ = r;
    run(task::heartbeat);
  }
  void call(const std::function<void()>& f) {
    function_ = &f;
    run(task::call);
  }

 private:
  enum class task { none, free_batch, heartbeat, call, stop };
  void run(task t) {
    std::unique_lock lock(mutex_);
    task_ = t;
    wake_.notify_all();
    wake_.wait(lock, [this] { return task_ == task::none; });
  }
  void loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return task_ != task::none; });
      switch (task_) {
        case task::free_batch:
          for (std::size_t i = 0; i < count_; ++i) {
            resource_->deallocate(blocks_[i].p, blocks_[i].size, natural_alignment(blocks_[i].size));
          }
          break;
        case task::heartbeat:
          heartbeat_call(resource_);
          break;
        case task::call:
          (*function_)();
          break;
        case task::stop:
          task_ = task::none;
          wake_.notify_all();
          return;
        case task::none:
          break;
      }
      task_ = task::none;
      wake_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  task task_ = task::none;
  std::pmr::memory_resource* resource_ = nullptr;
  const block* blocks_ = nullptr;
  std::size_t count_ = 0;
  const std::function<void()>* function_ = nullptr;
  std::thread thread_;  // last: starts once the members above exist
};

struct sample {
  int phase;
  double x;  // phase + fraction done: the plot's x axis
  std::uint64_t op;
  double seconds;
  std::size_t live;
  long long footprint;  // resident bytes above the baseline
  long long own;        // -1: none
  std::uint64_t failed;
  std::uint64_t misaligned;
};

/// One contender's run: the live set, the second thread and the samples,
/// all allocated (and touched) before the baseline is read, so that the
/// bookkeeping is not counted as the contender's footprint.
class workload {
 public:
  explicit workload(const config& c)
      : config_(c),
        live_(c.live / 16 + 2),  // every block is at least 16 B, and one is allocated below the target
        remote_(c.remote_batch) {
    samples_.reserve(static_cast<std::size_t>((phase_count + 1) * (c.samples + 1) + c.idle_samples + 2));
  }

  /// Reads the baseline; the contender is constructed right after.
  void set_baseline() { baseline_ = resident_bytes(); }

  /// Runs phases (in order), then the idle phase, sampling as it goes.
  void run(subject& s, const std::vector<int>& phases) {
    start_ = std::chrono::steady_clock::now();
    take_sample(s, phases.front(), phases.front());
    for (int phase : phases) run_phase(s, phase);
    idle(s);
  }

  [[nodiscard]] const std::vector<sample>& samples() const { return samples_; }
  [[nodiscard]] std::uint64_t failed() const { return failed_; }
  [[nodiscard]] const std::string& first_failure() const { return first_failure_; }

 private:
  void run_phase(subject& s, int phase) {
    // Seeded per phase, so a contender that runs only the large phase draws
    // the same sizes there as the others.
    std::mt19937_64 rng(config_.seed + static_cast<std::uint64_t>(phase));
    const size_mix& mix = phase_mixes[phase];
    const std::size_t ops = config_.phase_ops(phase);
    std::size_t done = 0;
    for (int k = 1; k <= config_.samples; ++k) {
      const std::size_t until = ops * static_cast<std::size_t>(k) / static_cast<std::size_t>(config_.samples);
      for (; done < until; ++done) step(s, phase, mix, rng);
      take_sample(s, phase, phase + static_cast<double>(k) / config_.samples);
    }
  }

  void step(subject& s, int phase, const size_mix& mix, std::mt19937_64& rng) {
    ++op_;
    if (live_bytes_ < config_.live) {
      allocate(s, phase, mix.draw(rng));
    } else {
      free_one(s, rng);
    }
  }

  void allocate(subject& s, int phase, std::size_t size) {
    const std::size_t alignment = natural_alignment(size);
    void* p = nullptr;
    try {
      p = s.resource->allocate(size, alignment);
    } catch (const std::bad_alloc&) {
      // An exhausted contender: counted, and the server goes on.
      if (failed_++ == 0) {
        first_failure_ = std::string(phase_mixes[phase].name) + ", " + std::to_string(size) + " B at op " +
                         std::to_string(op_);
      }
      return;
    }
    if (reinterpret_cast<std::uintptr_t>(p) % alignment != 0) ++misaligned_;
    std::memset(p, 0xa5, size);  // a server writes what it allocates: the pages become resident
    live_[count_++] = {static_cast<std::byte*>(p), size};
    live_bytes_ += size;
  }

  void free_one(subject& s, std::mt19937_64& rng) {
    const std::size_t i = rng() % count_;
    const block b = live_[i];
    live_[i] = live_[--count_];
    live_bytes_ -= b.size;
    if (rng() % config_.remote_one_in == 0) {
      remote_[remote_count_++] = b;
      if (remote_count_ == remote_.size()) flush_remote(s);
    } else {
      s.resource->deallocate(b.p, b.size, natural_alignment(b.size));
    }
  }

  void flush_remote(subject& s) {
    if (remote_count_ == 0) return;
    worker_.free_batch(s.resource, remote_.data(), remote_count_);
    remote_count_ = 0;
  }

  void idle(subject& s) {
    std::mt19937_64 rng(config_.seed + idle_phase);
    while (count_ != 0) free_one(s, rng);
    take_sample(s, idle_phase, idle_phase);
    const auto pause = std::chrono::duration<double>(config_.idle_seconds / config_.idle_samples);
    for (int k = 1; k <= config_.idle_samples; ++k) {
      std::this_thread::sleep_for(pause);
      heartbeat_call(s.resource);
      worker_.heartbeat(s.resource);
      // 0.9: the idle samples end short of the trim sample at x = 5.
      take_sample(s, idle_phase, idle_phase + 0.9 * k / config_.idle_samples);
    }
    if (s.trim) s.trim();
    if (s.worker_trim) worker_.call(s.worker_trim);
    take_sample(s, trim_phase, trim_phase);
  }

  void take_sample(subject& s, int phase, double x) {
    flush_remote(s);  // the live bytes count a block as freed when it is handed over
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    samples_.push_back({phase, x, op_, seconds, live_bytes_,
                        static_cast<long long>(resident_bytes()) - static_cast<long long>(baseline_),
                        s.own ? static_cast<long long>(s.own()) : -1, failed_, misaligned_});
  }

  config config_;
  std::vector<block> live_;  // [0, count_) are live; sized (and touched) up front
  std::size_t count_ = 0;
  std::size_t live_bytes_ = 0;
  std::vector<block> remote_;  // cross-thread frees not yet handed over
  std::size_t remote_count_ = 0;
  second_thread worker_;
  std::vector<sample> samples_;
  std::size_t baseline_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::uint64_t op_ = 0;
  std::uint64_t failed_ = 0;
  std::uint64_t misaligned_ = 0;
  std::string first_failure_;
};

// ------------------------------------------------------------- contenders

struct contender_info {
  const char* id;     // --contender
  const char* label;  // plot line and table row
};

const contender_info contenders[] = {
    {"arena", "strata::arena"},
    {"chunk_provider", "strata::chunk_provider"},
    {"new_delete", "new_delete_resource (glibc)"},
    {"mimalloc", "mimalloc"},
    {"std_sync_pool", "std::pmr::synchronized_pool_resource"},
    {"std_unsync_pool", "std::pmr::unsynchronized_pool_resource"},
};

const strata::bench::peer* find_peer(const std::string& name) {
  for (const strata::bench::peer& p : strata::bench::peers()) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

/// trim() if R has one (today chunk_provider; the arena may gain one).
template <class R>
std::function<void()> trim_of(R& r) {
  if constexpr (requires { r.trim(); }) {
    return [&r] { r.trim(); };
  } else {
    return {};
  }
}
template <class R>
const char* trim_name() {
  if constexpr (requires(R & r) { r.trim(); }) {
    return "trim()";
  } else {
    return "";
  }
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

/// Runs one contender in this process; JSON lines on stdout.
int run_contender(const std::string& id, const config& c) {
  const contender_info* info = nullptr;
  for (const contender_info& i : contenders) {
    if (id == i.id) info = &i;
  }
  if (info == nullptr) {
    std::fprintf(stderr, "phase_shift: unknown contender %s\n", id.c_str());
    return 2;
  }
  std::vector<int> phases = {0, 1, 2, 3};
  const strata::bench::peer* mimalloc = find_peer("mimalloc");  // loads the peers before the baseline
  using process_info_fn = void (*)(std::size_t*, std::size_t*, std::size_t*, std::size_t*, std::size_t*,
                                   std::size_t*, std::size_t*, std::size_t*);
  const auto mi_process_info =
      reinterpret_cast<process_info_fn>(strata::bench::detail::symbol("libmimalloc.so.2", "mi_process_info"));
  const auto mi_collect =
      reinterpret_cast<void (*)(bool)>(strata::bench::detail::symbol("libmimalloc.so.2", "mi_collect"));

  workload w(c);
  w.set_baseline();
  std::string own_name, trim_label;
  const auto describe = [&] {
    std::string phase_list;
    for (int p : phases) {
      if (!phase_list.empty()) phase_list += ',';
      phase_list += std::to_string(p);
    }
    std::printf(
        "{\"id\":%s,\"label\":%s,\"footprint\":\"resident bytes above the baseline (/proc/self/statm)\","
        "\"own\":%s,\"trim\":%s,\"phases\":[%s],\"columns\":[\"phase\",\"x\",\"op\",\"seconds\",\"live\","
        "\"footprint\",\"own\",\"failed\",\"misaligned\"]}\n",
        json_string(info->id).c_str(), json_string(info->label).c_str(), json_string(own_name).c_str(),
        json_string(trim_label).c_str(), phase_list.c_str());
    std::fflush(stdout);
  };
  const auto finish = [&] {
    for (const sample& s : w.samples()) {
      std::printf("[%d,%.4f,%llu,%.4f,%zu,%lld,%lld,%llu,%llu]\n", s.phase, s.x,
                  static_cast<unsigned long long>(s.op), s.seconds, s.live, s.footprint, s.own,
                  static_cast<unsigned long long>(s.failed), static_cast<unsigned long long>(s.misaligned));
    }
    std::printf("{\"end\":true,\"failed\":%llu,\"first_failure\":%s}\n",
                static_cast<unsigned long long>(w.failed()), json_string(w.first_failure()).c_str());
    std::fflush(stdout);
  };
  const auto stats_of = [](const strata::resource& r) {
    return std::function<std::size_t()>([&r] { return r.stats().bytes_reserved; });
  };

  if (id == "arena") {
    strata::arena r{{.capacity = c.arena_capacity}, strata::system_pages()};
    own_name = "stats().bytes_reserved";
    trim_label = trim_name<strata::arena>();
    subject s{&r, stats_of(r), trim_of(r), {}};
    describe();
    w.run(s, phases);
    finish();
  } else if (id == "chunk_provider") {
    phases = {2};
    strata::chunk_provider r{strata::system_pages()};
    own_name = "stats().bytes_reserved";
    trim_label = trim_name<strata::chunk_provider>();
    // Today's trim() leaves other threads' caches alone: it is called on both threads.
    subject s{&r, stats_of(r), trim_of(r), trim_of(r)};
    describe();
    w.run(s, phases);
    finish();
  } else if (id == "new_delete") {
    const auto heap = [] {
      const struct mallinfo2 m = ::mallinfo2();
      return m.arena + m.hblkhd;
    };
    const std::size_t base = heap();
    own_name = "mallinfo2() arena + hblkhd";
    trim_label = "malloc_trim(0)";
    subject s{std::pmr::new_delete_resource(), [&] { return heap() - base; }, [] { ::malloc_trim(0); }, {}};
    describe();
    w.run(s, phases);
    finish();
  } else if (id == "mimalloc") {
    if (mimalloc == nullptr) {
      std::fprintf(stderr, "phase_shift: libmimalloc.so.2 not found\n");
      return 77;  // skipped
    }
    const auto committed = [mi_process_info] {
      std::size_t elapsed, user, system, rss, peak_rss, commit = 0, peak_commit, faults;
      if (mi_process_info != nullptr)
        mi_process_info(&elapsed, &user, &system, &rss, &peak_rss, &commit, &peak_commit, &faults);
      return commit;
    };
    const std::size_t base = committed();
    own_name = mi_process_info != nullptr ? "mi_process_info() current_commit" : "";
    trim_label = mi_collect != nullptr ? "mi_collect(true)" : "";
    subject s{mimalloc->resource, {}, {}, {}};
    if (mi_process_info != nullptr) s.own = [=] { return committed() - base; };
    if (mi_collect != nullptr) s.trim = [=] { mi_collect(true); };
    if (mi_collect != nullptr) s.worker_trim = s.trim;
    describe();
    w.run(s, phases);
    finish();
  } else {
    // The std pools on new_delete, through a counter of what they hold there
    // (never used by two threads at once: see the file comment). They have
    // no trim: release() would free live blocks too.
    strata::bench::counting_upstream upstream;
    own_name = "bytes held at the upstream";
    const auto held = [&upstream] { return upstream.outstanding(); };
    if (id == "std_sync_pool") {
      std::pmr::synchronized_pool_resource r{&upstream};
      subject s{&r, held, {}, {}};
      describe();
      w.run(s, phases);
      finish();
    } else {
      std::pmr::unsynchronized_pool_resource r{&upstream};
      subject s{&r, held, {}, {}};
      describe();
      w.run(s, phases);
      finish();
    }
  }
  const sample& last = w.samples().back();
  std::size_t peak_live = 0;
  long long peak = 0;
  for (const sample& s : w.samples()) {
    peak_live = s.live > peak_live ? s.live : peak_live;
    peak = s.footprint > peak ? s.footprint : peak;
  }
  std::fprintf(stderr,
               "phase_shift: %-40s peak %7.1f MiB / live %5.1f MiB = %5.2fx, after idle+trim %7.1f MiB held, "
               "%llu failed allocations%s%s%s\n",
               info->label, static_cast<double>(peak) / (1 << 20), static_cast<double>(peak_live) / (1 << 20),
               peak_live != 0 ? static_cast<double>(peak) / static_cast<double>(peak_live) : 0.0,
               static_cast<double>(last.footprint) / (1 << 20), static_cast<unsigned long long>(w.failed()),
               w.first_failure().empty() ? "" : " (first: ", w.first_failure().c_str(),
               w.first_failure().empty() ? "" : ")");
  return 0;
}

// ------------------------------------------------------------- the driver

/// Runs one contender in a fresh child process (this program, re-executed);
/// returns its JSON record for the combined file, or "" when it was skipped.
std::string run_child(const contender_info& info, const std::vector<std::string>& passed, bool& crashed) {
  int out[2];
  if (::pipe(out) != 0) {
    std::perror("phase_shift: pipe");
    std::exit(1);
  }
  std::vector<std::string> args = {"/proc/self/exe", "--contender", info.id};
  args.insert(args.end(), passed.begin(), passed.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  posix_spawn_file_actions_addclose(&actions, out[1]);
  pid_t pid = 0;
  const int error = ::posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (error != 0) {
    std::fprintf(stderr, "phase_shift: cannot run a child: %s\n", std::strerror(error));
    std::exit(1);
  }
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) != 0;) {
    if (n > 0) text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) return "";

  // Lines: the description, the samples, the end record (missing if it crashed).
  std::string meta, samples, end = "null";
  std::size_t count = 0;
  for (std::size_t at = 0; at < text.size();) {
    std::size_t eol = text.find('\n', at);
    if (eol == std::string::npos) break;  // a line cut short by a crash
    const std::string line = text.substr(at, eol - at);
    at = eol + 1;
    if (meta.empty()) {
      meta = line;
    } else if (line.front() == '[') {
      samples += count++ == 0 ? "\n   " : ",\n   ";
      samples += line;
    } else {
      end = line;
    }
  }
  std::string state = "ok";
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    crashed = true;
    state = WIFSIGNALED(status) ? "crashed (signal " + std::to_string(WTERMSIG(status)) + ")"
                                : "exited with status " + std::to_string(WEXITSTATUS(status));
    std::fprintf(stderr, "phase_shift: %-40s %s\n", info.label, state.c_str());
  }
  if (meta.empty()) meta = "{\"id\":" + json_string(info.id) + ",\"label\":" + json_string(info.label) + "}";
  return "  {\"meta\":" + meta + ",\n   \"status\":" + json_string(state) + ",\n   \"end\":" + end +
         ",\n   \"samples\":[" + samples + "]}";
}

std::string context_json() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  double load[3] = {};
  if (::getloadavg(load, 3) < 0) load[0] = -1;
  char date[64] = {};
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return "{\"date\":\"" + std::string(date) + "\",\"host_name\":" + json_string(host) +
         ",\"num_cpus\":" + std::to_string(std::thread::hardware_concurrency()) +
         ",\"load_avg\":" + std::to_string(load[0]) + ",\"glibc\":" + json_string(::gnu_get_libc_version()) +
         "}";
}

std::string config_json(const config& c) {
  std::string phases;
  for (int p = 0; p < phase_count; ++p) {
    const size_mix& m = phase_mixes[p];
    phases += std::string(p == 0 ? "" : ",") + "{\"name\":" + json_string(m.name) +
              ",\"min\":" + std::to_string(m.min) + ",\"max\":" + std::to_string(m.max) +
              ",\"distribution\":" + (m.log_uniform ? "\"log-uniform\"" : "\"uniform\"") +
              ",\"ops\":" + std::to_string(c.phase_ops(p)) + "}";
  }
  char numbers[512];
  std::snprintf(numbers, sizeof numbers,
                "\"quick\":%s,\"live\":%zu,\"turnover\":%g,\"samples_per_phase\":%d,\"idle_seconds\":%g,"
                "\"idle_samples\":%d,\"seed\":%llu,\"remote_batch\":%zu,\"remote_one_in\":%u,"
                "\"arena_capacity\":%zu",
                c.quick ? "true" : "false", c.live, c.turnover, c.samples, c.idle_seconds, c.idle_samples,
                static_cast<unsigned long long>(c.seed), c.remote_batch, c.remote_one_in, c.arena_capacity);
  return std::string("{") + numbers + ",\"phases\":[" + phases + "]}";
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  double idle_seconds = -1;
  std::size_t arena_capacity = 0;
  std::string contender, out;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--quick") {
      quick = true;
    } else if (arg == "--idle-seconds" && i + 1 < argc) {
      idle_seconds = std::atof(argv[++i]);
    } else if (arg == "--arena-capacity" && i + 1 < argc) {
      arena_capacity = std::strtoull(argv[++i], nullptr, 10) << 20;
    } else if (arg == "--contender" && i + 1 < argc) {
      contender = argv[++i];
    } else if (arg == "--out" && i + 1 < argc) {
      out = argv[++i];
    } else {
      std::fprintf(
          stderr,
          "usage: phase_shift_bench [--quick] [--idle-seconds S] [--arena-capacity MiB] [--out FILE.json] "
          "[--contender ID]\n");
      return 2;
    }
  }
  const config c = make_config(quick, idle_seconds, arena_capacity);
  if (!contender.empty()) return run_contender(contender, c);

  std::vector<std::string> passed;
  if (quick) passed.emplace_back("--quick");
  if (idle_seconds >= 0) passed.insert(passed.end(), {"--idle-seconds", std::to_string(idle_seconds)});
  if (arena_capacity != 0)
    passed.insert(passed.end(), {"--arena-capacity", std::to_string(arena_capacity >> 20)});
  bool crashed = false;
  std::string records;
  for (const contender_info& info : contenders) {
    std::string record = run_child(info, passed, crashed);
    if (record.empty()) continue;
    if (!records.empty()) records += ",\n";
    records += record;
  }
  if (!out.empty()) {
    std::FILE* f = std::fopen(out.c_str(), "w");
    if (f == nullptr) {
      std::perror(out.c_str());
      return 1;
    }
    std::fprintf(f,
                 "{\"workload\":\"phase_shift\",\"context\":%s,\n \"config\":%s,\n \"contenders\":[\n%s]}\n",
                 context_json().c_str(), config_json(c).c_str(), records.c_str());
    std::fclose(f);
  }
  return crashed ? 1 : 0;
}
