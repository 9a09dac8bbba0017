// SPDX-License-Identifier: MIT
#include <strata/slab.hpp>

// Concerns:
// 1. The region is one upstream block of capacity x stride taken at construction;
//    slots are carved lazily from its front, and nothing else is taken while slots last.
// 2. Freed slots are reused last-in first-out.
// 3. Requests bigger than slot_size or more aligned than slot_alignment are forwarded
//    to the upstream, routed back there by address, and counted in details().
// 4. On exhaustion the slab forwards (default) or throws allocation_failure(capacity),
//    counted as a failure, and stays usable.
// 5. A caller buffer is used without any upstream call; a buffer too small is refused.
// 5a. By default (detect_double_free), in every build, a double free, an interior and a
//     never-carved pointer are refused and counted in misuse_detected only.
// 6. Hardened mode catches a corrupted free-list link (a plain pointer written into a
//    freed slot): counted as misuse, the list is cut, no wild pointer is handed out.
// 7. Checked deallocate catches double free; a foreign pointer is counted and ignored.
// 8. pmr::list and pmr::map nodes fit a slab sized with the documented probe.
// 9. Stats: bytes_in_use is the caller's bytes; memory overhead for 64 B slots <= 3 %.
// 10. Invalid options name the field; the conformance kit passes.

#define BOOST_TEST_MODULE slab
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <strata/detail/sanitizer.hpp>
#include <strata/page_resource.hpp>

#include "conformance.hpp"
#include "counting_resource.hpp"
#include "fixtures.hpp"

namespace {

struct slab_factory {
  static constexpr bool has_upstream = true;
  static constexpr bool thread_safe = false;
  std::unique_ptr<strata::resource> make(std::pmr::memory_resource* upstream) const {
    return std::make_unique<strata::slab>(strata::slab::options{.slot_size = 64, .capacity = 512}, upstream);
  }
};

// Records the size of every allocation: how a user learns a pmr container's node size.
class probe_resource final : public std::pmr::memory_resource {
 public:
  std::vector<std::pair<std::size_t, std::size_t>> requests;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    requests.emplace_back(bytes, alignment);
    return std::pmr::new_delete_resource()->allocate(bytes, alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
};

// Writes a raw value into a freed (poisoned) slot, as a use-after-free would.
void scribble_link(void* slot, std::uintptr_t value) {
  strata::detail::unpoison_memory(slot, sizeof(value));
  std::memcpy(slot, &value, sizeof(value));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(slab)

STRATA_CONFORMANCE_SUITE(slab_factory)

BOOST_AUTO_TEST_CASE(the_region_is_one_upstream_block_carved_lazily) {
  strata::test::counting_resource upstream;
  {
    strata::slab s{{.slot_size = 48, .slot_alignment = 16, .capacity = 100}, &upstream};
    BOOST_TEST(s.stride() == 48u);
    BOOST_TEST(upstream.allocations() == 1u);
    BOOST_TEST(upstream.bytes_outstanding() == 100u * 48u);
    BOOST_TEST(s.details().carved_slots == 0u);  // nothing touched at construction
    BOOST_TEST(s.free_slots() == 100u);
    std::vector<void*> slots;
    for (int i = 0; i < 10; ++i) slots.push_back(s.allocate(48, 16));
    BOOST_TEST(s.details().carved_slots == 10u);
    for (std::size_t i = 1; i < slots.size(); ++i) {
      BOOST_TEST(static_cast<std::byte*>(slots[i]) - static_cast<std::byte*>(slots[i - 1]) == 48);
    }
    for (void* p : slots) s.deallocate(p, 48, 16);
    for (int i = 0; i < 10; ++i) slots[static_cast<std::size_t>(i)] = s.allocate(48, 16);
    BOOST_TEST(s.details().carved_slots == 10u);  // reused, not carved again
    BOOST_TEST(upstream.allocations() == 1u);
    for (void* p : slots) s.deallocate(p, 48, 16);
  }
  BOOST_TEST(upstream.bytes_outstanding() == 0u);
}

BOOST_AUTO_TEST_CASE(freed_slots_are_reused_last_in_first_out) {
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 32, .capacity = 8}, &upstream};
  void* a = s.allocate(32, 8);
  void* b = s.allocate(32, 8);
  void* c = s.allocate(32, 8);
  s.deallocate(a, 32, 8);
  s.deallocate(c, 32, 8);
  BOOST_TEST(s.allocate(32, 8) == c);
  BOOST_TEST(s.allocate(32, 8) == a);
  BOOST_TEST(s.free_slots() == 5u);
  for (void* p : {a, b, c}) s.deallocate(p, 32, 8);
}

BOOST_AUTO_TEST_CASE(requests_that_do_not_fit_a_slot_are_forwarded_and_routed_back) {
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 64, .slot_alignment = 16, .capacity = 4}, &upstream};
  void* big = s.allocate(65, 8);
  void* aligned = s.allocate(16, 64);
  BOOST_TEST(!s.contains(big));
  BOOST_TEST(!s.contains(aligned));
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(aligned) % 64 == 0u);
  BOOST_TEST(upstream.allocations() == 3u);  // the region and the two forwarded blocks
  BOOST_TEST(s.details().forwarded_too_large == 2u);
  BOOST_TEST(s.details().forwarded_live == 2u);
  BOOST_TEST(s.stats().bytes_reserved == 4u * 64u + 65u + 16u);
  BOOST_TEST(s.usable_size(big) == 0u);
  s.deallocate(big, 65, 8);
  s.deallocate(aligned, 16, 64);
  BOOST_TEST(upstream.blocks_outstanding() == 1u);
  BOOST_TEST(s.stats().misuse_detected == 0u);
  BOOST_TEST(s.free_slots() == 4u);  // no slot was used
}

