// SPDX-License-Identifier: MIT
#pragma once

// Contenders for the benchmarks, as std::pmr::memory_resource so every one is
// measured behind the same virtual call:
//
// - floors: the physical limit for a workload (a bare chunk stack, free list
//   or bump pointer) with nothing else in the way;
// - peers: other allocators, loaded at run time with dlopen(RTLD_LOCAL) so
//   that none of them replaces malloc for the whole process (linking
//   jemalloc, tcmalloc or mimalloc would, and new_delete would then measure
//   them instead of glibc). A peer whose library is missing is skipped;
//   `scripts/bootstrap --bench` installs them all. jemalloc cannot be
//   dlopen'ed (static TLS): bench/run measures it through new_delete in a
//   second process with jemalloc in LD_PRELOAD. foonathan-memory, which
//   replaces nothing, is linked (support/foonathan.hpp).
//
// And what every benchmark checks outside its timed loop: validation (each
// block written whole and checked for alignment; a misaligned contender is
// measured and flagged) and meter (the footprint at the workload's peak).

#include <dlfcn.h>
#include <malloc.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <memory_resource>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

namespace strata::bench {

// ------------------------------------------------------------------ floors

/// The floor for chunk workloads: a LIFO stack of chunks of one size behind
/// the virtual call, refilled from the global operator new. It checks
/// nothing, counts nothing and serves one size.
class bare_chunk_stack final : public std::pmr::memory_resource {
 public:
  ~bare_chunk_stack() override {
    for (std::size_t i = 0; i < count_; ++i) ::operator delete (stack_[i], std::align_val_t{alignment_});
  }

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    if (count_ != 0) [[likely]]
      return stack_[--count_];
    alignment_ = alignment > alignment_ ? alignment : alignment_;
    return ::operator new (bytes, std::align_val_t{alignment_});
  }
  void do_deallocate(void* p, std::size_t, std::size_t) override {
    if (count_ < capacity) [[likely]] {
      stack_[count_++] = p;
      return;
    }
    ::operator delete (p, std::align_val_t{alignment_});
  }
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }

  static constexpr std::size_t capacity = 64;
  void* stack_[capacity]{};
  std::size_t count_ = 0;
  std::size_t alignment_ = 4096;  // one alignment for every chunk, the largest asked
};

/// The floor for fixed-size workloads: an intrusive LIFO free list of
/// blocks of one size behind the virtual call, carved from one buffer.
class bare_free_list final : public std::pmr::memory_resource {
 public:
  explicit bare_free_list(std::size_t block_size, std::size_t capacity = std::size_t{64} << 20)
      : block_size_((block_size + 15) & ~std::size_t{15}),
        buffer_(static_cast<std::byte*>(::operator new (capacity, std::align_val_t{4096}))),
        end_(buffer_ + capacity),
        fresh_(buffer_) {}
  ~bare_free_list() override { ::operator delete (buffer_, std::align_val_t{4096}); }
  /// Bytes carved from the buffer so far (the floor's footprint).
  std::size_t carved() const noexcept { return static_cast<std::size_t>(fresh_ - buffer_); }

 private:
  void* do_allocate(std::size_t, std::size_t) override {
    if (head_ != nullptr) [[likely]] {
      void* p = head_;
      head_ = *static_cast<void**>(p);
      return p;
    }
    if (fresh_ + block_size_ > end_) throw std::bad_alloc();
    void* p = fresh_;
    fresh_ += block_size_;
    return p;
  }
  void do_deallocate(void* p, std::size_t, std::size_t) override {
    *static_cast<void**>(p) = head_;
    head_ = p;
  }
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }

  std::size_t block_size_;
  std::byte* buffer_;
  std::byte* end_;
  std::byte* fresh_;
  void* head_ = nullptr;
};

/// The floor for mixed-size workloads: one bare free list per 16-byte size
/// class (up to 4 KiB) behind the virtual call, carved from one buffer.
class bare_size_class_lists final : public std::pmr::memory_resource {
 public:
  explicit bare_size_class_lists(std::size_t capacity = std::size_t{256} << 20)
      : buffer_(static_cast<std::byte*>(::operator new (capacity, std::align_val_t{4096}))),
        end_(buffer_ + capacity),
        fresh_(buffer_) {}
  ~bare_size_class_lists() override { ::operator delete (buffer_, std::align_val_t{4096}); }
  /// Bytes carved from the buffer so far (the floor's footprint).
  std::size_t carved() const noexcept { return static_cast<std::size_t>(fresh_ - buffer_); }

