// SPDX-License-Identifier: MIT
// extendable_slab: segments, thread-cache lifetime, refill/flush, reclamation
// and statistics.
//
// A segment, as obtained from the upstream (segment_bytes, aligned to itself):
//
//   segment                header_bytes_   + colour           + colour + slots x stride
//   | xslab_segment | bits* | pad |  colour  | slot | slot | ... | slot |  slack  |
//                                           ^ first_slot               ^ end
//   * hardened mode only: one "handed out" bit per slot.
//
// The header is found by masking a slot's address with ~(segment_bytes - 1).
// Its tag (segment_magic ^ slab id) is checked before it is trusted, and only
// after the masked address was found in segments_ (or in the lock-free table
// on the fast path), so a foreign pointer never makes us read memory that is
// not ours. The colour (a multiple of the cache line) differs between
// successive segments so that their first slots do not all map to the same
// cache sets; it uses slack the slot count leaves anyway.
//
// Where a slot can be:
//   handed out   -- the caller's; counted in its segment's `used`
//   thread cache -- one thread's magazine (only that thread pushes and pops);
//                   also counted in `used`, so its segment is never empty
//   segment list -- its segment's free list, under mutex_ (links encoded when hardened)
//   uncarved     -- from its segment's `fresh` to `end`
//
// Lock order: registry mutex -> mutex_. No lock is held while calling the upstream.

#include "strata/extendable_slab.hpp"

#include "strata/detail/thread_cache.hpp"
#include "thread_cache_registry.hpp"

#include <algorithm>
#include <bit>
#include <unordered_map>

namespace strata {

namespace detail {

enum class segment_list : std::uint8_t { partial, empty, full };

struct xslab_segment {
  std::uintptr_t tag;   // segment_magic ^ owner id: a segment of this slab
  xslab_segment* prev;  // in the list named by `list`
  xslab_segment* next;
  std::byte* first_slot;
  std::byte* fresh;          // first uncarved slot
  std::byte* end;            // one past the last slot
  void* free_head;           // free slots (encoded links when hardened)
  std::uint64_t* live_bits;  // hardened: one bit per slot, in the header area; else nullptr
  std::uint32_t slots;
  std::uint32_t used;        // slots handed to callers or thread caches
  std::uint32_t free_count;  // length of free_head's list
  segment_list list;
  std::size_t colour_offset;
  std::int64_t empty_since;  // on the empty list: when decay began counting (decay_clock ns); 0: not yet
};

}  // namespace detail

namespace {

constexpr std::string_view resource_name = "extendable_slab";
constexpr std::uintptr_t segment_magic = 0x5e65'a11c'51ab'0000u;
constexpr std::size_t cache_line = 64;
constexpr std::size_t default_segment_bytes = std::size_t{64} << 10;
constexpr std::size_t default_colours = 8;  // cache lines of slack the automatic geometry keeps
constexpr unsigned initial_table_bits = 6;

// Header arithmetic on sizes far below SIZE_MAX: no overflow check needed.
constexpr std::size_t round_up_to(std::size_t value, std::size_t alignment) noexcept {
  return (value + alignment - 1) & ~(alignment - 1);
}

void push_link(void* slot, void*& head) noexcept {
  detail::unpoison_memory(slot, sizeof(void*));
  *static_cast<void**>(slot) = head;
  head = slot;
}

}  // namespace

// Segment bookkeeping; every function requires mutex_ unless it says otherwise.
struct xslab_impl {
  using segment = detail::xslab_segment;
  using list = detail::segment_list;

  static segment*& head_of(extendable_slab& s, list which) noexcept {
    return which == list::partial ? s.partial_ : which == list::empty ? s.empty_ : s.full_;
  }
  static void link(extendable_slab& s, segment* seg, list which) noexcept {
    segment*& head = head_of(s, which);
    seg->list = which;
    seg->prev = nullptr;
    seg->next = head;
    if (head != nullptr) head->prev = seg;
    head = seg;
    if (which == list::empty) {
      if (s.empty_oldest_ == nullptr) s.empty_oldest_ = seg;
      seg->empty_since = 0;  // dated by the next end_operation that needs it
      ++s.empty_count_;
    }
  }
  static void unlink(extendable_slab& s, segment* seg) noexcept {
    if (seg->prev != nullptr) {
      seg->prev->next = seg->next;
    } else {
      head_of(s, seg->list) = seg->next;
    }
    if (seg->next != nullptr) seg->next->prev = seg->prev;
    if (seg->list == list::empty) {
      if (s.empty_oldest_ == seg) s.empty_oldest_ = seg->prev;
      --s.empty_count_;
    }
  }
  // Moves seg to the list its occupancy calls for.
  static void relist(extendable_slab& s, segment* seg) noexcept {
    const list want = seg->used == 0                                        ? list::empty
                      : seg->free_head == nullptr && seg->fresh == seg->end ? list::full
                                                                            : list::partial;
    if (want == seg->list) return;
    unlink(s, seg);
    link(s, seg, want);
  }

