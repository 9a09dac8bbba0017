// SPDX-License-Identifier: MIT
// monotonic_arena: everything but the bump. Refills from spares, fresh and
// dedicated chunks; markers; reset() with its retention policies and the
// window of recent needs; release(); and the owner-thread check.

#include "strata/monotonic_arena.hpp"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <new>

namespace strata {

// ------------------------------------------------------------ chunk layout
//
// Each chunk from upstream keeps its bookkeeping in a footer at its end, so
// the first block of a chunk starts at the chunk's own alignment: a request
// aligned to 4 KiB or 64 KiB that opens a chunk needs no padding, and a
// chunk_provider (which aligns chunks to their size) wastes nothing.
//
//   chunk: size bytes from upstream, aligned to `alignment`
//   +-------+-----+-------+--------------------+-------------+--------------+
//   | block | pad | block | block              |  free tail  | monotonic_chunk  |
//   +-------+-----+-------+--------------------+-------------+--------------+
//   ^ begin()                                  ^ cursor_     ^ end()        ^ chunk + size
//                                                              footer: prev, size,
//                                                              alignment, stamp (32 B)
//
// The chain runs from current_ through prev to the oldest chunk; the initial
// buffer sits before the oldest chunk, has no footer (it is the caller's
// memory) and is named by a null chunk pointer. Spare chunks are linked
// through prev too, largest first; dedicated chunks (one oversized block at
// begin(), footer after it) newest first, and dedicated spares largest
// first. A chunk keeps its role (normal or dedicated) for its life. A block
// never contains bookkeeping, and the footer is never poisoned under ASan.

namespace detail {

struct monotonic_chunk {
  monotonic_chunk* prev;  // chain: the chunk bumped into before this one; lists: the next entry
  std::size_t size;       // bytes obtained from upstream, footer included
  std::size_t alignment;  // alignment passed to upstream
  // Dedicated chunks holding a block: order of acquisition (from 1), for
  // rewind. Other chunks: the generation of the request that last used them,
  // so reset() keeps what the ending request used first.
  std::uint64_t stamp;

