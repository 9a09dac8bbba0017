// SPDX-License-Identifier: MIT
#include <strata/allocate_unique.hpp>
#include <strata/node_size.hpp>
#include <strata/object_pool.hpp>
#include <strata/thread_resource.hpp>

// Concerns:
//  1. allocate_unique constructs one T on the given resource and its pointer
//     returns the storage to that resource with T's size and alignment; a
//     throwing constructor leaves nothing allocated.
//  2. object_pool fits its slots to T, creates and destroys through its
//     resource (stats agree), frees the slot when a constructor throws, and
//     its resource still refuses a double destroy.
//  3. node_layout_of measures the node a container allocates: a slab sized by
//     it serves every node of map, set, list, forward_list and unordered_map
//     from its slots, and one byte less serves none.
//  4. thread_resource_scope sets this thread's current resource, nests,
//     restores on unwinding, and leaves other threads' alone.

#include <atomic>
#include <cstdint>
#include <forward_list>
#include <list>
#include <map>
#include <memory_resource>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#define BOOST_TEST_MODULE typed_helpers
#include <boost/test/unit_test.hpp>

#include <strata/testing.hpp>
#include <strata/tracking_resource.hpp>

namespace {

struct order {
  long id;
  double price;
  int quantity;
  char side;
};

struct alignas(64) cache_line {
  int value;
};

struct throws_on_negative {
  explicit throws_on_negative(int v) : value(v) {
    if (v < 0) throw std::runtime_error("negative");
  }
  int value;
};

}  // namespace

BOOST_AUTO_TEST_CASE(allocate_unique_returns_the_object_to_its_resource) {
  strata::tracking_resource tracker{std::pmr::new_delete_resource()};
  {
    auto text = strata::allocate_unique<std::string>(&tracker, 3, 'x');
    auto line = strata::allocate_unique<cache_line>(&tracker, cache_line{7});
    BOOST_TEST(*text == "xxx");
    BOOST_TEST(line->value == 7);
    BOOST_TEST(reinterpret_cast<std::uintptr_t>(line.get()) % 64 == 0U);
    BOOST_TEST(text.get_deleter().resource() == &tracker);
    BOOST_TEST(tracker.live_blocks() == 2U);
  }
  BOOST_TEST(tracker.live_blocks() == 0U);
  BOOST_TEST(tracker.stats().misuse_detected == 0U);  // size and alignment matched on the way back
}

BOOST_AUTO_TEST_CASE(allocate_unique_frees_the_storage_when_the_constructor_throws) {
  strata::tracking_resource tracker{std::pmr::new_delete_resource()};
  BOOST_CHECK_THROW((void)strata::allocate_unique<throws_on_negative>(&tracker, -1), std::runtime_error);
  BOOST_TEST(tracker.stats().allocations == 1U);
  BOOST_TEST(tracker.live_blocks() == 0U);
  BOOST_TEST(strata::allocate_unique<throws_on_negative>(&tracker, 5)->value == 5);
}

BOOST_AUTO_TEST_CASE(object_pool_fits_its_slots_to_the_type) {
  strata::object_pool<order, strata::slab> orders{{.capacity = 100}, std::pmr::new_delete_resource()};
  BOOST_TEST(orders.resource().get_options().slot_size == sizeof(order));
  BOOST_TEST(orders.resource().get_options().slot_alignment == alignof(order));
  strata::object_pool<cache_line> lines{std::pmr::new_delete_resource()};
  BOOST_TEST(lines.resource().get_options().slot_size == sizeof(cache_line));
  cache_line* c = lines.create(cache_line{3});
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(c) % 64 == 0U);
  lines.destroy(c);
}

BOOST_AUTO_TEST_CASE(object_pool_creates_and_destroys_through_its_resource) {
  strata::object_pool<order, strata::slab> orders{{.capacity = 64}, std::pmr::new_delete_resource()};
  std::vector<order*> live;
  for (long i = 0; i < 64; ++i) live.push_back(orders.create(order{i, 1.5, 2, 'b'}));
  BOOST_TEST(orders.resource().stats().allocations == 64U);
  BOOST_TEST(orders.resource().details().forwarded_on_exhaustion == 0U);  // all 64 in slots
  BOOST_TEST(live[63]->id == 63);
  for (order* o : live) orders.destroy(o);
  BOOST_TEST(orders.resource().stats().bytes_in_use == 0U);
  BOOST_TEST(orders.resource().stats().deallocations == 64U);
  {
    auto owned = orders.make_unique(order{9, 0.0, 1, 's'});
    BOOST_TEST(owned->id == 9);
    BOOST_TEST(orders.resource().stats().bytes_in_use == sizeof(order));
  }
  BOOST_TEST(orders.resource().stats().bytes_in_use == 0U);
}

BOOST_AUTO_TEST_CASE(object_pool_frees_the_slot_when_the_constructor_throws) {
  strata::object_pool<throws_on_negative, strata::slab> pool{{.capacity = 4},
                                                             std::pmr::new_delete_resource()};
  BOOST_CHECK_THROW((void)pool.create(-1), std::runtime_error);
  BOOST_TEST(pool.resource().stats().allocations == 1U);
  BOOST_TEST(pool.resource().stats().deallocations == 1U);
  BOOST_TEST(pool.resource().stats().bytes_in_use == 0U);
}

BOOST_AUTO_TEST_CASE(object_pool_resources_refuse_a_double_destroy) {
  strata::testing::misuse_recorder misuse;
  strata::object_pool<int, strata::slab> pool{{.capacity = 4}, std::pmr::new_delete_resource()};
  int* p = pool.create(1);
  pool.destroy(p);
  pool.destroy(p);  // int's destructor is trivial; the second free is the misuse
  BOOST_TEST(misuse.count(strata::misuse_kind::double_free) == 1U);
  BOOST_TEST(pool.resource().stats().deallocations == 1U);
}