  [[nodiscard]] static std::size_t index_of(const extendable_slab& s, const segment* seg,
                                            const void* p) noexcept {
    return static_cast<std::size_t>(static_cast<const std::byte*>(p) - seg->first_slot) / s.stride_;
  }
  [[nodiscard]] static bool on_slot_boundary(const extendable_slab& s, const segment* seg,
                                             const void* p) noexcept {
    const auto* b = static_cast<const std::byte*>(p);
    return b >= seg->first_slot && b < seg->fresh &&
           static_cast<std::size_t>(b - seg->first_slot) % s.stride_ == 0;
  }

  // Takes one slot from seg (its free list, else its fresh part), validating
  // hardened links; nullptr when seg has none. The slot stays poisoned.
  static void* take_slot(extendable_slab& s, segment* seg) noexcept {
    void* p = seg->free_head;
    if (p != nullptr) {
      detail::unpoison_memory(p, sizeof(void*));
      const std::uintptr_t word = *static_cast<std::uintptr_t*>(p);
      detail::poison_memory(p, sizeof(void*));
      if (s.options_.hardened) {
        void* next = s.codec_.decode(p, word);
        const bool valid = next == nullptr
                               ? seg->free_count == 1
                               : seg->free_count > 1 && on_slot_boundary(s, seg, next) &&
                                     !detail::slot_bits{seg->live_bits}.test(index_of(s, seg, next));
        if (!valid) {
          // Cut the list after p (validated when it became the head): the
          // slots behind the bad link are lost, never handed out wild.
          s.corrupted_links_.fetch_add(1, std::memory_order_relaxed);
          s.lost_slots_ += seg->free_count - 1;
          seg->free_count = 0;
          seg->free_head = nullptr;
          s.central_.on_misuse();
          report_misuse({resource_name, misuse_kind::unknown_pointer, next, s.options_.slot_size,
                         s.options_.slot_alignment});
        } else {
          seg->free_head = next;
          --seg->free_count;
        }
        detail::slot_bits{seg->live_bits}.set(index_of(s, seg, p));
      } else {
        seg->free_head = reinterpret_cast<void*>(word);
        --seg->free_count;
      }
    } else if (seg->fresh != seg->end) {
      p = seg->fresh;
      seg->fresh += s.stride_;
      if (s.options_.hardened) detail::slot_bits{seg->live_bits}.set(index_of(s, seg, p));
    } else {
      return nullptr;
    }
    ++seg->used;
    return p;
  }

  // Returns a slot to seg's free list; the slot is poisoned.
  static void put_slot(extendable_slab& s, segment* seg, void* p) noexcept {
    detail::unpoison_memory(p, sizeof(void*));
    if (s.options_.hardened) {
      *static_cast<std::uintptr_t*>(p) = s.codec_.encode(p, seg->free_head);
      detail::slot_bits{seg->live_bits}.clear(index_of(s, seg, p));
    } else {
      *static_cast<void**>(p) = seg->free_head;
    }
    detail::poison_memory(p, s.stride_);
    seg->free_head = p;
    ++seg->free_count;
    --seg->used;
    relist(s, seg);
  }

  // Takes one slot, preferring first, then partial segments, then empty ones.
  static void* take_any(extendable_slab& s, segment* first = nullptr) noexcept {
    if (first != nullptr) {
      void* p = take_slot(s, first);
      relist(s, first);
      if (p != nullptr) return p;
    }
    for (;;) {
      segment* seg = s.partial_ != nullptr ? s.partial_ : s.empty_;
      if (seg == nullptr) return nullptr;
      void* p = take_slot(s, seg);
      relist(s, seg);  // a list cut by a corrupt link may leave seg full
      if (p != nullptr) return p;
    }
  }

  // The segment holding p, proven by the sorted list before its header is read.
  [[nodiscard]] static segment* find(const extendable_slab& s, const void* p) noexcept {
    const auto address = reinterpret_cast<segment*>(s.segment_of(p));
    const auto at = std::lower_bound(s.segments_.begin(), s.segments_.end(), address);
    if (at == s.segments_.end() || *at != address) return nullptr;
    STRATA_ASSERT(address->tag == (segment_magic ^ s.id_), "segment header overwritten");
    return address->tag == (segment_magic ^ s.id_) ? address : nullptr;
  }

  // ------------------------------------------------------- segment table

  static detail::segment_table& current_table(extendable_slab& s) noexcept { return *s.tables_.back(); }

