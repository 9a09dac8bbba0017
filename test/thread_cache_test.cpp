// SPDX-License-Identifier: MIT
#include <strata/detail/thread_cache.hpp>

#include "thread_cache_registry.hpp"  // src/: the private core under test

// Concerns (the shared thread-cache core of chunk_provider, extendable_slab
// and arena, tested once here with a toy resource):
// 1. A thread's cache is drained into its resource and retired at thread
//    exit; its counts survive in the totals.
// 2. A thread that uses resource A, then B, then A finds its cache for A
//    (find() and attach()) although the MRU slot names B.
// 3. Calls made after the thread's exit hooks ran (from thread_local
//    destructors) get no cache, so nothing is left attached that no hook
//    would hand back: after many such threads the set is empty.
// 4. A resource that dies first deletes running threads' caches; those
//    threads' later exit and calls do not touch them.
// 5. totals() sums attached and retired caches and cache-less calls;
//    reset_peak() restarts peaks from what is held; forget_bytes_in_use()
//    zeroes what callers held.
// 6. request_flush() reaches every cache; take_flush_request() clears it.
// 7. detach_mine() hands the caller's cache back now.
// 8. decay_clock is due once per period, never with a zero period.

#define BOOST_TEST_MODULE thread_cache
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace {

struct toy_cache : strata::detail::thread_cache_base {
  strata::detail::single_writer_counter allocated{0};
  strata::detail::single_writer_counter freed{0};
  std::uint64_t held = 0;  // stands for a resource's bins

  [[nodiscard]] std::uint64_t allocations() const noexcept { return allocated.load(); }
  [[nodiscard]] std::uint64_t deallocations() const noexcept { return freed.load(); }
  void allocate(std::size_t bytes) {
    strata::detail::single_writer_add(allocated);
    note_allocated(bytes);
    ++held;
  }
  void deallocate(std::size_t bytes) {
    strata::detail::single_writer_add(freed);
    note_deallocated(bytes);
  }
};

struct toy_resource;
struct toy_access {
  static strata::detail::thread_cache_set<toy_cache>& caches(toy_resource& r) noexcept;
  static void drain(toy_resource& r, toy_cache& cache) noexcept;
};
using toy_registry = strata::detail::thread_cache_registry<toy_resource, toy_cache, toy_access>;

struct toy_resource {
  std::uint64_t id = toy_registry::new_id();
  strata::detail::thread_cache_set<toy_cache> set;
  std::uint64_t drained = 0;  // items handed back by exiting threads; under the registry mutex

  toy_resource() { toy_registry::instance().enroll(id, *this); }
  ~toy_resource() { toy_registry::instance().withdraw(id, set); }
  toy_cache* attach() { return toy_registry::instance().attach(id, set, true); }
  [[nodiscard]] strata::detail::cache_totals totals() {
    std::lock_guard lock(toy_registry::instance().mutex());
    return set.totals();
  }
  [[nodiscard]] std::size_t attached() {
    std::lock_guard lock(toy_registry::instance().mutex());
    return set.size();
  }
  [[nodiscard]] std::uint64_t drained_items() {
    std::lock_guard lock(toy_registry::instance().mutex());
    return drained;
  }
};

strata::detail::thread_cache_set<toy_cache>& toy_access::caches(toy_resource& r) noexcept {
  return r.set;
}
void toy_access::drain(toy_resource& r, toy_cache& cache) noexcept {
  r.drained += cache.held;
  cache.held = 0;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(thread_cache)

BOOST_AUTO_TEST_CASE(thread_exit_drains_and_retires_the_cache, *boost::unit_test::label("threaded")) {
  toy_resource r;
  std::thread t([&] {
    toy_cache* c = r.attach();
    BOOST_REQUIRE(c != nullptr);
    c->allocate(100);
    c->allocate(50);
    c->deallocate(50);
  });
  t.join();
  BOOST_TEST(r.attached() == 0u);
  BOOST_TEST(r.drained_items() == 2u);
  const auto t1 = r.totals();
  BOOST_TEST(t1.allocations == 2u);
  BOOST_TEST(t1.deallocations == 1u);
  BOOST_TEST(t1.bytes_in_use == 100u);
  BOOST_TEST(t1.peak_bytes_in_use == 150u);
}

BOOST_AUTO_TEST_CASE(a_thread_finds_its_cache_for_a_after_using_b) {
  toy_resource a;
  toy_resource b;
  toy_cache* ca = a.attach();
  toy_cache* cb = b.attach();
  BOOST_REQUIRE(ca != nullptr);
  BOOST_REQUIRE(cb != nullptr);
  BOOST_TEST(ca != cb);
  // The MRU slot names b now; a's cache is still this thread's.
  BOOST_TEST(strata::detail::current_thread_cache<toy_cache>.owner_id == b.id);
  BOOST_TEST(toy_registry::instance().find(a.id) == ca);
  BOOST_TEST(strata::detail::current_thread_cache<toy_cache>.owner_id == b.id);  // find leaves it
  BOOST_TEST(a.attach() == ca);
  BOOST_TEST(strata::detail::current_thread_cache<toy_cache>.owner_id == a.id);  // attach arms it
  BOOST_TEST(a.attached() == 1u);
  BOOST_TEST(b.attached() == 1u);
}

namespace {
// Used from a thread_local destructor that runs after the core's own exit hook.
toy_resource* late_target = nullptr;
struct late_user {
  bool armed = false;
  ~late_user() {
    if (!armed) return;
    toy_cache* c = late_target->attach();
    BOOST_CHECK(c == nullptr);  // checked from a thread: BOOST_CHECK is thread-safe enough for a flag
  }
};
thread_local late_user late;
}  // namespace

BOOST_AUTO_TEST_CASE(calls_after_thread_exit_hooks_attach_nothing, *boost::unit_test::label("threaded")) {
  toy_resource r;
  late_target = &r;
  for (int i = 0; i < 100; ++i) {
    std::thread t([&] {
      late.armed = true;  // constructed first, so destroyed after the attachment list
      toy_cache* c = r.attach();
      BOOST_REQUIRE(c != nullptr);
      c->allocate(8);
    });
    t.join();
  }
  BOOST_TEST(r.attached() == 0u);
  BOOST_TEST(r.totals().allocations == 100u);
  late_target = nullptr;
}

BOOST_AUTO_TEST_CASE(a_resource_that_dies_first_deletes_running_threads_caches,
                     *boost::unit_test::label("threaded")) {
  auto r = std::make_unique<toy_resource>();
  const std::uint64_t id = r->id;
  std::atomic<int> step{0};
  std::thread t([&] {
    BOOST_CHECK(r->attach() != nullptr);
    step = 1;
    while (step.load() != 2) std::this_thread::yield();
    // The resource is gone: the stale slot and attachment are never followed.
    BOOST_CHECK(toy_registry::instance().find(id) != nullptr);  // the slot still names the id...
    toy_resource other;  // ...but a new resource gets its own cache, and exit skips the dead one
    BOOST_CHECK(other.attach() != nullptr);
  });
  while (step.load() != 1) std::this_thread::yield();
  r.reset();
  step = 2;
  t.join();
}

BOOST_AUTO_TEST_CASE(totals_sum_attached_retired_and_cacheless_calls, *boost::unit_test::label("threaded")) {
  toy_resource r;
  toy_cache* mine = r.attach();
  mine->allocate(1000);
  std::thread([&] {
    toy_cache* c = r.attach();
    c->deallocate(1000);  // frees what the main thread allocated: "negative" here
    c->allocate(10);
  }).join();
  {
    std::lock_guard lock(toy_registry::instance().mutex());
    r.set.count_cacheless_allocation(5);
    r.set.count_cacheless_deallocation(5);
  }
  auto t = r.totals();
  BOOST_TEST(t.allocations == 3u);
  BOOST_TEST(t.deallocations == 2u);
  BOOST_TEST(t.bytes_in_use == 10u);
  BOOST_TEST(t.peak_bytes_in_use == 1000u);
  {
    std::lock_guard lock(toy_registry::instance().mutex());
    r.set.reset_peak();
  }
  t = r.totals();
  BOOST_TEST(t.peak_bytes_in_use == 1000u);  // the main thread still holds 1000 in its own view
  mine->deallocate(1000);
  {
    std::lock_guard lock(toy_registry::instance().mutex());
    r.set.reset_peak();
  }
  BOOST_TEST(r.totals().peak_bytes_in_use == 0u);
  mine->allocate(64);
  {
    std::lock_guard lock(toy_registry::instance().mutex());
    r.set.forget_bytes_in_use();
    r.set.reset_peak();
  }
  t = r.totals();
  BOOST_TEST(t.bytes_in_use == 0u);
  BOOST_TEST(t.peak_bytes_in_use == 0u);
}

BOOST_AUTO_TEST_CASE(request_flush_reaches_every_cache_once) {
  toy_resource r;
  toy_cache* c = r.attach();
  BOOST_TEST(!c->take_flush_request());
  {
    std::lock_guard lock(toy_registry::instance().mutex());
    r.set.request_flush();
  }
  BOOST_TEST(c->take_flush_request());
  BOOST_TEST(!c->take_flush_request());
}

BOOST_AUTO_TEST_CASE(detach_mine_hands_the_cache_back_now) {
  toy_resource r;
  toy_cache* c = r.attach();
  c->allocate(32);
  BOOST_TEST(toy_registry::instance().detach_mine(r.id, r));
  BOOST_TEST(r.attached() == 0u);
  BOOST_TEST(r.drained_items() == 1u);
  BOOST_TEST(r.totals().allocations == 1u);
  BOOST_TEST(!toy_registry::instance().detach_mine(r.id, r));
  BOOST_TEST(toy_registry::instance().find(r.id) == nullptr);
  BOOST_TEST(r.attach() != nullptr);  // a fresh one
  BOOST_TEST(r.attached() == 1u);
}

BOOST_AUTO_TEST_CASE(decay_clock_is_due_once_per_period) {
  strata::detail::decay_clock never{std::chrono::milliseconds{0}};
  BOOST_TEST(!never.due());
  strata::detail::decay_clock hourly{std::chrono::hours{1}};
  BOOST_TEST(!hourly.due());
  // Regression (review): (2^58 + 1) ms wrapped to 1 ms in the conversion to nanoseconds.
  strata::detail::decay_clock huge{std::chrono::milliseconds{(std::int64_t{1} << 58) + 1}};
  BOOST_TEST(huge.period_ns() > std::int64_t{1} << 61);
  std::this_thread::sleep_for(std::chrono::milliseconds{2});
  BOOST_TEST(!huge.due());
  // Periods long enough that the two calls below fall in one even under valgrind.
  strata::detail::decay_clock fast{std::chrono::milliseconds{200}};
  BOOST_TEST(!fast.due());
  std::this_thread::sleep_for(std::chrono::milliseconds{220});
  BOOST_TEST(fast.due());
  BOOST_TEST(!fast.due());  // the next period started at the first answer
}

BOOST_AUTO_TEST_SUITE_END()
