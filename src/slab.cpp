// SPDX-License-Identifier: MIT
// slab: construction, checked and forwarding slow paths, release, statistics.
//
// The region, as carved:
//
//   begin_                         fresh_                         end_
//   |  slot  |  slot  |  slot  | ... |  never handed out (uncarved)  |
//   '-- stride_ --'
//   handed out, or free: a free slot's first word links to the next free
//   slot (encoded in hardened mode); the rest of a free slot is poisoned
//   under ASan, and so is the uncarved tail, so use-after-free and overrun
//   into an unused slot fail loudly.
//
// Every slot is stride_ bytes: slot_size rounded up to the slot alignment,
// and at least one pointer so the link fits. There is no per-allocation
// header; unless detect_double_free is off (and not hardened), one "handed
// out" bit per slot is kept beside the region.

#include "strata/slab.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

namespace strata {

namespace {

constexpr std::string_view resource_name = "slab";

// Slots must hold an aligned pointer (the free-list link), whatever the caller asks.
std::size_t effective_alignment(const slab::options& o) noexcept {
  return std::max(o.slot_alignment, alignof(void*));
}

}  // namespace

// ------------------------------------------------------------ construction

namespace {

std::size_t checked_stride(const slab::options& o, std::pmr::memory_resource* upstream) {
  detail::check_upstream(resource_name, upstream);
  if (o.slot_size == 0) detail::throw_bad_option(resource_name, "slot_size", "must be at least 1");
  if (!detail::is_power_of_two(o.slot_alignment)) {
    detail::throw_bad_option(resource_name, "slot_alignment", "must be a power of two");
  }
  bool ok = true;
  const std::size_t stride =
      detail::round_up(std::max(o.slot_size, sizeof(void*)), effective_alignment(o), ok);
  if (!ok) detail::throw_bad_option(resource_name, "slot_size", "is too large for slot_alignment");
  return stride;
}

}  // namespace

slab::slab(options opts, std::pmr::memory_resource* upstream)
    : resource(resource_name, upstream), options_(opts), stride_(checked_stride(opts, upstream)) {
  if (options_.capacity == 0) detail::throw_bad_option(resource_name, "capacity", "must be at least 1");
  if (options_.capacity > SIZE_MAX / stride_) {
    detail::throw_bad_option(resource_name, "capacity", "times the slot stride overflows size_t");
  }
  region_bytes_ = options_.capacity * stride_;
  region_alignment_ = std::max(effective_alignment(options_), alignof(std::max_align_t));
  region_ = static_cast<std::byte*>(
      detail::allocate_from_upstream(upstream, resource_name, region_bytes_, region_alignment_));
  counters_.on_upstream_allocate(region_bytes_);
  try {
    init(region_);
  } catch (...) {
    upstream->deallocate(region_, region_bytes_, region_alignment_);
    throw;
  }
}

slab::slab(options opts, std::span<std::byte> buffer, std::pmr::memory_resource* upstream)
    : resource(resource_name, upstream), options_(opts), stride_(checked_stride(opts, upstream)) {
  const auto address = reinterpret_cast<std::uintptr_t>(buffer.data());
  const std::size_t pad = detail::align_up(address, effective_alignment(options_)) - address;
  const std::size_t fit = buffer.size() > pad ? (buffer.size() - pad) / stride_ : 0;
  if (fit == 0) detail::throw_bad_option(resource_name, "buffer", "is too small for one slot");
  if (options_.capacity == 0) options_.capacity = fit;
  if (options_.capacity > fit)
    detail::throw_bad_option(resource_name, "capacity", "exceeds what the buffer holds");
  init(buffer.data() + pad);
}

void slab::init(std::byte* first_slot) {
  begin_ = first_slot;
  end_ = begin_ + options_.capacity * stride_;
  fresh_ = begin_;
  // Only the options decide: the library's NDEBUG and the user's are
  // irrelevant here, so an application sees the same checks whatever either
  // was compiled with (docs/reliability.md).
  checked_ = options_.hardened;
  // The fast paths never poison: under a memory tool (decided once per
  // process, so every slab agrees) every call goes to the slow paths, which
  // do the fast paths' work and the poisoning. Without one, the fast paths
  // pay nothing for it, not even a test.
  poisoning_ = !checked_ && detail::memory_tool_present();
  const bool slow_only = checked_ || poisoning_;
  fast_slot_size_ = slow_only ? 0 : options_.slot_size + 1;  // slot_size < stride <= SIZE_MAX: no wrap
  alignment_reject_ = ~(options_.slot_alignment - 1);
  begin_address_ = reinterpret_cast<std::uintptr_t>(begin_);
  fast_span_ = slow_only ? 0 : static_cast<std::size_t>(end_ - begin_);
  if (options_.hardened) codec_ = detail::link_codec{detail::make_link_secret(this)};
  shift_ = std::countr_zero(stride_);
  const std::size_t odd = stride_ >> shift_;
  inverse_ = odd;  // Newton's iteration: each step doubles the correct low bits (3, 6, 12, 24, 48, 96)
  for (int step = 0; step < 5; ++step) inverse_ *= 2 - odd * inverse_;
  if (checked_ || options_.detect_double_free) {
    live_bytes_ = std::make_unique<std::uint8_t[]>(options_.capacity);  // zeroed: nothing handed out
    if (!checked_) live_ = live_bytes_.get();
    if (!slow_only) fast_slots_ = options_.capacity;
  }
  detail::poison_memory(begin_, static_cast<std::size_t>(end_ - begin_));  // uncarved until handed out
}

slab::~slab() {
  release();
  detail::unpoison_memory(begin_, static_cast<std::size_t>(end_ - begin_));  // the region leaves our hands
  if (region_ != nullptr) {
    upstream_resource()->deallocate(region_, region_bytes_, region_alignment_);
    counters_.on_upstream_deallocate(region_bytes_);
  }
}

// -------------------------------------------------------------- allocation

void* slab::allocate_slow(std::size_t bytes, std::size_t alignment) {
  detail::check_alignment(resource_name, alignment);
  if (bytes > options_.slot_size || alignment > options_.slot_alignment) {
    ++forwarded_too_large_;
    return forward(bytes, alignment);
  }
  // Only checked mode and a memory tool reach here with a free slot; the fast
  // path found none otherwise.
  if (checked_) {
    if (void* p = pop_checked()) {
      live_bytes_[slot_index(p)] = 1;
      note_allocate(bytes);
      STRATA_ASSERT(invariants_hold(), "slab accounting drifted");
      return p;
    }
  } else if (poisoning_) {  // the fast path's pop or carve, and the unpoisoning it leaves out
    void* p = head_;
    if (p != nullptr) {
      detail::unpoison_memory(p, stride_);  // the whole slot, link word included
      head_ = *static_cast<void**>(p);
    } else if (fresh_ != end_) {
      p = fresh_;
      fresh_ += stride_;
      detail::unpoison_memory(p, stride_);
    }
    if (p != nullptr) {
      mark_live(p);
      note_allocate(bytes);
      return p;
    }
  }
  if (options_.on_exhaustion == exhaustion::throw_bad_alloc) {
    counters_.on_failure();
    detail::throw_allocation_failure(resource_name, bytes, alignment, failure_reason::capacity);
  }
  ++forwarded_on_exhaustion_;
  return forward(bytes, alignment);
}

void* slab::pop_checked() noexcept {
  if (void* p = head_) {
    detail::unpoison_memory(p, stride_);
    const std::uintptr_t word = *static_cast<std::uintptr_t*>(p);
    void* next = options_.hardened ? codec_.decode(p, word) : reinterpret_cast<void*>(word);
    const auto* n = static_cast<const std::byte*>(next);
    // A link is believed only if it names a carved, free slot on a slot
    // boundary, and the list ends exactly when the count says it does.
    const bool valid = next == nullptr ? free_count_ == 1
                                       : free_count_ > 1 && n >= begin_ && n < fresh_ &&
                                             static_cast<std::size_t>(n - begin_) % stride_ == 0 &&
                                             live_bytes_[slot_index(next)] == 0;
    if (valid) [[likely]] {
      head_ = next;
      --free_count_;
    } else {
      // Cut the list after p: p itself was validated when it became the head.
      // The slots behind the bad link are lost until release(), never handed out wild.
      ++corrupted_links_;
      lost_slots_ += free_count_ - 1;
      free_count_ = 0;
      head_ = nullptr;
      counters_.on_misuse();
      report_misuse(
          {resource_name, misuse_kind::unknown_pointer, next, options_.slot_size, options_.slot_alignment});
    }
    return p;
  }
  if (fresh_ != end_) {
    void* p = fresh_;
    fresh_ += stride_;
    detail::unpoison_memory(p, stride_);
    return p;
  }
  return nullptr;
}

void* slab::forward(std::size_t bytes, std::size_t alignment) {
  void* p = nullptr;
  try {
    p = detail::allocate_from_upstream(upstream_resource(), resource_name, bytes, alignment);
    forwarded_.emplace(p, forwarded_block{bytes, alignment});
  } catch (...) {
    if (p != nullptr) upstream_resource()->deallocate(p, bytes, alignment);  // lose nothing
    counters_.on_failure();
    throw;
  }
  counters_.on_upstream_allocate(bytes);
  ++forwarded_allocations_;
  note_allocate(bytes);
  return p;
}

// ------------------------------------------------------------ deallocation

void slab::deallocate_slow(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  // Under a memory tool every call comes here. Without detect_double_free:
  // the fast path's push, then the poisoning it leaves out (link word too: it
  // is unpoisoned before a pop reads it); with it, the checks below, which poison.
  if (poisoning_ && live_ == nullptr && contains(p)) {
    push(p, bytes);
    detail::poison_memory(p, stride_);
    return;
  }
  // A region pointer comes here in checked mode, or when detect_double_free's
  // test refused it; without either the fast path takes them all.
  if (contains(p)) {
    const auto* b = static_cast<const std::byte*>(p);
    if (b >= fresh_ || static_cast<std::size_t>(b - begin_) % stride_ != 0) {
      reject(misuse_kind::unknown_pointer, p, bytes, alignment);
      return;
    }
    const std::size_t index = slot_index(p);
    if (live_bytes_[index] == 0) {
      ++double_frees_;
      reject(misuse_kind::double_free, p, bytes, alignment);
      return;
    }
    if (bytes > options_.slot_size) {
      reject(misuse_kind::size_mismatch, p, bytes, alignment);
      return;
    }
    live_bytes_[index] = 0;
    *static_cast<std::uintptr_t*>(p) =
        options_.hardened ? codec_.encode(p, head_) : reinterpret_cast<std::uintptr_t>(head_);
    detail::poison_memory(p, stride_);
    head_ = p;
    ++free_count_;
    note_deallocate(bytes);
    STRATA_ASSERT(invariants_hold(), "slab accounting drifted");
    return;
  }
  const auto it = forwarded_.find(p);
  if (it == forwarded_.end()) {
    reject(misuse_kind::unknown_pointer, p, bytes, alignment);
    return;
  }
  const forwarded_block block = it->second;
  if (block.bytes != bytes || block.alignment != alignment) {
    // Repaired, not obeyed: the upstream gets the size it handed out.
    counters_.on_misuse();
    report_misuse({resource_name,
                   block.bytes != bytes ? misuse_kind::size_mismatch : misuse_kind::alignment_mismatch, p,
                   bytes, alignment});
  }
  forwarded_.erase(it);
  upstream_resource()->deallocate(p, block.bytes, block.alignment);
  counters_.on_upstream_deallocate(block.bytes);
  ++forwarded_deallocations_;
  note_deallocate(block.bytes);
}

void slab::reject(misuse_kind kind, void* p, std::size_t bytes, std::size_t alignment) noexcept {
  counters_.on_rejected_deallocate();
  report_misuse({resource_name, kind, p, bytes, alignment});
}

// ---------------------------------------------------------- housekeeping

void slab::release() noexcept {
  for (const auto& [p, block] : forwarded_) {
    upstream_resource()->deallocate(p, block.bytes, block.alignment);
    counters_.on_upstream_deallocate(block.bytes);
  }
  released_slots_ = (allocations_ - forwarded_allocations_) - (deallocations_ - forwarded_deallocations_);
  forwarded_.clear();
  head_ = nullptr;
  free_count_ = 0;
  lost_slots_ = 0;
  fresh_ = begin_;
  if (live_bytes_) {
    std::fill_n(live_bytes_.get(), options_.capacity, std::uint8_t{0});
  }
  detail::poison_memory(begin_, static_cast<std::size_t>(end_ - begin_));
  bytes_deallocated_ = bytes_allocated_;  // what callers still held is dropped
  STRATA_ASSERT(invariants_hold(), "slab accounting drifted");
}

// --------------------------------------------------------------- observers

resource_stats slab::do_stats() const noexcept {
  resource_stats s = counters_.snapshot();
  s.allocations = allocations_;
  s.deallocations += deallocations_;  // counters_ holds the refused ones
  s.bytes_in_use = bytes_allocated_ - bytes_deallocated_;
  s.peak_bytes_in_use = std::max(peak_, s.bytes_in_use);
  return s;
}

slab::details_type slab::details() const noexcept {
  const auto carved = static_cast<std::size_t>(fresh_ - begin_) / stride_;
  std::size_t forwarded_live = forwarded_.size();
  return {options_.capacity,
          stride_,
          carved,
          free_slots(),
          lost_slots_,
          forwarded_too_large_,
          forwarded_on_exhaustion_,
          forwarded_live,
          corrupted_links_,
          double_frees_,
          checked_ || live_ != nullptr};
}

bool slab::invariants_hold() const noexcept {
  if (fresh_ < begin_ || fresh_ > end_) return false;
  const auto carved = static_cast<std::size_t>(fresh_ - begin_) / stride_;
  if (checked_ && (free_count_ + lost_slots_ > carved || (head_ == nullptr) != (free_count_ == 0)))
    return false;
  if (free_slots() + lost_slots_ > options_.capacity) return false;
  return true;
}

}  // namespace strata
