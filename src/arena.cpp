// SPDX-License-Identifier: MIT
// arena: slow paths, thread-cache lifetime, the large path and statistics.
//
// The region, from upstream at construction:
//
//   base_                                   base_ + cursor_               base_ + capacity_
//   | runs of small blocks | large block | free extent | run | ... |   never carved   |
//
// A run is a batch of blocks of one class carved at once, starting at the
// class alignment (the gap before it, under 4 KiB, is not reused). Large
// blocks are page multiples; freed ones become free extents, coalesced with
// their neighbours and folded back into the never-carved end when adjacent.
// Small blocks stay in their class for the arena's life.
//
// A free small block, poisoned under ASan as a whole (link words included):
//
//   word 0: next block of the same list     word 1: next batch (batch heads only)
//
// Where a small block can be, and who may touch it:
//
//   handed out    -- the caller's
//   thread bin    -- one thread's arena_thread_cache; only that thread pushes and pops
//   central pool  -- pools_[class], under its mutex: a stack of full batches, a loose list
//
// Lock order: registry mutex -> pool mutex -> hardened_mutex_ (link
// validation). region_mutex_ is taken alone. The upstream is called only by the constructor and destructor.

#include "strata/arena.hpp"

#include "thread_cache_registry.hpp"

#include <algorithm>
#include <memory>
#include <new>