  static void table_insert(extendable_slab& s, std::uintptr_t address) {
    detail::segment_table* table = &current_table(s);
    if ((s.table_used_ + 1) * 2 > table->capacity()) {
      // Rebuild at double size; the old table stays alive for readers that loaded it.
      auto bigger = std::make_unique<detail::segment_table>(table->bits() + 1);
      for (const segment* seg : s.segments_) raw_insert(*bigger, reinterpret_cast<std::uintptr_t>(seg));
      s.tables_.reserve(s.tables_.size() + 1);
      table = bigger.get();
      s.tables_.push_back(std::move(bigger));
    }
    raw_insert(*table, address);
    ++s.table_used_;
    s.table_word_.store(table->word(), std::memory_order_release);
  }
  static void raw_insert(detail::segment_table& table, std::uintptr_t address) noexcept {
    const std::size_t mask = table.capacity() - 1;
    std::size_t i = detail::segment_table::home(address, table.bits());
    while (table.entry(i).load(std::memory_order_relaxed) != 0) i = (i + 1) & mask;
    table.entry(i).store(address, std::memory_order_relaxed);
  }
  // Linear-probing deletion by shifting later entries back (no tombstones).
  static void table_erase(extendable_slab& s, std::uintptr_t address) noexcept {
    detail::segment_table& table = current_table(s);
    const std::size_t mask = table.capacity() - 1;
    const auto home = [&](std::uintptr_t a) { return detail::segment_table::home(a, table.bits()); };
    std::size_t i = home(address);
    while (table.entry(i).load(std::memory_order_relaxed) != address) i = (i + 1) & mask;
    for (std::size_t j = i;;) {
      j = (j + 1) & mask;
      const std::uintptr_t entry = table.entry(j).load(std::memory_order_relaxed);
      if (entry == 0) break;
      const std::size_t k = home(entry);
      // Move entry back into the hole unless its home lies cyclically in (i, j].
      const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
      if (!stays) {
        table.entry(i).store(entry, std::memory_order_relaxed);
        i = j;
      }
    }
    table.entry(i).store(0, std::memory_order_relaxed);
    --s.table_used_;
  }

  // ---------------------------------------------------- growth and reclaim

  // Obtains one segment from the upstream. Requires: mutex_ not held.
  static std::byte* obtain(extendable_slab& s) {
    const std::size_t bytes = s.segment_bytes();
    if (s.growers_.fetch_add(1, std::memory_order_relaxed) != 0) {
      s.concurrent_growths_.fetch_add(1, std::memory_order_relaxed);  // bounded: one per grower
    }
    std::byte* memory = nullptr;
    try {
      memory = static_cast<std::byte*>(
          detail::allocate_from_upstream(s.upstream_resource(), resource_name, bytes, bytes));
    } catch (...) {
      s.growers_.fetch_sub(1, std::memory_order_relaxed);
      throw;
    }
    s.growers_.fetch_sub(1, std::memory_order_relaxed);
    s.central_.on_upstream_allocate(bytes);
    s.growth_events_.fetch_add(1, std::memory_order_relaxed);
    STRATA_ASSERT(detail::is_aligned(memory, bytes), "upstream ignored the segment alignment");
    return memory;
  }

  // Formats memory as an empty segment and adds it. Throws std::bad_alloc
  // (bookkeeping memory) leaving the slab as it was.
  static segment* add(extendable_slab& s, std::byte* memory) {
    s.segments_.reserve(s.segments_.size() + 1);
    auto* seg = reinterpret_cast<segment*>(memory);
    table_insert(s, reinterpret_cast<std::uintptr_t>(seg));  // may throw before anything changed
    s.segments_.insert(std::lower_bound(s.segments_.begin(), s.segments_.end(), seg), seg);
    const std::size_t colour = (s.growth_count_++ % s.colour_count_) * s.colour_step_;
    seg->tag = segment_magic ^ s.id_;
    seg->first_slot = memory + s.header_bytes_ + colour;
    seg->fresh = seg->first_slot;
    seg->slots = static_cast<std::uint32_t>(s.options_.slots_per_segment);
    seg->end = seg->first_slot + seg->slots * s.stride_;
    seg->free_head = nullptr;
    seg->used = 0;
    seg->free_count = 0;
    seg->colour_offset = colour;
    seg->live_bits = nullptr;
    if (s.options_.hardened) {
      seg->live_bits = reinterpret_cast<std::uint64_t*>(memory + round_up_to(sizeof(segment), 8));
      std::fill_n(seg->live_bits, detail::slot_bits::words_for(seg->slots), std::uint64_t{0});
    }
    detail::poison_memory(memory + s.header_bytes_, s.segment_bytes() - s.header_bytes_);
    link(s, seg, list::empty);
    s.segment_count_.store(s.segments_.size(), std::memory_order_relaxed);
    return seg;
  }

  static void detach(extendable_slab& s, segment* seg, std::vector<segment*>& out) noexcept {
    unlink(s, seg);
    table_erase(s, reinterpret_cast<std::uintptr_t>(seg));
    // Every thread's remembered segment is now unproven (see in_some_segment).
    s.reclaim_epoch_.fetch_add(1, std::memory_order_relaxed);
    s.segments_.erase(std::lower_bound(s.segments_.begin(), s.segments_.end(), seg));
    s.segment_count_.store(s.segments_.size(), std::memory_order_relaxed);
    s.lost_slots_ -=
        std::min<std::size_t>(s.lost_slots_, seg->slots - seg->free_count -
                                                 static_cast<std::size_t>(seg->end - seg->fresh) / s.stride_);
    out.push_back(seg);
  }

