// SPDX-License-Identifier: MIT
// arena: slow paths, runs and the extent allocator, thread-cache lifetime,
// trim/decay/release, the large path and statistics.
//
// The region, from upstream at construction, in 4 KiB pages:
//
//   base_                                                        base_ + capacity_
//   | run (class a) | large block | free extent | run (class b) | run (a) | free ... |
//
// detail::extent_map tiles the pages with spans (free or in use), best fit,
// coalescing, and a page map (page -> first page of its span) for O(1)
// block -> run lookup. runs_[first page] says what a span is (its tag) and,
// for a run, its free list. A run is run_pages_[cls] pages of one class,
// carved lazily: blocks [0, carved) were handed out at least once, the rest
// never, so a new run costs O(1). A run whose blocks are all free again
// becomes its class's spare (one per class, for the next refill) or goes back
// to the extent allocator at once; the spare goes back at the next decay
// period, trim(), or when a request finds the region full.
//
// A free small block, poisoned under ASan as a whole (link word included):
//
//   word 0: next block of the same list (a bin's, or its run's)
//
// Where a small block can be, and who may touch it:
//
//   handed out    -- the caller's
//   thread bin    -- one thread's arena_thread_cache; only that thread pushes and pops
//   its run       -- on the run's free list, or never carved; under pools_[class].mutex
//
// Lock order: registry mutex -> pool mutex -> region_mutex_ -> hardened_mutex_.
// The upstream is called only by the constructor and destructor.

#include "strata/arena.hpp"

#include "thread_cache_registry.hpp"

#include <algorithm>
#include <memory>
#include <new>
#include <utility>

#include <sys/mman.h>
#include <unistd.h>

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

namespace {

// Validates the options (std::invalid_argument naming the field) and rounds
// the capacity to pages: run before any member that depends on them.
arena::options checked_options(arena::options opts) {
  if (opts.capacity < detail::arena_page || opts.capacity > SIZE_MAX / 2 ||
      opts.capacity / detail::arena_page >= std::size_t{UINT32_MAX} - 1) {
    detail::throw_bad_option(resource_name, "capacity",
                             "must be from 4096 to min(SIZE_MAX / 2, 2^32 - 2 pages)");
  }
  if (opts.refill_bytes < 16) {
    detail::throw_bad_option(resource_name, "refill_bytes", "must be at least 16");
  }
  if (opts.cache_bytes_per_class < opts.refill_bytes) {
    detail::throw_bad_option(resource_name, "cache_bytes_per_class", "must be at least refill_bytes");
  }
  if (opts.decay_period.count() < 0) {
    detail::throw_bad_option(resource_name, "decay_period", "must not be negative (0 turns decay off)");
  }
  bool ok = true;
  opts.capacity = detail::round_up(opts.capacity, detail::arena_page, ok);
  return opts;
}

}  // namespace

