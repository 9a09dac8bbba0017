// SPDX-License-Identifier: MIT
#include <strata/page_resource.hpp>

// Concerns:
// 1. Blocks are whole pages: bytes_reserved grows by the size rounded up to the page size.
// 2. Alignments above the page size are honoured (up to 2 MiB and beyond) without keeping
//    the over-mapped slack: bytes_reserved counts only the block.
// 3. Large blocks get huge-page advice when enabled, and none when disabled.
// 4. A deallocate of a pointer that is not page-aligned is counted as misuse and ignored.
// 5. system_pages() is one process-wide instance.
// 6. Bad options throw std::invalid_argument naming the field.
// 7. The conformance kit passes, including concurrent use (it is thread-safe).

#define BOOST_TEST_MODULE page_resource
#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "conformance.hpp"
#include "fixtures.hpp"

namespace {

struct page_factory {
  static constexpr bool has_upstream = false;
  static constexpr bool thread_safe = true;
  std::unique_ptr<strata::resource> make(std::pmr::memory_resource*) const {
    return std::make_unique<strata::page_resource>();
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(page_resource)

STRATA_CONFORMANCE_SUITE(page_factory)

BOOST_AUTO_TEST_CASE(blocks_are_rounded_to_whole_pages) {
  strata::page_resource pages;
  const std::size_t page = pages.page_size();
  void* p = pages.allocate(page + 1, 8);
  BOOST_TEST(pages.stats().bytes_reserved == 2 * page);
  BOOST_TEST(pages.stats().bytes_in_use == page + 1);
  std::memset(p, 0xab, 2 * page);  // the whole rounded length is ours to touch
  pages.deallocate(p, page + 1, 8);
  BOOST_TEST(pages.stats().bytes_reserved == 0u);
  BOOST_TEST(pages.stats().upstream_allocations == 1u);
  BOOST_TEST(pages.stats().upstream_deallocations == 1u);
}

BOOST_DATA_TEST_CASE(alignment_above_page_size_is_honoured_without_keeping_slack,
                     boost::unit_test::data::make({std::size_t{8192}, std::size_t{65536},
                                                   std::size_t{1} << 21, std::size_t{1} << 24}),
                     alignment) {
  strata::page_resource pages({.transparent_huge_pages = false});
  std::vector<void*> blocks;
  for (int i = 0; i < 4; ++i) {
    void* p = pages.allocate(alignment, alignment);
    BOOST_TEST(reinterpret_cast<std::uintptr_t>(p) % alignment == 0u);
    std::memset(p, i, alignment);
    blocks.push_back(p);
  }
  BOOST_TEST(pages.stats().bytes_reserved == 4 * alignment);  // the slack was unmapped
  BOOST_TEST(pages.details().over_aligned_mappings == 4u);
  for (void* p : blocks) pages.deallocate(p, alignment, alignment);
  BOOST_TEST(pages.stats().bytes_reserved == 0u);
}

BOOST_AUTO_TEST_CASE(huge_page_advice_follows_the_option) {
  strata::page_resource advised({.transparent_huge_pages = true});
  strata::page_resource plain({.transparent_huge_pages = false});
  const std::size_t two_mib = std::size_t{2} << 20;
  void* a = advised.allocate(two_mib, two_mib);
  void* b = plain.allocate(two_mib, two_mib);
  void* small = advised.allocate(4096, 8);
  // A kernel built without THP refuses the advice; otherwise exactly the large block gets it.
  const bool thp = std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled").good();
  BOOST_TEST(advised.details().huge_page_advice == (thp ? 1u : 0u));
  BOOST_TEST(plain.details().huge_page_advice == 0u);
  advised.deallocate(small, 4096, 8);
  advised.deallocate(a, two_mib, two_mib);
  plain.deallocate(b, two_mib, two_mib);
  const strata::page_resource::details_type d = advised.details();
  BOOST_TEST(d.page_size == advised.page_size());
}

BOOST_AUTO_TEST_CASE(unaligned_deallocate_is_counted_and_ignored) {
  strata::test::misuse_recorder recorder;
  strata::page_resource pages;
  auto* p = static_cast<std::byte*>(pages.allocate(100, 8));
  pages.deallocate(p + 8, 100, 8);  // not a block start
  BOOST_TEST(pages.stats().misuse_detected == 1u);
  BOOST_TEST(pages.stats().bytes_reserved == pages.page_size());  // nothing unmapped
  BOOST_TEST(pages.stats().bytes_in_use == 100u);
  // Regression (issue 14): the rejected call counted as a deallocation.
  BOOST_TEST(pages.stats().allocations - pages.stats().deallocations == 1u);  // the live block
  BOOST_REQUIRE(recorder.taken().size() == 1u);
  BOOST_TEST((recorder.taken()[0].kind == strata::misuse_kind::unknown_pointer));
  std::memset(p, 1, 100);  // still mapped
  pages.deallocate(p, 100, 8);
  BOOST_TEST(pages.stats().bytes_reserved == 0u);
}

BOOST_AUTO_TEST_CASE(system_pages_is_one_instance) {
  BOOST_TEST(strata::system_pages() == strata::system_pages());
  BOOST_TEST(strata::system_pages()->name() == "page_resource");
  BOOST_TEST(strata::system_pages()->upstream_resource() == nullptr);
}

BOOST_AUTO_TEST_CASE(bad_threshold_throws_naming_the_field) {
  try {
    strata::page_resource pages({.huge_page_threshold = 3000});
    BOOST_FAIL("no exception");
  } catch (const std::invalid_argument& e) {
    BOOST_TEST(std::string(e.what()).find("huge_page_threshold") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(mapping_failure_throws_allocation_failure_naming_the_link) {
  strata::page_resource pages;
  try {
    void* p = pages.allocate(std::size_t{1} << 62, 8);
    pages.deallocate(p, std::size_t{1} << 62, 8);
    BOOST_FAIL("no exception");
  } catch (const strata::allocation_failure& e) {
    BOOST_TEST(e.resource_name() == "page_resource");
    BOOST_TEST((e.reason() == strata::failure_reason::upstream_failed));
    BOOST_TEST(e.bytes() == std::size_t{1} << 62);
  }
  BOOST_TEST(pages.stats().failed_allocations == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
