// SPDX-License-Identifier: MIT
#pragma once

// The memory resources strata-demo compares. Each one serves a request
// through serve(): it gives the request's work a resource and cleans up the
// way that resource is meant to be used in a server (a reset, a fresh
// resource per request, or nothing: the request's destructors free).
// A backend lives in the child process that measures it (system_figures.hpp).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <dlfcn.h>

#include <strata/format.hpp>
#include <strata/strata.hpp>

namespace strata::demo {

/// One request's work: a document in, a checksum of the response out.
using work_fn = std::uint64_t (*)(std::string_view, std::pmr::memory_resource*);

/// Thread safety: attach, serve and detach for worker t run only on worker
/// t's thread; backends whose resource is shared (arena, sync_pool) rely on
/// that resource being thread-safe. The rest is called on one thread.
class backend {
 public:
  backend() = default;
  backend(const backend&) = delete;  // backends hold resources, which have identity
  backend& operator=(const backend&) = delete;
  virtual ~backend() = default;

  /// Prepares worker t; called on that worker's thread before its first request.
  virtual void attach(std::size_t /*t*/) {}
  /// Serves one request on worker t's thread and returns its checksum.
  virtual std::uint64_t serve(std::size_t t, work_fn work, std::string_view document) = 0;
  /// Undoes attach(t) on worker t's thread after its last request.
  virtual void detach(std::size_t /*t*/) {}
  /// The strata chain, as a table and as JSON (empty for other backends).
  [[nodiscard]] virtual std::string chain_text() const { return {}; }
  [[nodiscard]] virtual std::string chain_json() const { return {}; }
};

struct backend_info {
  const char* key;    // the --backends name
  const char* name;   // the table's row label
  const char* about;  // one line under the table
};

inline constexpr backend_info backend_infos[] = {
    {"strata", "strata chain (arena/thread)",
     "monotonic_arena per thread, reset after each request, on one shared chunk_provider on system_pages()"},
    {"arena", "strata::arena (shared)",
     "one strata::arena (64 MiB region from system_pages()) shared by the threads"},
    {"new_delete", "new_delete (glibc malloc)", "std::pmr::new_delete_resource(): glibc's malloc and free"},
    {"std_mono", "std monotonic (per request)",
     "a std::pmr::monotonic_buffer_resource per request, no initial buffer, on new_delete"},
    {"sync_pool", "std sync_pool (shared)",
     "one std::pmr::synchronized_pool_resource shared by the threads, on new_delete"},
    {"mimalloc", "mimalloc (mi_heap/thread)",
     "a mi_heap per thread (mi_heap_malloc_aligned, mi_free); libmimalloc.so.2 is dlopen'ed, so glibc's "
     "malloc stays"},
};

inline const backend_info& info_of(std::string_view key) {
  for (const backend_info& b : backend_infos)
    if (key == b.key) return b;
  throw std::logic_error("no such backend");
}

// ------------------------------------------------------------- strata

class strata_chain final : public backend {
 public:
  explicit strata_chain(std::size_t threads) : arenas_(threads) {}
  void attach(std::size_t t) override { arenas_[t] = std::make_unique<strata::monotonic_arena>(&chunks_); }
  std::uint64_t serve(std::size_t t, work_fn work, std::string_view document) override {
    const std::uint64_t sum = work(document, arenas_[t].get());
    arenas_[t]->reset();  // keeps what recent requests needed: no upstream call next time
    return sum;
  }
  // The arenas stay until the backend goes, so the chain can be printed.
  [[nodiscard]] std::string chain_text() const override {
    return strata::format_chain(arenas_.front().get());
  }
  [[nodiscard]] std::string chain_json() const override {
    return strata::format_chain_json(arenas_.front().get());
  }

 private:
  strata::chunk_provider chunks_{{.max_chunk_size = std::size_t{4} << 20}, strata::system_pages()};
  std::vector<std::unique_ptr<strata::monotonic_arena>> arenas_;  // one per worker
};

class shared_arena final : public backend {
 public:
  std::uint64_t serve(std::size_t, work_fn work, std::string_view document) override {
    return work(document, &heap_);
  }
  [[nodiscard]] std::string chain_text() const override { return strata::format_chain(&heap_); }
  [[nodiscard]] std::string chain_json() const override { return strata::format_chain_json(&heap_); }

