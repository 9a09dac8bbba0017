// SPDX-License-Identifier: MIT
#pragma once

// The system figures of strata-demo, measured the same way for every
// backend, because each backend runs in a fresh child process of its own:
//
// - mapping system calls: the child installs a seccomp filter that stops it
//   at each mmap, munmap, mremap, mprotect, brk and madvise call (and no
//   other), and the parent, its ptrace tracer, counts each stop in memory
//   shared with the child. The kernel sees every call, glibc's own internal
//   ones included, which wrapping the functions by symbol would miss. Each
//   counted call costs a round trip to the parent (a few microseconds);
//   --no-trace turns counting off.
// - minor page faults: getrusage(RUSAGE_SELF) in the child, before and after.
// - peak RSS: VmHWM of /proc/self/status, reset in the child with
//   /proc/self/clear_refs ("5") before the backend exists.
// - bytes reserved: the growth of the child's address space (VmSize of
//   /proc/self/status at the end of the timed run over VmSize once its
//   threads exist): everything the backend holds mapped, touched or not.
//   Not VmPeak: glibc maps 128 MiB for a moment to carve each thread's
//   64 MiB malloc arena out of it, before any backend exists.
//
// Linux only (seccomp, ptrace, /proc).

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace strata::demo {

// ------------------------------------------------------ counted syscalls

enum map_call : unsigned {
  call_mmap,
  call_munmap,
  call_mremap,
  call_mprotect,
  call_brk,
  call_madvise,
  map_call_count
};
inline constexpr const char* map_call_names[map_call_count] = {"mmap",     "munmap", "mremap",
                                                               "mprotect", "brk",    "madvise"};
/// The calls the "mem calls" column sums: every call above, those that map,
/// unmap, resize or protect memory and madvise, by which glibc gives pages
/// back (MADV_DONTNEED) that the next request then faults in again.
inline constexpr unsigned mapping_calls[] = {call_mmap,     call_munmap, call_mremap,
                                             call_mprotect, call_brk,    call_madvise};

struct call_counts {
  std::uint64_t n[map_call_count] = {};
  [[nodiscard]] std::uint64_t mapping() const noexcept {
    std::uint64_t sum = 0;
    for (const unsigned c : mapping_calls) sum += n[c];
    return sum;
  }
  friend call_counts operator-(const call_counts& a, const call_counts& b) noexcept {
    call_counts d;
    for (unsigned i = 0; i < map_call_count; ++i) d.n[i] = a.n[i] - b.n[i];
    return d;
  }
};

/// Counts kept by the tracer in memory shared with the child. Lock-free
/// atomics work across processes on a shared mapping; the tracer updates a
/// count while the calling thread is stopped, so that thread reads it
/// updated once its call returns.
struct shared_counters {
  std::atomic<std::uint64_t> calls[map_call_count];
  std::atomic<bool> traced{false};   // the filter is on in the child
  std::atomic<bool> tracing{false};  // the parent set its ptrace options (before the filter may go on)
  [[nodiscard]] call_counts snapshot() const noexcept {
    call_counts c;
    for (unsigned i = 0; i < map_call_count; ++i) c.n[i] = calls[i].load(std::memory_order_acquire);
    return c;
  }
};

// ------------------------------------------------------- shared memory

/// A T in an anonymous shared mapping, seen by the parent and a forked
/// child. T is constructed in place; it must not own heap memory.
template <class T>
class shared_object {
 public:
  shared_object() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    object_ = new (p) T();
  }
  ~shared_object() {
    object_->~T();
    ::munmap(object_, sizeof(T));
  }
  shared_object(const shared_object&) = delete;
  shared_object& operator=(const shared_object&) = delete;
  T* operator->() const noexcept { return object_; }
  T& operator*() const noexcept { return *object_; }

 private:
  T* object_;
};

// ------------------------------------------------------- process figures