BOOST_AUTO_TEST_CASE(object_pool_on_extendable_slab_serves_threads, *boost::unit_test::label("threaded")) {
  strata::object_pool<order> orders{std::pmr::new_delete_resource()};
  // Counted, and checked on the main thread after the join: Boost.Test's
  // assertion macros are not thread-safe (TSan saw two threads write the
  // framework's message buffer).
  std::atomic<long> wrong{0};
  auto work = [&orders, &wrong](long base) {
    std::vector<order*> mine;
    for (long i = 0; i < 2000; ++i) mine.push_back(orders.create(order{base + i, 0.0, 0, 'b'}));
    for (long i = 0; i < 2000; ++i) wrong += mine[static_cast<std::size_t>(i)]->id == base + i ? 0 : 1;
    for (order* o : mine) orders.destroy(o);
  };
  std::thread other{work, 1'000'000};
  work(0);
  other.join();
  BOOST_TEST(wrong.load() == 0);
  BOOST_TEST(orders.resource().stats().allocations == 4000U);
  BOOST_TEST(orders.resource().stats().deallocations == 4000U);
  BOOST_TEST(orders.resource().stats().bytes_in_use == 0U);
}

namespace {

// Inserts n elements into a Container on a slab whose slots are slot_size
// bytes, and returns how many requests the slab served from its slots.
template <class Container, class Make>
std::size_t nodes_served_from_slots(std::size_t slot_size, std::size_t alignment, std::size_t n, Make make) {
  strata::slab nodes{{.slot_size = slot_size, .slot_alignment = alignment, .capacity = 2 * n},
                     std::pmr::new_delete_resource()};
  {
    Container c{&nodes};
    for (std::size_t i = 0; i < n; ++i) {
      if constexpr (requires { c.push_front(make(i)); }) {
        c.push_front(make(i));
      } else {
        c.insert(make(i));
      }
    }
  }
  return nodes.details().carved_slots;
}

template <class Container, class Make>
void check_layout(Make make) {
  const strata::node_layout node = strata::node_layout_of<Container>();
  BOOST_TEST_INFO("node " << node.size << " bytes, alignment " << node.alignment);
  BOOST_REQUIRE(node.size > 0U);
  BOOST_TEST(nodes_served_from_slots<Container>(node.size, node.alignment, 100, make) == 100U);
  BOOST_TEST(nodes_served_from_slots<Container>(node.size - 1, 1, 100, make) == 0U);
}

}  // namespace

BOOST_AUTO_TEST_CASE(node_layout_of_sizes_a_slab_for_every_node_container) {
  check_layout<std::pmr::map<long, order>>([](std::size_t i) { return std::pair{long(i), order{}}; });
  check_layout<std::pmr::set<int>>([](std::size_t i) { return int(i); });
  check_layout<std::pmr::list<double>>([](std::size_t i) { return double(i); });
  check_layout<std::pmr::forward_list<int>>([](std::size_t i) { return int(i); });
  check_layout<std::pmr::unordered_map<int, order>>([](std::size_t i) { return std::pair{int(i), order{}}; });
}

BOOST_AUTO_TEST_CASE(node_layout_of_a_map_node_is_more_than_its_value) {
  using value = std::pmr::map<long, order>::value_type;
  const strata::node_layout node = strata::node_layout_of<std::pmr::map<long, order>>();
  BOOST_TEST(node.size > sizeof(value));  // the tree links and colour
  BOOST_TEST(node.alignment >= alignof(value));
  BOOST_TEST((strata::node_layout_of<std::vector<int>>().size == sizeof(int)));  // a one-element buffer
}

BOOST_AUTO_TEST_CASE(thread_resource_scopes_nest_and_restore) {
  strata::tracking_resource outer{std::pmr::new_delete_resource()};
  strata::tracking_resource inner{std::pmr::new_delete_resource()};
  BOOST_TEST(strata::this_thread_resource() == std::pmr::get_default_resource());
  {
    strata::thread_resource_scope a{&outer};
    BOOST_TEST(strata::this_thread_resource() == &outer);
    try {
      strata::thread_resource_scope b{&inner};
      std::pmr::vector<int> v{strata::this_thread_resource()};
      v.push_back(1);
      BOOST_TEST(inner.live_blocks() == 1U);
      throw std::runtime_error("unwind");
    } catch (const std::runtime_error&) {
    }
    BOOST_TEST(strata::this_thread_resource() == &outer);  // restored by unwinding
  }
  BOOST_TEST(strata::this_thread_resource() == std::pmr::get_default_resource());
  strata::testing::default_resource_guard none;  // outside every scope: the default as it is now
  BOOST_TEST(strata::this_thread_resource() == std::pmr::null_memory_resource());
}

BOOST_AUTO_TEST_CASE(each_thread_has_its_own_thread_resource, *boost::unit_test::label("threaded")) {
  strata::tracking_resource mine{std::pmr::new_delete_resource()};
  strata::tracking_resource theirs{std::pmr::new_delete_resource()};
  strata::thread_resource_scope use{&mine};
  std::pmr::memory_resource* seen_there_before = nullptr;
  std::pmr::memory_resource* seen_there_inside = nullptr;
  std::thread other{[&] {
    seen_there_before = strata::this_thread_resource();
    strata::thread_resource_scope use_theirs{&theirs};
    seen_there_inside = strata::this_thread_resource();
  }};
  other.join();
  BOOST_TEST(seen_there_before == std::pmr::get_default_resource());  // not this thread's scope
  BOOST_TEST(seen_there_inside == &theirs);
  BOOST_TEST(strata::this_thread_resource() == &mine);  // the other thread's scope did not touch ours
}
