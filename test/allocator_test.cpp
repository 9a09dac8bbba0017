// SPDX-License-Identifier: MIT
#include <strata/allocator.hpp>

// Concerns:
//  1. strata::allocator<T, R> meets what std::allocator_traits and the
//     standard containers expect: rebind, equality by resource, no
//     propagation, select_on_container_copy_construction keeping the
//     resource, max_size, and std::bad_array_new_length on overflow.
//  2. std::vector, std::list, std::map and std::unordered_map work on it over
//     slab, monotonic_arena, extendable_slab and arena, and give every byte
//     back to the resource.
//  3. The typed path and the pmr path are one resource: a block from either
//     may be freed by the other, and the same operations leave the same
//     stats() whichever path made them.
//  4. A misuse through the typed path is detected, counted and reported as it
//     is through pmr.
//  5. A container copy-assigned or swapped keeps its own resource.

#include <algorithm>
#include <array>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <memory_resource>
#include <new>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <strata/arena.hpp>
#include <strata/extendable_slab.hpp>
#include <strata/monotonic_arena.hpp>
#include <strata/page_resource.hpp>
#include <strata/slab.hpp>

#define BOOST_TEST_MODULE allocator
#include <boost/test/unit_test.hpp>

#include "counting_resource.hpp"
#include "fixtures.hpp"