  [[nodiscard]] std::uintptr_t begin() const noexcept {
    return reinterpret_cast<std::uintptr_t>(this) + sizeof(monotonic_chunk) - size;
  }
  [[nodiscard]] std::uintptr_t end() const noexcept { return reinterpret_cast<std::uintptr_t>(this); }
  [[nodiscard]] void* memory() const noexcept { return reinterpret_cast<void*>(begin()); }
};

}  // namespace detail

namespace {

constexpr std::string_view resource_name = "monotonic_arena";
constexpr std::size_t footer_size = sizeof(detail::monotonic_chunk);
// Chunks are asked at least this aligned, so the footer at the end is aligned
// and a fundamental-alignment request opening a chunk needs no padding.
constexpr std::size_t chunk_alignment = alignof(std::max_align_t);
// Four footers: a smaller first chunk would be mostly overhead.
constexpr std::size_t min_first_chunk_size = 128;
constexpr std::size_t max_growth_factor = 1024;
// No object exceeds PTRDIFF_MAX bytes. Refusing bump sizes above this, less
// a chunk's overhead, keeps every size computation below from wrapping.
constexpr std::size_t largest_bump = static_cast<std::size_t>(PTRDIFF_MAX) - footer_size - chunk_alignment;

static_assert(footer_size % chunk_alignment == 0, "chunk sizes and footers must keep chunk_alignment");
static_assert(alignof(detail::monotonic_chunk) <= chunk_alignment);

// Markers name their arena by this id; addresses could be reused by a later arena.
std::atomic<std::uint64_t> next_arena_id{1};

// The constructor with a buffer argument sets the deprecated field (0.2).
monotonic_arena::options with_buffer(monotonic_arena::options o, std::span<std::byte> buffer) {
  if (!o.initial_buffer.empty()) {
    detail::throw_bad_option(resource_name, "initial_buffer",
                             "is given with a buffer argument; pass only the argument");
  }
  o.initial_buffer = buffer;
  return o;
}

void validate(const monotonic_arena::options& o) {
  if (!detail::is_power_of_two(o.first_chunk_size) || o.first_chunk_size < min_first_chunk_size) {
    detail::throw_bad_option(resource_name, "first_chunk_size", "must be a power of two of at least 128");
  }
  if (!detail::is_power_of_two(o.max_chunk_size) || o.max_chunk_size < o.first_chunk_size) {
    detail::throw_bad_option(resource_name, "max_chunk_size",
                             "must be a power of two no smaller than first_chunk_size");
  }
  if (!detail::is_power_of_two(o.growth_factor) || o.growth_factor > max_growth_factor) {
    detail::throw_bad_option(resource_name, "growth_factor", "must be a power of two from 1 to 1024");
  }
  if (o.retention > monotonic_arena::retention_policy::keep_recent_need) {
    detail::throw_bad_option(resource_name, "retention", "is not a retention_policy value");
  }
  if (o.retention_window == 0) {
    detail::throw_bad_option(resource_name, "retention_window", "must be at least 1");
  }
  if (o.initial_buffer.data() == nullptr && !o.initial_buffer.empty()) {
    detail::throw_bad_option(resource_name, "buffer", "has a size but no data");
  }
}

void poison_range(std::uintptr_t from, std::uintptr_t to) noexcept {
  if (to > from) detail::poison_memory(reinterpret_cast<const void*>(from), to - from);
}

void unpoison_range(std::uintptr_t from, std::uintptr_t to) noexcept {
  if (to > from) detail::unpoison_memory(reinterpret_cast<const void*>(from), to - from);
}

// Inserts c into a list linked through prev and sorted largest first. tail
// makes the common case O(1): chains are walked newest first, and newer
// chunks are rarely smaller, so most chunks go at the end.
void insert_largest_first(detail::monotonic_chunk*& head, detail::monotonic_chunk*& tail,
                          detail::monotonic_chunk* c) noexcept {
  if (head == nullptr || c->size <= tail->size) {
    c->prev = nullptr;
    (head == nullptr ? head : tail->prev) = c;
    tail = c;
    return;
  }
  detail::monotonic_chunk** link = &head;
  while ((*link)->size >= c->size) link = &(*link)->prev;  // stops before tail: tail->size < c->size
  c->prev = *link;
  *link = c;
}

}  // namespace

// ------------------------------------------------------------ construction

monotonic_arena::monotonic_arena(options opts, std::span<std::byte> buffer,
                                 std::pmr::memory_resource* upstream)
    : monotonic_arena(with_buffer(opts, buffer), upstream) {}

monotonic_arena::monotonic_arena(options opts, std::pmr::memory_resource* upstream)
    : resource(resource_name, upstream),
      dedicated_threshold_(opts.max_chunk_size - footer_size),
      check_owner_thread_(opts.check_owner_thread),
      checked_calls_(opts.check_owner_thread || detail::memory_tool_present()),
      options_(opts),
      strata_upstream_(dynamic_cast<const resource*>(upstream)),
      id_(next_arena_id.fetch_add(1, std::memory_order_relaxed)),
      next_chunk_size_(opts.first_chunk_size) {
  detail::check_upstream(resource_name, upstream);
  validate(options_);
  // Slots of window_span_ requests: with the newest slot holding 1 to span
  // requests, the others must cover window - 1 more (see record_need).
  const std::size_t window = options_.retention_window;
  window_span_ = window / window_steps + static_cast<std::size_t>(window % window_steps != 0);
  window_slots_ =
      (window - 1) / window_span_ + static_cast<std::size_t>((window - 1) % window_span_ != 0) + 1;
  buffer_begin_ = reinterpret_cast<std::uintptr_t>(options_.initial_buffer.data());
  buffer_end_ = buffer_begin_ + options_.initial_buffer.size();
  enter_buffer();
  STRATA_ASSERT(invariants_hold(), "monotonic_arena constructed inconsistent");
}

monotonic_arena::~monotonic_arena() {
  release();
  // The caller gets the buffer back usable; it stays poisoned only while the arena owns it.
  unpoison_range(buffer_begin_, buffer_end_);
}

// -------------------------------------------------------------- allocation

void* monotonic_arena::allocate_checked(std::size_t bytes, std::size_t alignment) {
  check_owner();
  // do_allocate's bump (see there), and the unpoisoning.
  const std::size_t mask = alignment - 1;
  const std::size_t n = bump_size(bytes);
  const std::size_t pad = static_cast<std::size_t>(-cursor_) & mask;
  const std::size_t room = end_ - cursor_;
  if ((alignment & mask) == 0 && n <= room && pad <= room - n) {
    const std::uintptr_t block = cursor_ + pad;
    cursor_ = block + n;
    count_allocate(bytes);
    detail::unpoison_memory(reinterpret_cast<void*>(block), bytes);
    return reinterpret_cast<void*>(block);
  }
  return allocate_slow(bytes, alignment);
}

void monotonic_arena::deallocate_checked(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  check_owner();
  count_deallocate(bytes);
  const std::size_t n = bump_size(bytes);
  if (std::max(n, alignment) > dedicated_threshold_) {
    deallocate_slow(p, bytes);
    return;
  }
  roll_back(reinterpret_cast<std::uintptr_t>(p), n);
}

void* monotonic_arena::allocate_slow(std::size_t bytes, std::size_t alignment) {
  detail::check_alignment(resource_name, alignment);  // invalid_argument: not a failed allocation
  const std::size_t n = bump_size(bytes);
  if (n > largest_bump) [[unlikely]] {
    counters_.on_failure();
    detail::throw_allocation_failure(resource_name, bytes, alignment, failure_reason::size_overflow);
  }
  if (n > dedicated_threshold_ || alignment > options_.max_chunk_size) {
    return allocate_dedicated(bytes, n, alignment);
  }
  const std::size_t room = end_ - cursor_;
  const std::size_t pad = static_cast<std::size_t>(-cursor_) & (alignment - 1);
  if (n <= room && pad <= room - n) {
    // A zero-size request, which do_allocate sends here even when its one
    // byte fits: served from the current region, as any other request.
    const std::uintptr_t block = cursor_ + pad;
    cursor_ = block + n;
    count_allocate(bytes);
    return reinterpret_cast<void*>(block);
  }
  chunk* c = take_spare(n, alignment);
  if (c == nullptr) c = acquire_chunk(n, alignment);  // may throw; nothing has changed yet
  enter_chunk(c);
  const std::uintptr_t block = cursor_ + (static_cast<std::size_t>(-cursor_) & (alignment - 1));
  cursor_ = block + n;
  count_allocate(bytes);
  detail::unpoison_memory(reinterpret_cast<void*>(block), bytes);
  STRATA_ASSERT(cursor_ <= end_, "a chunk was chosen that does not fit the request");
  STRATA_ASSERT(invariants_hold(), "monotonic_arena state drifted in a refill");
  return reinterpret_cast<void*>(block);
}

// Spares are largest first, so the chunk reset() kept for the next request
// is the one used first.
monotonic_arena::chunk* monotonic_arena::take_spare(std::size_t n, std::size_t alignment) noexcept {
  for (chunk** link = &spare_; *link != nullptr; link = &(*link)->prev) {
    chunk* c = *link;
    const std::uintptr_t begin = c->begin();
    const std::size_t room = c->end() - begin;
    const std::size_t pad = static_cast<std::size_t>(-begin) & (alignment - 1);
    if (n <= room && pad <= room - n) {
      *link = c->prev;
      --spare_count_;
      spare_bytes_ -= c->size;
      return c;
    }
  }
  return nullptr;
}

// The chunk is a power of two: at least next_chunk_size_, the request with
// its footer, and the alignment (so a chunk aligned to it starts with an
// aligned block). n <= dedicated_threshold_ and alignment <= max_chunk_size
// keep it within max_chunk_size.
monotonic_arena::chunk* monotonic_arena::acquire_chunk(std::size_t n, std::size_t alignment) {
  std::size_t need = std::max(next_chunk_size_, std::bit_ceil(n + footer_size));
  // A strata upstream may prefer a larger size (a chunk_provider: the class it
  // still caches); taking it spares the upstream a map and unmap per request.
  if (strata_upstream_ != nullptr) {
    const std::size_t preferred = std::min(strata_upstream_->preferred_size(need), options_.max_chunk_size);
    need = std::max(need, std::bit_ceil(preferred));
  }
  const std::size_t size = std::max(need, alignment);
  const std::size_t upstream_alignment = std::max(chunk_alignment, alignment);
  void* memory = get_from_upstream(size, upstream_alignment);
  chunk* c = ::new (static_cast<std::byte*>(memory) + size - footer_size)
      chunk{nullptr, size, upstream_alignment, generation_};
  ++chunk_count_;
  // Growth follows what the request needed, not what its alignment inflated.
  const std::size_t factor = options_.growth_factor;
  next_chunk_size_ = need > options_.max_chunk_size / factor ? options_.max_chunk_size : need * factor;
  poison_range(c->begin(), c->end());
  return c;
}

// A dedicated chunk holds one block at its start and sits outside the chain,
// so the current chunk goes on serving small requests: nothing is wasted.
// The smallest dedicated spare that fits is reused before asking upstream.
// The request's dedicated need grows by the size it asked for, once per chunk
// (a chunk freed and reused within the request is not counted again), so a
// spare much larger than the request does not inflate the need.
void* monotonic_arena::allocate_dedicated(std::size_t bytes, std::size_t n, std::size_t alignment) {
  bool fits = true;
  const std::size_t size = detail::round_up(n, chunk_alignment, fits) + footer_size;
  STRATA_ASSERT(fits, "largest_bump keeps dedicated sizes from wrapping");
  chunk* c = take_dedicated_spare(size, alignment);
  if (c != nullptr) {
    if (c->stamp != generation_) dedicated_need_ += size;
    detail::unpoison_memory(c->memory(), bytes);
  } else {
    const std::size_t upstream_alignment = std::max(chunk_alignment, alignment);
    void* memory = get_from_upstream(size, upstream_alignment);  // may throw; nothing has changed yet
    c = ::new (static_cast<std::byte*>(memory) + size - footer_size)
        chunk{nullptr, size, upstream_alignment, 0};
    ++dedicated_count_;
    dedicated_need_ += size;
    poison_range(c->begin() + bytes, c->end());  // an overrun past the block shows under ASan
  }
  c->prev = dedicated_;
  c->stamp = ++dedicated_serial_;
  dedicated_ = c;
  count_allocate(bytes);
  STRATA_ASSERT(invariants_hold(), "monotonic_arena state drifted in a dedicated allocation");
  return c->memory();
}

// Best fit: the spares are largest first, so the last one that fits.
monotonic_arena::chunk* monotonic_arena::take_dedicated_spare(std::size_t size,
                                                              std::size_t alignment) noexcept {
  chunk** best = nullptr;
  for (chunk** link = &dedicated_spare_; *link != nullptr && (*link)->size >= size; link = &(*link)->prev) {
    if (detail::is_aligned((*link)->memory(), alignment)) best = link;
  }
  if (best == nullptr) return nullptr;
  chunk* c = *best;
  *best = c->prev;
  --dedicated_spare_count_;
  spare_bytes_ -= c->size;
  return c;
}

void* monotonic_arena::get_from_upstream(std::size_t size, std::size_t alignment) {
  void* memory = nullptr;
  try {
    memory = detail::allocate_from_upstream(upstream_resource(), resource_name, size, alignment);
  } catch (...) {
    counters_.on_failure();
    upstream_failed_ = true;  // reset() then keeps chunks it could not replace
    throw;  // exception neutral; a plain bad_alloc arrives as allocation_failure(upstream_failed)
  }
  STRATA_ASSERT(detail::is_aligned(memory, alignment), "the upstream returned a misaligned chunk");
  counters_.on_upstream_allocate(size);
  return memory;
}

void monotonic_arena::give_back(chunk* c) noexcept {
  const std::size_t size = c->size;
  const std::size_t alignment = c->alignment;
  void* memory = c->memory();
  unpoison_range(c->begin(), c->end());  // the upstream may write into it (a cache link)
  counters_.on_upstream_deallocate(size);
  upstream_resource()->deallocate(memory, size, alignment);
}

// Leaves the current region (its tail is wasted) and bumps on in c from the
// same request position.
void monotonic_arena::enter_chunk(chunk* c) noexcept {
  const std::size_t pos = position();
  close_region();
  wasted_tail_bytes_ += end_ - cursor_;
  chain_tails_ += end_ - cursor_;
  c->prev = current_;
  c->stamp = generation_;
  current_ = c;
  cursor_ = floor_ = c->begin();
  end_ = c->end();
  base_ = cursor_ - pos;
}

void monotonic_arena::enter_buffer() noexcept {
  current_ = nullptr;
  cursor_ = floor_ = base_ = buffer_begin_;
  end_ = buffer_end_;
  poison_range(buffer_begin_, buffer_end_);
}

// The region's highest position is the larger of the cursor's and the
// highest one rolled back from (high_water_, which roll_back keeps inline).
// A request consumes, up to a position, the tails the chain left before it.
void monotonic_arena::close_region() noexcept {
  const std::size_t top = std::max(high_water_, position());
  footprint_ = std::max(footprint_, top);
  consumed_ = std::max(consumed_, top + chain_tails_);
  high_water_ = 0;
}

// ------------------------------------------------------------ deallocation

// Only sizes a dedicated chunk could hold come here; a block that large from
// the initial buffer is not in the list and is treated like any other.
void monotonic_arena::deallocate_slow(void* p, std::size_t bytes) noexcept {
  for (chunk** link = &dedicated_; *link != nullptr; link = &(*link)->prev) {
    chunk* c = *link;
    if (c->memory() == p) {
      *link = c->prev;
      retire_dedicated(c);
      STRATA_ASSERT(invariants_hold(), "monotonic_arena state drifted returning a dedicated chunk");
      return;
    }
  }
  roll_back(reinterpret_cast<std::uintptr_t>(p), bump_size(bytes));
}

void monotonic_arena::release_dedicated_after(std::uint64_t serial) noexcept {
  while (dedicated_ != nullptr && dedicated_->stamp > serial) {
    chunk* c = dedicated_;
    dedicated_ = c->prev;
    retire_dedicated(c);
  }
}

bool monotonic_arena::keeps_dedicated() const noexcept {
  return options_.retention == retention_policy::keep_recent_need ||
         options_.retention == retention_policy::keep_up_to_retain_bytes;
}

// A freed dedicated chunk is kept for the next dedicated request (the
// vector that grows past max_chunk_size frees each buffer after taking the
// next); stamped with this generation, it counts as used by this request.
void monotonic_arena::retire_dedicated(chunk* c) noexcept {
  if (!keeps_dedicated() || c->size > options_.retain_bytes - std::min(spare_bytes_, options_.retain_bytes)) {
    --dedicated_count_;
    give_back(c);
    return;
  }
  poison_range(c->begin(), c->end());
  c->stamp = generation_;
  chunk** link = &dedicated_spare_;
  while (*link != nullptr && (*link)->size >= c->size) link = &(*link)->prev;
  c->prev = *link;
  *link = c;
  ++dedicated_spare_count_;
  spare_bytes_ += c->size;
}

void monotonic_arena::owner_mismatch_slow() noexcept {
  if (owner_ == std::thread::id{}) {
    owner_ = std::this_thread::get_id();
    return;
  }
  counters_.on_misuse();
  report_misuse({resource_name, misuse_kind::wrong_thread, nullptr, 0, 0});
}

// ----------------------------------------------------------------- markers

void monotonic_arena::rewind(const marker& m) noexcept {
  check_owner();
  if (m.arena_id_ != id_ || m.generation_ != generation_ || !move_to(m)) {
    counters_.on_misuse();
    report_misuse(
        {resource_name, misuse_kind::foreign_marker, reinterpret_cast<const void*>(m.cursor_), 0, 0});
  }
  STRATA_ASSERT(invariants_hold(), "monotonic_arena state drifted in rewind");
}

// A marker is reachable if its region is the current one with the cursor at
// or past it, or an older region of the chain. One that lies ahead was
// rewound past already: its memory may be handed out again, so it is refused.
bool monotonic_arena::move_to(const marker& m) noexcept {
  chunk* const target = m.chunk_;
  const std::uintptr_t target_begin = target != nullptr ? target->begin() : buffer_begin_;
  const std::uintptr_t target_end = target != nullptr ? target->end() : buffer_end_;
  if (target == current_) {
    if (m.cursor_ < target_begin || m.cursor_ > cursor_) return false;
  } else {
    const chunk* newer = current_;
    while (newer != nullptr && newer->prev != target) newer = newer->prev;
    if (newer == nullptr || m.cursor_ < target_begin || m.cursor_ > target_end) return false;
  }
  close_region();
  // Chunks bumped into since the mark stay with the arena as spares: a
  // scratch loop that rewinds each round makes no upstream calls.
  while (current_ != target) {
    chunk* c = current_;
    current_ = c->prev;
    add_spare(c);
  }
  end_ = target_end;
  release_dedicated_after(m.dedicated_serial_);
  poison_range(m.cursor_, end_);
  cursor_ = floor_ = m.cursor_;
  base_ = cursor_ - m.position_;
  chain_tails_ = m.tails_;
  // Blocks allocated after the mark are gone; exact unless a block older
  // than the mark was deallocated after it.
  settle_peak();
  counters_.value.bytes_in_use = std::min(counters_.value.bytes_in_use, m.bytes_in_use_);
  return true;
}

void monotonic_arena::add_spare(chunk* c) noexcept {
  if (c->size > options_.retain_bytes - std::min(spare_bytes_, options_.retain_bytes)) {
    --chunk_count_;
    give_back(c);
    return;
  }
  poison_range(c->begin(), c->end());
  chunk** link = &spare_;
  while (*link != nullptr && (*link)->size >= c->size) link = &(*link)->prev;
  c->prev = *link;
  *link = c;
  ++spare_count_;
  spare_bytes_ += c->size;
}

// ------------------------------------------------------ reset and release

void monotonic_arena::end_request() noexcept {
  close_region();
  const std::size_t buffer = buffer_end_ - buffer_begin_;
  // What the chunks held: the consumed bytes beyond the initial buffer (its
  // tail included, so the whole buffer comes off).
  record_need({consumed_ > buffer ? consumed_ - buffer : 0, dedicated_need_});
  largest_footprint_ = std::max(largest_footprint_, footprint_);
  history_[history_next_] = footprint_;
  history_next_ = (history_next_ + 1) % history_length;
  history_count_ = std::min(history_count_ + 1, history_length);
  // Remember the need: the next request's first fresh chunk holds all of the
  // largest recent request (adaptive: of the typical one), so it needs one.
  next_chunk_size_ = options_.retention == retention_policy::adaptive
                         ? chunk_size_for(percentile_footprint())
                         : chunk_size_for(recent_need().chunk_bytes);
  footprint_ = consumed_ = chain_tails_ = dedicated_need_ = 0;
  high_water_ = 0;
  upstream_failed_ = false;
  ++generation_;               // every marker taken so far is stale
  owner_ = std::thread::id{};  // the next allocate may come from another thread
  settle_peak();
  counters_.value.bytes_in_use = 0;  // every block is gone
}

// The window: a request's need goes into the newest slot, which holds
// window_span_ requests; when it is full the oldest slot is cleared and
// becomes the newest. The window then spans the newest slot's 1 to span
// requests and (slots - 1) * span older ones, at least retention_window.
// The older slots' maximum is recomputed only when the newest slot changes
// (every window_span_ requests), so a reset reads the window in O(1).
void monotonic_arena::record_need(need_record need) noexcept {
  if (window_fill_ == window_span_) {
    window_slot_ = window_slot_ + 1 == window_slots_ ? 0 : window_slot_ + 1;
    window_[window_slot_] = {};
    window_fill_ = 0;
    window_older_ = {};
    for (std::size_t i = 0; i < window_slots_; ++i) {
      window_older_.chunk_bytes = std::max(window_older_.chunk_bytes, window_[i].chunk_bytes);
      window_older_.dedicated_bytes = std::max(window_older_.dedicated_bytes, window_[i].dedicated_bytes);
    }
  }
  need_record& slot = window_[window_slot_];
  slot.chunk_bytes = std::max(slot.chunk_bytes, need.chunk_bytes);
  slot.dedicated_bytes = std::max(slot.dedicated_bytes, need.dedicated_bytes);
  ++window_fill_;
}

monotonic_arena::need_record monotonic_arena::recent_need() const noexcept {
  const need_record& newest = window_[window_slot_];
  return {std::max(window_older_.chunk_bytes, newest.chunk_bytes),
          std::max(window_older_.dedicated_bytes, newest.dedicated_bytes)};
}

namespace {

// Candidates for keeping, in the order reset() considers them: chunks the
// ending request used, then the others, each largest first.
struct keep_order {
  detail::monotonic_chunk* used = nullptr;
  detail::monotonic_chunk* used_tail = nullptr;
  detail::monotonic_chunk* unused = nullptr;
  detail::monotonic_chunk* unused_tail = nullptr;