  // Ends a refill, flush or cacheless call: picks the empty segments beyond
  // max_empty_segments that have stayed empty for a whole decay_period,
  // oldest first (with decay_period 0, all of them at once). Reads the clock
  // only while more than max_empty_segments segments are empty: a segment's
  // emptiness is dated by the first call that finds it in excess (newly
  // emptied segments join the list's head undated, so the undated ones are
  // always a prefix of it).
  static void end_operation(extendable_slab& s, std::vector<segment*>& out) noexcept {
    const std::size_t keep = s.options_.max_empty_segments;
    if (s.empty_count_ <= keep) return;
    std::size_t expired = s.empty_count_ - keep;
    if (s.decay_ns_ != 0) {
      const std::int64_t now = date_empty(s);
      std::size_t n = 0;
      for (const segment* seg = s.empty_oldest_; n < expired && now - seg->empty_since >= s.decay_ns_;
           seg = seg->prev) {
        ++n;
      }
      expired = n;
      if (expired == 0) return;
    }
    try {
      out.reserve(out.size() + expired);
    } catch (...) {
      return;  // reclaim later
    }
    if (s.decay_ns_ != 0) s.decayed_.fetch_add(expired, std::memory_order_relaxed);
    while (expired-- != 0) detach(s, s.empty_oldest_, out);
  }

  // Dates the undated empty segments (the list's head) with the time now, if
  // more than max_empty_segments are empty and decay is by time; returns the
  // time (0 when it did not read the clock). For paths that may empty
  // segments but return none: end_operation, and the thread-exit drain (so a
  // thread exiting before the program goes quiet starts the decay).
  static std::int64_t date_empty(extendable_slab& s) noexcept {
    if (s.decay_ns_ == 0 || s.empty_count_ <= s.options_.max_empty_segments) return 0;
    const std::int64_t now = detail::decay_clock::now_ns();
    for (segment* seg = s.empty_; seg != nullptr && seg->empty_since == 0; seg = seg->next) {
      seg->empty_since = now;
    }
    return now;
  }

  // Picks every empty segment (trim(), and the flushes it asks for).
  static void detach_all_empty(extendable_slab& s, std::vector<segment*>& out) noexcept {
    try {
      out.reserve(out.size() + s.empty_count_);
    } catch (...) {
      return;  // the next trim or decay returns them
    }
    while (s.empty_ != nullptr) detach(s, s.empty_, out);
  }

  // Returns detached segments to the upstream. Requires: mutex_ not held.
  static void give_back(extendable_slab& s, const std::vector<segment*>& segments) noexcept {
    const std::size_t bytes = s.segment_bytes();
    for (segment* seg : segments) {
      detail::unpoison_memory(seg, bytes);
      s.upstream_resource()->deallocate(seg, bytes, bytes);
      s.central_.on_upstream_deallocate(bytes);
    }
    s.reclaimed_.fetch_add(segments.size(), std::memory_order_relaxed);
  }

  // ------------------------------------------------------ thread caches

  // Moves up to n slots from the segments onto cache's list, preferring
  // first, then partial segments, then empty ones. A segment is drained as
  // far as needed before it is relisted once, not relisted per slot.
  static std::size_t refill(extendable_slab& s, detail::xslab_thread_cache& cache, std::size_t n,
                            segment* first = nullptr) noexcept {
    std::size_t got = 0;
    segment* seg = first;
    while (got < n) {
      if (seg == nullptr) {
        seg = s.partial_ != nullptr ? s.partial_ : s.empty_;
        if (seg == nullptr) break;
      }
      void* p = take_slot(s, seg);
      if (p == nullptr) {  // drained (or its list was cut): move it to its list, pick another
        relist(s, seg);
        seg = nullptr;
        continue;
      }
      push_link(p, cache.head);
      detail::poison_memory(p, s.stride_);
      ++got;
    }
    if (seg != nullptr) relist(s, seg);
    detail::single_writer_add(cache.pushed, got);
    detail::single_writer_add(cache.refilled, got);
    return got;
  }