/// Returns a "VmXXX:" field of /proc/self/status in bytes, or 0.
inline std::size_t proc_status_bytes(const char* field) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  std::size_t kib = 0;
  const std::size_t n = std::strlen(field);
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, field, n) == 0 && line[n] == ':') {
      kib = std::strtoull(line + n + 1, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return kib * 1024;
}

/// Resets VmHWM (peak RSS) to the current RSS; false if the kernel refuses.
inline bool reset_peak_rss() {
  const int fd = ::open("/proc/self/clear_refs", O_WRONLY);
  if (fd < 0) return false;
  const bool ok = ::write(fd, "5", 1) == 1;
  ::close(fd);
  return ok;
}

inline std::uint64_t minor_faults() noexcept {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<std::uint64_t>(u.ru_minflt);
}

// ---------------------------------------------------- isolated children

namespace detail {

#if defined(__x86_64__)
inline constexpr std::uint32_t audit_arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
inline constexpr std::uint32_t audit_arch = AUDIT_ARCH_AARCH64;
#else
inline constexpr std::uint32_t audit_arch = 0;  // no counting
#endif

/// Stops the calling process (and every thread it creates later) at each
/// counted system call for its tracer; every other call runs untouched.
/// Requires: a tracer is attached (without one a traced call fails ENOSYS).
inline bool install_filter() noexcept {
  if (audit_arch == 0) return false;
  constexpr long numbers[map_call_count] = {SYS_mmap,     SYS_munmap, SYS_mremap,
                                            SYS_mprotect, SYS_brk,    SYS_madvise};
  sock_filter program[4 + 2 * map_call_count + 1];
  unsigned n = 0;
  program[n++] = BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch));
  program[n++] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, audit_arch, 1, 0);
  program[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  program[n++] = BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr));
  for (unsigned i = 0; i < map_call_count; ++i) {
    program[n++] = BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(numbers[i]), 0, 1);
    program[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE | i);  // the data names the counter
  }
  program[n++] = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  const sock_fprog fprog{static_cast<unsigned short>(n), program};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) == 0;
}

}  // namespace detail

/// How an isolated child ended.
struct child_status {
  bool exited = false;  // false: killed by a signal
  int code = 0;         // exit code, or the signal
};

/// Runs body() in a forked child and waits for it, counting its mapping
/// calls into counters when trace is set (if ptrace and seccomp are
/// allowed; counters.traced says whether they were). Calls tick() about
/// every 100 ms from a thread of the parent while waiting. The child leaves
/// with _exit(body()), skipping the parent's atexit handlers.
/// Requires: the calling process has no other threads (fork copies one).
inline child_status run_isolated(const std::function<int()>& body, shared_counters& counters, bool trace,
                                 const std::function<void()>& tick) {
  std::fflush(nullptr);  // or the child would flush the parent's buffered output again
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    if (trace && ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) == 0) {
      ::raise(SIGSTOP);  // the parent sets its options, then lets us go on
      // Without a tracer that asked for seccomp stops, a filtered call would
      // fail with ENOSYS instead of running: no filter then.
      if (counters.tracing.load(std::memory_order_acquire))
        counters.traced.store(detail::install_filter(), std::memory_order_release);
    }
    int code = 1;
    try {
      code = body();
    } catch (...) {
    }
    std::fflush(nullptr);
    ::_exit(code);
  }

  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  std::thread ticker([&] {
    std::unique_lock lock(m);
    do {
      tick();  // at once, then every 100 ms: a run of any length shows its line
    } while (!cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return done; }));
  });

  child_status result;
  bool options_set = false;
  for (;;) {
    int status = 0;
    const pid_t tid = ::waitpid(trace ? -1 : pid, &status, trace ? __WALL : 0);
    if (tid < 0) {
      if (errno == EINTR) continue;
      result = {false, SIGKILL};
      break;
    }
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      if (tid != pid) continue;  // a thread of the child ended
      result =
          WIFEXITED(status) ? child_status{true, WEXITSTATUS(status)} : child_status{false, WTERMSIG(status)};
      break;
    }
    if (!WIFSTOPPED(status)) continue;
    const int sig = WSTOPSIG(status);
    const int event = status >> 16;
    int deliver = 0;
    if (event == PTRACE_EVENT_SECCOMP) {
      unsigned long which = 0;
      ::ptrace(PTRACE_GETEVENTMSG, tid, nullptr, &which);
      if (which < map_call_count) counters.calls[which].fetch_add(1, std::memory_order_release);
    } else if (tid == pid && sig == SIGSTOP && !options_set) {
      // EXITKILL: a dying parent takes the child along. TRACECLONE: the
      // child's threads are traced (and filtered) too.
      const long set = ::ptrace(PTRACE_SETOPTIONS, pid, nullptr,
                                PTRACE_O_TRACESECCOMP | PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL);
      counters.tracing.store(set == 0, std::memory_order_release);
      options_set = true;
    } else if (event == 0 && sig != SIGSTOP && sig != SIGTRAP) {
      deliver = sig;  // a real signal (a crash, ^C): pass it on
    }
    ::ptrace(PTRACE_CONT, tid, nullptr, reinterpret_cast<void*>(static_cast<long>(deliver)));
  }

  {
    std::lock_guard lock(m);
    done = true;
  }
  cv.notify_one();
  ticker.join();
  return result;
}

}  // namespace strata::demo