  void add(detail::monotonic_chunk* c, bool was_used) noexcept {
    if (was_used) {
      insert_largest_first(used, used_tail, c);
    } else {
      insert_largest_first(unused, unused_tail, c);
    }
  }
  detail::monotonic_chunk* pop() noexcept {
    detail::monotonic_chunk*& head = used != nullptr ? used : unused;
    detail::monotonic_chunk* c = head;
    if (c != nullptr) head = c->prev;
    return c;
  }
};

}  // namespace

void monotonic_arena::reset() noexcept {
  ++resets_;
  const std::uint64_t request = generation_;  // the stamp of chunks this request used
  const bool failed = upstream_failed_;
  end_request();
  // What the policy keeps: normal chunks of at least min_normal, up to
  // normal_budget bytes, then dedicated ones up to dedicated_budget; all of
  // it within retain_bytes.
  std::size_t min_normal = 0;
  std::size_t normal_budget = 0;
  std::size_t dedicated_budget = 0;
  switch (options_.retention) {
    case retention_policy::keep_none:
      break;
    case retention_policy::keep_largest:
      for (chunk* list : {current_, spare_}) {
        for (chunk* c = list; c != nullptr; c = c->prev) min_normal = std::max(min_normal, c->size);
      }
      normal_budget = min_normal;  // one chunk of the largest size
      break;
    case retention_policy::keep_up_to_retain_bytes:
      normal_budget = dedicated_budget = options_.retain_bytes;
      break;
    case retention_policy::adaptive:
      normal_budget = capacity_for(percentile_footprint());
      break;
    case retention_policy::keep_recent_need: {
      // Normal chunks smaller than one that holds the largest recent request
      // go back: the next fresh chunk is that size, and a request one chunk
      // can hold then uses one (fewer tails, a settled provider class). Not
      // after an upstream failure in this request: the swap needs the
      // upstream that just failed, so what is held stays (within the budget).
      const need_record recent = recent_need();
      if (recent.chunk_bytes > 0 && !failed) min_normal = chunk_size_for(recent.chunk_bytes);
      normal_budget = fresh_capacity_for(recent.chunk_bytes);
      dedicated_budget = recent.dedicated_bytes;
      break;
    }
  }
  normal_budget = std::min(normal_budget, options_.retain_bytes);

  keep_order normal;
  for (chunk* list : {current_, spare_}) {
    while (list != nullptr) {
      chunk* next = list->prev;
      if (list->size >= min_normal && list->size <= normal_budget) {
        normal.add(list, list->stamp == request);
      } else {
        --chunk_count_;
        give_back(list);
      }
      list = next;
    }
  }
  keep_order dedicated;
  for (chunk* c = dedicated_; c != nullptr;) {  // their blocks are gone: all used by this request
    chunk* next = c->prev;
    dedicated.add(c, true);
    c = next;
  }
  for (chunk* c = dedicated_spare_; c != nullptr;) {
    chunk* next = c->prev;
    dedicated.add(c, c->stamp == request);
    c = next;
  }
  current_ = spare_ = dedicated_ = dedicated_spare_ = nullptr;
  spare_count_ = dedicated_spare_count_ = 0;
  spare_bytes_ = 0;

  // Greedy: a chunk is kept if it fits in what is left of the budget.
  chunk* spare_tail = nullptr;
  while (chunk* c = normal.pop()) {
    if (c->size <= normal_budget - spare_bytes_) {
      insert_largest_first(spare_, spare_tail, c);
      ++spare_count_;
      spare_bytes_ += c->size;
      poison_range(c->begin(), c->end());
    } else {
      --chunk_count_;
      give_back(c);
    }
  }
  dedicated_budget = std::min(dedicated_budget, options_.retain_bytes - spare_bytes_);
  std::size_t kept = 0;
  chunk* dedicated_tail = nullptr;
  while (chunk* c = dedicated.pop()) {
    if (c->size <= dedicated_budget - kept) {
      kept += c->size;
      c->stamp = request;
      insert_largest_first(dedicated_spare_, dedicated_tail, c);
      ++dedicated_spare_count_;
      poison_range(c->begin(), c->end());
    } else {
      --dedicated_count_;
      give_back(c);
    }
  }
  spare_bytes_ += kept;
  enter_buffer();
  STRATA_ASSERT(invariants_hold(), "monotonic_arena state drifted in reset");
}

void monotonic_arena::release() noexcept {
  end_request();
  for (chunk* list : {current_, spare_, dedicated_, dedicated_spare_}) {
    while (list != nullptr) {
      chunk* next = list->prev;
      give_back(list);
      list = next;
    }
  }
  chunk_count_ = spare_count_ = dedicated_count_ = dedicated_spare_count_ = 0;
  spare_bytes_ = 0;
  spare_ = dedicated_ = dedicated_spare_ = nullptr;
  enter_buffer();
  STRATA_ASSERT(invariants_hold(), "monotonic_arena state drifted in release");
}

// ------------------------------------------------------------------ sizing

// A power of two from first_chunk_size to max_chunk_size that holds
// footprint bytes after its footer, or max_chunk_size if none does.
std::size_t monotonic_arena::chunk_size_for(std::size_t footprint) const noexcept {
  if (footprint > options_.max_chunk_size - footer_size) return options_.max_chunk_size;
  return std::clamp(std::bit_ceil(footprint + footer_size), options_.first_chunk_size,
                    options_.max_chunk_size);
}

// Bytes of fresh chunks that hold chunk_bytes: one chunk of the size
// acquire_chunk takes (what the upstream prefers included), or enough
// max-size ones.
std::size_t monotonic_arena::fresh_capacity_for(std::size_t chunk_bytes) const noexcept {
  if (chunk_bytes == 0) return 0;
  if (chunk_bytes > options_.max_chunk_size - footer_size) return capacity_for(chunk_bytes);
  std::size_t size = chunk_size_for(chunk_bytes);
  if (strata_upstream_ != nullptr) {
    const std::size_t preferred = std::min(strata_upstream_->preferred_size(size), options_.max_chunk_size);
    size = std::max(size, std::bit_ceil(preferred));
  }
  return size;
}

// Bytes of chunks that hold footprint: one chunk, or enough max-size ones.
std::size_t monotonic_arena::capacity_for(std::size_t footprint) const noexcept {
  const std::size_t per_chunk = options_.max_chunk_size - footer_size;
  if (footprint <= per_chunk) return chunk_size_for(footprint);
  const std::size_t chunks = footprint / per_chunk + static_cast<std::size_t>(footprint % per_chunk != 0);
  return chunks > SIZE_MAX / options_.max_chunk_size ? SIZE_MAX : chunks * options_.max_chunk_size;
}

// The 90th percentile (nearest rank) of the remembered footprints: with 16
// requests remembered, the second largest, so a single outlier is ignored.
std::size_t monotonic_arena::percentile_footprint() const noexcept {
  if (history_count_ == 0) return 0;
  std::array<std::size_t, history_length> sorted = history_;
  const std::size_t rank = (history_count_ * 9 + 9) / 10 - 1;  // ceil(0.9 * count) - 1
  const auto first = sorted.begin();
  std::nth_element(first, first + static_cast<std::ptrdiff_t>(rank),
                   first + static_cast<std::ptrdiff_t>(history_count_));
  return sorted[rank];
}

// --------------------------------------------------------------- observers

monotonic_arena::details_type monotonic_arena::details() const noexcept {
  details_type d{};
  d.chunks = chunk_count_ + dedicated_count_;
  d.spare_chunks = spare_count_ + dedicated_spare_count_;
  d.dedicated_chunks = dedicated_count_;
  d.wasted_tail_bytes = wasted_tail_bytes_;
  d.request_footprint = std::max({footprint_, high_water_, position()});
  d.largest_request_footprint = std::max(largest_footprint_, d.request_footprint);
  d.next_chunk_size = next_chunk_size_;
  d.resets = resets_;
  d.spare_bytes = spare_bytes_;
  const need_record recent = recent_need();
  d.recent_need = fresh_capacity_for(recent.chunk_bytes) + recent.dedicated_bytes;
  return d;
}

resource_stats monotonic_arena::do_stats() const noexcept {
  resource_stats s = counters_.snapshot();
  s.peak_bytes_in_use = std::max(s.peak_bytes_in_use, s.bytes_in_use);  // the peak is settled lazily
  return s;
}

void monotonic_arena::do_reset_peak() noexcept {
  counters_.reset_peak();
}

bool monotonic_arena::invariants_hold() const noexcept {
  const std::uintptr_t begin = current_ != nullptr ? current_->begin() : buffer_begin_;
  const std::uintptr_t end = current_ != nullptr ? current_->end() : buffer_end_;
  bool ok = end_ == end && begin <= floor_ && floor_ <= cursor_ && cursor_ <= end_ &&
            spare_count_ <= chunk_count_ && dedicated_spare_count_ <= dedicated_count_ &&
            spare_bytes_ <= options_.retain_bytes && position() <= SIZE_MAX / 2;
#if defined(STRATA_EXPENSIVE_CHECKS)
  // Whole-structure walk: every chunk counted once, spares sorted, bytes reserved balanced.
  std::size_t normal = 0;
  std::size_t bytes = 0;
  for (const chunk* c = current_; c != nullptr; c = c->prev) {
    ++normal;
    bytes += c->size;
  }
  std::size_t spares = 0;
  std::size_t spare_bytes = 0;
  for (const chunk* c = spare_; c != nullptr; c = c->prev) {
    ++spares;
    spare_bytes += c->size;
    ok = ok && (c->prev == nullptr || c->prev->size <= c->size);
  }
  std::size_t dedicated = 0;
  for (const chunk* c = dedicated_; c != nullptr; c = c->prev) {
    ++dedicated;
    bytes += c->size;
    ok = ok && (c->prev == nullptr || c->prev->stamp < c->stamp);
  }
  std::size_t dedicated_spares = 0;
  for (const chunk* c = dedicated_spare_; c != nullptr; c = c->prev) {
    ++dedicated_spares;
    spare_bytes += c->size;
    ok = ok && (c->prev == nullptr || c->prev->size <= c->size);
  }
  bytes += spare_bytes;
  ok = ok && normal + spares == chunk_count_ && spares == spare_count_ &&
       dedicated + dedicated_spares == dedicated_count_ && dedicated_spares == dedicated_spare_count_ &&
       spare_bytes == spare_bytes_ && bytes == counters_.value.bytes_reserved;
#endif
  return ok;
}

}  // namespace strata