namespace strata {

namespace {

constexpr std::string_view resource_name = "arena";

std::uint64_t remote_lower_bound(const detail::arena_thread_cache& c) noexcept {
  const std::uint64_t allocated = c.allocations();
  const std::uint64_t freed = c.deallocations();
  return freed > allocated ? freed - allocated : 0;
}

}  // namespace

// Lets the thread-exit hook reach the arena's private members.
struct arena_access {
  static detail::thread_cache_set<detail::arena_thread_cache>& caches(arena& a) noexcept { return a.caches_; }
  static void drain(arena& a, detail::arena_thread_cache& cache) noexcept { a.drain(cache); }
};

// One registry of live arenas and their threads' caches (the lifetime scheme
// of detail/thread_cache.hpp).
namespace {
using arena_registry = detail::thread_cache_registry<arena, detail::arena_thread_cache, arena_access>;
arena_registry& registry() {
  return arena_registry::instance();
}
}  // namespace

// ------------------------------------------------------------ construction

arena::arena(options opts, std::pmr::memory_resource* upstream)
    : resource(resource_name, upstream), options_(opts), id_(arena_registry::new_id()) {
  detail::check_upstream(resource_name, upstream);
  if (options_.capacity < detail::arena_page || options_.capacity > SIZE_MAX / 2) {
    detail::throw_bad_option(resource_name, "capacity", "must be from 4096 to SIZE_MAX / 2");
  }
  if (options_.refill_bytes < 16) {
    detail::throw_bad_option(resource_name, "refill_bytes", "must be at least 16");
  }
  if (options_.cache_bytes_per_class < options_.refill_bytes) {
    detail::throw_bad_option(resource_name, "cache_bytes_per_class", "must be at least refill_bytes");
  }
  bool ok = true;
  options_.capacity = detail::round_up(options_.capacity, detail::arena_page, ok);
  capacity_ = options_.capacity;
  for (unsigned cls = 0; cls < detail::arena_class_count; ++cls) {
    const std::size_t size = detail::arena_class_size(cls);
    // Bounded so a bin's count fits its 32-bit counter with room to spare.
    constexpr std::size_t most = std::size_t{1} << 24;
    const std::size_t batch = std::clamp<std::size_t>(options_.refill_bytes / size, 1, most);
    batch_[cls] = static_cast<std::uint32_t>(batch);
    // At least two batches, so a bin that hands one back still has one.
    bin_limit_[cls] = static_cast<std::uint32_t>(
        std::clamp<std::size_t>(options_.cache_bytes_per_class / size, 2 * batch, 2 * most));
  }
  void* region = detail::allocate_from_upstream(upstream, resource_name, capacity_, detail::arena_page);
  base_ = reinterpret_cast<std::uintptr_t>(region);
  detail::poison_memory(region, capacity_);  // nothing is handed out yet
  if (options_.hardened) codec_ = detail::link_codec{detail::make_link_secret(this)};
  registry().enroll(id_, *this);
}

arena::~arena() {
  // First: no exiting thread reaches this arena (or its region) after this.
  registry().withdraw(id_, caches_);
  void* region = reinterpret_cast<void*>(base_);
  detail::unpoison_memory(region, capacity_);
  upstream_resource()->deallocate(region, capacity_, detail::arena_page);
}

detail::arena_thread_cache* arena::attach() noexcept {
  // Hardened mode has no caches: every call must see the side metadata.
  if (options_.hardened) return nullptr;
  try {
    // nullptr once this thread's exit hooks have run (thread_local or static
    // destructors): such calls go straight to the central pools, so no cache
    // is left behind that no exit hook would hand back.
    return registry().attach(id_, caches_, true);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void arena::drain(detail::arena_thread_cache& cache) noexcept {
  for (unsigned cls = 0; cls < detail::arena_class_count; ++cls) {
    detail::arena_bin& bin = cache.bins[cls];
    const std::size_t count = bin.count.load(std::memory_order_relaxed);
    if (count == 0) continue;
    give_blocks(cls, block_list{bin.head, walk(bin.head, count), count});
    bin.head = nullptr;
    bin.count.store(0, std::memory_order_relaxed);
  }
  retired_remote_frees_ += remote_lower_bound(cache);
}

// -------------------------------------------------------------- allocation

void* arena::allocate_slow(std::size_t bytes, std::size_t alignment) {
  // First what the inline path leaves to us only for its table's sake: a
  // class above 1 KiB or aligned to more than 16, with a block in this
  // thread's bin (hardened mode never arms the slot, so it never gets here).
  if (detail::is_power_of_two(alignment)) {
    const unsigned cls = detail::arena_class_for(bytes, alignment);
    const detail::arena_cache_slot& slot = detail::current_thread_cache<detail::arena_thread_cache>;
    if (cls != detail::arena_large && slot.owner_id == id_) {
      if (void* p = detail::arena_pop(*slot.cache, cls, bytes)) return p;
    }
  }
  detail::check_alignment(resource_name, alignment);
  const unsigned cls = detail::arena_class_for(bytes, alignment);
  void* p = nullptr;
  detail::arena_thread_cache* cache = nullptr;
  try {
    if (cls == detail::arena_large) {
      p = large_allocate(bytes, alignment);
    } else if (options_.hardened || (cache = attach()) == nullptr) {
      // One block at a time, straight from the central pool or a fresh run.
      const block_list got = take_blocks(cls, 1, bytes, alignment);
      p = got.head;
      if (got.count > 1) {
        // A run carved from a free extent (a whole page at least): the rest
        // goes to the central pool, or it would stay unused until the arena dies.
        give_blocks(cls, block_list{link_get(p, 0), got.tail, got.count - 1});
      }
      detail::unpoison_memory(p, detail::arena_class_size(cls));
    } else {
      detail::arena_bin& bin = cache->bins[cls];
      if (bin.head == nullptr) {
        // The bin is empty: it becomes the rest of a fresh batch.
        const block_list got = take_blocks(cls, batch_[cls], bytes, alignment);
        bin.head = got.head;
        bin.count.store(static_cast<std::uint32_t>(got.count), std::memory_order_relaxed);
      }
      p = bin.head;
      detail::unpoison_memory(p, detail::arena_class_size(cls));
      bin.head = *static_cast<void**>(p);
      bin.count.store(bin.count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    }
    if (options_.hardened) {
      try {
        record_block(p, bytes, alignment);
      } catch (...) {
        // Lose nothing: the block goes back where it came from.
        if (cls == detail::arena_large) {
          large_deallocate(p, bytes);
        } else {
          detail::poison_memory(p, detail::arena_class_size(cls));
          link_set(p, 0, nullptr);
          give_blocks(cls, block_list{p, p, 1});
        }
        throw;
      }
    }
  } catch (const std::bad_alloc&) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    throw;
  }
  if (cache == nullptr) cache = attach();
  count_allocation(cache, bytes);
  STRATA_ASSERT(detail::is_aligned(p, alignment), "arena block misaligned");
  STRATA_ASSERT_EXPENSIVE(invariants_hold(), "arena books drifted");
  return p;
}

// Free blocks are poisoned whole; the cold paths that walk or relink lists
// open one link word at a time. Hardened mode stores every link of the
// central pool encoded (detail/free_list.hpp: the word's own address takes
// part), so a use-after-free that writes a plausible pointer into a free
// block does not decode to it; the thread bins (never used when hardened)
// and the inline fast paths keep plain links.
std::uintptr_t arena::link_word(const void* at, const void* value) const noexcept {
  return options_.hardened ? codec_.encode(at, value) : reinterpret_cast<std::uintptr_t>(value);
}

void* arena::link_get(void* block, unsigned word) const noexcept {
  auto* link = static_cast<std::uintptr_t*>(block) + word;
  detail::unpoison_memory(link, sizeof(void*));
  const std::uintptr_t value = *link;
  detail::poison_memory(link, sizeof(void*));
  return options_.hardened ? codec_.decode(link, value) : reinterpret_cast<void*>(value);
}

void arena::link_set(void* block, unsigned word, void* value) const noexcept {
  auto* link = static_cast<std::uintptr_t*>(block) + word;
  detail::unpoison_memory(link, sizeof(void*));
  *link = link_word(link, value);
  detail::poison_memory(link, sizeof(void*));
}

void* arena::walk(void* head, std::size_t count) const noexcept {
  for (std::size_t i = 1; i < count; ++i) head = link_get(head, 0);
  return head;
}

arena::block_list arena::take_blocks(unsigned cls, std::size_t want, std::size_t bytes,
                                     std::size_t alignment) {
  const std::size_t batch = batch_[cls];
  {
    central_pool& pool = pools_[cls];
    std::lock_guard lock(pool.mutex);
    if (pool.batches != nullptr && (want == batch || pool.loose_count == 0)) {
      void* head = pool.batches;
      pool.batches = link_get(head, 1);
      --pool.batch_count;
      if (want >= batch) return block_list{head, nullptr, batch};
      // Hardened mode takes fewer: the rest of the batch becomes the (empty) loose list.
      void* last = walk(head, want);
      pool.loose = link_get(last, 0);
      pool.loose_count = batch - want;
      link_set(last, 0, nullptr);
      if (options_.hardened) {
        // Hardened takes one block (want == 1, so last == head, validated
        // when it became a head): check both links read from it before any
        // is followed. A bad one cuts its list; those blocks stay unused
        // until the arena dies (region memory: nothing leaks upstream).
        if (!link_valid(pool.batches, cls, pool.batch_count == 0)) {
          reject_link(pool.batches, cls);
          pool.batches = nullptr;
          pool.batch_count = 0;
        }
        if (!link_valid(pool.loose, cls, pool.loose_count == 0)) {
          reject_link(pool.loose, cls);
          pool.loose = nullptr;
          pool.loose_count = 0;
        }
      }
      return block_list{head, nullptr, want};
    }
    if (pool.loose_count != 0) {
      const std::size_t n = std::min(want, pool.loose_count);
      void* head = pool.loose;
      void* last = walk(head, n);
      pool.loose = link_get(last, 0);
      pool.loose_count -= n;
      link_set(last, 0, nullptr);
      if (options_.hardened && !link_valid(pool.loose, cls, pool.loose_count == 0)) {
        reject_link(pool.loose, cls);  // as above: the rest of the list is cut off
        pool.loose = nullptr;
        pool.loose_count = 0;
      }
      return block_list{head, nullptr, n};
    }
  }
  block_list run = carve_run(cls, want);
  if (run.count == 0) {
    detail::throw_allocation_failure(resource_name, bytes, alignment, failure_reason::capacity);
  }
  return run;
}

void arena::give_blocks(unsigned cls, block_list list) noexcept {
  central_pool& pool = pools_[cls];
  std::lock_guard lock(pool.mutex);
  if (list.count == batch_[cls]) {
    link_set(list.head, 1, pool.batches);
    pool.batches = list.head;
    ++pool.batch_count;
  } else {
    link_set(list.tail, 0, pool.loose);
    pool.loose = list.head;
    pool.loose_count += list.count;
  }
}

arena::block_list arena::carve_run(unsigned cls, std::size_t want) {
  const std::size_t size = detail::arena_class_size(cls);
  const std::size_t alignment = detail::arena_class_alignment(cls);
  std::size_t offset = SIZE_MAX;
  std::size_t count = 0;
  {
    std::lock_guard lock(region_mutex_);
    // Offsets may be aligned as numbers here: alignment <= page, and the region is page-aligned.
    const std::size_t start = detail::align_up(cursor_, alignment);
    if (start < capacity_ && (capacity_ - start) / size != 0) {
      // The never-carved end first: runs stay dense and large extents stay whole.
      count = std::min(want, (capacity_ - start) / size);
      offset = start;
      cursor_ = start + count * size;
    } else {
      // Then free large extents: a whole run if one fits, else one block.
      bool ok = true;
      for (std::size_t n : {want, std::size_t{1}}) {
        const std::size_t extent = detail::round_up(n * size, detail::arena_page, ok);
        if ((offset = carve_extent(extent, alignment)) != SIZE_MAX) {
          count = extent / size;  // the extent's tail beyond the last block stays unused
          break;
        }
      }
    }
  }
  if (count == 0) return block_list{};
  auto* first = reinterpret_cast<std::byte*>(base_ + offset);
  detail::unpoison_memory(first, count * size);
  for (std::size_t i = 0; i + 1 < count; ++i) {
    *reinterpret_cast<std::uintptr_t*>(first + i * size) =
        link_word(first + i * size, first + (i + 1) * size);
  }
  std::byte* last = first + (count - 1) * size;
  *reinterpret_cast<std::uintptr_t*>(last) = link_word(last, nullptr);
  detail::poison_memory(first, count * size);
  return block_list{first, last, count};
}

// ------------------------------------------------------------ large path

std::size_t arena::carve_extent(std::size_t size, std::size_t alignment) {
  // Best fit over the free extents (few: they coalesce).
  auto best = free_extents_.end();
  std::size_t best_waste = SIZE_MAX;
  // Offsets are aligned as addresses: the region itself is only page-aligned.
  const auto aligned = [&](std::size_t offset) {
    return detail::align_up(base_ + offset, alignment) - base_;
  };
  for (auto it = free_extents_.begin(); it != free_extents_.end(); ++it) {
    const std::size_t start = aligned(it->first);
    const std::size_t pad = start - it->first;
    if (pad > it->second || it->second - pad < size) continue;
    if (it->second - size < best_waste) {
      best_waste = it->second - size;
      best = it;
    }
  }
  if (best != free_extents_.end()) {
    const std::size_t begin = best->first;
    const std::size_t length = best->second;
    const std::size_t start = aligned(begin);
    const std::size_t tail = begin + length - (start + size);
    // The tail's node is inserted first: if that throws, nothing has changed.
    if (tail != 0) free_extents_.emplace(start + size, tail);
    if (start == begin) {
      free_extents_.erase(best);
    } else {
      best->second = start - begin;
    }
    large_free_bytes_ -= size;
    return start;
  }
  const std::size_t start = aligned(cursor_);
  if (start > capacity_ || capacity_ - start < size) return SIZE_MAX;
  // The alignment gap before it becomes a free extent, reusable by smaller requests.
  if (start != cursor_) {
    free_extents_.emplace(cursor_, start - cursor_);
    large_free_bytes_ += start - cursor_;
  }
  cursor_ = start + size;
  return start;
}

void arena::free_extent(std::size_t offset, std::size_t size) noexcept {
  auto next = free_extents_.lower_bound(offset);
  if (next != free_extents_.end() && next->first == offset + size) {
    size += next->second;
    large_free_bytes_ -= next->second;
    next = free_extents_.erase(next);
  }
  if (next != free_extents_.begin()) {
    const auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      offset = prev->first;
      size += prev->second;
      large_free_bytes_ -= prev->second;
      free_extents_.erase(prev);
    }
  }
  if (offset + size == cursor_) {
    cursor_ = offset;  // back into the never-carved end
    return;
  }
  try {
    free_extents_.emplace(offset, size);
    large_free_bytes_ += size;
  } catch (...) {
    // No memory for the node: the extent stays unusable until destruction,
    // which returns the whole region anyway.
  }
}

void* arena::large_allocate(std::size_t bytes, std::size_t alignment) {
  bool ok = true;
  const std::size_t size = detail::round_up(std::max<std::size_t>(bytes, 1), detail::arena_page, ok);
  if (!ok) detail::throw_allocation_failure(resource_name, bytes, alignment, failure_reason::size_overflow);
  std::size_t offset = SIZE_MAX;
  {
    std::lock_guard lock(region_mutex_);
    // An alignment above the capacity cannot be met inside the region (and
    // would overflow the address arithmetic): it fails as capacity.
    if (size <= capacity_ && alignment <= capacity_) {
      offset = carve_extent(size, std::max(alignment, detail::arena_page));
    }
    if (offset != SIZE_MAX) {
      try {
        large_live_.emplace(offset, size);
      } catch (...) {
        free_extent(offset, size);
        throw;
      }
      large_live_bytes_ += size;
    }
  }
  if (offset == SIZE_MAX) {
    detail::throw_allocation_failure(resource_name, bytes, alignment, failure_reason::capacity);
  }
  void* p = reinterpret_cast<void*>(base_ + offset);
  detail::unpoison_memory(p, size);
  return p;
}

bool arena::large_deallocate(void* p, std::size_t bytes) noexcept {
  if (bytes > capacity_) return false;
  bool ok = true;
  const std::size_t size = detail::round_up(std::max<std::size_t>(bytes, 1), detail::arena_page, ok);
  const std::size_t offset = reinterpret_cast<std::uintptr_t>(p) - base_;
  std::lock_guard lock(region_mutex_);
  const auto it = large_live_.find(offset);
  if (it == large_live_.end() || it->second != size) return false;
  large_live_.erase(it);
  large_live_bytes_ -= size;
  detail::poison_memory(p, size);
  free_extent(offset, size);
  return true;
}

// ------------------------------------------------------------ deallocation

void arena::deallocate_slow(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  // First, as in allocate_slow, the classes outside the inline path's table,
  // into this thread's bin while it has room.
  if (detail::is_power_of_two(alignment) && owns(p)) {
    const unsigned cls = detail::arena_class_for(bytes, alignment);
    const detail::arena_cache_slot& slot = detail::current_thread_cache<detail::arena_thread_cache>;
    if (cls != detail::arena_large && slot.owner_id == id_ &&
        detail::arena_push(*slot.cache, cls, bin_limit_[cls], p, bytes)) {
      return;
    }
  }
  if (!detail::is_power_of_two(alignment)) {
    reject(misuse_kind::alignment_mismatch, p, bytes, alignment);
    return;
  }
  if (!owns(p)) {
    reject(misuse_kind::unknown_pointer, p, bytes, alignment);
    return;
  }
  if (options_.hardened && !release_block(p, bytes, alignment)) return;  // rejected there
  const unsigned cls = detail::arena_class_for(bytes, alignment);
  if (cls == detail::arena_large) {
    // Every large block is tracked, so a stranger or a second free is provable.
    if (!large_deallocate(p, bytes)) {
      reject(misuse_kind::unknown_pointer, p, bytes, alignment);
      return;
    }
    count_deallocation(attach(), bytes);
    STRATA_ASSERT_EXPENSIVE(invariants_hold(), "arena books drifted");
    return;
  }
  // Without a cache (hardened, exiting thread, no memory for one) the block
  // goes straight to the central pool.
  detail::arena_thread_cache* cache = attach();
  if (cache == nullptr) {
    detail::poison_memory(p, detail::arena_class_size(cls));
    link_set(p, 0, nullptr);  // encoded when hardened: this block goes to the central pool
    give_blocks(cls, block_list{p, p, 1});
    count_deallocation(nullptr, bytes);
    return;
  }
  detail::arena_bin& bin = cache->bins[cls];
  *static_cast<void**>(p) = bin.head;
  detail::poison_memory(p, detail::arena_class_size(cls));
  bin.head = p;
  std::uint32_t count = bin.count.load(std::memory_order_relaxed) + 1;
  if (count > bin_limit_[cls]) {
    // Full: the newest batch_ blocks go to the central pool as one batch, so
    // a thread that frees what others allocated hands them back in bulk.
    const std::uint32_t batch = batch_[cls];
    void* last = walk(p, batch);
    bin.head = link_get(last, 0);
    link_set(last, 0, nullptr);  // every list ends in nullptr: a bin made of it stops there
    count -= batch;
    give_blocks(cls, block_list{p, last, batch});
  }
  bin.count.store(count, std::memory_order_relaxed);
  cache->on_deallocate(bytes);
}

// ---------------------------------------------------------- hardened mode

void arena::record_block(void* p, std::size_t bytes, std::size_t alignment) {
  std::lock_guard lock(hardened_mutex_);
  handed_out_[p] = block_record{bytes, alignment, true};
}

bool arena::release_block(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  misuse_kind wrong{};
  {
    std::lock_guard lock(hardened_mutex_);
    const auto it = handed_out_.find(p);
    if (it == handed_out_.end()) {
      wrong = misuse_kind::unknown_pointer;
    } else if (!it->second.live) {
      wrong = misuse_kind::double_free;
    } else if (it->second.bytes != bytes) {
      wrong = misuse_kind::size_mismatch;
    } else if (it->second.alignment != alignment) {
      wrong = misuse_kind::alignment_mismatch;
    } else {
      it->second.live = false;  // kept, so a second free is told from a stranger
      return true;
    }
  }
  reject(wrong, p, bytes, alignment);
  return false;
}

// --------------------------------------------------------------- counting

void arena::count_allocation(detail::arena_thread_cache* cache, std::size_t bytes) noexcept {
  if (cache != nullptr) {
    cache->on_allocate(bytes);
    return;
  }
  std::lock_guard lock(registry().mutex());
  caches_.count_cacheless_allocation(bytes);
}

void arena::count_deallocation(detail::arena_thread_cache* cache, std::size_t bytes) noexcept {
  if (cache != nullptr) {
    cache->on_deallocate(bytes);
    return;
  }
  std::lock_guard lock(registry().mutex());
  caches_.count_cacheless_deallocation(bytes);
}

bool arena::link_valid(const void* next, unsigned cls, bool should_end) const noexcept {
  if (next == nullptr || should_end) return next == nullptr && should_end;
  if (!owns(next) || !detail::is_aligned(next, detail::arena_class_alignment(cls))) return false;
  std::lock_guard lock(hardened_mutex_);
  const auto it = handed_out_.find(next);
  // Never handed out: a block of a fresh run, believed on its alignment.
  return it == handed_out_.end() ||
         (!it->second.live && detail::arena_class_for(it->second.bytes, it->second.alignment) == cls);
}

void arena::reject_link(const void* next, unsigned cls) noexcept {
  reject(misuse_kind::unknown_pointer, const_cast<void*>(next), detail::arena_class_size(cls),
         detail::arena_class_alignment(cls));
}

void arena::reject(misuse_kind kind, void* p, std::size_t bytes, std::size_t alignment) noexcept {
  rejected_.fetch_add(1, std::memory_order_relaxed);
  report_misuse({resource_name, kind, p, bytes, alignment});
}

// --------------------------------------------------------------- observers

resource_stats arena::do_stats() const noexcept {
  resource_stats s;
  detail::cache_totals t;
  {
    std::lock_guard lock(registry().mutex());
    t = caches_.totals();
  }
  const std::uint64_t rejected = rejected_.load(std::memory_order_relaxed);
  s.allocations = t.allocations;
  s.deallocations = t.deallocations + rejected;
  s.misuse_detected = rejected;
  s.bytes_in_use = static_cast<std::size_t>(t.bytes_in_use);
  s.peak_bytes_in_use = std::max(t.peak_bytes_in_use, s.bytes_in_use);
  s.bytes_reserved = capacity_;
  s.failed_allocations = failed_.load(std::memory_order_relaxed);
  s.upstream_allocations = 1;  // the region; returned only by the destructor
  return s;
}

void arena::do_reset_peak() noexcept {
  std::lock_guard lock(registry().mutex());
  caches_.reset_peak();
}

arena::details_type arena::details() const {
  details_type d{};
  d.capacity = capacity_;
  d.classes.resize(detail::arena_class_count);
  {
    std::lock_guard lock(registry().mutex());
    d.remote_frees = retired_remote_frees_;
    for (const detail::arena_thread_cache* cache : caches_.caches()) {
      d.remote_frees += remote_lower_bound(*cache);
      for (unsigned cls = 0; cls < detail::arena_class_count; ++cls) {
        d.classes[cls].cached_blocks += cache->bins[cls].count.load(std::memory_order_relaxed);
      }
    }
    d.threads_attached = caches_.size();
  }
  for (unsigned cls = 0; cls < detail::arena_class_count; ++cls) {
    class_details& c = d.classes[cls];
    c.block_size = detail::arena_class_size(cls);
    std::lock_guard lock(pools_[cls].mutex);
    c.central_blocks = pools_[cls].batch_count * batch_[cls] + pools_[cls].loose_count;
    c.central_bytes = c.central_blocks * c.block_size;
  }
  std::lock_guard lock(region_mutex_);
  d.remaining = capacity_ - cursor_ + large_free_bytes_;
  d.large_live = large_live_.size();
  d.large_live_bytes = large_live_bytes_;
  d.large_free = free_extents_.size();
  d.large_free_bytes = large_free_bytes_;
  return d;
}

bool arena::invariants_hold() const noexcept {
  std::lock_guard lock(region_mutex_);
  if (cursor_ > capacity_) return false;
  std::size_t free_bytes = 0;
  std::size_t end = 0;
  for (const auto& [offset, size] : free_extents_) {
    if (offset < end || size == 0 || offset + size > cursor_) return false;  // overlap, or past the end
    end = offset + size;
    free_bytes += size;
  }
  return free_bytes == large_free_bytes_;
}

}  // namespace strata