 private:
  strata::arena heap_{{.capacity = std::size_t{64} << 20}, strata::system_pages()};
};

// ---------------------------------------------------------------- std

class new_delete final : public backend {
 public:
  std::uint64_t serve(std::size_t, work_fn work, std::string_view document) override {
    return work(document, std::pmr::new_delete_resource());
  }
};

class std_monotonic final : public backend {
 public:
  std::uint64_t serve(std::size_t, work_fn work, std::string_view document) override {
    std::pmr::monotonic_buffer_resource mono{std::pmr::new_delete_resource()};
    return work(document, &mono);
  }
};

class sync_pool final : public backend {
 public:
  std::uint64_t serve(std::size_t, work_fn work, std::string_view document) override {
    return work(document, &pool_);
  }

 private:
  std::pmr::synchronized_pool_resource pool_{std::pmr::new_delete_resource()};
};

// ------------------------------------------------------------ mimalloc

/// mimalloc's heap API, from libmimalloc.so.2 opened with RTLD_LOCAL: linking
/// it (Debian's build exports malloc and free) would replace glibc's malloc
/// for the whole process, and new_delete would measure mimalloc.
struct mimalloc_api {
  void* (*heap_new)() = nullptr;
  void* (*heap_malloc_aligned)(void*, std::size_t, std::size_t) = nullptr;
  void (*free)(void*) = nullptr;
  void (*heap_delete)(void*) = nullptr;

  /// Returns the API, or an empty one if the library is not installed.
  static mimalloc_api load() {
    mimalloc_api api;
    void* lib = ::dlopen("libmimalloc.so.2", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return api;
    api.heap_new = reinterpret_cast<void* (*)()>(::dlsym(lib, "mi_heap_new"));
    api.heap_malloc_aligned =
        reinterpret_cast<void* (*)(void*, std::size_t, std::size_t)>(::dlsym(lib, "mi_heap_malloc_aligned"));
    api.free = reinterpret_cast<void (*)(void*)>(::dlsym(lib, "mi_free"));
    api.heap_delete = reinterpret_cast<void (*)(void*)>(::dlsym(lib, "mi_heap_delete"));
    if (!api) api = {};
    return api;
  }
  explicit operator bool() const noexcept {
    return heap_new != nullptr && heap_malloc_aligned != nullptr && free != nullptr && heap_delete != nullptr;
  }
};

/// A pmr adapter for one mi_heap; a heap allocates only on the thread that
/// made it (any thread may free).
class mi_heap_resource final : public std::pmr::memory_resource {
 public:
  explicit mi_heap_resource(const mimalloc_api& api) : api_(api), heap_(api.heap_new()) {
    if (heap_ == nullptr) throw std::bad_alloc();
  }
  ~mi_heap_resource() override { api_.heap_delete(heap_); }
  mi_heap_resource(const mi_heap_resource&) = delete;
  mi_heap_resource& operator=(const mi_heap_resource&) = delete;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    void* p = api_.heap_malloc_aligned(heap_, bytes, alignment);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void do_deallocate(void* p, std::size_t, std::size_t) override { api_.free(p); }
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }

  const mimalloc_api& api_;  // (held, not owned)
  void* heap_;
};

class mimalloc_heaps final : public backend {
 public:
  mimalloc_heaps(const mimalloc_api& api, std::size_t threads) : api_(api), heaps_(threads) {}
  void attach(std::size_t t) override { heaps_[t] = std::make_unique<mi_heap_resource>(api_); }
  std::uint64_t serve(std::size_t t, work_fn work, std::string_view document) override {
    return work(document, heaps_[t].get());
  }
  void detach(std::size_t t) override { heaps_[t].reset(); }

 private:
  const mimalloc_api& api_;  // (held, not owned)
  std::vector<std::unique_ptr<mi_heap_resource>> heaps_;
};

/// Creates the backend named key for threads workers; nullptr for mimalloc
/// when it is not installed.
inline std::unique_ptr<backend> make_backend(std::string_view key, std::size_t threads) {
  if (key == "strata") return std::make_unique<strata_chain>(threads);
  if (key == "arena") return std::make_unique<shared_arena>();
  if (key == "new_delete") return std::make_unique<new_delete>();
  if (key == "std_mono") return std::make_unique<std_monotonic>();
  if (key == "sync_pool") return std::make_unique<sync_pool>();
  static const mimalloc_api api = mimalloc_api::load();
  if (!api) return nullptr;
  return std::make_unique<mimalloc_heaps>(api, threads);
}

}  // namespace strata::demo
