// SPDX-License-Identifier: MIT
#include <strata/boost_container.hpp>

// Concerns:
//  1. Boost.Container's pmr containers allocate from a strata resource through
//     boost_resource_adaptor, and give every block back to it (size and
//     alignment intact: tracking_resource checks both).
//  2. A Boost resource serves as the upstream of a strata resource through
//     std_resource_adaptor, and gets everything back when the strata resource
//     is destroyed.
//  3. Equality: adaptors are equal exactly when their targets are.
//  4. A null target is refused with std::invalid_argument.

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <stdexcept>
#include <vector>

#include <boost/container/pmr/flat_map.hpp>
#include <boost/container/pmr/monotonic_buffer_resource.hpp>
#include <boost/container/pmr/string.hpp>
#include <boost/container/pmr/vector.hpp>

#define BOOST_TEST_MODULE boost_container
#include <boost/test/unit_test.hpp>

#include <strata/monotonic_arena.hpp>
#include <strata/tracking_resource.hpp>

namespace bpmr = boost::container::pmr;

namespace {

// A Boost resource over operator new that counts what it holds, so a test can
// see that everything came back.
class counting_boost_resource final : public bpmr::memory_resource {
 public:
  std::size_t outstanding = 0;
  std::size_t calls = 0;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    void* p = ::operator new (bytes, std::align_val_t{alignment});
    outstanding += bytes;
    ++calls;
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    ::operator delete (p, bytes, std::align_val_t{alignment});
    outstanding -= bytes;
  }
  bool do_is_equal(const bpmr::memory_resource& other) const noexcept override { return this == &other; }
};

}  // namespace

BOOST_AUTO_TEST_CASE(boost_containers_allocate_from_a_strata_resource_and_give_everything_back) {
  strata::tracking_resource tracker{std::pmr::new_delete_resource()};
  strata::boost_resource_adaptor for_boost{&tracker};
  {
    bpmr::vector<int> numbers{&for_boost};
    for (int i = 0; i < 1000; ++i) numbers.push_back(i);
    bpmr::flat_map<int, double> index{&for_boost};
    for (int i = 0; i < 100; ++i) index.emplace(i, i * 0.5);
    // Boost's scoped allocator model hands the resource on to each element:
    // strings too long for their inline buffer allocate from it as well.
    bpmr::vector<bpmr::string> words{&for_boost};
    words.reserve(8);
    for (int i = 0; i < 8; ++i) words.emplace_back("a line of text too long for the small-string buffer");

    BOOST_TEST(numbers.back() == 999);
    BOOST_TEST(index.at(42) == 21.0);
    BOOST_TEST(words.back().get_allocator().resource() == &for_boost);
    BOOST_TEST(tracker.live_blocks() == 3U + 8U);   // one buffer per container, one per string
    BOOST_TEST(tracker.stats().allocations >= 3U);  // growth reallocates
    BOOST_TEST(tracker.stats().bytes_in_use >= 1000 * sizeof(int) + 100 * (sizeof(int) + sizeof(double)));
  }
  BOOST_TEST(tracker.live_blocks() == 0U);
  BOOST_TEST(tracker.stats().bytes_in_use == 0U);
  BOOST_TEST(tracker.stats().allocations == tracker.stats().deallocations);
  BOOST_TEST(tracker.stats().misuse_detected == 0U);  // sizes and alignments passed through intact
}

BOOST_AUTO_TEST_CASE(over_aligned_requests_reach_the_target_with_their_alignment) {
  strata::tracking_resource tracker{std::pmr::new_delete_resource()};
  strata::boost_resource_adaptor for_boost{&tracker};
  bpmr::memory_resource& r = for_boost;
  void* p = r.allocate(100, 256);
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(p) % 256 == 0U);
  const auto blocks = tracker.live_block_list();
  BOOST_REQUIRE(blocks.size() == 1U);
  BOOST_TEST(blocks.front().bytes == 100U);
  BOOST_TEST(blocks.front().alignment == 256U);
  r.deallocate(p, 100, 256);
  BOOST_TEST(tracker.stats().misuse_detected == 0U);
}

BOOST_AUTO_TEST_CASE(a_boost_resource_is_the_upstream_of_a_strata_arena) {
  counting_boost_resource boost_side;
  {
    strata::std_resource_adaptor upstream{&boost_side};
    strata::monotonic_arena scratch{&upstream};
    std::pmr::vector<int> numbers{&scratch};
    for (int i = 0; i < 100'000; ++i) numbers.push_back(i);
    BOOST_TEST(boost_side.calls > 0U);
    BOOST_TEST(boost_side.outstanding >= 100'000 * sizeof(int));
    BOOST_TEST(scratch.stats().upstream_allocations == boost_side.calls);
  }
  BOOST_TEST(boost_side.outstanding == 0U);  // the arena gave every chunk back through the adaptor
}

BOOST_AUTO_TEST_CASE(a_boost_monotonic_buffer_backs_std_pmr_containers) {
  counting_boost_resource boost_upstream;
  bpmr::monotonic_buffer_resource boost_mono{&boost_upstream};
  strata::std_resource_adaptor as_std{&boost_mono};
  {
    std::pmr::vector<int> numbers{&as_std};
    for (int i = 0; i < 1000; ++i) numbers.push_back(i);
    BOOST_TEST(numbers[500] == 500);
    BOOST_TEST(boost_upstream.outstanding >= 1000 * sizeof(int));
  }
  boost_mono.release();
  BOOST_TEST(boost_upstream.outstanding == 0U);
}

BOOST_AUTO_TEST_CASE(adaptors_are_equal_exactly_when_their_targets_are) {
  strata::tracking_resource a{std::pmr::new_delete_resource()};
  strata::tracking_resource b{std::pmr::new_delete_resource()};
  strata::boost_resource_adaptor a1{&a};
  strata::boost_resource_adaptor a2{&a};
  strata::boost_resource_adaptor b1{&b};
  BOOST_TEST(a1.is_equal(a2));
  BOOST_TEST(!a1.is_equal(b1));
  BOOST_TEST(a1.target() == &a);

  counting_boost_resource c;
  counting_boost_resource d;
  strata::std_resource_adaptor c1{&c};
  strata::std_resource_adaptor c2{&c};
  strata::std_resource_adaptor d1{&d};
  BOOST_TEST(c1.is_equal(c2));
  BOOST_TEST(!c1.is_equal(d1));
  BOOST_TEST(!c1.is_equal(*std::pmr::new_delete_resource()));
  BOOST_TEST(c1.target() == &c);
}

BOOST_AUTO_TEST_CASE(a_null_target_is_refused) {
  BOOST_CHECK_THROW(strata::boost_resource_adaptor{nullptr}, std::invalid_argument);
  BOOST_CHECK_THROW(strata::std_resource_adaptor{nullptr}, std::invalid_argument);
}