arena::arena(options opts, std::pmr::memory_resource* upstream)
    : resource(resource_name, upstream),
      options_(checked_options(opts)),
      id_(arena_registry::new_id()),
      fast_id_(detail::memory_tool_present() ? ~std::uint64_t{0} : id_),  // ids never reach ~0
      base_(0),
      capacity_(options_.capacity),
      extents_(options_.capacity / detail::arena_page),
      runs_(new run_info[options_.capacity / detail::arena_page]),
      page_state_(new std::uint8_t[options_.capacity / detail::arena_page]()),
      os_page_(std::max<std::size_t>(static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)), detail::arena_page)),
      decay_(options_.decay_period) {
  detail::check_upstream(resource_name, upstream);
  constexpr std::size_t run_target = std::size_t{64} << 10;
  for (unsigned cls = 0; cls < detail::arena_class_count; ++cls) {
    const std::size_t size = detail::arena_class_size(cls);
    // Bounded so a bin's count fits its 32-bit counter with room to spare.
    constexpr std::size_t most = std::size_t{1} << 24;
    const std::size_t batch = std::clamp<std::size_t>(options_.refill_bytes / size, 1, most);
    batch_[cls] = static_cast<std::uint32_t>(batch);
    // Up to four batches wait in the transfer cache, within
    // cache_bytes_per_class; none for one-block batches (classes above half
    // of refill_bytes), which go straight to their runs.
    transfer_limit_[cls] = batch < 2 ? 0
                                     : static_cast<std::uint32_t>(std::clamp<std::size_t>(
                                           options_.cache_bytes_per_class / (batch * size), 1, 4));
    // At least two batches, so a bin that hands one back still has one;
    // but one block of a class above half of cache_bytes_per_class: a bin of
    // such blocks would hold (and pin their runs) far beyond its byte budget.
    bin_limit_[cls] = size > options_.cache_bytes_per_class / 2
                          ? 1
                          : static_cast<std::uint32_t>(std::clamp<std::size_t>(
                                options_.cache_bytes_per_class / size, 2 * batch, 2 * most));
    // A run: 64 KiB, or one block of the classes above it, but at most an
    // eighth of a small region (one block at least); then the page count up
    // to a quarter more that wastes the least tail.
    const std::size_t target =
        std::max(size, std::min(std::max(run_target, size), std::max(capacity_ / 8, size)));
    const std::size_t least = (target + detail::arena_page - 1) / detail::arena_page;
    std::size_t best = least;
    for (std::size_t pages = least; pages <= least + least / 4; ++pages) {
      const auto waste = [&](std::size_t n) {
        return static_cast<double>(n * detail::arena_page % size) /
               static_cast<double>(n * detail::arena_page);
      };
      if (waste(pages) < waste(best)) best = pages;
    }
    run_pages_[cls] = static_cast<std::uint32_t>(best);
    run_blocks_[cls] = static_cast<std::uint32_t>(best * detail::arena_page / size);
  }
  void* region = detail::allocate_from_upstream(upstream, resource_name, capacity_, detail::arena_page);
  base_ = reinterpret_cast<std::uintptr_t>(region);
  detail::poison_memory(region, capacity_);  // nothing is handed out yet
  if (options_.hardened) codec_ = detail::link_codec{detail::make_link_secret(this)};
  try {
    registry().enroll(id_, *this);
  } catch (...) {
    // The destructor will not run: give the region back before the exception leaves.
    detail::unpoison_memory(region, capacity_);
    upstream->deallocate(region, capacity_, detail::arena_page);
    throw;
  }
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
    // destructors): such calls go straight to the runs, so no cache is left
    // behind that no exit hook would hand back.
    return registry().attach(id_, caches_, true);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

void arena::drain(detail::arena_thread_cache& cache) noexcept {
  flush_cache(cache, true);
  retired_remote_frees_ += remote_lower_bound(cache);
}

// ---------------------------------------------------- flushes and decay

void arena::flush_cache(detail::arena_thread_cache& cache, bool everything) noexcept {
  for (unsigned cls = 0; cls < detail::arena_class_count; ++cls) {
    detail::arena_bin& bin = cache.bins[cls];
    const std::uint32_t count = bin.count.load(std::memory_order_relaxed);
    std::uint32_t keep = 0;
    if (!everything && !(bin.head == cache.decay_head[cls] && count == cache.decay_count[cls])) {
      keep = std::min(count, batch_[cls]);  // in use this period: one batch stays
    }
    if (count > keep) {
      void* rest = bin.head;
      void* last = nullptr;
      for (std::uint32_t i = 0; i < keep; ++i) {
        last = rest;
        rest = link_get(rest, 0);
      }
      if (last != nullptr) link_set(last, 0, nullptr);
      bin.head = keep == 0 ? nullptr : bin.head;
      bin.count.store(keep, std::memory_order_relaxed);
      // A block refused here was counted as a deallocation when it entered
      // the bin: take that back, so a rejected call counts as misuse only.
      late_refusals_.fetch_add(give_blocks(cls, block_list{rest, count - keep}), std::memory_order_relaxed);
    }
    cache.decay_head[cls] = bin.head;
    cache.decay_count[cls] = keep == 0 ? 0 : bin.count.load(std::memory_order_relaxed);
    bin.limit.store(bin_limit_[cls]);  // seq_cst: see serve_flush
  }
}

void arena::serve_flush(detail::arena_thread_cache& cache) noexcept {
  // The requester bumps trim_requests, then zeroes the limits (sequentially
  // consistent, like the restore in flush_cache). If its zeroes land before
  // our restore, its bump is seen by the check below and served in another
  // round; if after, the limits stay 0 and the next push comes back here.
  for (;;) {
    const std::uint32_t trims = cache.trim_requests.load();
    static_cast<void>(cache.take_flush_request());
    flush_cache(cache, trims != cache.trims_served);
    cache.trims_served = trims;
    if (cache.trim_requests.load() == trims) return;
  }
}

void arena::request_flush_all(bool everything) noexcept {
  caches_.request_flush();
  for (detail::arena_thread_cache* cache : caches_.caches()) {
    if (everything) cache->trim_requests.fetch_add(1);
    for (detail::arena_bin& bin : cache->bins) bin.limit.store(0);  // seq_cst: see serve_flush
  }
}

void arena::decay_now() noexcept {
  decays_.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(registry().mutex());
    request_flush_all(false);
  }
  return_spares();
  if (options_.decommit) decommit_free(true);
}

