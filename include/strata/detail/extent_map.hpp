// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>

// The page-granular extent allocator behind arena's region. Not part of the
// public API.
//
// A range of `pages` pages is tiled by spans, each either free or in use.
// Every span records its length at its first page (its head); every page of
// an in-use span names its head (the page map: page -> head in O(1)); the
// last page of a free span names its first page (a boundary tag), so a freed
// span coalesces with both neighbours in O(1). Free spans sit in
// size-segregated doubly linked lists (exact lists for 1..64 pages, then four
// lists per power of two) with a bitmap of the non-empty ones; allocate takes
// the best fit (the smallest span that holds the request, ties to the lower
// address within one list). All metadata is allocated once, at construction:
// allocate and deallocate never allocate and never throw.
//
// Thread safety: not thread-safe (the arena guards it with its region
// mutex), except head_of(), which any thread may call at any time: it reads
// one relaxed atomic and may be stale for a page that is free or changing,
// so callers confirm what it names through their own (atomic) records.

namespace strata::detail {

class extent_map {
 public:
  static constexpr std::size_t npos = SIZE_MAX;

  /// Manages pages [0, pages), all free. Requires: 0 < pages < 2^32 - 1.
  /// Throws: std::bad_alloc.
  explicit extent_map(std::size_t pages)
      : pages_(pages), head_(new std::atomic<std::uint32_t>[pages]), info_(new span_info[pages]) {
    reset();
  }

  /// Makes every page free again: one span.
  void reset() noexcept {
    buckets_.fill(none);
    nonempty_.fill(0);
    free_pages_ = 0;
    free_spans_ = 0;
    for (std::size_t i = 0; i < pages_; ++i) {
      head_[i].store(none, std::memory_order_relaxed);
      info_[i] = span_info{};
    }
    make_free(0, pages_);
  }

  /// Takes `pages` pages whose first page index i satisfies
  /// (i + phase) % align == 0 (align a power of two, in pages) from the best
  /// fitting free span; returns i, or npos (nothing changed) if none fits.
  /// Complexity: O(free spans in the lists searched).
  [[nodiscard]] std::size_t allocate(std::size_t pages, std::size_t align = 1,
                                     std::size_t phase = 0) noexcept {
    if (pages == 0 || pages > pages_) return npos;
    const std::size_t mask = align - 1;
    const auto start_in = [&](std::size_t first) { return ((first + phase + mask) & ~mask) - phase; };
    for (std::size_t b = bucket(pages); b < bucket_count; ++b) {
      b = next_nonempty(b);
      if (b == bucket_count) break;
      std::uint32_t best = none;
      std::size_t best_length = SIZE_MAX;
      for (std::uint32_t s = buckets_[b]; s != none; s = info_[s].next) {
        const std::size_t length = info_[s].length;
        const std::size_t start = start_in(s);
        if (start - s >= length || length - (start - s) < pages) continue;
        if (length < best_length || (length == best_length && s < best)) {
          best = s;
          best_length = length;
          if (length == pages && align == 1) break;  // exact: nothing fits better
        }
      }
      if (best == none) continue;
      const std::size_t start = start_in(best);
      unlink(best);
      if (start != best) make_free(best, start - best);
      if (best + best_length != start + pages) make_free(start + pages, best + best_length - (start + pages));
      info_[start].length = static_cast<std::uint32_t>(pages);
      info_[start].free = false;
      for (std::size_t i = start; i < start + pages; ++i) {
        head_[i].store(static_cast<std::uint32_t>(start), std::memory_order_relaxed);
      }
      return start;
    }
    return npos;
  }

  /// Frees the in-use span that starts at first, coalescing it with free
  /// neighbours. Returns false (nothing changed) if no in-use span starts there.
  bool deallocate(std::size_t first) noexcept {
    if (!in_use_head(first)) return false;
    info_[first].free = true;  // from now on never an in-use head, even inside a larger free span
    std::size_t begin = first;
    std::size_t end = first + info_[first].length;
    if (begin != 0) {
      const std::uint32_t before = head_[begin - 1].load(std::memory_order_relaxed);
      if (before != none && info_[before].free && before + info_[before].length == begin) {
        unlink(before);
        begin = before;
      }
    }
    if (end != pages_ && info_[end].free) {
      const std::size_t length = info_[end].length;
      unlink(static_cast<std::uint32_t>(end));
      end += length;
    }
    make_free(begin, end - begin);
    return true;
  }

  /// The head of the span holding page if that span is in use; otherwise
  /// (free pages) any value, possibly a stale head. Lock-free.
  [[nodiscard]] std::uint32_t head_of(std::size_t page) const noexcept {
    return head_[page].load(std::memory_order_relaxed);
  }
  /// Whether an in-use span starts at first, and its length.
  [[nodiscard]] bool in_use_head(std::size_t first) const noexcept {
    return first < pages_ && !info_[first].free && info_[first].length != 0 &&
           head_[first].load(std::memory_order_relaxed) == first;
  }
  [[nodiscard]] std::size_t length(std::size_t first) const noexcept { return info_[first].length; }