 private:
  static constexpr std::size_t class_count = 256;
  void* do_allocate(std::size_t bytes, std::size_t) override {
    const std::size_t cls = (bytes + 15) >> 4;
    if (cls >= class_count) throw std::bad_alloc();
    if (void* p = heads_[cls]; p != nullptr) [[likely]] {
      heads_[cls] = *static_cast<void**>(p);
      return p;
    }
    const std::size_t size = cls == 0 ? 16 : cls << 4;
    if (fresh_ + size > end_) throw std::bad_alloc();
    void* p = fresh_;
    fresh_ += size;
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t) override {
    const std::size_t cls = (bytes + 15) >> 4;
    *static_cast<void**>(p) = heads_[cls];
    heads_[cls] = p;
  }
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }

  std::byte* buffer_;
  std::byte* end_;
  std::byte* fresh_;
  void* heads_[class_count]{};
};

/// The floor for per-request workloads: a bump pointer in one large buffer
/// behind the virtual call; deallocate does nothing and reset() rewinds.
class bare_bump final : public std::pmr::memory_resource {
 public:
  explicit bare_bump(std::size_t capacity = std::size_t{8} << 20)
      : buffer_(static_cast<std::byte*>(::operator new (capacity, std::align_val_t{4096}))),
        end_(buffer_ + capacity),
        cursor_(buffer_) {}
  ~bare_bump() override { ::operator delete (buffer_, std::align_val_t{4096}); }
  void reset() noexcept { cursor_ = buffer_; }
  /// Bytes bumped over since the last reset (the floor's footprint).
  std::size_t carved() const noexcept { return static_cast<std::size_t>(cursor_ - buffer_); }

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    auto* p = reinterpret_cast<std::byte*>((reinterpret_cast<std::uintptr_t>(cursor_) + alignment - 1) &
                                           ~(alignment - 1));
    if (p + bytes > end_) [[unlikely]]
      throw std::bad_alloc();
    cursor_ = p + bytes;
    return p;
  }
  void do_deallocate(void*, std::size_t, std::size_t) override {}
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }

  std::byte* buffer_;
  std::byte* end_;
  std::byte* cursor_;
};

// ------------------------------------------------------------------ memory

class validation;

/// Reads how many bytes a contender holds for a workload, for the memory
/// column of the report: at the workload's peak (untimed), the footprint is
/// compared with the bytes the workload has requested. Two kinds:
/// - read(): the resource's own count ("stats"), the bytes its floor carved
///   ("carved"), or a count kept by an upstream or block allocator placed
///   under it ("upstream"): everything that resource took, exact;
/// - usable(p) for malloc-style peers, which share the process and keep no
///   per-workload count: the sum over the live blocks of the size the
///   allocator set aside for each ("usable size", plus the chunk header for
///   glibc). It shows size-class rounding and headers, not page-level
///   fragmentation, metadata or what the allocator keeps cached: a lower
///   bound.
struct meter {
  const char* method = nullptr;            ///< nullptr: not measured
  std::function<std::size_t()> read;       ///< bytes held now
  std::size_t (*usable)(void*) = nullptr;  ///< instead of read(): bytes set aside for one block
  std::size_t header = 0;                  ///< bytes before each block, with usable

  /// Records the footprint now, with `live` the blocks in use and
  /// `requested` their requested bytes.
  template <class Live>
  void sample(validation& v, std::size_t requested, const Live& live) const;
};

/// A pass-through upstream that counts the bytes outstanding and their peak
/// (one thread only), to measure what a resource takes from upstream.
class counting_upstream final : public std::pmr::memory_resource {
 public:
  explicit counting_upstream(std::pmr::memory_resource* upstream = std::pmr::new_delete_resource())
      : upstream_(upstream) {}
  std::size_t outstanding() const noexcept { return outstanding_; }
  std::size_t peak() const noexcept { return peak_; }
  /// A meter reading this upstream's peak.
  meter peak_meter() const {
    return {"upstream", [this] { return peak_; }};
  }

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    void* p = upstream_->allocate(bytes, alignment);
    outstanding_ += bytes;
    peak_ = outstanding_ > peak_ ? outstanding_ : peak_;
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    upstream_->deallocate(p, bytes, alignment);
    outstanding_ -= bytes;
  }
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }

  std::pmr::memory_resource* upstream_;  // upstream (held, not owned)
  std::size_t outstanding_ = 0;
  std::size_t peak_ = 0;
};