  // Moves up to n slots from cache back to their segments.
  static void flush(extendable_slab& s, detail::xslab_thread_cache& cache, std::size_t n) noexcept {
    std::uint64_t moved = 0;
    segment* last = nullptr;
    for (; n != 0 && cache.head != nullptr; --n) {
      void* p = cache.head;
      detail::unpoison_memory(p, sizeof(void*));
      cache.head = *static_cast<void**>(p);
      ++moved;
      // Neighbouring slots mostly share a segment: skip the search for those.
      if (last == nullptr || s.segment_of(p) != reinterpret_cast<std::uintptr_t>(last)) last = find(s, p);
      if (segment* seg = last; seg != nullptr && on_slot_boundary(s, seg, p)) {
        put_slot(s, seg, p);
      } else {
        // A pointer the fast path let into the magazine without proof of a
        // slot boundary (an interior pointer), or a misuse racing with
        // reclamation: dropped, counted as misuse, and its deallocation taken
        // back. Putting it would lower a live slot's segment's count, which
        // could then be returned upstream while in use.
        s.central_.on_misuse();
        s.late_refusals_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    detail::single_writer_add(cache.popped, moved);
    detail::single_writer_add(cache.flushed, moved);
  }
};

// Lets the thread-exit hook reach the slab's private members.
struct extendable_slab_access {
  // Requires the registry mutex. Calls no upstream: the thread's slots go
  // back to their segments, and empty segments wait for the next reclamation.
  static void drain(extendable_slab& s, detail::xslab_thread_cache& cache) noexcept {
    std::lock_guard lock(s.mutex_);
    xslab_impl::flush(s, cache, SIZE_MAX);
    xslab_impl::date_empty(s);
  }
  static detail::thread_cache_set<detail::xslab_thread_cache>& caches(extendable_slab& s) noexcept {
    return s.caches_;
  }
};

// One registry of live slabs and their threads' caches (the lifetime scheme
// of detail/thread_cache.hpp).
namespace {
using slab_registry =
    detail::thread_cache_registry<extendable_slab, detail::xslab_thread_cache, extendable_slab_access>;
slab_registry& registry() {
  return slab_registry::instance();
}
}  // namespace

// ------------------------------------------------------------ construction

extendable_slab::extendable_slab(options opts, std::pmr::memory_resource* upstream)
    : resource(resource_name, upstream),
      id_(slab_registry::new_id()),
      fast_id_(detail::memory_tool_present() ? ~std::uint64_t{0} : id_),
      options_(opts) {
  detail::check_upstream(resource_name, upstream);
  const auto bad = [](std::string_view field, std::string_view problem) {
    detail::throw_bad_option(resource_name, field, problem);
  };
  if (options_.slot_size == 0 || options_.slot_size > (std::size_t{1} << 30)) {
    bad("slot_size", "must be from 1 to 1 GiB");
  }
  if (!detail::is_power_of_two(options_.slot_alignment) || options_.slot_alignment > 4096) {
    bad("slot_alignment", "must be a power of two up to 4096");
  }
  if (options_.slots_per_segment > (std::size_t{1} << 24)) bad("slots_per_segment", "must be at most 2^24");
  if (options_.thread_cache_slots > (std::size_t{1} << 16))
    bad("thread_cache_slots", "must be at most 65536");
  if (options_.decay_period.count() < 0) bad("decay_period", "must not be negative");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  if (options_.reclaim_period == 0) options_.decay_period = std::chrono::milliseconds{0};  // its old meaning
#pragma GCC diagnostic pop
  decay_ns_ = detail::decay_clock::saturated_ns(options_.decay_period);  // clamped: no overflow
  const std::size_t alignment = std::max(options_.slot_alignment, alignof(void*));
  bool ok = true;
  stride_ = detail::round_up(std::max(options_.slot_size, sizeof(void*)), alignment, ok);
  colour_step_ = std::max(cache_line, alignment);
  // The header (and hardened bits) end on a colour step, so every colour keeps slots aligned.
  const auto header_for = [&](std::size_t slots) {
    const std::size_t bits = options_.hardened ? detail::slot_bits::words_for(slots) * 8 : 0;
    return round_up_to(round_up_to(sizeof(detail::xslab_segment), 8) + bits, colour_step_);
  };
  std::size_t segment = 0;
  if (options_.slots_per_segment == 0) {
    const std::size_t reserve = options_.colouring ? default_colours * colour_step_ : 0;
    segment = default_segment_bytes;
    while (segment < header_for(segment / stride_) + 8 * stride_ + reserve) segment *= 2;
    header_bytes_ = header_for(segment / stride_);
    options_.slots_per_segment = (segment - header_bytes_ - reserve) / stride_;
  } else {
    header_bytes_ = header_for(options_.slots_per_segment);
    segment = std::bit_ceil(header_bytes_ + options_.slots_per_segment * stride_);
  }
  segment_shift_ = static_cast<unsigned>(std::countr_zero(segment));
  segment_mask_ = segment - 1;
  slot_size_ = options_.slot_size;
  alignment_reject_mask_ = ~(options_.slot_alignment - 1);
  const std::size_t slack = segment - header_bytes_ - options_.slots_per_segment * stride_;
  colour_count_ = options_.colouring ? slack / colour_step_ + 1 : 1;
  cache_capacity_ = options_.hardened ? 0 : static_cast<std::uint32_t>(options_.thread_cache_slots);
  if (options_.hardened) codec_ = detail::link_codec{detail::make_link_secret(this)};

  tables_.push_back(std::make_unique<detail::segment_table>(initial_table_bits));
  table_word_.store(tables_.back()->word(), std::memory_order_release);
  registry().enroll(id_, *this);
}

extendable_slab::~extendable_slab() {
  registry().withdraw(id_, caches_);  // first: no exiting thread reaches us after this
  const std::size_t bytes = segment_bytes();
  for (detail::xslab_segment* seg : segments_) {
    detail::unpoison_memory(seg, bytes);
    upstream_resource()->deallocate(seg, bytes, bytes);
    central_.on_upstream_deallocate(bytes);
  }
  segments_.clear();
  for (const auto& [p, block] : forwarded_) {
    upstream_resource()->deallocate(p, block.bytes, block.alignment);
    central_.on_upstream_deallocate(block.bytes);
  }
}

detail::xslab_thread_cache* extendable_slab::attach() noexcept {
  if (cache_capacity_ == 0) return nullptr;  // caches off (by option, or hardened)
  try {
    return registry().attach(id_, caches_, true);
  } catch (...) {
    return nullptr;  // this thread works without a cache, through the mutex
  }
}

// -------------------------------------------------------------- allocation

void* extendable_slab::allocate_slow(std::size_t bytes, std::size_t alignment) {
  detail::check_alignment(resource_name, alignment);
  detail::xslab_thread_cache* cache = attach();
  const auto counted = [&](void* p) {
    if (cache != nullptr) {
      cache->note_allocated(bytes);
    } else {
      central_.on_allocate(bytes);
    }
    return p;
  };
  if (bytes > options_.slot_size || alignment > options_.slot_alignment) {
    forwarded_too_large_.fetch_add(1, std::memory_order_relaxed);
    void* p = nullptr;
    try {
      p = detail::allocate_from_upstream(upstream_resource(), resource_name, bytes, alignment);
      std::lock_guard lock(mutex_);
      forwarded_.emplace(p, forwarded_block{bytes, alignment});
    } catch (...) {
      if (p != nullptr) upstream_resource()->deallocate(p, bytes, alignment);  // lose nothing
      central_.on_failure();
      throw;
    }
    central_.on_upstream_allocate(bytes);
    if (cache != nullptr)
      detail::single_writer_add(cache->forwarded_allocations);  // slots are counted by `popped`
    return counted(p);
  }

  if (cache != nullptr && cache->head != nullptr) {
    // The fast path's pop, for a thread whose slot named another slab, or
    // under a memory tool (every call comes here then), with the unpoisoning.
    // As there, a flush request waits for the next deallocate or refill.
    void* p = cache->head;
    detail::unpoison_memory(p, stride_);  // the whole slot, link word included
    cache->head = *static_cast<void**>(p);
    detail::single_writer_add(cache->popped);
    return counted(p);
  }
  std::vector<detail::xslab_segment*> reclaimed;
  void* p = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (cache != nullptr) {
      if (cache->take_flush_request()) {  // trim() asked: hand the magazine back (then refill)
        xslab_impl::flush(*this, *cache, SIZE_MAX);
      }
      if (cache->head == nullptr)
        xslab_impl::refill(*this, *cache, std::max<std::size_t>(1, cache_capacity_ / 2));
    } else {
      p = xslab_impl::take_any(*this);
    }
    xslab_impl::end_operation(*this, reclaimed);
    STRATA_ASSERT(invariants_hold(), "extendable_slab segment lists drifted");
  }
  if (cache != nullptr ? cache->head == nullptr : p == nullptr) {
    // Grow outside any lock; a concurrent grower adds its own segment, which
    // joins the lists and is used like any other (at most one per grower).
    std::byte* memory = nullptr;
    try {
      memory = xslab_impl::obtain(*this);
      std::lock_guard lock(mutex_);
      detail::xslab_segment* seg = xslab_impl::add(*this, memory);
      if (cache != nullptr) {
        xslab_impl::refill(*this, *cache, std::max<std::size_t>(1, cache_capacity_ / 2), seg);
      } else {
        p = xslab_impl::take_any(*this, seg);
      }
    } catch (...) {
      if (memory != nullptr) {
        upstream_resource()->deallocate(memory, segment_bytes(), segment_bytes());
        central_.on_upstream_deallocate(segment_bytes());
      }
      central_.on_failure();
      xslab_impl::give_back(*this, reclaimed);
      throw;
    }
  }
  xslab_impl::give_back(*this, reclaimed);
  if (cache != nullptr) {
    p = cache->head;
    detail::unpoison_memory(p, stride_);
    cache->head = *static_cast<void**>(p);
    detail::single_writer_add(cache->popped);
  }
  detail::unpoison_memory(p, stride_);
  return counted(p);
}

// ------------------------------------------------------------ deallocation

void extendable_slab::deallocate_unproven(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  const detail::xslab_cache_slot slot = detail::current_thread_cache<detail::xslab_thread_cache>;
  if (slot.owner_id == id_) {
    detail::xslab_thread_cache& cache = *slot.cache;
    // Acquire: pairs with trim()'s release bump, so a thread that sees the
    // new epoch also sees the flush request stored before it.
    const std::uint64_t epoch = reclaim_epoch_.load(std::memory_order_acquire);
    if (!cache.flush_requested.load(std::memory_order_relaxed) && detail::is_power_of_two(alignment) &&
        in_some_segment(cache, p, epoch) && cache.size() < cache_capacity_) {
      push_to_cache(cache, p, bytes);
      detail::poison_memory(p, stride_);  // link word too: the pop unpoisons before reading it
      return;
    }
  }
  deallocate_slow(p, bytes, alignment);
}

void extendable_slab::deallocate_slow(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  detail::xslab_thread_cache* cache = attach();
  const auto reject = [&](misuse_kind kind) {
    central_.on_misuse();  // misuse only: allocations - deallocations stays the live blocks (issue 18)
    report_misuse({resource_name, kind, p, bytes, alignment});
  };
  if (!detail::is_power_of_two(alignment)) {
    // No allocate could have been given it. (The inline fast path, for a
    // slot of the segment this thread proved last, does not look.)
    reject(misuse_kind::alignment_mismatch);
    return;
  }
  std::vector<detail::xslab_segment*> reclaimed;
  forwarded_block forwarded{0, 0};
  {
    std::unique_lock lock(mutex_);
    detail::xslab_segment* seg = xslab_impl::find(*this, p);
    if (seg == nullptr) {
      const auto it = forwarded_.find(p);
      if (it == forwarded_.end()) {
        lock.unlock();
        reject(misuse_kind::unknown_pointer);
        return;
      }
      forwarded = it->second;
      forwarded_.erase(it);
    } else if (!xslab_impl::on_slot_boundary(*this, seg, p)) {
      lock.unlock();
      reject(misuse_kind::unknown_pointer);
      return;
    } else if (options_.hardened &&
               !detail::slot_bits{seg->live_bits}.test(xslab_impl::index_of(*this, seg, p))) {
      lock.unlock();
      double_frees_.fetch_add(1, std::memory_order_relaxed);
      reject(misuse_kind::double_free);
      return;
    } else if (cache == nullptr) {
      xslab_impl::put_slot(*this, seg, p);
      xslab_impl::end_operation(*this, reclaimed);
    } else {
      const bool requested = cache->take_flush_request();
      if (!requested && cache->size() >= cache_capacity_) {
        xslab_impl::flush(*this, *cache, std::max<std::size_t>(1, cache_capacity_ / 2));
        xslab_impl::end_operation(*this, reclaimed);
      }
      push_link(p, cache->head);
      detail::poison_memory(p, stride_);
      detail::single_writer_add(cache->pushed);
      if (requested) {
        // trim() asked: the whole magazine, p included, goes back to the
        // segments, and the segments that are empty now go upstream as
        // trim() would have returned them.
        xslab_impl::flush(*this, *cache, SIZE_MAX);
        xslab_impl::detach_all_empty(*this, reclaimed);
      }
    }
    STRATA_ASSERT(invariants_hold(), "extendable_slab segment lists drifted");
  }
  xslab_impl::give_back(*this, reclaimed);
  if (forwarded.bytes != bytes || forwarded.alignment != alignment) {
    if (forwarded.alignment != 0) {  // a forwarded block with other figures: repaired, not obeyed
      central_.on_misuse();
      report_misuse({resource_name,
                     forwarded.bytes != bytes ? misuse_kind::size_mismatch : misuse_kind::alignment_mismatch,
                     p, bytes, alignment});
    }
  }
  if (forwarded.alignment != 0) {
    upstream_resource()->deallocate(p, forwarded.bytes, forwarded.alignment);
    central_.on_upstream_deallocate(forwarded.bytes);
    bytes = forwarded.bytes;
  }
  if (cache != nullptr) {
    // A slot pushed onto the cache is counted by `pushed`; a forwarded block here.
    if (forwarded.alignment != 0) detail::single_writer_add(cache->forwarded_deallocations);
    cache->note_deallocated(bytes);
  } else {
    central_.on_deallocate(bytes);
  }
}

// ---------------------------------------------------------- housekeeping

void extendable_slab::trim() noexcept {
  // This thread's cache, whichever slab it used last (issue 18: looking only
  // at the MRU slot missed it after a call on another slab).
  registry().detach_mine(id_, *this);
  bool others = false;
  {
    // Other threads answer at their next deallocate, or at the latest their
    // next refill or flush.
    std::lock_guard registry_lock(registry().mutex());
    caches_.request_flush();
    others = caches_.size() != 0;
  }
  std::vector<detail::xslab_segment*> reclaimed;
  {
    std::lock_guard lock(mutex_);
    // A new epoch sends every thread's next deallocate off the fast path (its
    // proven segment is stale) to deallocate_unproven, which sees the
    // request: the fast path itself checks nothing more. Release: see there.
    if (others) reclaim_epoch_.fetch_add(1, std::memory_order_release);
    xslab_impl::detach_all_empty(*this, reclaimed);
    STRATA_ASSERT(invariants_hold(), "extendable_slab segment lists drifted");
  }
  xslab_impl::give_back(*this, reclaimed);
}

void extendable_slab::release() noexcept {
  std::vector<detail::xslab_segment*> segments;
  std::unordered_map<void*, forwarded_block> forwarded;
  {
    std::lock_guard registry_lock(registry().mutex());
    std::lock_guard lock(mutex_);
    // Every magazine is emptied as a flush would (the slots' segments are
    // going); the caches' owners are idle, as required.
    std::uint64_t cached = 0;
    for (detail::xslab_thread_cache* cache : caches_.caches()) {
      const std::uint64_t n = cache->size();
      cached += n;
      cache->head = nullptr;
      detail::single_writer_add(cache->popped, n);
      detail::single_writer_add(cache->flushed, n);
    }
    std::uint64_t used = 0;
    for (const detail::xslab_segment* seg : segments_) used += seg->used;
    // What callers still hold counts as deallocated, so allocations -
    // deallocations stays the live blocks (none); bytes_in_use restarts at 0.
    released_blocks_.fetch_add(used - cached + forwarded_.size(), std::memory_order_relaxed);
    caches_.forget_bytes_in_use();
    central_.forget_bytes_in_use();
    segments.swap(segments_);
    forwarded.swap(forwarded_);
    partial_ = empty_ = full_ = empty_oldest_ = nullptr;
    empty_count_ = 0;
    lost_slots_ = 0;
    detail::segment_table& table = xslab_impl::current_table(*this);
    for (std::size_t i = 0; i < table.capacity(); ++i) table.entry(i).store(0, std::memory_order_relaxed);
    table_used_ = 0;
    reclaim_epoch_.fetch_add(1, std::memory_order_relaxed);  // no thread's proven segment stands
    segment_count_.store(0, std::memory_order_relaxed);
    STRATA_ASSERT(invariants_hold(), "extendable_slab segment lists drifted");
  }
  const std::size_t bytes = segment_bytes();
  for (detail::xslab_segment* seg : segments) {
    detail::unpoison_memory(seg, bytes);
    upstream_resource()->deallocate(seg, bytes, bytes);
    central_.on_upstream_deallocate(bytes);
  }
  for (const auto& [p, block] : forwarded) {
    upstream_resource()->deallocate(p, block.bytes, block.alignment);
    central_.on_upstream_deallocate(block.bytes);
  }
}

// --------------------------------------------------------------- observers

resource_stats extendable_slab::do_stats() const noexcept {
  resource_stats s = central_.snapshot();  // calls without a thread cache, upstream, misuse
  detail::cache_totals t;
  {
    std::lock_guard lock(registry().mutex());
    t = caches_.totals();
  }
  s.allocations += t.allocations;
  s.deallocations += t.deallocations + released_blocks_.load(std::memory_order_relaxed) -
                     late_refusals_.load(std::memory_order_relaxed);
  s.bytes_in_use += static_cast<std::size_t>(t.bytes_in_use);
  s.peak_bytes_in_use = std::max({t.peak_bytes_in_use, s.peak_bytes_in_use, s.bytes_in_use});
  return s;
}

void extendable_slab::do_reset_peak() noexcept {
  std::lock_guard lock(registry().mutex());
  caches_.reset_peak();
  central_.reset_peak();
}

extendable_slab::details_type extendable_slab::details() const {
  details_type d{};
  d.segment_bytes = segment_bytes();
  d.slots_per_segment = options_.slots_per_segment;
  d.stride = stride_;
  {
    std::lock_guard lock(registry().mutex());
    for (const detail::xslab_thread_cache* cache : caches_.caches()) d.cached_slots += cache->size();
    d.threads_attached = caches_.size();
  }
  {
    std::lock_guard lock(mutex_);
    d.segments.reserve(segments_.size());
    for (const detail::xslab_segment* seg : segments_) {
      d.segments.push_back({seg, seg->slots, seg->used, seg->colour_offset});
      switch (seg->list) {
        case detail::segment_list::partial:
          ++d.partial_segments;
          break;
        case detail::segment_list::empty:
          ++d.empty_segments;
          break;
        case detail::segment_list::full:
          ++d.full_segments;
          break;
      }
    }
    d.forwarded_live = forwarded_.size();
    d.lost_slots = lost_slots_;
  }
  d.growth_events = growth_events_.load(std::memory_order_relaxed);
  d.concurrent_growths = concurrent_growths_.load(std::memory_order_relaxed);
  d.reclaimed_segments = reclaimed_.load(std::memory_order_relaxed);
  d.decayed_segments = decayed_.load(std::memory_order_relaxed);
  d.released_blocks = released_blocks_.load(std::memory_order_relaxed);
  d.forwarded_too_large = forwarded_too_large_.load(std::memory_order_relaxed);
  d.corrupted_links = corrupted_links_.load(std::memory_order_relaxed);
  d.double_frees = double_frees_.load(std::memory_order_relaxed);
  return d;
}

// Requires mutex_. Cheap checks always; whole-list walks with expensive_checks.
bool extendable_slab::invariants_hold() const noexcept {
  if (empty_count_ > segments_.size() || segment_count_.load(std::memory_order_relaxed) != segments_.size()) {
    return false;
  }
  if ((empty_ == nullptr) != (empty_oldest_ == nullptr) ||
      (empty_oldest_ != nullptr && empty_oldest_->next != nullptr)) {
    return false;
  }
  if (!std::is_sorted(segments_.begin(), segments_.end())) return false;
#if defined(STRATA_EXPENSIVE_CHECKS)
  std::size_t empties = 0;
  for (const detail::xslab_segment* seg = empty_; seg != nullptr; seg = seg->next) {
    if (seg->used != 0) return false;
    ++empties;
  }
  if (empties != empty_count_) return false;
  for (const detail::xslab_segment* seg : segments_) {
    if (!detail::segment_table::holds(table_word_.load(std::memory_order_relaxed),
                                      reinterpret_cast<std::uintptr_t>(seg))) {
      return false;
    }
  }
#endif
  return true;
}

}  // namespace strata