BOOST_AUTO_TEST_CASE(exhaustion_forwards_upstream_by_default) {
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 16, .capacity = 2}, &upstream};
  void* a = s.allocate(16, 8);
  void* b = s.allocate(16, 8);
  void* c = s.allocate(16, 8);
  BOOST_TEST(s.contains(a));
  BOOST_TEST(s.contains(b));
  BOOST_TEST(!s.contains(c));
  BOOST_TEST(s.details().forwarded_on_exhaustion == 1u);
  s.deallocate(c, 16, 8);
  s.deallocate(b, 16, 8);
  BOOST_TEST(s.allocate(16, 8) == b);  // a slot again once one is free
  s.deallocate(b, 16, 8);
  s.deallocate(a, 16, 8);
  BOOST_TEST(upstream.blocks_outstanding() == 1u);
}

BOOST_AUTO_TEST_CASE(exhaustion_throws_capacity_when_asked_and_stays_usable) {
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 16, .capacity = 2, .on_exhaustion = strata::slab::exhaustion::throw_bad_alloc},
                 &upstream};
  void* a = s.allocate(16, 8);
  void* b = s.allocate(16, 8);
  try {
    (void)s.allocate(16, 8);
    BOOST_FAIL("a full slab did not throw");
  } catch (const strata::allocation_failure& e) {
    BOOST_TEST((e.reason() == strata::failure_reason::capacity));
    BOOST_TEST(e.resource_name() == "slab");
  }
  BOOST_TEST(s.stats().failed_allocations == 1u);
  BOOST_TEST(upstream.allocations() == 1u);
  s.deallocate(a, 16, 8);
  BOOST_TEST(s.allocate(16, 8) == a);
  s.deallocate(a, 16, 8);
  s.deallocate(b, 16, 8);
  BOOST_TEST(s.stats().bytes_in_use == 0u);
}