/// The meter for the process's operator new: malloc_usable_size, plus
/// glibc's 8-byte chunk header, or without it when jemalloc replaced malloc
/// (LD_PRELOAD; malloc_usable_size is then jemalloc's).
inline meter new_delete_meter() {
  static const bool jemalloc = ::dlsym(RTLD_DEFAULT, "mallctl") != nullptr;
  if (jemalloc) return {"usable size (jemalloc)", {}, [](void* p) { return ::malloc_usable_size(p); }, 0};
  return {"usable size + header (glibc)",
          {},
          [](void* p) { return ::malloc_usable_size(p); },
          sizeof(std::size_t)};
}

// ------------------------------------------------------------------ peers

/// A peer allocator reached through two C functions.
class peer_resource final : public std::pmr::memory_resource {
 public:
  using allocate_fn = void* (*)(std::size_t bytes, std::size_t alignment);
  using deallocate_fn = void (*)(void* p, std::size_t bytes, std::size_t alignment);
  peer_resource(allocate_fn allocate, deallocate_fn deallocate)
      : allocate_(allocate), deallocate_(deallocate) {}

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    void* p = allocate_(bytes, alignment);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    deallocate_(p, bytes, alignment);
  }
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }
  allocate_fn allocate_;
  deallocate_fn deallocate_;
};

struct peer {
  std::string name;
  std::pmr::memory_resource* resource;
  meter memory;  ///< usable size of each live block
};

namespace detail {

inline void* symbol(const char* library, const char* name) {
  void* handle = ::dlopen(library, RTLD_NOW | RTLD_LOCAL);
  return handle != nullptr ? ::dlsym(handle, name) : nullptr;
}

// Function pointers filled once; the lambdas below are captureless.
inline void* (*mi_malloc_aligned)(std::size_t, std::size_t) = nullptr;
inline void (*mi_free)(void*) = nullptr;
inline void* (*je_mallocx)(std::size_t, int) = nullptr;
inline void (*je_sdallocx)(void*, std::size_t, int) = nullptr;
inline void* (*tc_memalign)(std::size_t, std::size_t) = nullptr;
inline void (*tc_free)(void*) = nullptr;
inline void* (*tbb_aligned_malloc)(std::size_t, std::size_t) = nullptr;
inline void (*tbb_aligned_free)(void*) = nullptr;

inline void* (*mi_heap_new)() = nullptr;
inline void* (*mi_heap_malloc_aligned)(void*, std::size_t, std::size_t) = nullptr;
inline void (*mi_heap_destroy)(void*) = nullptr;

inline std::size_t (*mi_usable_size)(const void*) = nullptr;
inline std::size_t (*tc_malloc_size)(void*) = nullptr;
inline std::size_t (*tbb_msize)(void*) = nullptr;

inline int je_align_flag(std::size_t alignment) {
  return static_cast<int>(std::countr_zero(alignment));
}

}  // namespace detail

/// A usable-size meter calling usable, or none if the peer's function is missing.
inline meter usable_meter(bool available, std::size_t (*usable)(void*)) {
  return available ? meter{"usable size", {}, usable, 0} : meter{};
}

