// SPDX-License-Identifier: MIT
#pragma once

// The fuzzing interpreter shared by every resource's target: input bytes
// drive a sequence of operations on a resource that sits on a
// tracking_resource upstream, and any broken promise stops the run with
// __builtin_trap() (which libFuzzer reports and minimizes):
//
//   allocate     size and alignment from the input; the block must be aligned,
//                must not overlap a live block, and is filled with a tag
//   deallocate   a live block chosen by the input; its tag must be intact
//   special      the resource's own operations (reset, rewind, trim, limits...)
//   check        stats().bytes_in_use must equal the bytes live (when exact),
//                plus the target's own cross-checks (optional check())
//
// At the end every block is freed and the resource destroyed; the upstream
// must then hold nothing and must have seen no misuse.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <new>
#include <vector>

#include <strata/page_resource.hpp>
#include <strata/resource.hpp>
#include <strata/tracking_resource.hpp>

namespace strata::fuzz {

/// Reads the input a byte or a word at a time; zeros once it runs out.
class input {
 public:
  input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  [[nodiscard]] bool empty() const { return at_ >= size_; }
  std::uint8_t byte() { return at_ < size_ ? data_[at_++] : 0; }
  std::uint16_t word() { return static_cast<std::uint16_t>(byte() | (byte() << 8)); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t at_ = 0;
};

struct block {
  std::byte* pointer;
  std::size_t bytes;
  std::size_t alignment;
  unsigned char tag;
  std::uint64_t serial;  // allocation order
};

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "strata fuzz: %s\n", what);
  __builtin_trap();
}

/// The blocks live in the resource under test, checked on every change.
class live_set {
 public:
  void add(const block& b) {
    const auto start = reinterpret_cast<std::uintptr_t>(b.pointer);
    const std::uintptr_t end = start + (b.bytes == 0 ? 1 : b.bytes);
    auto next = by_address_.lower_bound(start);
    if (next != by_address_.end() && next->first < end) fail("block overlaps a live block");
    if (next != by_address_.begin() && std::prev(next)->second > start) fail("block overlaps a live block");
    by_address_.emplace(start, end);
    blocks_.push_back(b);
    blocks_.back().serial = next_serial_++;
    bytes_ += b.bytes;
  }
  /// Removes and returns block i after checking its contents.
  block take(std::size_t i) {
    const block b = blocks_[i];
    // Both ends and a byte per page: enough to see an overlapping block's tag.
    for (std::size_t k = 0; k < b.bytes;
         k = k < 64 || k + 64 >= b.bytes ? k + 1 : std::min(k + 4096, b.bytes - 64)) {
      if (std::to_integer<unsigned char>(b.pointer[k]) != b.tag) fail("block contents were overwritten");
    }
    by_address_.erase(reinterpret_cast<std::uintptr_t>(b.pointer));
    blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(i));  // keeps allocation order
    bytes_ -= b.bytes;
    ++taken_;
    return b;
  }
  /// Counts an allocation the resource refused with std::bad_alloc.
  void note_failure() { ++failures_; }
  /// Forgets every block (after a reset or release freed them all).
  void clear() {
    blocks_.clear();
    by_address_.clear();
    bytes_ = 0;
  }
  /// Returns the serial the next block will get (a rewind point).
  [[nodiscard]] std::uint64_t next_serial() const { return next_serial_; }
  /// Forgets the blocks allocated at or after serial (after a rewind freed them).
  void forget_from(std::uint64_t serial);
  [[nodiscard]] std::size_t size() const { return blocks_.size(); }
  [[nodiscard]] std::size_t bytes() const { return bytes_; }
  /// Blocks ever added, ever taken back one by one, and allocations refused.
  [[nodiscard]] std::uint64_t added() const { return next_serial_; }
  [[nodiscard]] std::uint64_t taken() const { return taken_; }
  [[nodiscard]] std::uint64_t failures() const { return failures_; }
  [[nodiscard]] const std::vector<block>& blocks() const { return blocks_; }

 private:
  std::vector<block> blocks_;                            // in allocation order
  std::map<std::uintptr_t, std::uintptr_t> by_address_;  // start -> end
  std::size_t bytes_ = 0;
  std::uint64_t next_serial_ = 0;
  std::uint64_t taken_ = 0;
  std::uint64_t failures_ = 0;
};

