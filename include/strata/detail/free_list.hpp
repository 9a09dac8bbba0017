// SPDX-License-Identifier: MIT
#pragma once

#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>

// Free-list link encoding shared by slab and extendable_slab. Not part of the
// public API.
//
// A free slot's first word links to the next free slot. In hardened mode the
// word is stored encoded, so that a use-after-free or overflow that writes a
// plausible pointer into a freed slot does not steer the next allocation to
// an address of the attacker's choosing: the stored word is
//
//     next ^ secret ^ rotl(slot address, 29)
//
// The secret is per resource and the slot's own address takes part, so the
// same next pointer encodes differently in every slot and in every resource.
// Decoding applies the same XOR. A decoded link is then validated by the
// caller (in range, on a slot boundary, not live) before it is followed.

namespace strata::detail {

/// Encodes and decodes hardened free-list links with one secret.
class link_codec {
 public:
  link_codec() noexcept = default;
  explicit link_codec(std::uintptr_t secret) noexcept : secret_(secret) {}

  [[nodiscard]] std::uintptr_t encode(const void* slot, const void* next) const noexcept {
    return reinterpret_cast<std::uintptr_t>(next) ^ mask(slot);
  }
  [[nodiscard]] void* decode(const void* slot, std::uintptr_t word) const noexcept {
    return reinterpret_cast<void*>(word ^ mask(slot));
  }

 private:
  [[nodiscard]] std::uintptr_t mask(const void* slot) const noexcept {
    return secret_ ^ std::rotl(reinterpret_cast<std::uintptr_t>(slot), 29);
  }
  std::uintptr_t secret_ = 0;
};

/// Returns a per-resource secret mixed (splitmix64) from the resource's
/// address and the clock: not cryptographic, but not guessable from the
/// binary and different for every resource and run. Slow-path only.
[[nodiscard]] inline std::uintptr_t make_link_secret(const void* owner) noexcept {
  std::uint64_t z = reinterpret_cast<std::uintptr_t>(owner) ^
                    static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  z += 0x9e3779b97f4a7c15u;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  z ^= z >> 31;
  return static_cast<std::uintptr_t>(z | 1u);  // never 0, so an encoded null is never 0 either
}

/// Per-slot "handed out" bits used by checked (debug or hardened) modes to
/// prove a double free. Storage is provided by the owner.
struct slot_bits {
  std::uint64_t* words = nullptr;

  [[nodiscard]] bool test(std::size_t index) const noexcept {
    return (words[index / 64] >> (index % 64)) & 1u;
  }
  void set(std::size_t index) noexcept { words[index / 64] |= std::uint64_t{1} << (index % 64); }
  void clear(std::size_t index) noexcept { words[index / 64] &= ~(std::uint64_t{1} << (index % 64)); }
  [[nodiscard]] static constexpr std::size_t words_for(std::size_t slots) noexcept {
    return (slots + 63) / 64;
  }
};

}  // namespace strata::detail