/// Returns the peers available on this machine, loaded once.
inline const std::vector<peer>& peers() {
  static const std::vector<peer> list = [] {
    namespace d = detail;
    std::vector<peer> found;
    found.push_back({"new_delete", std::pmr::new_delete_resource(), new_delete_meter()});
    d::mi_malloc_aligned = reinterpret_cast<void* (*)(std::size_t, std::size_t)>(
        d::symbol("libmimalloc.so.2", "mi_malloc_aligned"));
    d::mi_free = reinterpret_cast<void (*)(void*)>(d::symbol("libmimalloc.so.2", "mi_free"));
    if (d::mi_malloc_aligned != nullptr && d::mi_free != nullptr) {
      static peer_resource mimalloc{[](std::size_t n, std::size_t a) { return d::mi_malloc_aligned(n, a); },
                                    [](void* p, std::size_t, std::size_t) { d::mi_free(p); }};
      d::mi_usable_size =
          reinterpret_cast<std::size_t (*)(const void*)>(d::symbol("libmimalloc.so.2", "mi_usable_size"));
      found.push_back({"mimalloc", &mimalloc, usable_meter(d::mi_usable_size != nullptr, [](void* p) {
                         return d::mi_usable_size(p);
                       })});
    }
    d::je_mallocx = reinterpret_cast<void* (*)(std::size_t, int)>(d::symbol("libjemalloc.so.2", "mallocx"));
    d::je_sdallocx =
        reinterpret_cast<void (*)(void*, std::size_t, int)>(d::symbol("libjemalloc.so.2", "sdallocx"));
    if (d::je_mallocx != nullptr && d::je_sdallocx != nullptr) {
      static peer_resource jemalloc{
          [](std::size_t n, std::size_t a) { return d::je_mallocx(n, d::je_align_flag(a)); },
          [](void* p, std::size_t n, std::size_t a) { d::je_sdallocx(p, n, d::je_align_flag(a)); }};
      found.push_back({"jemalloc", &jemalloc, {}});
    }
    d::tc_memalign = reinterpret_cast<void* (*)(std::size_t, std::size_t)>(
        d::symbol("libtcmalloc_minimal.so.4", "tc_memalign"));
    d::tc_free = reinterpret_cast<void (*)(void*)>(d::symbol("libtcmalloc_minimal.so.4", "tc_free"));
    if (d::tc_memalign != nullptr && d::tc_free != nullptr) {
      static peer_resource tcmalloc{[](std::size_t n, std::size_t a) { return d::tc_memalign(a, n); },
                                    [](void* p, std::size_t, std::size_t) { d::tc_free(p); }};
      d::tc_malloc_size =
          reinterpret_cast<std::size_t (*)(void*)>(d::symbol("libtcmalloc_minimal.so.4", "tc_malloc_size"));
      found.push_back({"tcmalloc", &tcmalloc, usable_meter(d::tc_malloc_size != nullptr, [](void* p) {
                         return d::tc_malloc_size(p);
                       })});
    }
    d::tbb_aligned_malloc = reinterpret_cast<void* (*)(std::size_t, std::size_t)>(
        d::symbol("libtbbmalloc.so.2", "scalable_aligned_malloc"));
    d::tbb_aligned_free =
        reinterpret_cast<void (*)(void*)>(d::symbol("libtbbmalloc.so.2", "scalable_aligned_free"));
    if (d::tbb_aligned_malloc != nullptr && d::tbb_aligned_free != nullptr) {
      static peer_resource tbbmalloc{[](std::size_t n, std::size_t a) { return d::tbb_aligned_malloc(n, a); },
                                     [](void* p, std::size_t, std::size_t) { d::tbb_aligned_free(p); }};
      d::tbb_msize =
          reinterpret_cast<std::size_t (*)(void*)>(d::symbol("libtbbmalloc.so.2", "scalable_msize"));
      found.push_back({"tbbmalloc", &tbbmalloc,
                       usable_meter(d::tbb_msize != nullptr, [](void* p) { return d::tbb_msize(p); })});
    }
    return found;
  }();
  return list;
}

/// A mimalloc heap per request (mi_heap_new ... mi_heap_destroy), the peer
/// for per-request arenas; available() is false without libmimalloc.
class mi_heap_resource final : public std::pmr::memory_resource {
 public:
  static bool available() {
    static const bool loaded = [] {
      namespace d = detail;
      d::mi_heap_new = reinterpret_cast<void* (*)()>(d::symbol("libmimalloc.so.2", "mi_heap_new"));
      d::mi_heap_malloc_aligned = reinterpret_cast<void* (*)(void*, std::size_t, std::size_t)>(
          d::symbol("libmimalloc.so.2", "mi_heap_malloc_aligned"));
      d::mi_heap_destroy =
          reinterpret_cast<void (*)(void*)>(d::symbol("libmimalloc.so.2", "mi_heap_destroy"));
      return d::mi_heap_new != nullptr && d::mi_heap_malloc_aligned != nullptr &&
             d::mi_heap_destroy != nullptr;
    }();
    return loaded;
  }
  mi_heap_resource() : heap_(detail::mi_heap_new()) {}
  ~mi_heap_resource() override { detail::mi_heap_destroy(heap_); }
  /// Frees everything at once, as a per-request heap is used.
  void reset() {
    detail::mi_heap_destroy(heap_);
    heap_ = detail::mi_heap_new();
  }

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    void* p = detail::mi_heap_malloc_aligned(heap_, bytes, alignment);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void do_deallocate(void*, std::size_t, std::size_t) override {}  // freed by reset()
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }
  void* heap_;
};

/// Registers a benchmark. With STRATA_BENCH_ITERATIONS=n in the environment it
/// runs exactly n iterations, so bench/run can count instructions per
/// iteration under callgrind from two runs of different n.
template <class Function>
benchmark::internal::Benchmark* add(const std::string& name, Function&& function) {
  benchmark::internal::Benchmark* b =
      benchmark::RegisterBenchmark(name.c_str(), std::forward<Function>(function));
  if (const char* n = std::getenv("STRATA_BENCH_ITERATIONS")) b->Iterations(std::atoll(n));
  return b;
}

/// mimalloc's own entry points, for contenders called directly (no pmr, no
/// virtual call); both nullptr without libmimalloc.
struct mi_direct_functions {
  void* (*malloc)(std::size_t) = nullptr;
  void (*free)(void*) = nullptr;
  std::size_t (*usable_size)(const void*) = nullptr;
  /// The usable-size meter for blocks from malloc.
  meter memory() const;
};