BOOST_AUTO_TEST_CASE(a_caller_buffer_is_used_without_upstream_calls) {
  strata::test::counting_resource upstream;
  alignas(64) std::byte buffer[1000];
  {
    strata::slab s{{.slot_size = 100, .slot_alignment = 8, .capacity = 0}, std::span{buffer}, &upstream};
    BOOST_TEST(s.capacity() == 9u);  // 0: as many 104-byte slots as fit
    std::vector<void*> slots;
    for (std::size_t i = 0; i < s.capacity(); ++i) {
      slots.push_back(s.allocate(100, 8));
      BOOST_TEST((slots.back() >= buffer && slots.back() < buffer + sizeof buffer));
    }
    BOOST_TEST(upstream.allocations() == 0u);
    BOOST_TEST(s.stats().bytes_reserved == 0u);
    for (void* p : slots) s.deallocate(p, 100, 8);
  }
  BOOST_CHECK_THROW((strata::slab{{.slot_size = 100, .capacity = 10}, std::span{buffer}, &upstream}),
                    std::invalid_argument);
  BOOST_CHECK_THROW((strata::slab{{.slot_size = 2000}, std::span{buffer}, &upstream}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(hardened_mode_catches_a_corrupted_free_list_link) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 32, .capacity = 8, .hardened = true}, &upstream};
  void* a = s.allocate(32, 8);
  void* b = s.allocate(32, 8);
  void* c = s.allocate(32, 8);
  s.deallocate(a, 32, 8);
  s.deallocate(b, 32, 8);  // free list: b -> a
  // A use-after-free writes a plausible, unencoded pointer (to live slot c) into b.
  scribble_link(b, reinterpret_cast<std::uintptr_t>(c));
  BOOST_TEST(s.allocate(32, 8) == b);  // b itself was validated when it was pushed
  BOOST_TEST(s.stats().misuse_detected == 1u);
  BOOST_TEST(s.details().corrupted_links == 1u);
  BOOST_TEST(s.details().lost_slots == 1u);  // a is behind the bad link
  BOOST_TEST(recorder.taken().size() == 1u);
  // The next slot is fresh, never c (live) nor any address the link named.
  void* d = s.allocate(32, 8);
  BOOST_TEST(d != c);
  BOOST_TEST(d != a);
  BOOST_TEST(s.contains(d));
  for (void* p : {b, c, d}) s.deallocate(p, 32, 8);
  BOOST_TEST(s.stats().misuse_detected == 1u);
}

BOOST_AUTO_TEST_CASE(hardened_links_are_encoded_in_the_slot) {
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 32, .capacity = 8, .hardened = true}, &upstream};
  void* a = s.allocate(32, 8);
  void* b = s.allocate(32, 8);
  s.deallocate(a, 32, 8);
  s.deallocate(b, 32, 8);
  strata::detail::unpoison_memory(b, sizeof(void*));
  std::uintptr_t stored = 0;
  std::memcpy(&stored, b, sizeof stored);
  BOOST_TEST(stored != reinterpret_cast<std::uintptr_t>(a));  // not the plain next pointer
  strata::detail::poison_memory(b, sizeof(void*));
}

BOOST_AUTO_TEST_CASE(hardened_defaults_to_the_build_switch) {
  BOOST_TEST(strata::slab::options{}.hardened == strata::hardened_by_default);
  BOOST_TEST(strata::slab::options::for_type<double>(4).hardened == strata::hardened_by_default);
}

// Regression (issue 14): without hardened, only a debug libstrata checked
// deallocate; a release one pushed the slot twice and handed it out twice.
// The fast path's index test (a multiply by the inverse of the stride's odd
// part, then a rotate) is exercised with even, odd-multiple and
// power-of-two strides.
BOOST_AUTO_TEST_CASE(default_mode_catches_double_free_interior_and_uncarved_pointers) {
  for (const std::size_t slot_size : {8u, 24u, 40u, 64u, 96u, 4096u}) {
    BOOST_TEST_CONTEXT("slot_size " << slot_size) {
      strata::test::misuse_recorder recorder;
      strata::test::counting_resource upstream;
      strata::slab s{{.slot_size = slot_size, .slot_alignment = 8, .capacity = 70, .hardened = false},
                     &upstream};
      BOOST_TEST(s.details().checked);
      std::vector<void*> live;
      for (int i = 0; i < 65; ++i) live.push_back(s.allocate(slot_size, 8));
      auto* last = static_cast<std::byte*>(live.back());
      s.deallocate(last + 8, slot_size, 8);           // inside a slot
      s.deallocate(last + s.stride(), slot_size, 8);  // on a boundary, never carved
      s.deallocate(live[64], slot_size, 8);           // obeyed
      s.deallocate(live[64], slot_size, 8);           // double free, bit 0 of word 1
      s.deallocate(live[3], slot_size, 8);            // obeyed
      s.deallocate(live[3], slot_size, 8);            // double free
      BOOST_TEST(s.stats().misuse_detected == 4u);
      BOOST_TEST(s.details().double_frees == 2u);
      BOOST_TEST(s.stats().deallocations == 2u);
      BOOST_TEST(recorder.taken().size() == 4u);
      void* x = s.allocate(slot_size, 8);
      void* y = s.allocate(slot_size, 8);
      void* z = s.allocate(slot_size, 8);
      BOOST_TEST(x != y);  // each freed slot came back once, then a fresh one
      BOOST_TEST(z != x);
      BOOST_TEST(z != y);
      live[3] = x;
      live[64] = y;
      live.push_back(z);
      for (void* p : live) s.deallocate(p, slot_size, 8);
      BOOST_TEST(s.stats().misuse_detected == 4u);
      BOOST_TEST(s.stats().allocations == s.stats().deallocations);
      s.release();  // every bit cleared: an old pointer is not live any more
      s.deallocate(x, slot_size, 8);
      BOOST_TEST(s.stats().misuse_detected == 5u);
    }
  }
}