void arena::return_spares() noexcept {
  for (unsigned cls = 0; cls < detail::arena_class_count; ++cls) {
    central_pool& pool = pools_[cls];
    void* batches = nullptr;
    {
      std::lock_guard lock(pool.mutex);
      batches = std::exchange(pool.batches, nullptr);
      pool.batch_count = 0;
    }
    // First the batches: their runs may empty, and become the spare returned next.
    while (batches != nullptr) {
      void* next = link_get(batches, 1);
      late_refusals_.fetch_add(give_blocks(cls, block_list{batches, batch_[cls]}), std::memory_order_relaxed);
      batches = next;
    }
    std::lock_guard lock(pool.mutex);
    if (pool.spare == no_run) continue;
    const std::uint32_t r = pool.spare;
    pool.spare = no_run;
    return_run(cls, r);
  }
}

bool arena::put_batch(unsigned cls, void* head) noexcept {
  central_pool& pool = pools_[cls];
  std::lock_guard lock(pool.mutex);
  if (pool.batch_count >= transfer_limit_[cls]) return false;
  link_set(head, 1, pool.batches);
  pool.batches = head;
  ++pool.batch_count;
  return true;
}

void arena::commit_span(std::size_t first, std::size_t pages) noexcept {
  for (std::size_t i = first; i < first + pages; ++i) {
    if ((page_state_[i] & page_decommitted) != 0) --decommitted_pages_;
    page_state_[i] = page_touched;
  }
}

void arena::decommit_free(bool idle_only) noexcept {
  std::lock_guard lock(region_mutex_);
  // Pages marked decommitted are dropped again: the kernel may have made
  // them resident behind our back (khugepaged collapses a huge page over a
  // range that is partly in use, as seen under valgrind), and madvise on
  // pages already dropped costs a page-table walk, once per period at most.
  const auto may_go = [&](std::size_t page) { return !idle_only || (page_state_[page] & page_touched) == 0; };
  // madvise takes whole OS pages: a range is shrunk to the ones inside it,
  // and only the pages it really dropped are marked.
  const auto drop = [&](std::size_t begin, std::size_t end) {
    const std::uintptr_t low = detail::align_up(base_ + begin * detail::arena_page, os_page_);
    const std::uintptr_t high = (base_ + end * detail::arena_page) & ~(std::uintptr_t{os_page_} - 1);
    if (low >= high) return;
    // MADV_DONTNEED rather than MADV_FREE: the pages leave the resident set
    // now (what a monitor and mincore see), not under memory pressure, and
    // a reuse faults in zero pages, with no call to commit them again.
    if (::madvise(reinterpret_cast<void*>(low), high - low, MADV_DONTNEED) != 0) return;
    ++decommits_;
    for (std::size_t i = (low - base_) / detail::arena_page; i < (high - base_) / detail::arena_page; ++i) {
      if ((page_state_[i] & page_decommitted) != 0) continue;  // counted already
      page_state_[i] |= page_decommitted;
      ++decommitted_pages_;
      bytes_decommitted_ += detail::arena_page;
    }
  };
  extents_.for_each_free([&](std::size_t first, std::size_t length) {
    for (std::size_t i = first, end = first + length; i < end;) {
      while (i < end && !may_go(i)) ++i;
      std::size_t j = i;
      while (j < end && may_go(j)) ++j;
      if (i < j) drop(i, j);
      i = j;
    }
  });
  if (idle_only) {  // a new period starts
    for (std::size_t i = 0; i < extents_.pages(); ++i)
      page_state_[i] = static_cast<std::uint8_t>(page_state_[i] & ~page_touched);
  }
}

void arena::reclaim() noexcept {
  if (detail::arena_thread_cache* mine = registry().find(id_)) flush_cache(*mine, true);
  return_spares();
  std::lock_guard lock(registry().mutex());
  request_flush_all(true);
}

std::size_t arena::trim() noexcept {
  trims_.fetch_add(1, std::memory_order_relaxed);
  const auto returned = [this] {
    std::lock_guard lock(region_mutex_);
    return bytes_returned_;
  };
  const std::uint64_t before = returned();
  {
    std::lock_guard lock(registry().mutex());
    request_flush_all(true);
  }
  if (detail::arena_thread_cache* mine = registry().find(id_)) {
    static_cast<void>(mine->take_flush_request());
    mine->trims_served = mine->trim_requests.load();
    flush_cache(*mine, true);
  }
  return_spares();
  if (options_.decommit) decommit_free(false);
  if (decay_.due()) decays_.fetch_add(1, std::memory_order_relaxed);  // this period's decay is done
  return static_cast<std::size_t>(returned() - before);
}