/// Returns mi_malloc and mi_free, loaded once.
inline const mi_direct_functions& mi_direct() {
  static const mi_direct_functions functions = [] {
    mi_direct_functions f;
    f.malloc = reinterpret_cast<void* (*)(std::size_t)>(detail::symbol("libmimalloc.so.2", "mi_malloc"));
    f.free = reinterpret_cast<void (*)(void*)>(detail::symbol("libmimalloc.so.2", "mi_free"));
    f.usable_size =
        reinterpret_cast<std::size_t (*)(const void*)>(detail::symbol("libmimalloc.so.2", "mi_usable_size"));
    if (f.malloc == nullptr || f.free == nullptr || f.usable_size == nullptr) f = {};
    return f;
  }();
  return functions;
}

inline meter mi_direct_functions::memory() const {
  return {"usable size", {}, [](void* p) { return mi_direct().usable_size(p); }};
}

/// Hides r from the optimizer so the virtual call stays a virtual call.
template <class Resource>
std::pmr::memory_resource* opaque(Resource* r) {
  std::pmr::memory_resource* base = r;
  benchmark::DoNotOptimize(base);
  return base;
}

// ------------------------------------------------------------- validation

/// The untimed checks of one benchmark run, carried into the JSON: every
/// block checked is written over its whole size (a block that is not
/// writable faults here, outside the timed loop) and checked for the
/// requested alignment. A misaligned contender is still measured; finish()
/// records the counter `misaligned` (blocks that failed, of `checked`) and
/// the label `misaligned=<bytes>B/align<alignment>@<address mod alignment>`
/// for the first failure, which bench/report.py shows as a marker.
/// memory() records the footprint at the workload's peak (see meter).
class validation {
 public:
  /// Checks one block; returns false when it is misaligned.
  bool block(void* p, std::size_t bytes, std::size_t alignment) {
    std::memset(p, 0xa5, bytes);
    ++checked_;
    const std::size_t offset = reinterpret_cast<std::uintptr_t>(p) % alignment;
    if (offset == 0) return true;
    if (misaligned_++ == 0) {
      first_ = "misaligned=" + std::to_string(bytes) + "B/align" + std::to_string(alignment) + "@" +
               std::to_string(offset);
    }
    return false;
  }
  /// Records the footprint (bytes the contender holds for the workload) and
  /// the bytes the workload had requested at that moment, and how the
  /// footprint was measured.
  void memory(std::size_t footprint, std::size_t requested, const char* method) {
    footprint_ = footprint;
    requested_ = requested;
    method_ = method;
  }
  /// Puts the results in the benchmark's counters and label.
  void finish(benchmark::State& state) const {
    state.counters["checked"] = static_cast<double>(checked_);
    state.counters["misaligned"] = static_cast<double>(misaligned_);
    std::string label = first_;
    if (method_ != nullptr) {
      state.counters["mem_footprint"] = static_cast<double>(footprint_);
      state.counters["mem_requested"] = static_cast<double>(requested_);
      if (!label.empty()) label += ';';
      label += "memory=";
      label += method_;
    }
    if (!label.empty()) state.SetLabel(label);
  }

 private:
  std::uint64_t checked_ = 0;
  std::uint64_t misaligned_ = 0;
  std::string first_;
  std::size_t footprint_ = 0;
  std::size_t requested_ = 0;
  const char* method_ = nullptr;
};

/// Checks one block for the requested alignment, for benchmarks that keep
/// no validation object: a misaligned block is counted in the counter
/// `misaligned` and described in the label, as validation does, and the
/// benchmark still runs. Returns false when the block is misaligned.
inline bool aligned(benchmark::State& state, const void* p, std::size_t alignment) {
  const std::size_t offset = reinterpret_cast<std::uintptr_t>(p) % alignment;
  if (offset == 0) return true;
  if (state.counters["misaligned"].value++ == 0) {
    state.SetLabel("misaligned=?B/align" + std::to_string(alignment) + "@" + std::to_string(offset));
  }
  return false;
}

template <class Live>
void meter::sample(validation& v, std::size_t requested, const Live& live) const {
  if (method == nullptr) return;
  std::size_t bytes = 0;
  if (usable != nullptr) {
    for (const auto* p : live) bytes += usable(const_cast<void*>(static_cast<const void*>(p))) + header;
  } else {
    bytes = read();
  }
  v.memory(bytes, requested, method);
}

}  // namespace strata::bench
