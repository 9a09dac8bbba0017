// SPDX-License-Identifier: MIT
// chunk_provider: slow paths, thread-cache lifetime, eviction and statistics.
//
// Where a chunk can be, and who may touch it:
//
//   handed out      -- the caller's; listed in blocks_ (every chunk held from upstream is)
//   thread bin      -- one thread's chunk_thread_cache; only that thread pushes and pops
//   shared pool     -- pools_[class], under that pool's mutex, linked through the first word
//   upstream        -- gone from blocks_, its bytes released from the budget
//
// Lock order: registry mutex -> pool mutex -> blocks_mutex_. No lock is held
// while calling the upstream or the budget callback.

#include "strata/chunk_provider.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <unordered_map>

#include "strata/detail/assert.hpp"
#include "strata/detail/free_list.hpp"
#include "strata/detail/thread_cache.hpp"
#include "thread_cache_registry.hpp"

namespace strata {

namespace {

constexpr std::string_view resource_name = "chunk_provider";

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
    provider.flush_thread_cache(cache, detail::chunk_class_count, false);
    for (unsigned cls = 0; cls < detail::chunk_class_count; ++cls) {
      provider.retired_classes_[cls].handed += cache.handed[cls].load(std::memory_order_relaxed);
      provider.retired_classes_[cls].returned += cache.returned[cls].load(std::memory_order_relaxed);
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
      options_(std::move(opts)) {
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
  if (!(options_.budget_warning_fraction > 0.0 && options_.budget_warning_fraction <= 1.0)) {
    bad("budget_warning_fraction", "must be in (0, 1]");
  }
  if (options_.hardened) codec_ = detail::link_codec{detail::make_link_secret(this)};
  min_class_ = static_cast<unsigned>(std::countr_zero(options_.min_chunk_size));
  max_class_ = static_cast<unsigned>(std::countr_zero(options_.max_chunk_size));
  set_floor(min_class_);
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

void chunk_provider::set_floor(unsigned cls) noexcept {
  floor_.store(cls, std::memory_order_relaxed);
  fast_ceiling_.store(options_.ratchet_floor ? cls : max_class_, std::memory_order_relaxed);
  // Thread caches are off when the cached bytes are bounded, so the bound is
  // exact, and when hardened, so every free chunk is in a shared pool where a
  // second free of it is seen (a zero capacity sends every deallocate slow).
  const bool thread_caches = options_.max_cached_bytes == unlimited && !options_.hardened;
  for (unsigned c = 0; c < detail::chunk_class_count; ++c) {
    const bool cached = thread_caches && c >= cls && c >= min_class_ && c <= max_class_;
    bin_capacity_[c].store(cached ? static_cast<std::uint8_t>(std::min<std::size_t>(
                                        detail::chunk_bin_capacity, options_.thread_cache_bytes >> c))
                                  : 0,
                           std::memory_order_relaxed);
  }
}

// -------------------------------------------------------------- allocation

void* chunk_provider::allocate_slow(std::size_t bytes, std::size_t alignment) {
  detail::check_alignment(resource_name, alignment);
  const unsigned cls = class_of(bytes, alignment);
  if (cls > max_class_) return take_from_upstream(bytes, alignment, true, bytes, alignment);

  detail::chunk_thread_cache* cache = attach();
  if (options_.ratchet_floor) {
    if (cls > floor_.load(std::memory_order_relaxed)) raise_floor(cls);
    // Bins below a floor another thread raised are emptied lazily, here.
    if (cache != nullptr) {
      evicted_by_floor_.fetch_add(flush_thread_cache(*cache, floor_.load(std::memory_order_relaxed), true),
                                  std::memory_order_relaxed);
    }
  }
  void* chunk = nullptr;
  const std::uint32_t count = cache != nullptr ? cache->bins[cls].count.load(std::memory_order_relaxed) : 0;
  if (count != 0) {
    chunk = cache->bins[cls].chunks[count - 1];
    cache->bins[cls].count.store(count - 1, std::memory_order_relaxed);
  } else if ((chunk = pop_shared(cls)) == nullptr) {
    chunk = take_from_upstream(class_size(cls), class_size(cls), false, bytes, alignment);
    pools_[cls].misses.fetch_add(1, std::memory_order_relaxed);
  }
  if (cache != nullptr) {
    note_handed(*cache, cls, bytes);
  } else {
    // A thread without a cache (exiting, or out of memory for one): count centrally.
    std::lock_guard lock(registry().mutex());
    ++retired_classes_[cls].handed;
    caches_.count_cacheless_allocation(bytes);
  }
  detail::unpoison_memory(chunk, class_size(cls));
  STRATA_ASSERT(detail::is_aligned(chunk, class_size(cls)), "chunk not aligned to its size");
  STRATA_ASSERT_EXPENSIVE(invariants_hold(), "chunk_provider books drifted");
  return chunk;
}

detail::chunk_thread_cache* chunk_provider::attach() noexcept {
  try {
    return registry().attach(id_, caches_, true);
  } catch (const std::bad_alloc&) {
    return nullptr;  // no cache: this thread takes the cache-less path
  }
}

void* chunk_provider::take_from_upstream(std::size_t size, std::size_t alignment, bool oversized,
                                         std::size_t bytes, std::size_t request_alignment) {
  if (!reserve_budget(size)) {
    // Make room by returning cached chunks before failing.
    const std::size_t budget = options_.byte_budget;
    const std::size_t held = bytes_reserved_.load(std::memory_order_relaxed);
    if (size <= budget && held > budget - size) evict(held - (budget - size), evicted_by_budget_);
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
    std::lock_guard lock(blocks_mutex_);
    blocks_.insert(block_position(block), {block, upstream_block{size, alignment, oversized}});
    if (oversized) {
      ++oversized_live_;
      oversized_bytes_in_use_ += bytes;
      ++oversized_allocations_;
      caches_.raise_peak(oversized_bytes_in_use_);
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

std::vector<std::pair<void*, chunk_provider::upstream_block>>::iterator chunk_provider::block_position(
    const void* p) noexcept {
  return std::lower_bound(blocks_.begin(), blocks_.end(), p,
                          [](const auto& entry, const void* q) { return entry.first < q; });
}

// ------------------------------------------------------------ deallocation

void chunk_provider::deallocate_slow(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  if (!detail::is_power_of_two(alignment)) {
    reject(misuse_kind::alignment_mismatch, p, bytes, alignment);
    return;
  }
  const unsigned cls = class_of(bytes, alignment);
  const bool oversized = cls > max_class_;
  // Only the slow path can afford to prove the pointer is ours.
  const std::optional<misuse_kind> wrong = [&]() -> std::optional<misuse_kind> {
    std::lock_guard lock(blocks_mutex_);
    const auto at = block_position(p);
    if (at == blocks_.end() || at->first != p) return misuse_kind::unknown_pointer;
    const upstream_block& block = at->second;
    if (block.oversized != oversized || block.size != (oversized ? bytes : class_size(cls))) {
      return misuse_kind::size_mismatch;
    }
    if (oversized && block.alignment != alignment) return misuse_kind::alignment_mismatch;
    // Chunks in a shared pool are known to be free; those in a thread bin are
    // not tracked here (the fast path takes no lock), so this sees only some.
    if (block.pooled) return misuse_kind::double_free;
    if (oversized) {
      blocks_.erase(at);
      --oversized_live_;
      oversized_bytes_in_use_ -= bytes;
      ++oversized_deallocations_;
    }
    return std::nullopt;
  }();
  if (wrong) {
    reject(*wrong, p, bytes, alignment);
    return;
  }
  if (oversized) {
    upstream_resource()->deallocate(p, bytes, alignment);
    upstream_deallocations_.fetch_add(1, std::memory_order_relaxed);
    release_budget(bytes);
    return;
  }

  // A thread that only frees (a consumer) gets a cache too, so its frees stay
  // off the registry mutex; without one (exiting, out of memory) it counts centrally.
  detail::chunk_thread_cache* cache = attach();
  note_returned(cache, cls, bytes);
  const unsigned floor = floor_.load(std::memory_order_relaxed);
  if (cls < floor) {
    give_back(p, class_size(cls), class_size(cls));  // below the floor: not worth caching
  } else if (cache != nullptr && cache->bins[cls].count.load(std::memory_order_relaxed) <
                                     bin_capacity_[cls].load(std::memory_order_relaxed)) {
    detail::chunk_bin& bin = cache->bins[cls];
    const std::uint32_t count = bin.count.load(std::memory_order_relaxed);
    detail::poison_memory(p, class_size(cls));
    bin.chunks[count] = p;
    bin.count.store(count + 1, std::memory_order_relaxed);
  } else if (!push_shared(p, cls)) {
    returned_over_limit_.fetch_add(1, std::memory_order_relaxed);
    give_back(p, class_size(cls), class_size(cls));
  }
  if (cache != nullptr && options_.ratchet_floor) {
    evicted_by_floor_.fetch_add(flush_thread_cache(*cache, floor, true), std::memory_order_relaxed);
  }
  STRATA_ASSERT_EXPENSIVE(invariants_hold(), "chunk_provider books drifted");
}

void chunk_provider::note_returned(detail::chunk_thread_cache* cache, unsigned cls,
                                   std::size_t bytes) noexcept {
  if (cache != nullptr) {
    detail::single_writer_add(cache->returned[cls]);
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

bool chunk_provider::push_shared(void* chunk, unsigned cls, bool ignore_limit) noexcept {
  const std::size_t size = class_size(cls);
  if (options_.max_cached_bytes != unlimited && !ignore_limit) {
    std::size_t cached = shared_cached_bytes_.load(std::memory_order_relaxed);
    do {
      if (cached > options_.max_cached_bytes || options_.max_cached_bytes - cached < size) return false;
    } while (!shared_cached_bytes_.compare_exchange_weak(cached, cached + size, std::memory_order_relaxed));
  } else {
    shared_cached_bytes_.fetch_add(size, std::memory_order_relaxed);
  }
  shared_pool& pool = pools_[cls];
  std::lock_guard lock(pool.mutex);
  set_pooled(chunk, true);
  detail::unpoison_memory(chunk, size);
  store_pool_link(chunk, pool.head);
  detail::poison_memory(static_cast<std::byte*>(chunk) + sizeof(void*), size - sizeof(void*));
  pool.head = chunk;
  ++pool.count;
  return true;
}

void chunk_provider::set_pooled(void* chunk, bool pooled) noexcept {
  std::lock_guard lock(blocks_mutex_);
  const auto at = block_position(chunk);
  STRATA_ASSERT(at != blocks_.end() && at->first == chunk, "pooling a chunk that is not held");
  if (at != blocks_.end() && at->first == chunk) at->second.pooled = pooled;
}

void* chunk_provider::pop_shared(unsigned cls) noexcept {
  shared_pool& pool = pools_[cls];
  std::lock_guard lock(pool.mutex);
  void* chunk = pool.head;
  if (chunk == nullptr) return nullptr;
  void* next = load_pool_link(chunk);
  --pool.count;
  set_pooled(chunk, false);
  shared_cached_bytes_.fetch_sub(class_size(cls), std::memory_order_relaxed);
  if (options_.hardened && !pool_link_valid(next, cls, pool.count == 0)) {
    // Cut the pool after chunk (validated when it became the head). The
    // chunks behind the bad link stay held (in blocks_, marked pooled) and go
    // back upstream at release() or destruction, never handed out wild.
    reject(misuse_kind::unknown_pointer, next, class_size(cls), class_size(cls));
    shared_cached_bytes_.fetch_sub(pool.count * class_size(cls), std::memory_order_relaxed);
    pool.count = 0;
    next = nullptr;
  }
  pool.head = next;
  return chunk;
}

void chunk_provider::store_pool_link(void* chunk, void* next) const noexcept {
  *static_cast<std::uintptr_t*>(chunk) =
      options_.hardened ? codec_.encode(chunk, next) : reinterpret_cast<std::uintptr_t>(next);
}

void* chunk_provider::load_pool_link(const void* chunk) const noexcept {
  const std::uintptr_t word = *static_cast<const std::uintptr_t*>(chunk);
  return options_.hardened ? codec_.decode(chunk, word) : reinterpret_cast<void*>(word);
}

bool chunk_provider::pool_link_valid(const void* next, unsigned cls, bool should_end) noexcept {
  if (next == nullptr || should_end) return next == nullptr && should_end;
  if (!detail::is_aligned(next, class_size(cls))) return false;
  std::lock_guard lock(blocks_mutex_);
  const auto at = block_position(next);
  return at != blocks_.end() && at->first == next && at->second.pooled && !at->second.oversized &&
         at->second.size == class_size(cls);
}

std::size_t chunk_provider::flush_thread_cache(detail::chunk_thread_cache& cache, unsigned below_class,
                                               bool to_upstream) noexcept {
  std::size_t moved = 0;
  const unsigned end = std::min(below_class, max_class_ + 1);
  for (unsigned cls = min_class_; cls < end; ++cls) {
    detail::chunk_bin& bin = cache.bins[cls];
    for (std::uint32_t n = bin.count.load(std::memory_order_relaxed); n != 0; --n) {
      void* chunk = bin.chunks[n - 1];
      bin.count.store(n - 1, std::memory_order_relaxed);
      if (to_upstream) {
        give_back(chunk, class_size(cls), class_size(cls));
      } else {
        push_shared(chunk, cls, true);
      }
      ++moved;
    }
  }
  return moved;
}

void chunk_provider::raise_floor(unsigned cls) noexcept {
  {
    // Serialized so the floor and the capacities derived from it move together.
    std::lock_guard lock(floor_mutex_);
    if (cls <= floor_.load(std::memory_order_relaxed)) return;
    set_floor(cls);
  }
  // Cached chunks below the new floor go back upstream: the demand has moved up.
  std::uint64_t evicted = 0;
  for (unsigned below = min_class_; below < cls; ++below) {
    while (void* chunk = pop_shared(below)) {
      give_back(chunk, class_size(below), class_size(below));
      ++evicted;
    }
  }
  evicted_by_floor_.fetch_add(evicted, std::memory_order_relaxed);
}

std::size_t chunk_provider::evict(std::size_t target_bytes, std::atomic<std::uint64_t>& reason) noexcept {
  std::size_t freed = 0;
  std::uint64_t chunks = 0;
  detail::chunk_thread_cache* cache = my_cache();
  // Largest classes first: the fewest upstream calls for the bytes.
  for (unsigned cls = max_class_ + 1; cls-- > min_class_ && freed < target_bytes;) {
    if (cache != nullptr) {
      detail::chunk_bin& bin = cache->bins[cls];
      for (std::uint32_t n = bin.count.load(std::memory_order_relaxed); n != 0 && freed < target_bytes; --n) {
        give_back(bin.chunks[n - 1], class_size(cls), class_size(cls));
        bin.count.store(n - 1, std::memory_order_relaxed);
        freed += class_size(cls);
        ++chunks;
      }
    }
    while (freed < target_bytes) {
      void* chunk = pop_shared(cls);
      if (chunk == nullptr) break;
      give_back(chunk, class_size(cls), class_size(cls));
      freed += class_size(cls);
      ++chunks;
    }
  }
  reason.fetch_add(chunks, std::memory_order_relaxed);
  return freed;
}

void chunk_provider::give_back(void* chunk, std::size_t size, std::size_t alignment) noexcept {
  {
    std::lock_guard lock(blocks_mutex_);
    const auto at = block_position(chunk);
    STRATA_ASSERT(at != blocks_.end() && at->first == chunk, "giving back a chunk that is not held");
    if (at == blocks_.end() || at->first != chunk) return;  // never return a block twice
    blocks_.erase(at);
  }
  detail::unpoison_memory(chunk, size);
  upstream_resource()->deallocate(chunk, size, alignment);
  upstream_deallocations_.fetch_add(1, std::memory_order_relaxed);
  release_budget(size);
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
  if (options_.ratchet_floor && cls > floor_.load(std::memory_order_relaxed)) raise_floor(cls);
  for (std::size_t i = 0; i < count; ++i) {
    void* chunk =
        take_from_upstream(class_size(cls), class_size(cls), false, class_size(cls), class_size(cls));
    if (!push_shared(chunk, cls)) {
      give_back(chunk, class_size(cls), class_size(cls));
      return i;
    }
  }
  return count;
}

void chunk_provider::trim(std::size_t keep_bytes) noexcept {
  std::size_t cached = shared_cached_bytes_.load(std::memory_order_relaxed);
  if (detail::chunk_thread_cache* cache = my_cache()) {
    for (unsigned cls = min_class_; cls <= max_class_; ++cls) {
      cached += cache->bins[cls].count.load(std::memory_order_relaxed) * class_size(cls);
    }
  }
  if (cached > keep_bytes) evict(cached - keep_bytes, evicted_by_trim_);
}

void chunk_provider::release() noexcept {
  std::vector<std::pair<void*, upstream_block>> blocks;
  {
    std::lock_guard registry_lock(registry().mutex());
    // What callers still hold is dropped from the books, per class and in bytes.
    std::array<std::uint64_t, detail::chunk_class_count> outstanding{};
    for (unsigned cls = 0; cls < detail::chunk_class_count; ++cls) {
      outstanding[cls] = retired_classes_[cls].handed - retired_classes_[cls].returned;
    }
    for (detail::chunk_thread_cache* cache : caches_.caches()) {
      for (detail::chunk_bin& bin : cache->bins) bin.count.store(0, std::memory_order_relaxed);
      for (unsigned cls = 0; cls < detail::chunk_class_count; ++cls) {
        outstanding[cls] += cache->handed[cls].load(std::memory_order_relaxed) -
                            cache->returned[cls].load(std::memory_order_relaxed);
      }
    }
    released_classes_ = outstanding;
    caches_.forget_bytes_in_use();
    for (shared_pool& pool : pools_) {
      std::lock_guard lock(pool.mutex);
      pool.head = nullptr;
      pool.count = 0;
    }
    shared_cached_bytes_.store(0, std::memory_order_relaxed);
    std::lock_guard lock(blocks_mutex_);
    blocks.swap(blocks_);
    oversized_live_ = 0;
    oversized_bytes_in_use_ = 0;
  }
  for (const auto& [chunk, block] : blocks) {
    detail::unpoison_memory(chunk, block.size);
    upstream_resource()->deallocate(chunk, block.size, block.alignment);
    upstream_deallocations_.fetch_add(1, std::memory_order_relaxed);
    release_budget(block.size);
  }
  std::lock_guard lock(floor_mutex_);
  set_floor(min_class_);
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
  {
    std::lock_guard lock(registry().mutex());
    t = caches_.totals();  // normal chunks; retired_classes_ holds the same per class, for details()
    std::lock_guard blocks_lock(blocks_mutex_);
    s.allocations = t.allocations + oversized_allocations_;
    s.deallocations = t.deallocations + oversized_deallocations_;
    s.bytes_in_use = static_cast<std::size_t>(t.bytes_in_use) + oversized_bytes_in_use_;
  }
  const std::uint64_t rejected = rejected_.load(std::memory_order_relaxed);
  s.deallocations += rejected;
  s.misuse_detected = rejected;
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
        returned[cls] += cache->returned[cls].load(std::memory_order_relaxed);
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
    std::lock_guard lock(blocks_mutex_);
    d.oversized_live = oversized_live_;
    d.oversized_bytes = oversized_bytes_in_use_;
  }
  d.evicted_by_floor = evicted_by_floor_.load(std::memory_order_relaxed);
  d.evicted_by_trim = evicted_by_trim_.load(std::memory_order_relaxed);
  d.evicted_by_budget = evicted_by_budget_.load(std::memory_order_relaxed);
  d.returned_over_cache_limit = returned_over_limit_.load(std::memory_order_relaxed);
  d.floor_chunk_size = class_size(floor_.load(std::memory_order_relaxed));
  return d;
}

bool chunk_provider::invariants_hold() const noexcept {
  const unsigned floor = floor_.load(std::memory_order_relaxed);
  if (floor < min_class_ || floor > max_class_) return false;
  for (unsigned cls = min_class_; cls <= max_class_; ++cls) {
    std::lock_guard lock(pools_[cls].mutex);
    std::size_t length = 0;
    for (void* chunk = pools_[cls].head; chunk != nullptr; chunk = load_pool_link(chunk)) {
      if (!detail::is_aligned(chunk, class_size(cls))) return false;
      ++length;
    }
    if (length != pools_[cls].count) return false;
  }
  return true;
}

}  // namespace strata