BOOST_AUTO_TEST_CASE(detect_double_free_off_is_the_unchecked_fast_path) {
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 64, .capacity = 8, .detect_double_free = false, .hardened = false}, &upstream};
  BOOST_TEST(!s.details().checked);
  void* a = s.allocate(64, 8);
  void* b = s.allocate(64, 8);
  s.deallocate(a, 64, 8);
  s.deallocate(b, 64, 8);
  BOOST_TEST(s.allocate(64, 8) == b);  // LIFO, as with the check
  BOOST_TEST(s.stats().misuse_detected == 0u);
  BOOST_TEST(strata::slab::options{}.detect_double_free);
}

#if defined(STRATA_HAS_ASAN)
// The fast paths do no poisoning (not even a test for a tool): under ASan
// every call takes the slow paths, which poison a freed slot whole and open a
// slot handed out whole, with the same double-free checks, in every mode.
BOOST_AUTO_TEST_CASE(under_asan_freed_slots_are_poisoned_and_checks_still_hold) {
  const auto poisoned = [](const std::byte* p, std::size_t size) {
    return __asan_address_is_poisoned(p) != 0 && __asan_address_is_poisoned(p + size / 2) != 0 &&
           __asan_address_is_poisoned(p + size - 1) != 0;
  };
  for (const bool detect : {false, true}) {
    for (const bool hardened : {false, true}) {
      BOOST_TEST_CONTEXT("detect_double_free " << detect << ", hardened " << hardened) {
        strata::test::misuse_recorder recorder;
        strata::test::counting_resource upstream;
        strata::slab s{{.slot_size = 64, .capacity = 8, .detect_double_free = detect, .hardened = hardened},
                       &upstream};
        BOOST_TEST(s.details().checked == (detect || hardened));
        auto* a = static_cast<std::byte*>(s.allocate(64, 16));
        auto* b = static_cast<std::byte*>(s.allocate(64, 16));
        BOOST_TEST(poisoned(b + s.stride(), s.stride()));  // never carved
        BOOST_TEST(__asan_region_is_poisoned(a, 64) == nullptr);
        std::memset(a, 0xa5, 64);
        s.deallocate(a, 64, 16);
        BOOST_TEST(poisoned(a, s.stride()));
        if (detect || hardened) {
          s.deallocate(a, 64, 16);  // double free: refused, counted
          BOOST_TEST(s.stats().misuse_detected == 1u);
        }
        auto* c = static_cast<std::byte*>(s.allocate(64, 16));
        BOOST_TEST(c == a);  // LIFO
        BOOST_TEST(__asan_region_is_poisoned(c, 64) == nullptr);
        std::memset(c, 0x5a, 64);
        s.deallocate(b, 64, 16);
        s.deallocate(c, 64, 16);
        BOOST_TEST(s.stats().allocations == s.stats().deallocations);
        BOOST_TEST(s.stats().bytes_in_use == 0u);
      }
    }
  }
}
#endif

BOOST_AUTO_TEST_CASE(hardened_mode_catches_foreign_and_interior_pointers) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 32, .capacity = 8, .hardened = true}, &upstream};
  void* a = s.allocate(32, 8);
  void* b = s.allocate(32, 8);
  alignas(64) std::byte not_ours[64]{};
  s.deallocate(not_ours, 32, 8);                             // outside the region
  s.deallocate(static_cast<std::byte*>(a) + 8, 32, 8);       // inside, off a slot boundary
  s.deallocate(static_cast<std::byte*>(b) + 4 * 32, 32, 8);  // on a boundary, never carved
  BOOST_TEST(s.stats().misuse_detected == 3u);
  const auto reports = recorder.taken();
  BOOST_TEST_REQUIRE(reports.size() == 3u);
  for (const auto& r : reports) BOOST_TEST((r.kind == strata::misuse_kind::unknown_pointer));
  // None of them entered the free list: the next two slots are fresh and distinct.
  void* c = s.allocate(32, 8);
  void* d = s.allocate(32, 8);
  BOOST_TEST(c != d);
  for (void* p : {a, b, c, d}) BOOST_TEST(s.contains(p));
  BOOST_TEST(c != static_cast<void*>(static_cast<std::byte*>(a) + 8));
  for (void* p : {a, b, c, d}) s.deallocate(p, 32, 8);
  BOOST_TEST(s.stats().bytes_in_use == 0u);
  BOOST_TEST(s.stats().misuse_detected == 3u);
}