void arena::release() noexcept {
  {
    std::lock_guard lock(registry().mutex());
    const detail::cache_totals t = caches_.totals();
    // Every block still out is taken back: reported deallocations catch up with allocations.
    released_blocks_ = t.allocations - t.deallocations;
    for (detail::arena_thread_cache* cache : caches_.caches()) {
      for (unsigned cls = 0; cls < detail::arena_class_count; ++cls) {
        detail::arena_bin& bin = cache->bins[cls];
        bin.head = nullptr;
        bin.count.store(0, std::memory_order_relaxed);
        bin.limit.store(0, std::memory_order_relaxed);  // set again at the thread's next slow path
        cache->decay_head[cls] = nullptr;
        cache->decay_count[cls] = 0;
      }
    }
    caches_.forget_bytes_in_use();
    caches_.reset_peak();
  }
  for (central_pool& pool : pools_) {
    std::lock_guard lock(pool.mutex);
    pool.partial = no_run;
    pool.spare = no_run;
    pool.runs = 0;
    pool.free_blocks = 0;
    pool.batches = nullptr;
    pool.batch_count = 0;
  }
  {
    std::lock_guard lock(region_mutex_);
    const std::size_t pages = capacity_ / detail::arena_page;
    for (std::size_t i = 0; i < pages; ++i) {
      run_info& r = runs_[i];
      r.tag.store(0, std::memory_order_relaxed);
      r.prev = r.next = no_run;
      r.carved = r.listed = 0;
      r.in_partial = r.cut = false;
      r.free = nullptr;
    }
    extents_.reset();
    large_live_ = 0;
    large_live_bytes_ = 0;
  }
  {
    std::lock_guard lock(hardened_mutex_);
    handed_out_.clear();
  }
  detail::poison_memory(reinterpret_cast<void*>(base_), capacity_);
  if (options_.decommit) decommit_free(false);
  STRATA_ASSERT(invariants_hold(), "arena books drifted in release()");
}

// -------------------------------------------------------------- allocation