namespace {

// ------------------------------------------------ allocator requirements

using int_alloc = strata::allocator<int, strata::slab>;
using traits = std::allocator_traits<int_alloc>;
static_assert(std::is_same_v<traits::value_type, int>);
static_assert(std::is_same_v<traits::pointer, int*>);
static_assert(std::is_same_v<traits::const_pointer, const int*>);
static_assert(std::is_same_v<traits::void_pointer, void*>);
static_assert(std::is_same_v<traits::size_type, std::size_t>);
static_assert(std::is_same_v<traits::difference_type, std::ptrdiff_t>);
static_assert(std::is_same_v<traits::rebind_alloc<double>, strata::allocator<double, strata::slab>>);
static_assert(std::is_same_v<traits::rebind_traits<long>::value_type, long>);
static_assert(!traits::propagate_on_container_copy_assignment::value);
static_assert(!traits::propagate_on_container_move_assignment::value);
static_assert(!traits::propagate_on_container_swap::value);
static_assert(!traits::is_always_equal::value);
static_assert(std::is_nothrow_copy_constructible_v<int_alloc>);
static_assert(std::is_nothrow_constructible_v<int_alloc, strata::allocator<double, strata::slab>>);
static_assert(!std::is_default_constructible_v<int_alloc>);  // there is no default object of type R
static_assert(!std::is_copy_assignable_v<int_alloc>);        // as polymorphic_allocator
static_assert(int_alloc::max_size() == std::size_t(-1) / sizeof(int));
static_assert(noexcept(std::declval<int_alloc&>().deallocate(nullptr, 1)));

// One factory per resource the typed path supports; each builds the
// resource on an upstream that outlives it.
struct slab_case {
  using type = strata::slab;
  strata::test::counting_resource upstream;
  strata::slab r{{.slot_size = 64, .capacity = 256}, &upstream};
};
struct monotonic_arena_case {
  using type = strata::monotonic_arena;
  strata::test::counting_resource upstream;
  strata::monotonic_arena r{&upstream};
};
struct extendable_slab_case {
  using type = strata::extendable_slab;
  strata::test::counting_resource upstream;
  strata::extendable_slab r{{.slot_size = 64}, &upstream};
};
struct arena_case {
  using type = strata::arena;
  strata::arena r{{.capacity = std::size_t{4} << 20}, strata::system_pages()};
};
using all_cases = std::tuple<slab_case, monotonic_arena_case, extendable_slab_case, arena_case>;

template <class T, class Case>
using alloc_for = strata::allocator<T, typename Case::type>;

// Nodes of list, map and unordered_map fit a 64 B slot; vector growth and
// the hash table's bucket array do not, so slab and extendable_slab forward
// them upstream: the containers cover both paths of each resource.
template <class Case>
void use_every_container(Case& c) {
  auto* r = &c.r;
  {
    std::vector<int, alloc_for<int, Case>> v{r};
    for (int i = 0; i < 100; ++i) v.push_back(i);
    BOOST_TEST(v.size() == 100u);
    BOOST_TEST(v[99] == 99);

    std::list<long, alloc_for<long, Case>> l{r};
    for (long i = 0; i < 100; ++i) l.push_back(i);
    l.remove_if([](long x) { return x % 2 == 0; });
    BOOST_TEST(l.size() == 50u);
    BOOST_TEST(l.front() == 1);

    std::map<int, int, std::less<>, alloc_for<std::pair<const int, int>, Case>> m{r};
    for (int i = 0; i < 100; ++i) m.emplace(i, i * i);
    m.erase(m.begin(), m.find(50));
    BOOST_TEST(m.size() == 50u);
    BOOST_TEST(m.at(60) == 3600);

    std::unordered_map<int, int, std::hash<int>, std::equal_to<>, alloc_for<std::pair<const int, int>, Case>>
        u{r};
    for (int i = 0; i < 200; ++i) u[i] = -i;
    for (int i = 0; i < 100; ++i) u.erase(i);
    BOOST_TEST(u.size() == 100u);
    BOOST_TEST(u.at(150) == -150);
    BOOST_TEST(c.r.stats().bytes_in_use > 0u);
  }
  const strata::resource_stats s = c.r.stats();
  BOOST_TEST(s.bytes_in_use == 0u);
  BOOST_TEST(s.allocations == s.deallocations);
  BOOST_TEST(s.allocations > 0u);
  BOOST_TEST(s.misuse_detected == 0u);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(allocator)

BOOST_AUTO_TEST_CASE_TEMPLATE(standard_containers_run_on_every_resource, Case, all_cases) {
  auto c = std::make_unique<Case>();
  use_every_container(*c);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(blocks_cross_between_the_typed_and_the_pmr_path, Case, all_cases) {
  auto c = std::make_unique<Case>();
  alloc_for<std::max_align_t, Case> typed{&c->r};
  std::pmr::memory_resource& pmr = c->r;
  constexpr std::size_t bytes = sizeof(std::max_align_t);
  constexpr std::size_t align = alignof(std::max_align_t);
  for (int round = 0; round < 3; ++round) {
    std::max_align_t* a = typed.allocate(1);
    void* b = pmr.allocate(bytes, align);
    std::fill_n(reinterpret_cast<char*>(a), bytes, 'a');  // scribble over both blocks
    std::fill_n(static_cast<char*>(b), bytes, 'b');
    BOOST_TEST(static_cast<void*>(a) != b);
    typed.deallocate(static_cast<std::max_align_t*>(b), 1);  // newest first: monotonic_arena rolls both back
    pmr.deallocate(a, bytes, align);
  }
  const strata::resource_stats s = c->r.stats();
  BOOST_TEST(s.allocations == 6u);
  BOOST_TEST(s.deallocations == 6u);
  BOOST_TEST(s.bytes_in_use == 0u);
  BOOST_TEST(s.misuse_detected == 0u);
}

BOOST_AUTO_TEST_CASE_TEMPLATE(typed_path_leaves_the_same_stats_as_the_pmr_path, Case, all_cases) {
  auto typed_case = std::make_unique<Case>();
  auto pmr_case = std::make_unique<Case>();
  alloc_for<std::array<char, 48>, Case> typed{&typed_case->r};
  std::pmr::memory_resource& pmr = pmr_case->r;
  using block = std::array<char, 48>;
  // The same script on both: small blocks, one forwarded-size block, frees
  // in mixed order, with some blocks left live at the comparison.
  std::vector<block*> t;
  std::vector<void*> p;
  for (std::size_t n : {1u, 1u, 3u, 1u, 40u, 1u, 2u}) {
    t.push_back(typed.allocate(n));
    p.push_back(pmr.allocate(n * sizeof(block), alignof(block)));
  }
  const std::size_t counts[] = {1, 1, 3, 1, 40, 1, 2};
  for (std::size_t i : {6u, 4u, 1u}) {
    typed.deallocate(t[i], counts[i]);
    pmr.deallocate(p[i], counts[i] * sizeof(block), alignof(block));
  }
  BOOST_TEST((typed_case->r.stats() == pmr_case->r.stats()));
  BOOST_TEST(typed_case->r.stats().allocations == 7u);
  BOOST_TEST(typed_case->r.stats().deallocations == 3u);
  for (std::size_t i : {5u, 3u, 2u, 0u}) {
    typed.deallocate(t[i], counts[i]);
    pmr.deallocate(p[i], counts[i] * sizeof(block), alignof(block));
  }
  BOOST_TEST((typed_case->r.stats() == pmr_case->r.stats()));
  BOOST_TEST(typed_case->r.stats().bytes_in_use == 0u);
}

BOOST_AUTO_TEST_CASE(rebound_allocators_share_the_resource_and_compare_equal) {
  slab_case c;
  slab_case other;
  const strata::allocator<int, strata::slab> a{&c.r};
  const strata::allocator<double, strata::slab> b{a};
  const strata::allocator<int, strata::slab> elsewhere{&other.r};
  BOOST_TEST(b.resource() == &c.r);
  BOOST_TEST((a == b));
  BOOST_TEST((b == a));
  BOOST_TEST(!(a == elsewhere));
  BOOST_TEST((a != elsewhere));
  // A block from one rebinding is freed by another: both are the same resource.
  double* d = strata::allocator<double, strata::slab>{a}.allocate(2);
  std::allocator_traits<strata::allocator<int, strata::slab>>::rebind_alloc<double>{a}.deallocate(d, 2);
  BOOST_TEST(c.r.stats().bytes_in_use == 0u);
  BOOST_TEST(c.r.stats().deallocations == 1u);
}

BOOST_AUTO_TEST_CASE(allocate_beyond_max_size_throws_bad_array_new_length_and_changes_nothing) {
  slab_case c;
  strata::allocator<std::uint64_t, strata::slab> a{&c.r};
  const strata::resource_stats before = c.r.stats();
  BOOST_CHECK_THROW(std::ignore = a.allocate(a.max_size() + 1), std::bad_array_new_length);
  BOOST_CHECK_THROW(std::ignore = a.allocate(std::size_t(-1)), std::bad_array_new_length);
  BOOST_TEST((c.r.stats() == before));
  // max_size() itself passes the typed check and reaches the resource, which
  // forwards it upstream as through pmr; the upstream refuses it here (as an
  // operator new could not give it), and the slab stays usable.
  c.upstream.fail_allocations(true);
  BOOST_CHECK_THROW(std::ignore = a.allocate(a.max_size()), std::bad_alloc);
  c.upstream.fail_allocations(false);
  BOOST_TEST(c.r.stats().failed_allocations == before.failed_allocations + 1);
  std::uint64_t* p = a.allocate(1);
  a.deallocate(p, 1);
  BOOST_TEST(c.r.stats().bytes_in_use == 0u);
}

BOOST_AUTO_TEST_CASE(copied_container_keeps_the_resource_and_assignment_does_not_propagate) {
  slab_case c1;
  slab_case c2;
  using alloc = strata::allocator<int, strata::slab>;
  std::list<int, alloc> a{{1, 2, 3}, alloc{&c1.r}};
  std::list<int, alloc> copy{a};  // select_on_container_copy_construction
  BOOST_TEST(copy.get_allocator().resource() == &c1.r);
  std::list<int, alloc> b{alloc{&c2.r}};
  b = a;  // copy-assign: b keeps c2
  BOOST_TEST(b.get_allocator().resource() == &c2.r);
  BOOST_TEST(c2.r.stats().allocations == 3u);
  b = std::move(copy);  // move-assign with unequal allocators: elementwise into c2
  BOOST_TEST(b.get_allocator().resource() == &c2.r);
  BOOST_TEST(c2.r.stats().allocations - c2.r.stats().deallocations == 3u);
  BOOST_TEST(std::equal(b.begin(), b.end(), a.begin(), a.end()));
}

BOOST_AUTO_TEST_CASE(misuse_through_the_typed_path_is_detected_as_through_pmr) {
  strata::test::misuse_recorder recorder;
  strata::test::counting_resource upstream;
  // hardened: the slab checks every deallocate in every build, not only debug ones.
  strata::slab typed_slab{{.slot_size = 64, .capacity = 16, .hardened = true}, &upstream};
  strata::slab pmr_slab{{.slot_size = 64, .capacity = 16, .hardened = true}, &upstream};
  strata::slab third{{.slot_size = 64, .capacity = 16, .hardened = true}, &upstream};
  strata::allocator<std::array<char, 64>, strata::slab> typed{&typed_slab};
  std::pmr::memory_resource& pmr = pmr_slab;

  // Double free.
  auto* t = typed.allocate(1);
  typed.deallocate(t, 1);
  typed.deallocate(t, 1);
  void* p = pmr.allocate(64, alignof(std::array<char, 64>));
  pmr.deallocate(p, 64, alignof(std::array<char, 64>));
  pmr.deallocate(p, 64, alignof(std::array<char, 64>));
  // Foreign pointer: a slot of another slab.
  void* foreign = third.allocate(64, alignof(std::array<char, 64>));
  typed.deallocate(static_cast<std::array<char, 64>*>(foreign), 1);
  pmr.deallocate(foreign, 64, alignof(std::array<char, 64>));
  third.deallocate(foreign, 64, alignof(std::array<char, 64>));

  BOOST_TEST(typed_slab.stats().misuse_detected == 2u);
  BOOST_TEST((typed_slab.stats() == pmr_slab.stats()));
  const auto reports = recorder.taken();
  BOOST_TEST_REQUIRE(reports.size() == 4u);
  BOOST_TEST((reports[0].kind == strata::misuse_kind::double_free));
  BOOST_TEST((reports[0].kind == reports[1].kind));
  BOOST_TEST((reports[2].kind == reports[3].kind));
  BOOST_TEST(reports[0].pointer == static_cast<const void*>(t));
}

BOOST_AUTO_TEST_CASE(pmr_and_typed_containers_share_one_resource_at_once) {
  slab_case c;
  std::list<int, strata::allocator<int, strata::slab>> typed{&c.r};
  std::pmr::list<int> pmr{&c.r};
  for (int i = 0; i < 64; ++i) {
    typed.push_back(i);
    pmr.push_back(-i);
  }
  BOOST_TEST(c.r.stats().allocations == 128u);
  BOOST_TEST(c.r.free_slots() == c.r.capacity() - 128u);
  typed.splice(typed.end(), typed, typed.begin());  // nodes move, no allocation
  BOOST_TEST(typed.back() == 0);
  typed.clear();
  pmr.clear();
  BOOST_TEST(c.r.stats().bytes_in_use == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
