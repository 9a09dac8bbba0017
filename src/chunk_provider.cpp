// SPDX-License-Identifier: MIT
// chunk_provider: slow paths, thread-cache lifetime, eviction, decay and statistics.
//
// Where a chunk can be, and who may touch it:
//
//   handed out      -- the caller's; listed in its class's pool (held) or in oversized_
//   thread bin      -- one thread's chunk_thread_cache; only that thread pushes and pops
//   shared pool     -- pools_[class], under that pool's mutex, linked through the first word
//   upstream        -- gone from the lists, its bytes released from the budget
//
// Every normal chunk held from upstream is listed in its class's pool (held,
// with a pooled flag), under that pool's mutex, so the cached path never takes
// a provider-wide lock. Lock order: registry mutex -> one pool mutex;
// oversized_mutex_ is never held with another. No lock is held while calling
// the upstream or the budget callback.

#include "strata/chunk_provider.hpp"

#include <algorithm>
#include <cmath>
#include <memory>

#include "strata/detail/assert.hpp"
#include "strata/detail/free_list.hpp"
#include "strata/detail/thread_cache.hpp"
#include "thread_cache_registry.hpp"

namespace strata {

namespace {

constexpr std::string_view resource_name = "chunk_provider";

// Oversized blocks are asked of the upstream in whole pages: that is what a
// page source maps, so the budget and bytes_reserved count what is mapped.
constexpr std::size_t oversized_granule = 4096;

std::size_t class_size(unsigned cls) noexcept {
  return std::size_t{1} << cls;
}

}  // namespace

// Lets the thread-exit hook reach the provider's private members.
struct chunk_provider_access {
  static detail::thread_cache_set<detail::chunk_thread_cache>& caches(chunk_provider& provider) noexcept {
    return provider.caches_;
  }
  // Requires the registry mutex. Calls no upstream (which could be another
  // provider needing that mutex): the thread's chunks move to the shared
  // pools; its per-class counts are kept here (the set folds the rest).
  static void drain(chunk_provider& provider, detail::chunk_thread_cache& cache) noexcept {
    provider.flush_thread_cache(cache, false);
    for (unsigned cls = 0; cls < detail::chunk_class_count; ++cls) {
      provider.retired_classes_[cls].handed += cache.handed[cls].load(std::memory_order_relaxed);
      provider.retired_classes_[cls].returned += cache.returned(cls);
    }
  }
};

// One registry of live providers and their threads' caches (the lifetime
// scheme of detail/thread_cache.hpp).
namespace {
using provider_registry =
    detail::thread_cache_registry<chunk_provider, detail::chunk_thread_cache, chunk_provider_access>;
provider_registry& registry() {
  return provider_registry::instance();
}
}  // namespace

// ------------------------------------------------------------ construction

chunk_provider::chunk_provider(options opts, std::pmr::memory_resource* upstream)
    : resource(resource_name, upstream),
      id_(provider_registry::new_id()),
      min_chunk_mask_(opts.min_chunk_size - 1),
      options_(std::move(opts)),
      decay_(options_.decay_period) {
  detail::check_upstream(resource_name, upstream);
  const auto bad = [](std::string_view field, std::string_view problem) {
    detail::throw_bad_option(resource_name, field, problem);
  };
  if (!detail::is_power_of_two(options_.min_chunk_size) || options_.min_chunk_size < 64) {
    bad("min_chunk_size", "must be a power of two of at least 64");
  }
  if (!detail::is_power_of_two(options_.max_chunk_size) ||
      options_.max_chunk_size < options_.min_chunk_size ||
      std::bit_width(options_.max_chunk_size) > detail::chunk_max_class + 1) {
    bad("max_chunk_size", "must be a power of two from min_chunk_size to 2^47");
  }
  // A budget below one chunk fails every allocation; it is almost always an
  // overflowed int expression (`4 << 30` is 0), so it is refused by name.
  if (options_.byte_budget < options_.min_chunk_size) {
    bad("byte_budget",
        "is below min_chunk_size, so every allocation would fail (an int overflow such as "
        "4 << 30? write 4_GiB from <strata/literals.hpp>)");
  }
  if (!(options_.budget_warning_fraction > 0.0 && options_.budget_warning_fraction <= 1.0)) {
    bad("budget_warning_fraction", "must be in (0, 1]");
  }
  if (options_.decay_period.count() < 0) bad("decay_period", "must not be negative");
  if (options_.hardened) codec_ = detail::link_codec{detail::make_link_secret(this)};
  min_class_ = static_cast<unsigned>(std::countr_zero(options_.min_chunk_size));
  max_class_ = static_cast<unsigned>(std::countr_zero(options_.max_chunk_size));
  // Thread caches are off when the cached bytes are bounded, so the bound is
  // exact, and when hardened, so every free chunk is in a shared pool where a
  // second free of it is seen (a zero capacity sends every deallocate slow).
  thread_caches_ = options_.max_cached_bytes == unlimited && !options_.hardened &&
                   (options_.thread_cache_bytes >> min_class_) != 0;
  // The fast paths do not poison (issue 15): under ASan or valgrind every
  // call takes the slow path, which does, and still uses the thread bins.
  fast_paths_ = !detail::memory_tool_present();
  floor_.store(min_class_, std::memory_order_relaxed);
  // Computed in double and clamped: budget * fraction may round above SIZE_MAX.
  const double threshold =
      std::ceil(static_cast<double>(options_.byte_budget) * options_.budget_warning_fraction);
  warning_threshold_ =
      options_.byte_budget == unlimited || threshold >= static_cast<double>(options_.byte_budget)
          ? options_.byte_budget
          : static_cast<std::size_t>(threshold);
  registry().enroll(id_, *this);
}

chunk_provider::~chunk_provider() {
  registry().withdraw(id_, caches_);  // first: no exiting thread reaches us after this
  release();
}

// ------------------------------------------------------------ thread caches

unsigned chunk_provider::intended_ceiling() const noexcept {
  return options_.ratchet_floor ? floor_.load(std::memory_order_relaxed) : max_class_;
}

std::uint32_t chunk_provider::intended_capacity(unsigned cls) const noexcept {
  if (!thread_caches_ || cls < min_class_ || cls > max_class_) return 0;
  return static_cast<std::uint32_t>(
      std::min<std::size_t>(detail::chunk_bin_capacity, options_.thread_cache_bytes >> cls));
}

void chunk_provider::arm(detail::chunk_thread_cache& cache) noexcept {
  for (unsigned cls = min_class_; cls <= max_class_; ++cls) {
    cache.bins[cls].capacity.store(armed_capacity(cls), std::memory_order_relaxed);
  }
  cache.fast_ceiling.store(armed_ceiling(), std::memory_order_relaxed);
}

void chunk_provider::disarm(detail::chunk_thread_cache& cache) noexcept {
  // The requests are stored before the zeros, and the zeros with release: an
  // owner that sees a zero (with acquire, in answer_requests) sees the request.
  cache.fast_ceiling.store(0, std::memory_order_release);
  for (detail::chunk_bin& bin : cache.bins) bin.capacity.store(0, std::memory_order_release);
}

void chunk_provider::answer_requests(detail::chunk_thread_cache& cache, unsigned cls) noexcept {
  const bool disarmed = cache.fast_ceiling.load(std::memory_order_acquire) != armed_ceiling() ||
                        (cls < detail::chunk_class_count &&
                         cache.bins[cls].capacity.load(std::memory_order_acquire) != armed_capacity(cls));
  if (cache.trim_requested.load(std::memory_order_relaxed)) {
    cache.trim_requested.store(false, std::memory_order_relaxed);
    static_cast<void>(cache.take_flush_request());  // answered too: the bins go upstream
    evicted_by_trim_.fetch_add(flush_thread_cache(cache, true), std::memory_order_relaxed);
  } else if (cache.take_flush_request()) {
    flush_thread_cache(cache, false);  // decay: into the shared pools, where idle chunks decay
  }
  if (disarmed) arm(cache);
}

detail::chunk_thread_cache* chunk_provider::attach(unsigned cls) noexcept {
  detail::chunk_thread_cache* cache = nullptr;
  try {
    cache = registry().attach(id_, caches_, true);
  } catch (const std::bad_alloc&) {
    return nullptr;  // no cache: this thread takes the cache-less path
  }
  if (cache != nullptr) answer_requests(*cache, cls);
  return cache;
}

std::size_t chunk_provider::flush_thread_cache(detail::chunk_thread_cache& cache, bool to_upstream) noexcept {
  std::size_t moved = 0;
  for (unsigned cls = min_class_; cls <= max_class_; ++cls) {
    detail::chunk_bin& bin = cache.bins[cls];
    for (std::uint32_t n = bin.count.load(std::memory_order_relaxed); n != 0; --n) {
      void* chunk = bin.chunks[n - 1];
      bin.count.store(n - 1, std::memory_order_relaxed);
      cache.note_unbinned(cls, 1);
      if (to_upstream) {
        give_back(chunk, cls);
      } else {
        push_shared(chunk, cls, true);
      }
      ++moved;
    }
  }
  return moved;
}

// -------------------------------------------------------------- allocation

void* chunk_provider::allocate_slow(std::size_t bytes, std::size_t alignment) {
  detail::check_alignment(resource_name, alignment);
  decay_if_due();
  const unsigned cls = class_of(bytes, alignment);
  const bool oversized = cls > max_class_;
  // Oversized blocks are counted on the thread's cache too, so one running
  // figure per thread (and its peak) covers every byte the callers hold.
  detail::chunk_thread_cache* cache = attach(oversized ? detail::chunk_class_count : cls);
  void* chunk = nullptr;
  bool from_bin = false;
  if (oversized) {
    if (bytes > SIZE_MAX - (oversized_granule - 1)) {
      failed_.fetch_add(1, std::memory_order_relaxed);
      detail::throw_allocation_failure(resource_name, bytes, alignment, failure_reason::size_overflow);
    }
    const std::size_t mapped = (bytes + oversized_granule - 1) & ~(oversized_granule - 1);
    chunk = take_from_upstream(mapped, alignment, cls, bytes, alignment, true);
  } else {
    const std::uint32_t count = cache != nullptr ? cache->bins[cls].count.load(std::memory_order_relaxed) : 0;
    if (count != 0) {
      chunk = cache->bins[cls].chunks[count - 1];
      cache->bins[cls].count.store(count - 1, std::memory_order_relaxed);
      from_bin = true;
    } else if ((chunk = pop_shared(cls)) == nullptr) {
      chunk = take_from_upstream(class_size(cls), class_size(cls), cls, bytes, alignment, true);
      pools_[cls].misses.fetch_add(1, std::memory_order_relaxed);
    }
    // Raised after the request is served: a failed request leaves the hint alone.
    if (options_.ratchet_floor && cls > floor_.load(std::memory_order_relaxed)) {
      raise_floor(cls);
      if (cache != nullptr) arm(*cache);
    }
    detail::unpoison_memory(chunk, class_size(cls));
    STRATA_ASSERT(detail::is_aligned(chunk, class_size(cls)), "chunk not aligned to its size");
  }
  if (cache != nullptr) {
    note_handed(*cache, cls, bytes);
    if (!from_bin) cache->note_unbinned(cls, ~std::uint64_t{0});  // -1: handed from outside the bin
  } else {
    // A thread without a cache (exiting, or out of memory for one): count centrally.
    std::lock_guard lock(registry().mutex());
    ++retired_classes_[cls].handed;
    caches_.count_cacheless_allocation(bytes);
    caches_.raise_peak(static_cast<std::size_t>(caches_.totals().bytes_in_use));
  }
  STRATA_ASSERT_EXPENSIVE(invariants_hold(), "chunk_provider books drifted");
  return chunk;
}

void* chunk_provider::take_from_upstream(std::size_t size, std::size_t alignment, unsigned cls,
                                         std::size_t bytes, std::size_t request_alignment, bool may_evict) {
  if (!reserve_budget(size)) {
    const std::size_t budget = options_.byte_budget;
    if (may_evict && size <= budget) {
      // Make room by returning cached chunks before failing, only as many as the request needs.
      const std::size_t held = bytes_reserved_.load(std::memory_order_relaxed);
      if (held > budget - size) evict(held - (budget - size), evicted_by_budget_);
    }
    if (!reserve_budget(size)) {
      failed_.fetch_add(1, std::memory_order_relaxed);
      // Without a budget, only a size that cannot be added to what is held fails here.
      detail::throw_allocation_failure(
          resource_name, bytes, request_alignment,
          budget == unlimited ? failure_reason::size_overflow : failure_reason::budget);
    }
  }
  void* block = nullptr;
  try {
    block = detail::allocate_from_upstream(upstream_resource(), resource_name, size, alignment);
    if (cls > max_class_) {
      std::lock_guard lock(oversized_mutex_);
      const auto at = std::lower_bound(oversized_.begin(), oversized_.end(), block,
                                       [](const oversized_block& b, const void* q) { return b.block < q; });
      oversized_.insert(at, {block, size, bytes, alignment});
      oversized_bytes_in_use_ += bytes;
    } else {
      shared_pool& pool = pools_[cls];
      std::lock_guard lock(pool.mutex);
      pool.held.insert(held_position(pool.held, block), {block, false});
    }
  } catch (...) {
    if (block != nullptr) upstream_resource()->deallocate(block, size, alignment);  // lose nothing
    release_budget(size);
    failed_.fetch_add(1, std::memory_order_relaxed);
    throw;
  }
  upstream_allocations_.fetch_add(1, std::memory_order_relaxed);
  warn_if_crossed();  // after success: a failed request must not report usage it never had
  return block;
}

std::vector<chunk_provider::held_chunk>::iterator chunk_provider::held_position(std::vector<held_chunk>& held,
                                                                                const void* p) noexcept {
  return std::lower_bound(held.begin(), held.end(), p,
                          [](const held_chunk& entry, const void* q) { return entry.chunk < q; });
}

// ------------------------------------------------------------ deallocation

void chunk_provider::deallocate_slow(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  if (!detail::is_power_of_two(alignment)) {
    reject(misuse_kind::alignment_mismatch, p, bytes, alignment);
    return;
  }
  decay_if_due();
  const unsigned cls = class_of(bytes, alignment);
  if (cls > max_class_) {
    // Only the slow path can afford to prove the pointer is ours.
    oversized_block block{};
    std::optional<misuse_kind> wrong;
    {
      std::lock_guard lock(oversized_mutex_);
      const auto at = std::lower_bound(oversized_.begin(), oversized_.end(), p,
                                       [](const oversized_block& b, const void* q) { return b.block < q; });
      if (at == oversized_.end() || at->block != p) {
        wrong = misuse_kind::unknown_pointer;  // classified below, without this lock
      } else if (at->bytes != bytes) {
        wrong = misuse_kind::size_mismatch;
      } else if (at->alignment != alignment) {
        wrong = misuse_kind::alignment_mismatch;
      } else {
        block = *at;
        oversized_.erase(at);
        oversized_bytes_in_use_ -= bytes;
      }
    }
    if (wrong) {
      reject(*wrong == misuse_kind::unknown_pointer ? classify_foreign(p) : *wrong, p, bytes, alignment);
      return;
    }
    note_returned(attach(detail::chunk_class_count), cls, bytes);
    upstream_resource()->deallocate(p, block.mapped, alignment);
    upstream_deallocations_.fetch_add(1, std::memory_order_relaxed);
    release_budget(block.mapped);
    return;
  }

  // A thread that only frees (a consumer) gets a cache too, so its frees stay
  // off the registry mutex; without one (exiting, out of memory) it counts centrally.
  detail::chunk_thread_cache* cache = attach(cls);
  const std::uint32_t capacity = cache != nullptr ? intended_capacity(cls) : 0;
  // Checked, and placed, under the class's own mutex only: nothing on this
  // path takes a provider-wide lock.
  enum class where { rejected, double_free, bin, pool, upstream } to = where::pool;
  {
    shared_pool& pool = pools_[cls];
    std::lock_guard lock(pool.mutex);
    const auto at = held_position(pool.held, p);
    if (at == pool.held.end() || at->chunk != p) {
      to = where::rejected;  // classified below, without this lock
    } else if (at->pooled) {
      // Chunks in a shared pool are known to be free; those in a thread bin
      // are not marked (the fast path takes no lock), so this sees only some.
      to = where::double_free;
    } else if (cache != nullptr && cache->bins[cls].count.load(std::memory_order_relaxed) < capacity) {
      to = where::bin;
    } else if (reserve_cached(cls)) {
      push_locked(p, cls);
    } else {
      to = where::upstream;  // max_cached_bytes reached
      pool.held.erase(at);
    }
  }
  if (to == where::rejected || to == where::double_free) {
    reject(to == where::double_free ? misuse_kind::double_free : classify_foreign(p), p, bytes, alignment);
    return;
  }
  note_returned(cache, cls, bytes, to == where::bin);
  if (to == where::bin) {
    detail::chunk_bin& bin = cache->bins[cls];
    const std::uint32_t count = bin.count.load(std::memory_order_relaxed);
    detail::poison_memory(p, class_size(cls));
    bin.chunks[count] = p;
    bin.count.store(count + 1, std::memory_order_relaxed);
  } else if (to == where::upstream) {
    returned_over_limit_.fetch_add(1, std::memory_order_relaxed);
    return_upstream(p, cls);
  }
  STRATA_ASSERT_EXPENSIVE(invariants_hold(), "chunk_provider books drifted");
}

misuse_kind chunk_provider::classify_foreign(const void* p) const noexcept {
  // A chunk we hold, freed with another class's size (or as oversized), is a
  // size mismatch; anything else is unknown. Rejected paths only: one lock at a time.
  for (unsigned c = min_class_; c <= max_class_; ++c) {
    const shared_pool& pool = pools_[c];
    std::lock_guard lock(pool.mutex);
    if (std::binary_search(pool.held.begin(), pool.held.end(), held_chunk{const_cast<void*>(p), false},
                           [](const held_chunk& a, const held_chunk& b) { return a.chunk < b.chunk; })) {
      return misuse_kind::size_mismatch;
    }
  }
  std::lock_guard lock(oversized_mutex_);
  for (const oversized_block& b : oversized_) {
    if (b.block == p) return misuse_kind::size_mismatch;
  }
  return misuse_kind::unknown_pointer;
}

void chunk_provider::note_returned(detail::chunk_thread_cache* cache, unsigned cls, std::size_t bytes,
                                   bool binned) noexcept {
  if (cache != nullptr) {
    // Into the bin, the bin's count records it; elsewhere, unbinned does.
    if (!binned) cache->note_unbinned(cls, 1);
    cache->note_deallocated(bytes);
    return;
  }
  // A thread without a cache: count on the provider.
  std::lock_guard lock(registry().mutex());
  ++retired_classes_[cls].returned;
  caches_.count_cacheless_deallocation(bytes);
}

void chunk_provider::reject(misuse_kind kind, void* p, std::size_t bytes, std::size_t alignment) noexcept {
  rejected_.fetch_add(1, std::memory_order_relaxed);
  report_misuse({resource_name, kind, p, bytes, alignment});
}

// ------------------------------------------------------- caches and budget

bool chunk_provider::reserve_cached(unsigned cls, bool ignore_limit) noexcept {
  const std::size_t size = class_size(cls);
  if (options_.max_cached_bytes != unlimited && !ignore_limit) {
    std::size_t cached = shared_cached_bytes_.load(std::memory_order_relaxed);
    do {
      if (cached > options_.max_cached_bytes || options_.max_cached_bytes - cached < size) return false;
    } while (!shared_cached_bytes_.compare_exchange_weak(cached, cached + size, std::memory_order_relaxed));
  } else {
    shared_cached_bytes_.fetch_add(size, std::memory_order_relaxed);
  }
  return true;
}

bool chunk_provider::push_shared(void* chunk, unsigned cls, bool ignore_limit) noexcept {
  if (!reserve_cached(cls, ignore_limit)) return false;
  std::lock_guard lock(pools_[cls].mutex);
  push_locked(chunk, cls);
  return true;
}

void chunk_provider::push_locked(void* chunk, unsigned cls) noexcept {
  shared_pool& pool = pools_[cls];
  const std::size_t size = class_size(cls);
  const auto at = held_position(pool.held, chunk);
  STRATA_ASSERT(at != pool.held.end() && at->chunk == chunk && !at->pooled,
                "pooling a chunk that is not held");
  if (at != pool.held.end() && at->chunk == chunk) at->pooled = true;
  detail::poison_memory(chunk, size);  // whole: store_pool_link opens the link word for its store
  store_pool_link(chunk, pool.head);
  pool.head = chunk;
  ++pool.count;
}

void* chunk_provider::pop_shared(unsigned cls) noexcept {
  shared_pool& pool = pools_[cls];
  std::lock_guard lock(pool.mutex);
  void* chunk = pool.head;
  if (chunk == nullptr) return nullptr;
  void* next = load_pool_link(chunk);
  --pool.count;
  pool.low_water = std::min(pool.low_water, pool.count);
  const auto at = held_position(pool.held, chunk);
  if (at != pool.held.end() && at->chunk == chunk) at->pooled = false;
  shared_cached_bytes_.fetch_sub(class_size(cls), std::memory_order_relaxed);
  if (options_.hardened && !pool_link_valid(next, cls, pool.count == 0)) {
    // Cut the pool after chunk (validated when it became the head). The
    // chunks behind the bad link stay held (listed, marked pooled) and go
    // back upstream at release() or destruction, never handed out wild.
    reject(misuse_kind::unknown_pointer, next, class_size(cls), class_size(cls));
    shared_cached_bytes_.fetch_sub(pool.count * class_size(cls), std::memory_order_relaxed);
    pool.count = 0;
    pool.low_water = 0;
    next = nullptr;
  }
  pool.head = next;
  return chunk;
}

// A pooled chunk is poisoned whole, its link word included, so that a
// use-after-free write to its first word is reported too: the link is opened
// only for the access.
void chunk_provider::store_pool_link(void* chunk, void* next) const noexcept {
  detail::unpoison_memory(chunk, sizeof(void*));
  *static_cast<std::uintptr_t*>(chunk) =
      options_.hardened ? codec_.encode(chunk, next) : reinterpret_cast<std::uintptr_t>(next);
  detail::poison_memory(chunk, sizeof(void*));
}

void* chunk_provider::load_pool_link(const void* chunk) const noexcept {
  detail::unpoison_memory(chunk, sizeof(void*));
  const std::uintptr_t word = *static_cast<const std::uintptr_t*>(chunk);
  detail::poison_memory(chunk, sizeof(void*));
  return options_.hardened ? codec_.decode(chunk, word) : reinterpret_cast<void*>(word);
}

bool chunk_provider::pool_link_valid(const void* next, unsigned cls, bool should_end) noexcept {
  if (next == nullptr || should_end) return next == nullptr && should_end;
  if (!detail::is_aligned(next, class_size(cls))) return false;
  std::vector<held_chunk>& held = pools_[cls].held;
  const auto at = held_position(held, next);
  return at != held.end() && at->chunk == next && at->pooled;
}

void chunk_provider::raise_floor(unsigned cls) noexcept {
  unsigned floor = floor_.load(std::memory_order_relaxed);
  while (cls > floor && !floor_.compare_exchange_weak(floor, cls, std::memory_order_relaxed)) {
  }
}

std::size_t chunk_provider::evict(std::size_t target_bytes, std::atomic<std::uint64_t>& reason) noexcept {
  std::size_t freed = 0;
  std::uint64_t chunks = 0;
  // The calling thread's own cache, even when its most recently used
  // provider is another one (issue 18: a stacked or alternating provider).
  detail::chunk_thread_cache* cache = registry().find(id_);
  // Largest classes first: the fewest upstream calls for the bytes.
  for (unsigned cls = max_class_ + 1; cls-- > min_class_ && freed < target_bytes;) {
    if (cache != nullptr) {
      detail::chunk_bin& bin = cache->bins[cls];
      for (std::uint32_t n = bin.count.load(std::memory_order_relaxed); n != 0 && freed < target_bytes; --n) {
        void* chunk = bin.chunks[n - 1];
        bin.count.store(n - 1, std::memory_order_relaxed);
        cache->note_unbinned(cls, 1);
        give_back(chunk, cls);
        freed += class_size(cls);
        ++chunks;
      }
    }
    while (freed < target_bytes) {
      void* chunk = pop_shared(cls);
      if (chunk == nullptr) break;
      give_back(chunk, cls);
      freed += class_size(cls);
      ++chunks;
    }
  }
  reason.fetch_add(chunks, std::memory_order_relaxed);
  return freed;
}

void chunk_provider::give_back(void* chunk, unsigned cls) noexcept {
  {
    shared_pool& pool = pools_[cls];
    std::lock_guard lock(pool.mutex);
    const auto at = held_position(pool.held, chunk);
    STRATA_ASSERT(at != pool.held.end() && at->chunk == chunk, "giving back a chunk that is not held");
    if (at == pool.held.end() || at->chunk != chunk) return;  // never return a block twice
    pool.held.erase(at);
  }
  return_upstream(chunk, cls);
}

void chunk_provider::return_upstream(void* chunk, unsigned cls) noexcept {
  detail::unpoison_memory(chunk, class_size(cls));
  upstream_resource()->deallocate(chunk, class_size(cls), class_size(cls));
  upstream_deallocations_.fetch_add(1, std::memory_order_relaxed);
  release_budget(class_size(cls));
}

void chunk_provider::decay_if_due() noexcept {
  if (!decay_.due()) return;
  // Per class, the chunks the shared pool kept through the whole period (its
  // lowest count) were not needed: they go back upstream, a few at a time so
  // that no lock is held while calling the upstream.
  std::uint64_t returned = 0;
  for (unsigned cls = min_class_; cls <= max_class_; ++cls) {
    shared_pool& pool = pools_[cls];
    std::size_t idle = 0;
    {
      std::lock_guard lock(pool.mutex);
      idle = std::min(pool.low_water, pool.count);
    }
    for (; idle != 0; --idle) {
      void* chunk = nullptr;
      {
        std::lock_guard lock(pool.mutex);
        if (pool.count == 0) break;
        chunk = pool.head;
        pool.head = load_pool_link(chunk);
        --pool.count;
        const auto at = held_position(pool.held, chunk);
        if (at != pool.held.end() && at->chunk == chunk) at->pooled = false;
      }
      shared_cached_bytes_.fetch_sub(class_size(cls), std::memory_order_relaxed);
      give_back(chunk, cls);
      ++returned;
    }
    std::lock_guard lock(pool.mutex);
    pool.low_water = pool.count;  // the next period starts from what is cached now
  }
  evicted_by_decay_.fetch_add(returned, std::memory_order_relaxed);
  std::lock_guard lock(registry().mutex());
  // The floor hint follows recent demand: the largest class handed out during
  // the last period (unchanged if none was). A cache whose ceiling is now
  // above the floor serves those classes without raising it until its next
  // slow path re-arms it; the next check sees that demand and raises it back.
  unsigned demanded = 0;
  for (unsigned cls = min_class_; cls <= max_class_; ++cls) {
    std::uint64_t handed = retired_classes_[cls].handed;
    for (const detail::chunk_thread_cache* cache : caches_.caches()) {
      handed += cache->handed[cls].load(std::memory_order_relaxed);
    }
    if (handed != handed_at_decay_[cls]) demanded = cls;
    handed_at_decay_[cls] = handed;
  }
  if (options_.ratchet_floor && demanded != 0) floor_.store(demanded, std::memory_order_relaxed);
  // Thread bins: every thread with chunks in its bins moves them to the shared
  // pools at its next call; those it does not take back decay a period later.
  for (detail::chunk_thread_cache* cache : caches_.caches()) {
    bool holds = false;
    for (unsigned cls = min_class_; cls <= max_class_ && !holds; ++cls) {
      holds = cache->bins[cls].count.load(std::memory_order_relaxed) != 0;
    }
    if (!holds) continue;
    cache->flush_requested.store(true, std::memory_order_relaxed);
    disarm(*cache);
  }
}

bool chunk_provider::reserve_budget(std::size_t bytes) noexcept {
  std::size_t held = bytes_reserved_.load(std::memory_order_relaxed);
  do {
    if (held > options_.byte_budget || options_.byte_budget - held < bytes) return false;
  } while (!bytes_reserved_.compare_exchange_weak(held, held + bytes, std::memory_order_relaxed));
  return true;
}

void chunk_provider::warn_if_crossed() noexcept {
  const std::size_t held = bytes_reserved_.load(std::memory_order_relaxed);
  if (held < warning_threshold_ || !options_.on_budget_warning ||
      !warning_armed_.exchange(false, std::memory_order_relaxed)) {
    return;
  }
  try {
    options_.on_budget_warning({held, warning_threshold_, options_.byte_budget});
  } catch (...) {
    // A warning must not turn a successful allocation into a failure.
  }
}

void chunk_provider::release_budget(std::size_t bytes) noexcept {
  const std::size_t held = bytes_reserved_.fetch_sub(bytes, std::memory_order_relaxed) - bytes;
  if (held < warning_threshold_) warning_armed_.store(true, std::memory_order_relaxed);
}

// ---------------------------------------------------------- housekeeping

std::size_t chunk_provider::reserve(std::size_t chunk_size, std::size_t count) {
  if (chunk_size > options_.max_chunk_size) {
    detail::throw_bad_option(resource_name, "reserve chunk_size", "is above max_chunk_size");
  }
  const unsigned cls = class_of(chunk_size, 1);
  if (options_.ratchet_floor) raise_floor(cls);
  for (std::size_t i = 0; i < count; ++i) {
    // No eviction: making room would return the chunks this call just cached
    // (issue 18). Past the budget this throws, with what fitted cached.
    void* chunk =
        take_from_upstream(class_size(cls), class_size(cls), cls, class_size(cls), class_size(cls), false);
    if (!push_shared(chunk, cls)) {
      give_back(chunk, cls);
      return i;
    }
  }
  return count;
}

void chunk_provider::trim(std::size_t keep_bytes) noexcept {
  decay_if_due();
  detail::chunk_thread_cache* mine = registry().find(id_);
  std::size_t cached = shared_cached_bytes_.load(std::memory_order_relaxed);
  if (mine != nullptr) {
    for (unsigned cls = min_class_; cls <= max_class_; ++cls) {
      cached += mine->bins[cls].count.load(std::memory_order_relaxed) * class_size(cls);
    }
  }
  if (cached > keep_bytes) cached -= std::min(cached, evict(cached - keep_bytes, evicted_by_trim_));
  // Other threads' bins cannot be touched without a lock on their fast paths:
  // each is asked to return its bins upstream at its next call.
  std::lock_guard lock(registry().mutex());
  for (detail::chunk_thread_cache* cache : caches_.caches()) {
    if (cache == mine) continue;
    std::size_t held = 0;
    for (unsigned cls = min_class_; cls <= max_class_; ++cls) {
      held += cache->bins[cls].count.load(std::memory_order_relaxed) * class_size(cls);
    }
    if (held == 0) continue;
    cached += held;
    if (cached <= keep_bytes) continue;
    cache->trim_requested.store(true, std::memory_order_relaxed);
    disarm(*cache);
  }
}

void chunk_provider::release() noexcept {
  // Swapped out, not copied: nothing here allocates.
  std::array<std::vector<held_chunk>, detail::chunk_class_count> chunks;
  std::vector<oversized_block> oversized;
  {
    std::lock_guard registry_lock(registry().mutex());
    // What callers still hold is dropped from the books, per class and in bytes.
    std::array<std::uint64_t, detail::chunk_class_count> outstanding{};
    for (unsigned cls = 0; cls < detail::chunk_class_count; ++cls) {
      outstanding[cls] = retired_classes_[cls].handed - retired_classes_[cls].returned;
    }
    for (detail::chunk_thread_cache* cache : caches_.caches()) {
      for (unsigned cls = 0; cls < detail::chunk_class_count; ++cls) {
        outstanding[cls] += cache->handed[cls].load(std::memory_order_relaxed) - cache->returned(cls);
        // The bin's chunks leave unhanded; no other thread runs (release()'s requirement).
        detail::chunk_bin& bin = cache->bins[cls];
        cache->note_unbinned(cls, bin.count.load(std::memory_order_relaxed));
        bin.count.store(0, std::memory_order_relaxed);
      }
    }
    // Cumulative already: whatever was handed out and never given back has now been taken back.
    released_classes_ = outstanding;
    caches_.forget_bytes_in_use();
    for (unsigned cls = min_class_; cls <= max_class_; ++cls) {
      shared_pool& pool = pools_[cls];
      std::lock_guard lock(pool.mutex);
      chunks[cls].swap(pool.held);
      pool.head = nullptr;
      pool.count = 0;
      pool.low_water = 0;
    }
    shared_cached_bytes_.store(0, std::memory_order_relaxed);
    std::lock_guard lock(oversized_mutex_);
    oversized.swap(oversized_);
    oversized_bytes_in_use_ = 0;
  }
  for (unsigned cls = min_class_; cls <= max_class_; ++cls) {
    for (const held_chunk& h : chunks[cls]) return_upstream(h.chunk, cls);
  }
  for (const oversized_block& b : oversized) {
    upstream_resource()->deallocate(b.block, b.mapped, b.alignment);
    upstream_deallocations_.fetch_add(1, std::memory_order_relaxed);
    release_budget(b.mapped);
  }
  floor_.store(min_class_, std::memory_order_relaxed);
}

// --------------------------------------------------------------- observers

std::size_t chunk_provider::chunk_size_for(std::size_t bytes, std::size_t alignment) const noexcept {
  if (!detail::is_power_of_two(alignment)) return 0;
  const unsigned cls = class_of(bytes, alignment);
  return cls > max_class_ ? 0 : class_size(cls);
}

resource_stats chunk_provider::do_stats() const noexcept {
  resource_stats s;
  detail::cache_totals t;
  std::uint64_t released = 0;
  {
    std::lock_guard lock(registry().mutex());
    t = caches_.totals();  // normal chunks and oversized blocks alike
    for (const std::uint64_t n : released_classes_) released += n;
  }
  s.allocations = t.allocations;
  // A rejected deallocate counts in misuse_detected only; the blocks release()
  // took back count as deallocations, so allocations - deallocations stays the live blocks.
  s.deallocations = t.deallocations + released;
  s.bytes_in_use = static_cast<std::size_t>(t.bytes_in_use);
  s.misuse_detected = rejected_.load(std::memory_order_relaxed);
  s.peak_bytes_in_use = std::max(t.peak_bytes_in_use, s.bytes_in_use);
  s.bytes_reserved = bytes_reserved_.load(std::memory_order_relaxed);
  s.failed_allocations = failed_.load(std::memory_order_relaxed);
  s.upstream_allocations = upstream_allocations_.load(std::memory_order_relaxed);
  s.upstream_deallocations = upstream_deallocations_.load(std::memory_order_relaxed);
  return s;
}

std::size_t chunk_provider::do_preferred_size(std::size_t bytes) const noexcept {
  if (!options_.ratchet_floor || bytes >= options_.max_chunk_size) return bytes;
  return std::max(bytes, class_size(floor_.load(std::memory_order_relaxed)));
}

void chunk_provider::do_reset_peak() noexcept {
  std::lock_guard lock(registry().mutex());
  caches_.reset_peak();
}

chunk_provider::details_type chunk_provider::details() const {
  details_type d{};
  std::vector<std::uint64_t> handed(max_class_ + 1);
  std::vector<std::uint64_t> returned(max_class_ + 1);
  std::vector<std::size_t> cached(max_class_ + 1);
  std::array<std::uint64_t, detail::chunk_class_count> released{};
  {
    std::lock_guard lock(registry().mutex());
    released = released_classes_;
    for (unsigned cls = min_class_; cls <= max_class_; ++cls) {
      handed[cls] = retired_classes_[cls].handed;
      returned[cls] = retired_classes_[cls].returned;
      for (const detail::chunk_thread_cache* cache : caches_.caches()) {
        handed[cls] += cache->handed[cls].load(std::memory_order_relaxed);
        returned[cls] += cache->returned(cls);
        cached[cls] += cache->bins[cls].count.load(std::memory_order_relaxed);
      }
      std::lock_guard pool_lock(pools_[cls].mutex);
      cached[cls] += pools_[cls].count;
    }
    d.threads_attached = caches_.size();
  }
  for (unsigned cls = min_class_; cls <= max_class_; ++cls) {
    const std::uint64_t misses = pools_[cls].misses.load(std::memory_order_relaxed);
    d.classes.push_back({class_size(cls), cached[cls],
                         static_cast<std::size_t>(handed[cls] - returned[cls] - released[cls]),
                         handed[cls] - std::min(misses, handed[cls]), misses});
    d.cached_bytes += cached[cls] * class_size(cls);
  }
  {
    std::lock_guard lock(oversized_mutex_);
    d.oversized_live = oversized_.size();
    d.oversized_bytes = oversized_bytes_in_use_;
  }
  d.evicted_by_floor = 0;
  d.evicted_by_trim = evicted_by_trim_.load(std::memory_order_relaxed);
  d.evicted_by_budget = evicted_by_budget_.load(std::memory_order_relaxed);
  d.evicted_by_decay = evicted_by_decay_.load(std::memory_order_relaxed);
  d.returned_over_cache_limit = returned_over_limit_.load(std::memory_order_relaxed);
  d.floor_chunk_size = class_size(floor_.load(std::memory_order_relaxed));
  return d;
}

bool chunk_provider::invariants_hold() const noexcept {
  const unsigned floor = floor_.load(std::memory_order_relaxed);
  if (floor < min_class_ || floor > max_class_) return false;
  for (unsigned cls = min_class_; cls <= max_class_; ++cls) {
    const shared_pool& pool = pools_[cls];
    std::lock_guard lock(pool.mutex);
    std::size_t length = 0;
    for (void* chunk = pool.head; chunk != nullptr; chunk = load_pool_link(chunk)) {
      if (!detail::is_aligned(chunk, class_size(cls))) return false;
      ++length;
    }
    if (length != pool.count || pool.low_water > pool.count) return false;
    const std::size_t pooled = static_cast<std::size_t>(
        std::count_if(pool.held.begin(), pool.held.end(), [](const held_chunk& h) { return h.pooled; }));
    if (!options_.hardened && pooled != pool.count) return false;
  }
  return true;
}

}  // namespace strata