void* arena::allocate_slow(std::size_t bytes, std::size_t alignment) {
  // First what the inline path leaves to us only for its table's sake: a
  // class above 1 KiB or aligned to more than 16, with a block in this
  // thread's bin (hardened mode never arms the slot, so it never gets here).
  if (detail::is_power_of_two(alignment)) {
    const unsigned cls = detail::arena_class_for(bytes, alignment);
    const detail::arena_cache_slot& slot = detail::current_thread_cache<detail::arena_thread_cache>;
    if (cls != detail::arena_large && slot.owner_id == id_ &&
        !slot.cache->flush_requested.load(std::memory_order_relaxed)) {
      if (void* p = detail::arena_pop(*slot.cache, cls, bytes)) return p;
    }
  }
  detail::check_alignment(resource_name, alignment);
  if (decay_.due()) [[unlikely]]
    decay_now();
  const unsigned cls = detail::arena_class_for(bytes, alignment);
  void* p = nullptr;
  detail::arena_thread_cache* cache = nullptr;
  try {
    if (cls == detail::arena_large) {
      p = large_allocate(bytes, alignment);
    } else if (options_.hardened || (cache = attach()) == nullptr) {
      // One block at a time, straight from the class's runs.
      p = take_blocks(cls, 1, bytes, alignment).head;
      detail::unpoison_memory(p, detail::arena_class_size(cls));
    } else {
      detail::arena_bin& bin = cache->bins[cls];
      if (cache->flush_requested.load(std::memory_order_relaxed) ||
          bin.limit.load(std::memory_order_relaxed) == 0) {
        serve_flush(*cache);
      }
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
          give_blocks(cls, block_list{p, 1});
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
// open one link word at a time. Hardened mode stores every link of the runs'
// free lists encoded (detail/free_list.hpp: the word's own address takes
// part), so a use-after-free that writes a plausible pointer into a free
// block does not decode to it; the thread bins (never used when hardened)
// and the inline fast paths keep plain links.
[[gnu::always_inline]] inline std::uintptr_t arena::link_word(const void* at,
                                                              const void* value) const noexcept {
  return options_.hardened ? codec_.encode(at, value) : reinterpret_cast<std::uintptr_t>(value);
}

[[gnu::always_inline]] inline void* arena::link_get(void* block, unsigned word) const noexcept {
  auto* link = static_cast<std::uintptr_t*>(block) + word;
  detail::unpoison_memory(link, sizeof(void*));
  const std::uintptr_t value = *link;
  detail::poison_memory(link, sizeof(void*));
  return options_.hardened ? codec_.decode(link, value) : reinterpret_cast<void*>(value);
}

[[gnu::always_inline]] inline void arena::link_set(void* block, unsigned word, void* value) const noexcept {
  auto* link = static_cast<std::uintptr_t*>(block) + word;
  detail::unpoison_memory(link, sizeof(void*));
  *link = link_word(link, value);
  detail::poison_memory(link, sizeof(void*));
}

[[gnu::always_inline]] inline std::uint32_t arena::run_of(const void* p, unsigned cls,
                                                          std::size_t* index) const noexcept {
  if (!contains(p)) return no_run;
  const std::size_t offset = reinterpret_cast<std::uintptr_t>(p) - base_;
  const std::size_t page = offset / detail::arena_page;
  const std::uint32_t r = extents_.head_of(page);
  if (r > page || page - r >= run_pages_[cls]) return no_run;
  if (runs_[r].tag.load(std::memory_order_relaxed) != cls + 1) return no_run;
  const std::size_t size = detail::arena_class_size(cls);
  const std::size_t within = offset - std::size_t{r} * detail::arena_page;
  if (within % size != 0 || within / size >= run_blocks_[cls]) return no_run;
  if (index != nullptr) *index = within / size;
  return r;
}

void arena::link_partial(unsigned cls, std::uint32_t r) noexcept {
  central_pool& pool = pools_[cls];
  run_info& run = runs_[r];
  run.prev = no_run;
  run.next = pool.partial;
  if (pool.partial != no_run) runs_[pool.partial].prev = r;
  pool.partial = r;
  run.in_partial = true;
}

void arena::unlink_partial(unsigned cls, std::uint32_t r) noexcept {
  central_pool& pool = pools_[cls];
  run_info& run = runs_[r];
  if (run.prev != no_run) {
    runs_[run.prev].next = run.next;
  } else {
    pool.partial = run.next;
  }
  if (run.next != no_run) runs_[run.next].prev = run.prev;
  run.prev = run.next = no_run;
  run.in_partial = false;
}

std::uint32_t arena::new_run(unsigned cls) noexcept {
  std::size_t first;
  {
    std::lock_guard lock(region_mutex_);
    first = extents_.allocate(run_pages_[cls]);
    if (first == detail::extent_map::npos) return no_run;
    run_info& run = runs_[first];
    run.prev = run.next = no_run;
    run.carved = run.listed = 0;
    run.in_partial = run.cut = false;
    run.free = nullptr;
    run.tag.store(cls + 1, std::memory_order_relaxed);
    commit_span(first, run_pages_[cls]);
  }
  central_pool& pool = pools_[cls];
  ++pool.runs;
  pool.free_blocks += run_blocks_[cls];
  return static_cast<std::uint32_t>(first);
}

void arena::return_run(unsigned cls, std::uint32_t r) noexcept {
  central_pool& pool = pools_[cls];
  if (runs_[r].in_partial) unlink_partial(cls, r);
  --pool.runs;
  pool.free_blocks -= run_blocks_[cls];
  std::lock_guard lock(region_mutex_);
  runs_[r].tag.store(0, std::memory_order_relaxed);
  runs_[r].free = nullptr;
  const bool ok = extents_.deallocate(r);
  STRATA_ASSERT(ok, "arena returned a run the extent map does not hold");
  static_cast<void>(ok);
  ++runs_returned_;
  bytes_returned_ += std::size_t{run_pages_[cls]} * detail::arena_page;
}

void arena::take_from_run(unsigned cls, std::uint32_t r, std::size_t want, block_list& out) noexcept {
  central_pool& pool = pools_[cls];
  run_info& run = runs_[r];
  const std::size_t size = detail::arena_class_size(cls);
  while (want != 0 && run.listed != 0) {
    void* b = run.free;
    void* next = link_get(b, 0);
    --run.listed;
    --pool.free_blocks;
    // A link to the block itself passes link_valid (it is neither listed
    // nor recorded yet) and would hand the block out twice.
    if (options_.hardened && (next == b || !link_valid(next, cls, r, run.listed == 0))) {
      // A bad link cuts the list: the blocks behind it stay unused, and the
      // run never empties (so never returns) until release() or destruction.
      reject_link(next, cls);
      pool.free_blocks -= run.listed;
      run.listed = 0;
      run.cut = true;
      next = nullptr;
    }
    run.free = next;
    link_set(b, 0, out.head);
    out.head = b;
    ++out.count;
    --want;
  }
  while (want != 0 && run.carved < run_blocks_[cls]) {
    void* b = run_start(r) + std::size_t{run.carved} * size;
    ++run.carved;
    --pool.free_blocks;
    link_set(b, 0, out.head);
    out.head = b;
    ++out.count;
    --want;
  }
  if (run.listed == 0 && run.carved == run_blocks_[cls] && run.in_partial) unlink_partial(cls, r);
}

std::size_t arena::take_blocks_once(unsigned cls, std::size_t want, block_list& out) {
  central_pool& pool = pools_[cls];
  std::lock_guard lock(pool.mutex);
  if (pool.batches != nullptr && want == batch_[cls] && out.count == 0) {
    // A whole batch from the transfer cache: O(1), whatever its runs.
    out.head = pool.batches;
    out.count = want;
    pool.batches = link_get(out.head, 1);
    --pool.batch_count;
    return want;
  }
  while (out.count < want) {
    std::uint32_t r = pool.partial;
    if (r == no_run) {
      if (pool.spare != no_run) {
        r = pool.spare;
        pool.spare = no_run;
      } else if ((r = new_run(cls)) == no_run) {
        break;
      }
      link_partial(cls, r);
    }
    take_from_run(cls, r, want - out.count, out);
    if (runs_[r].in_partial && out.count < want) {
      // Nothing more in r (a cut list): it stays out of the partial list.
      unlink_partial(cls, r);
    }
  }
  return out.count;
}

arena::block_list arena::take_blocks(unsigned cls, std::size_t want, std::size_t bytes,
                                     std::size_t alignment) {
  block_list out;
  if (take_blocks_once(cls, want, out) == 0) {
    // The region is full: give back what this thread and the spares hold, and retry.
    reclaim();
    if (take_blocks_once(cls, want, out) == 0) {
      detail::throw_allocation_failure(resource_name, bytes, alignment, failure_reason::capacity);
    }
  }
  return out;
}

std::size_t arena::give_blocks(unsigned cls, block_list list) noexcept {
  central_pool& pool = pools_[cls];
  std::lock_guard lock(pool.mutex);
  // run_of, with the class's figures hoisted and the previous block's run
  // tried first (a batch's blocks mostly share a few runs).
  const std::size_t size = detail::arena_class_size(cls);
  const std::uint32_t pages = run_pages_[cls];
  const std::uint32_t blocks = run_blocks_[cls];
  std::uint32_t last = no_run;  // a run of cls, checked, still of cls (we hold its class's mutex)
  std::size_t refused = 0;
  void* b = list.head;
  for (std::size_t i = 0; i < list.count && b != nullptr; ++i) {
    void* next = link_get(b, 0);
    const std::size_t offset = reinterpret_cast<std::uintptr_t>(b) - base_;
    const std::size_t page = offset / detail::arena_page;
    std::uint32_t r = last;
    if (offset >= capacity_) {
      r = no_run;
    } else if (r == no_run || page - r >= pages) {
      r = extents_.head_of(page);
      if (r > page || page - r >= pages || runs_[r].tag.load(std::memory_order_relaxed) != cls + 1)
        r = no_run;
    }
    std::size_t index = 0;
    if (r != no_run) {
      const std::size_t within = offset - std::size_t{r} * detail::arena_page;
      index = within / size;
      if (within % size != 0 || index >= blocks) r = no_run;
    }
    last = r;
    run_info* run = r == no_run ? nullptr : &runs_[r];
    if (run == nullptr || index >= run->carved || run->listed >= run->carved) {
      // Provably not a free-able block of this class (a wrong size or a
      // double free the default mode let into a bin): dropped, never obeyed.
      reject(run == nullptr ? misuse_kind::size_mismatch : misuse_kind::double_free, b,
             detail::arena_class_size(cls), detail::arena_class_alignment(cls));
      ++refused;
      b = next;
      continue;
    }
    link_set(b, 0, run->free);
    run->free = b;
    ++run->listed;
    ++pool.free_blocks;
    if (run->listed == run->carved && !run->cut) {
      // Empty: the class's spare, or back to the extent allocator.
      if (run->in_partial) unlink_partial(cls, r);
      if (pool.spare == no_run && run_blocks_[cls] > 1) {  // a one-block run is no cheaper to keep
        run->carved = 0;                                   // carved lazily again; its blocks stay poisoned
        run->listed = 0;
        run->free = nullptr;
        pool.spare = r;
      } else {
        return_run(cls, r);
      }
      last = no_run;
    } else if (!run->in_partial) {
      link_partial(cls, r);
    }
    b = next;
  }
  return refused;
}

// ------------------------------------------------------------ large path

void* arena::large_allocate(std::size_t bytes, std::size_t alignment) {
  bool ok = true;
  const std::size_t size = detail::round_up(std::max<std::size_t>(bytes, 1), detail::arena_page, ok);
  if (!ok) detail::throw_allocation_failure(resource_name, bytes, alignment, failure_reason::size_overflow);
  // An alignment above the capacity cannot be met inside the region (and
  // would overflow the address arithmetic): it fails as capacity.
  if (size <= capacity_ && alignment <= capacity_) {
    // Alignment in pages, and the phase that turns page indices into
    // addresses: the region itself is only page-aligned.
    const std::size_t align = std::max(alignment, detail::arena_page) / detail::arena_page;
    const std::size_t phase = (base_ / detail::arena_page) & (align - 1);
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::size_t first = detail::extent_map::npos;
      {
        std::lock_guard lock(region_mutex_);
        first = extents_.allocate(size / detail::arena_page, align, phase);
        if (first != detail::extent_map::npos) {
          runs_[first].tag.store(large_tag, std::memory_order_relaxed);
          commit_span(first, size / detail::arena_page);
          ++large_live_;
          large_live_bytes_ += size;
        }
      }
      if (first != detail::extent_map::npos) {
        void* p = run_start(static_cast<std::uint32_t>(first));
        detail::unpoison_memory(p, size);
        return p;
      }
      if (attempt == 0) reclaim();
    }
  }
  detail::throw_allocation_failure(resource_name, bytes, alignment, failure_reason::capacity);
}

bool arena::large_deallocate(void* p, std::size_t bytes) noexcept {
  if (bytes > capacity_) return false;
  bool ok = true;
  const std::size_t size = detail::round_up(std::max<std::size_t>(bytes, 1), detail::arena_page, ok);
  const std::size_t offset = reinterpret_cast<std::uintptr_t>(p) - base_;
  if (offset % detail::arena_page != 0) return false;
  const std::size_t first = offset / detail::arena_page;
  std::lock_guard lock(region_mutex_);
  if (!extents_.in_use_head(first) || runs_[first].tag.load(std::memory_order_relaxed) != large_tag ||
      extents_.length(first) * detail::arena_page != size) {
    return false;
  }
  runs_[first].tag.store(0, std::memory_order_relaxed);
  --large_live_;
  large_live_bytes_ -= size;
  bytes_returned_ += size;
  detail::poison_memory(p, size);
  extents_.deallocate(first);
  return true;
}

// ------------------------------------------------------------ deallocation

void arena::deallocate_slow(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  // First, as in allocate_slow, the classes outside the inline path's table,
  // into this thread's bin while it has room.
  if (detail::is_power_of_two(alignment) && contains(p)) {
    const unsigned cls = detail::arena_class_for(bytes, alignment);
    const detail::arena_cache_slot& slot = detail::current_thread_cache<detail::arena_thread_cache>;
    if (cls != detail::arena_large && slot.owner_id == id_ &&
        detail::arena_push(*slot.cache, cls, p, bytes)) {
      return;
    }
  }
  if (!detail::is_power_of_two(alignment)) {
    reject(misuse_kind::alignment_mismatch, p, bytes, alignment);
    return;
  }
  if (!contains(p)) {
    reject(misuse_kind::unknown_pointer, p, bytes, alignment);
    return;
  }
  if (options_.hardened && !release_block(p, bytes, alignment)) return;  // rejected there
  if (decay_.due()) [[unlikely]]
    decay_now();
  const unsigned cls = detail::arena_class_for(bytes, alignment);
  if (cls == detail::arena_large) {
    // Every large block is in the page map, so a stranger or a second free is provable.
    if (!large_deallocate(p, bytes)) {
      reject(misuse_kind::unknown_pointer, p, bytes, alignment);
      return;
    }
    count_deallocation(attach(), bytes);
    STRATA_ASSERT_EXPENSIVE(invariants_hold(), "arena books drifted");
    return;
  }
  // Without a cache (hardened, exiting thread, no memory for one) the block
  // goes straight to its run.
  detail::arena_thread_cache* cache = attach();
  if (cache == nullptr) {
    detail::poison_memory(p, detail::arena_class_size(cls));
    link_set(p, 0, nullptr);  // encoded when hardened
    if (give_blocks(cls, block_list{p, 1}) == 0) count_deallocation(nullptr, bytes);
    return;
  }
  detail::arena_bin& bin = cache->bins[cls];
  if (cache->flush_requested.load(std::memory_order_relaxed) ||
      bin.limit.load(std::memory_order_relaxed) == 0) {
    serve_flush(*cache);
  }
  *static_cast<void**>(p) = bin.head;
  detail::poison_memory(p, detail::arena_class_size(cls));
  bin.head = p;
  std::uint32_t count = bin.count.load(std::memory_order_relaxed) + 1;
  if (count > bin_limit_[cls]) {
    // Full: the newest batch_ blocks go back to their runs, so a thread that
    // frees what others allocated hands them back in bulk.
    const std::uint32_t batch = batch_[cls];
    void* last = p;
    for (std::uint32_t i = 1; i < batch; ++i) last = link_get(last, 0);
    bin.head = link_get(last, 0);
    link_set(last, 0, nullptr);
    count -= batch;
    if (!put_batch(cls, p)) {
      late_refusals_.fetch_add(give_blocks(cls, block_list{p, batch}), std::memory_order_relaxed);
    }
  }
  bin.count.store(count, std::memory_order_relaxed);
  cache->on_deallocate(bytes);
}

// ---------------------------------------------------------- hardened mode

void arena::record_block(void* p, std::size_t bytes, std::size_t alignment) {
  std::lock_guard lock(hardened_mutex_);
  handed_out_[p] = block_record{bytes, alignment};
}

bool arena::release_block(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  misuse_kind wrong{};
  {
    std::lock_guard lock(hardened_mutex_);
    const auto it = handed_out_.find(p);
    if (it != handed_out_.end()) {
      if (it->second.bytes != bytes) {
        wrong = misuse_kind::size_mismatch;
      } else if (it->second.alignment != alignment) {
        wrong = misuse_kind::alignment_mismatch;
      } else {
        handed_out_.erase(it);  // forgotten: the page map tells a second free from a stranger
        return true;
      }
    }
  }
  if (wrong == misuse_kind{}) {
    // Not handed out: a second free if p is where a block starts (a block
    // boundary of a run, or a page not inside a live large block), else a stranger.
    wrong = misuse_kind::unknown_pointer;
    const unsigned cls = detail::arena_class_for(bytes, alignment);
    if (cls != detail::arena_large) {
      std::lock_guard lock(pools_[cls].mutex);
      if (run_of(p, cls, nullptr) != no_run) wrong = misuse_kind::double_free;
    } else if ((reinterpret_cast<std::uintptr_t>(p) - base_) % detail::arena_page == 0) {
      const std::size_t page = (reinterpret_cast<std::uintptr_t>(p) - base_) / detail::arena_page;
      std::lock_guard lock(region_mutex_);
      const std::uint32_t head = extents_.head_of(page);
      const bool inside = head <= page && extents_.in_use_head(head) && page - head < extents_.length(head);
      if (!inside) wrong = misuse_kind::double_free;
    }
  }
  reject(wrong, p, bytes, alignment);
  return false;
}

bool arena::link_valid(const void* next, unsigned cls, std::uint32_t r, bool should_end) const noexcept {
  if (next == nullptr || should_end) return next == nullptr && should_end;
  std::size_t index = 0;
  // Only a block of this very run, carved, and not handed out, may follow.
  if (run_of(next, cls, &index) != r || index >= runs_[r].carved) return false;
  std::lock_guard lock(hardened_mutex_);
  return !handed_out_.contains(next);
}

void arena::reject_link(const void* next, unsigned cls) noexcept {
  reject(misuse_kind::unknown_pointer, const_cast<void*>(next), detail::arena_class_size(cls),
         detail::arena_class_alignment(cls));
}

// --------------------------------------------------------------- counting

void arena::count_allocation(detail::arena_thread_cache* cache, std::size_t bytes) noexcept {
  if (cache != nullptr) {
    cache->on_allocate(bytes);
    return;
  }
  // Lock-free, and raises the peak by what calls without a cache hold. In
  // hardened mode no thread has a cache, so that is everything: exact.
  caches_.count_cacheless_allocation(bytes);
  if (options_.hardened) return;
  // An exiting thread: raise the peak by the whole total. O(caches).
  std::lock_guard lock(registry().mutex());
  const auto in_use = static_cast<std::int64_t>(caches_.totals().bytes_in_use);
  if (in_use > 0) caches_.raise_peak(static_cast<std::size_t>(in_use));
}

void arena::count_deallocation(detail::arena_thread_cache* cache, std::size_t bytes) noexcept {
  if (cache != nullptr) {
    cache->on_deallocate(bytes);
    return;
  }
  caches_.count_cacheless_deallocation(bytes);  // lock-free
}

void arena::reject(misuse_kind kind, void* p, std::size_t bytes, std::size_t alignment) noexcept {
  rejected_.fetch_add(1, std::memory_order_relaxed);
  report_misuse({resource_name, kind, p, bytes, alignment});
}

// --------------------------------------------------------------- observers

resource_stats arena::do_stats() const noexcept {
  resource_stats s;
  detail::cache_totals t;
  std::uint64_t released = 0;
  {
    std::lock_guard lock(registry().mutex());
    t = caches_.totals();
    released = released_blocks_;
  }
  const std::uint64_t rejected = rejected_.load(std::memory_order_relaxed);
  s.allocations = t.allocations;
  // A rejected call is misuse only, including one refused after its bin took it.
  s.deallocations = t.deallocations + released - late_refusals_.load(std::memory_order_relaxed);
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
    c.runs = pools_[cls].runs;
    c.central_blocks = pools_[cls].free_blocks;
    c.central_bytes = c.central_blocks * c.block_size;
    c.transfer_blocks = std::size_t{pools_[cls].batch_count} * batch_[cls];
    d.runs += c.runs;
    if (pools_[cls].spare != no_run) ++d.empty_runs_kept;
  }
  d.trims = trims_.load(std::memory_order_relaxed);
  d.decays = decays_.load(std::memory_order_relaxed);
  std::lock_guard lock(region_mutex_);
  d.remaining = extents_.free_pages() * detail::arena_page;
  d.free_extents = extents_.free_spans();
  d.largest_free_extent = extents_.largest_free() * detail::arena_page;
  d.large_live = large_live_;
  d.large_live_bytes = large_live_bytes_;
  d.runs_returned = runs_returned_;
  d.bytes_committed = capacity_ - decommitted_pages_ * detail::arena_page;
  d.decommits = decommits_;
  d.bytes_decommitted = bytes_decommitted_;
  return d;
}

bool arena::invariants_hold() const noexcept {
  std::lock_guard lock(region_mutex_);
  if (extents_.free_pages() > extents_.pages()) return false;
  if (large_live_bytes_ > capacity_) return false;
#if defined(STRATA_EXPENSIVE_CHECKS)
  if (!extents_.invariants_hold()) return false;
#endif
  return true;
}

}  // namespace strata