BOOST_AUTO_TEST_CASE(checked_deallocate_catches_a_double_free) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 32, .capacity = 8, .hardened = true}, &upstream};
  void* a = s.allocate(32, 8);
  s.deallocate(a, 32, 8);
  s.deallocate(a, 32, 8);
  BOOST_TEST(s.stats().misuse_detected == 1u);
  BOOST_TEST(s.details().double_frees == 1u);
  const auto reports = recorder.taken();
  BOOST_TEST_REQUIRE(reports.size() == 1u);
  BOOST_TEST((reports[0].kind == strata::misuse_kind::double_free));
  void* x = s.allocate(32, 8);
  void* y = s.allocate(32, 8);
  BOOST_TEST(x != y);  // the slot was not pushed twice
  s.deallocate(x, 32, 8);
  s.deallocate(y, 32, 8);
  BOOST_TEST(s.stats().bytes_in_use == 0u);
  // Regression (issue 14): the rejected second free counted as a deallocation.
  BOOST_TEST(s.stats().allocations == 3u);
  BOOST_TEST(s.stats().deallocations == 3u);
}

BOOST_AUTO_TEST_CASE(a_foreign_pointer_is_counted_and_ignored) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 32, .capacity = 8}, &upstream};
  void* a = s.allocate(32, 8);
  alignas(64)
      std::byte not_ours[64]{};  // a writable block: the misuse must not be obeyed, whatever the build
  s.deallocate(not_ours, 32, 8);
  BOOST_TEST(s.stats().misuse_detected == 1u);
  BOOST_TEST(upstream.deallocations() == 0u);  // not passed on
  const auto reports = recorder.taken();
  BOOST_TEST_REQUIRE(reports.size() == 1u);
  BOOST_TEST((reports[0].kind == strata::misuse_kind::unknown_pointer));
  BOOST_TEST(s.allocate(32, 8) != a);
  s.deallocate(a, 32, 8);
}

// The fast path tests "inside the region" with one unsigned compare: the
// addresses just outside it, on both sides, must still be refused.
BOOST_AUTO_TEST_CASE(pointers_just_outside_the_region_are_refused) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource upstream;
  alignas(64) std::array<std::byte, 64 * 10> memory{};
  const std::span<std::byte> inner{memory.data() + 64, 64 * 8};
  strata::slab s{{.slot_size = 64, .slot_alignment = 64, .capacity = 8}, inner, &upstream};
  std::vector<void*> live;
  for (int i = 0; i < 8; ++i) live.push_back(s.allocate(64, 64));
  for (void* p : live) s.deallocate(p, 64, 64);
  const std::size_t free_before = s.free_slots();
  for (std::byte* outside : {memory.data(), memory.data() + 56, memory.data() + 63,
                             inner.data() + inner.size(), inner.data() + inner.size() + 8}) {
    s.deallocate(outside, 64, 64);
  }
  BOOST_TEST(s.stats().misuse_detected == 5u);
  BOOST_TEST(recorder.taken().size() == 5u);
  BOOST_TEST(s.free_slots() == free_before);
  BOOST_TEST(upstream.deallocations() == 0u);
  std::vector<void*> again;  // the free list is intact: the same eight slots come back
  for (int i = 0; i < 8; ++i) again.push_back(s.allocate(64, 64));
  for (void* p : again) BOOST_TEST(s.contains(p));
  std::sort(live.begin(), live.end());
  std::sort(again.begin(), again.end());
  BOOST_TEST(live == again);
  for (void* p : again) s.deallocate(p, 64, 64);
}

