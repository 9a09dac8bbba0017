// SPDX-License-Identifier: MIT
// The build-flag rule (docs/reliability.md): which checks run is decided by
// the resources' options and the hardening switch carried to users, never by
// NDEBUG or the optimisation level of the user's code. test/meson.build
// compiles this one file twice against the same library, once with
// -UNDEBUG -O0 and once with -DNDEBUG -O2; both executables must see exactly
// the detections and counters asserted here. Each scenario calls through
// the resource object itself (not only through memory_resource*), so the
// inline fast paths are compiled into this TU with its own flags.

#if defined(NDEBUG)
#define BOOST_TEST_MODULE build_flags_ndebug
#else
#define BOOST_TEST_MODULE build_flags_debug
#endif
#include <boost/test/unit_test.hpp>

#include <cstddef>
#include <thread>

#include <strata/monotonic_arena.hpp>
#include <strata/slab.hpp>

#include "counting_resource.hpp"
#include "fixtures.hpp"

BOOST_AUTO_TEST_CASE(slab_detects_a_double_free_with_default_options) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 64, .capacity = 8}, &upstream};
  BOOST_TEST(s.details().checked);
  void* a = s.allocate(64, 8);
  s.deallocate(a, 64, 8);
  s.deallocate(a, 64, 8);  // refused: counted in misuse_detected only
  BOOST_TEST(s.stats().misuse_detected == 1u);
  BOOST_TEST(s.stats().allocations == 1u);
  BOOST_TEST(s.stats().deallocations == 1u);
  BOOST_TEST(s.details().double_frees == 1u);
  BOOST_TEST_REQUIRE(recorder.taken().size() == 1u);
  BOOST_TEST((recorder.taken()[0].kind == strata::misuse_kind::double_free));
  void* x = s.allocate(64, 8);
  void* y = s.allocate(64, 8);
  BOOST_TEST(x != y);  // the slot was not handed out twice
  s.deallocate(x, 64, 8);
  s.deallocate(y, 64, 8);
  BOOST_TEST(s.stats().allocations - s.stats().deallocations == 0u);
}

BOOST_AUTO_TEST_CASE(slab_refuses_a_pointer_inside_a_slot_with_default_options) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 48, .capacity = 8}, &upstream};
  auto* a = static_cast<std::byte*>(s.allocate(48, 8));
  s.deallocate(a + 16, 48, 8);
  BOOST_TEST(s.stats().misuse_detected == 1u);
  BOOST_TEST(s.stats().deallocations == 0u);
  s.deallocate(a, 48, 8);
  BOOST_TEST(s.stats().deallocations == 1u);
}

BOOST_AUTO_TEST_CASE(slab_without_detection_takes_the_unchecked_path) {
  strata::test::counting_resource upstream;
  strata::slab s{{.slot_size = 64, .capacity = 8, .detect_double_free = false}, &upstream};
  BOOST_TEST(s.details().checked == strata::hardened_by_default);
}

BOOST_AUTO_TEST_CASE(monotonic_arena_wrong_thread_follows_its_option) {
  for (const bool check : {false, true}) {
    strata::test::misuse_recorder recorder;
    strata::test::counting_resource upstream;
    strata::monotonic_arena arena{{.check_owner_thread = check}, &upstream};
    static_cast<void>(arena.allocate(16, 8));  // this thread owns the request
    std::thread([&] { static_cast<void>(arena.allocate(16, 8)); }).join();
    BOOST_TEST(arena.stats().misuse_detected == (check ? 1u : 0u));
    BOOST_TEST(recorder.taken().size() == (check ? 1u : 0u));
    arena.reset();
  }
}

BOOST_AUTO_TEST_CASE(monotonic_arena_default_follows_the_hardening_switch) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource upstream;
  strata::monotonic_arena arena{&upstream};
  BOOST_TEST(arena.get_options().check_owner_thread == strata::hardened_by_default);
  static_cast<void>(arena.allocate(16, 8));
  std::thread([&] { static_cast<void>(arena.allocate(16, 8)); }).join();
  BOOST_TEST(arena.stats().misuse_detected == (strata::hardened_by_default ? 1u : 0u));
}