  [[nodiscard]] std::size_t pages() const noexcept { return pages_; }
  [[nodiscard]] std::size_t free_pages() const noexcept { return free_pages_; }
  [[nodiscard]] std::size_t free_spans() const noexcept { return free_spans_; }
  /// The longest free span, in pages. Complexity: O(free spans in the top list).
  [[nodiscard]] std::size_t largest_free() const noexcept {
    for (std::size_t b = bucket_count; b-- > 0;) {
      std::size_t best = 0;
      for (std::uint32_t s = buckets_[b]; s != none; s = info_[s].next)
        best = std::max<std::size_t>(best, info_[s].length);
      if (best != 0) return best;
    }
    return 0;
  }

  /// Calls f(first, length) for every free span, in no particular order.
  /// f must not change the map. Complexity: O(free spans).
  template <class F>
  void for_each_free(F&& f) const {
    for (std::size_t b = 0; b < bucket_count; ++b) {
      for (std::uint32_t s = buckets_[b]; s != none; s = info_[s].next)
        f(std::size_t{s}, std::size_t{info_[s].length});
    }
  }

  /// Walks every span: they tile the pages, free spans are coalesced and
  /// listed in their bucket, the counts agree. Complexity: O(pages).
  [[nodiscard]] bool invariants_hold() const noexcept {
    std::size_t free_pages = 0;
    std::size_t free_spans = 0;
    bool previous_free = false;
    for (std::size_t i = 0; i < pages_;) {
      const span_info& s = info_[i];
      if (s.length == 0 || i + s.length > pages_) return false;
      if (s.free) {
        if (previous_free) return false;  // not coalesced
        if (head_[i + s.length - 1].load(std::memory_order_relaxed) != i) return false;
        free_pages += s.length;
        ++free_spans;
      } else {
        for (std::size_t j = i; j < i + s.length; ++j) {
          if (head_[j].load(std::memory_order_relaxed) != i) return false;
        }
      }
      previous_free = s.free;
      i += s.length;
    }
    std::size_t listed = 0;
    for (std::size_t b = 0; b < bucket_count; ++b) {
      for (std::uint32_t s = buckets_[b]; s != none; s = info_[s].next) {
        if (!info_[s].free || bucket(info_[s].length) != b) return false;
        ++listed;
      }
    }
    return free_pages == free_pages_ && free_spans == free_spans_ && listed == free_spans;
  }

 private:
  static constexpr std::uint32_t none = UINT32_MAX;
  static constexpr std::size_t exact = 64;
  static constexpr std::size_t bucket_count =
      exact + std::size_t{4} * 32;  // std::size_t: no int product widened (clang-tidy)

  struct span_info {            // meaningful at a span's head
    std::uint32_t length = 0;   // pages
    std::uint32_t prev = none;  // free list links (free spans)
    std::uint32_t next = none;
    bool free = false;
  };

  // 1..64 pages: one list each; above, four lists per power of two.
  [[nodiscard]] static std::size_t bucket(std::size_t pages) noexcept {
    if (pages <= exact) return pages - 1;
    const auto log = static_cast<std::size_t>(std::bit_width(pages)) - 1;  // >= 6
    return exact + 4 * (log - 6) + ((pages >> (log - 2)) & 3);
  }
  [[nodiscard]] std::size_t next_nonempty(std::size_t b) const noexcept {
    for (std::size_t w = b / 64; w < nonempty_.size(); ++w) {
      std::uint64_t bits = nonempty_[w];
      if (w == b / 64) bits &= ~std::uint64_t{0} << (b % 64);
      if (bits != 0) return w * 64 + static_cast<std::size_t>(std::countr_zero(bits));
    }
    return bucket_count;
  }

  void make_free(std::size_t first, std::size_t length) noexcept {
    span_info& s = info_[first];
    s.length = static_cast<std::uint32_t>(length);
    s.free = true;
    head_[first].store(static_cast<std::uint32_t>(first), std::memory_order_relaxed);
    head_[first + length - 1].store(static_cast<std::uint32_t>(first), std::memory_order_relaxed);
    const std::size_t b = bucket(length);
    s.prev = none;
    s.next = buckets_[b];
    if (s.next != none) info_[s.next].prev = static_cast<std::uint32_t>(first);
    buckets_[b] = static_cast<std::uint32_t>(first);
    nonempty_[b / 64] |= std::uint64_t{1} << (b % 64);
    free_pages_ += length;
    ++free_spans_;
  }

  void unlink(std::uint32_t first) noexcept {
    span_info& s = info_[first];
    const std::size_t b = bucket(s.length);
    if (s.prev != none) {
      info_[s.prev].next = s.next;
    } else {
      buckets_[b] = s.next;
      if (s.next == none) nonempty_[b / 64] &= ~(std::uint64_t{1} << (b % 64));
    }
    if (s.next != none) info_[s.next].prev = s.prev;
    // s.free stays set: a page that was a free span's head and is now inside
    // a larger span must not look like the head of an in-use span.
    free_pages_ -= s.length;
    --free_spans_;
  }

  std::size_t pages_;
  std::unique_ptr<std::atomic<std::uint32_t>[]> head_;  // the page map
  std::unique_ptr<span_info[]> info_;
  std::array<std::uint32_t, bucket_count> buckets_{};  // first span of each list
  std::array<std::uint64_t, (bucket_count + 63) / 64> nonempty_{};
  std::size_t free_pages_ = 0;
  std::size_t free_spans_ = 0;
};

}  // namespace strata::detail