// The fast path admits alignments with one mask test: every power of two up
// to slot_alignment is served from a slot, larger ones are forwarded, and
// anything else throws invalid_argument — with slots free or not.
BOOST_AUTO_TEST_CASE(alignments_are_served_forwarded_or_refused_in_every_state) {
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 64,
                  .slot_alignment = 16,
                  .capacity = 4,
                  .on_exhaustion = strata::slab::exhaustion::throw_bad_alloc},
                 &upstream};
  const std::size_t bad[] = {
      0, 3, 5, 6, 12, 15, 17, 24, 48, 4097, SIZE_MAX, SIZE_MAX / 2, std::size_t{3} << 62};
  const auto probe = [&](const char* state) {
    BOOST_TEST_CONTEXT(state) {
      const strata::resource_stats before = s.stats();
      for (std::size_t alignment : bad) {
        for (std::size_t bytes : {std::size_t{0}, std::size_t{16}, std::size_t{64}}) {
          BOOST_TEST_CONTEXT("allocate(" << bytes << ", " << alignment << ")") {
            BOOST_CHECK_THROW(static_cast<void>(s.allocate(bytes, alignment)), std::invalid_argument);
          }
        }
      }
      BOOST_TEST(s.stats().allocations == before.allocations);
      const std::uint64_t forwarded = s.details().forwarded_too_large;
      for (std::size_t alignment : {std::size_t{32}, std::size_t{64}, std::size_t{4096}}) {
        void* p = s.allocate(16, alignment);
        BOOST_TEST(!s.contains(p));
        BOOST_TEST(strata::detail::is_aligned(p, alignment));
        s.deallocate(p, 16, alignment);
      }
      BOOST_TEST(s.details().forwarded_too_large == forwarded + 3);
    }
  };
  probe("fresh");
  for (std::size_t alignment :
       {std::size_t{1}, std::size_t{2}, std::size_t{4}, std::size_t{8}, std::size_t{16}}) {
    void* p = s.allocate(64, alignment);
    BOOST_TEST(s.contains(p));
    s.deallocate(p, 64, alignment);
  }
  probe("slots on the free list");
  std::vector<void*> all;
  for (int i = 0; i < 4; ++i) all.push_back(s.allocate(8, 8));
  probe("full");
  BOOST_CHECK_THROW(static_cast<void>(s.allocate(8, 8)), strata::allocation_failure);
  for (void* p : all) s.deallocate(p, 8, 8);
  BOOST_TEST(s.stats().bytes_in_use == 0u);
}

BOOST_AUTO_TEST_CASE(pmr_list_and_map_nodes_fit_a_slab_sized_by_a_probe) {
  // The documented way to size a slab for a container: insert one element on
  // a probe resource and read the node request.
  probe_resource probe;
  {
    std::pmr::list<long> l{&probe};
    l.push_back(1);
  }
  {
    std::pmr::map<int, double> m{&probe};
    m.emplace(1, 1.0);
  }
  BOOST_TEST_REQUIRE(probe.requests.size() == 2u);
  const auto [list_node, list_align] = probe.requests[0];
  const auto [map_node, map_align] = probe.requests[1];
  strata::test::counting_resource upstream;
  strata::slab lists{{.slot_size = list_node, .slot_alignment = list_align, .capacity = 1000}, &upstream};
  strata::slab maps{{.slot_size = map_node, .slot_alignment = map_align, .capacity = 1000}, &upstream};
  {
    std::pmr::list<long> l{&lists};
    std::pmr::map<int, double> m{&maps};
    std::list<long> expected;
    for (int i = 0; i < 1000; ++i) {
      l.push_back(i);
      expected.push_back(i);
      m.emplace(i, i * 0.5);
      if (i % 3 == 0) {
        l.pop_front();
        expected.pop_front();
        m.erase(i / 2);
      }
    }
    BOOST_TEST((std::equal(l.begin(), l.end(), expected.begin(), expected.end())));
    BOOST_TEST(m.at(999) == 499.5);
    BOOST_TEST(lists.details().forwarded_too_large + lists.details().forwarded_on_exhaustion == 0u);
    BOOST_TEST(maps.details().forwarded_too_large + maps.details().forwarded_on_exhaustion == 0u);
  }
  BOOST_TEST(upstream.allocations() == 2u);  // the two regions, nothing else
  BOOST_TEST(lists.stats().bytes_in_use == 0u);
  BOOST_TEST(maps.stats().bytes_in_use == 0u);
  // for_type gives the options for a record type directly.
  struct record {
    double x;
    char tag[24];
  };
  constexpr auto o = strata::slab::options::for_type<record>(10);
  BOOST_TEST(o.slot_size == sizeof(record));
  BOOST_TEST(o.slot_alignment == alignof(record));
  BOOST_TEST(o.capacity == 10u);
}