/// Sizes mostly small, sometimes page-sized, rarely large.
inline std::size_t pick_size(input& in) {
  const std::uint16_t w = in.word();
  switch (w & 7) {
    case 0:
      return 0;
    case 1:
    case 2:
    case 3:
    case 4:
      return (w >> 3) & 511;
    case 5:
    case 6:
      return (w >> 3) & 16383;
    default:
      return static_cast<std::size_t>(w >> 3) << 5;  // up to 256 KiB
  }
}

/// Runs the interpreter for Target, which provides:
///   std::unique_ptr<R> make(std::pmr::memory_resource* upstream)
///     or make(strata::tracking_resource* upstream, input&) to read options from the first bytes
///   void special(R&, input&, live_set&)      the resource's own operations
///   bool exact_stats(const R&) const         whether bytes_in_use must equal the bytes live now
/// and optionally:
///   void check(const R&, const live_set&)    more cross-checks (stats, details) on every check
///                                            operation and at the end, with every block freed
///   void on_failure(const R&, std::size_t bytes, std::size_t alignment, const live_set&)
///                                            called when allocate threw std::bad_alloc, to
///                                            prove the refusal legitimate
template <class Target>
int run(const std::uint8_t* data, std::size_t size) {
  input in(data, size);
  bool leaked = false;
  {
    strata::tracking_resource upstream{{.on_leak = [&](const auto&) { leaked = true; }},
                                       strata::system_pages()};
    {
      Target target;
      auto r = [&] {
        if constexpr (requires { target.make(&upstream, in); }) {
          return target.make(&upstream, in);
        } else {
          return target.make(&upstream);
        }
      }();
      live_set live;
      unsigned char tag = 1;
      while (!in.empty()) {
        switch (in.byte() % 8) {
          case 0:
          case 1:
          case 2: {
            const std::size_t bytes = pick_size(in);
            const std::size_t alignment = std::size_t{1} << (in.byte() % 13);
            void* p = nullptr;
            try {
              p = r->allocate(bytes, alignment);
            } catch (const std::bad_alloc&) {
              live.note_failure();
              if constexpr (requires { target.on_failure(*r, bytes, alignment, live); }) {
                target.on_failure(*r, bytes, alignment, live);
              }
              break;  // exhaustion is allowed; the resource must stay usable
            }
            if (reinterpret_cast<std::uintptr_t>(p) % alignment != 0) fail("misaligned block");
            std::memset(p, tag, bytes);
            live.add({static_cast<std::byte*>(p), bytes, alignment, tag, 0});
            tag = static_cast<unsigned char>(tag % 250 + 1);
            break;
          }
          case 3:
          case 4:
          case 5:
            if (live.size() != 0) {
              const block b = live.take(in.byte() % live.size());
              r->deallocate(b.pointer, b.bytes, b.alignment);
            }
            break;
          case 6:
            target.special(*r, in, live);
            break;
          case 7:
            if (target.exact_stats(*r) && r->stats().bytes_in_use != live.bytes())
              fail("bytes_in_use drifted");
            if (r->stats().misuse_detected != 0) fail("correct use was reported as misuse");
            if constexpr (requires { target.check(*r, live); }) target.check(*r, live);
            break;
        }
      }
      while (live.size() != 0) {
        const block b = live.take(live.size() - 1);
        r->deallocate(b.pointer, b.bytes, b.alignment);
      }
      if (target.exact_stats(*r) && r->stats().bytes_in_use != 0) fail("bytes_in_use not zero at the end");
      if (r->stats().misuse_detected != 0) fail("correct use was reported as misuse");
      if constexpr (requires { target.check(*r, live); }) target.check(*r, live);
    }
    if (upstream.live_blocks() != 0) fail("the resource kept upstream blocks after its destruction");
    if (upstream.stats().misuse_detected != 0) fail("the resource misused its upstream");
  }
  if (leaked) fail("leak reported");
  return 0;
}

inline void live_set::forget_from(std::uint64_t serial) {
  while (!blocks_.empty() && blocks_.back().serial >= serial) {
    const block& b = blocks_.back();
    by_address_.erase(reinterpret_cast<std::uintptr_t>(b.pointer));
    bytes_ -= b.bytes;
    blocks_.pop_back();
  }
}

}  // namespace strata::fuzz