// The peak is settled lazily (when bytes_in_use falls, and when read): it
// must match a running maximum through rises, falls, forwarded blocks,
// reset_peak() and release().
BOOST_AUTO_TEST_CASE(the_peak_matches_a_running_maximum) {
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 64, .capacity = 16}, &upstream};
  std::mt19937 rng(11);
  std::vector<std::pair<void*, std::size_t>> live;
  std::size_t in_use = 0;
  std::size_t peak = 0;
  for (int step = 0; step < 4000; ++step) {
    if (step == 1500) {
      s.reset_peak();
      peak = in_use;
    }
    if (step == 3000) {
      s.release();  // drops what callers hold
      live.clear();
      in_use = 0;
    }
    if (live.empty() || rng() % 3 != 0) {
      const std::size_t bytes = rng() % 100;  // above 64: forwarded
      live.emplace_back(s.allocate(bytes, 8), bytes);
      in_use += bytes;
      peak = std::max(peak, in_use);
    } else {
      const std::size_t at = rng() % live.size();
      s.deallocate(live[at].first, live[at].second, 8);
      in_use -= live[at].second;
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(at));
    }
    if (step % 7 == 0) {
      BOOST_TEST_REQUIRE(s.stats().bytes_in_use == in_use);
      BOOST_TEST_REQUIRE(s.stats().peak_bytes_in_use == peak);
    }
  }
  for (const auto& [p, bytes] : live) s.deallocate(p, bytes, 8);
  BOOST_TEST(s.stats().bytes_in_use == 0u);
  BOOST_TEST(s.stats().peak_bytes_in_use == peak);
}

BOOST_AUTO_TEST_CASE(stats_count_the_callers_bytes_and_overhead_is_within_three_percent) {
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 64, .capacity = 4096}, &upstream};
  void* a = s.allocate(10, 8);
  void* b = s.allocate(64, 16);
  BOOST_TEST(s.stats().bytes_in_use == 74u);
  BOOST_TEST(s.stats().peak_bytes_in_use == 74u);
  BOOST_TEST(s.usable_size(a) == 64u);
  s.deallocate(a, 10, 8);
  BOOST_TEST(s.stats().bytes_in_use == 64u);
  BOOST_TEST(s.stats().peak_bytes_in_use == 74u);
  s.deallocate(b, 64, 16);
  const double overhead = static_cast<double>(s.stats().bytes_reserved) / (4096.0 * 64.0);
  BOOST_TEST_MESSAGE("slab bytes_reserved / (slots x 64) = " << overhead);
  BOOST_TEST(overhead <= 1.03);
}

BOOST_AUTO_TEST_CASE(release_frees_every_slot_and_returns_forwarded_blocks) {
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 16, .capacity = 4}, &upstream};
  for (int i = 0; i < 4; ++i) (void)s.allocate(16, 8);
  (void)s.allocate(100, 8);
  BOOST_TEST(upstream.blocks_outstanding() == 2u);
  s.release();
  BOOST_TEST(upstream.blocks_outstanding() == 1u);
  BOOST_TEST(s.free_slots() == 4u);
  BOOST_TEST(s.stats().bytes_in_use == 0u);
}

BOOST_AUTO_TEST_CASE(invalid_options_name_the_field) {
  strata::test::counting_resource upstream;
  const auto message_of = [&](strata::slab::options o) -> std::string {
    try {
      strata::slab s{o, &upstream};
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  BOOST_TEST(message_of({.slot_size = 0}).find("slot_size") != std::string::npos);
  BOOST_TEST(message_of({.slot_alignment = 24}).find("slot_alignment") != std::string::npos);
  BOOST_TEST(message_of({.capacity = 0}).find("capacity") != std::string::npos);
  BOOST_TEST(message_of({.slot_size = 64, .capacity = SIZE_MAX / 8}).find("capacity") != std::string::npos);
  BOOST_CHECK_THROW((strata::slab{{}, nullptr}), std::invalid_argument);
  BOOST_TEST(upstream.allocations() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
