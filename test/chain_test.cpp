// SPDX-License-Identifier: MIT
#include <strata/chain.hpp>
#include <strata/format.hpp>

// Concerns:
// 1. for_each_link visits the start link and each upstream in order, with depths, and
//    ends at the bottom (page_resource) or at the first foreign resource.
// 2. Foreign links are named (new_delete_resource, std pools) and carry no strata pointer.
// 3. format_chain prints one aligned row per link with every counter, human units beside
//    exact byte counts, and "(no stats)" for foreign links.
// 4. fmt formats resource_stats on one line.
// 5. A std container works on a chain of strata links, and the counters of each link
//    reflect the traffic that reached it.
// 6. format_chain_json lists every link with depth, name, whether it is a strata resource
//    and every resource_stats field under its own name (null stats for a foreign link),
//    escapes names as JSON requires, and renders an empty walk as [].

#define BOOST_TEST_MODULE chain
#include <boost/test/unit_test.hpp>

#include <new>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <strata/page_resource.hpp>
#include <strata/strata.hpp>
#include <strata/tracking_resource.hpp>

#include "fixtures.hpp"

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A strata link that reports fixed counters, so each JSON field can be told apart.
class fixed_stats_resource final : public strata::resource {
 public:
  fixed_stats_resource(std::string_view name, std::pmr::memory_resource* upstream,
                       const strata::resource_stats& stats)
      : resource(name, upstream), stats_(stats) {}

 private:
  void* do_allocate(std::size_t, std::size_t) override { throw std::bad_alloc(); }
  void do_deallocate(void*, std::size_t, std::size_t) override {}
  strata::resource_stats do_stats() const noexcept override { return stats_; }
  void do_reset_peak() noexcept override {}
  strata::resource_stats stats_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(chain)

BOOST_AUTO_TEST_CASE(walk_visits_each_link_down_to_the_bottom) {
  strata::page_resource pages;
  strata::tracking_resource lower{&pages};
  strata::tracking_resource upper{&lower};
  std::vector<std::string> names;
  std::vector<std::size_t> depths;
  std::vector<const std::pmr::memory_resource*> links;
  strata::for_each_link(&upper, [&](const strata::chain_link& link) {
    names.emplace_back(link.name());
    depths.push_back(link.depth);
    links.push_back(link.resource);
    BOOST_TEST(link.strata == link.resource);
  });
  BOOST_TEST(names == (std::vector<std::string>{"tracking_resource", "tracking_resource", "page_resource"}),
             boost::test_tools::per_element());
  BOOST_TEST(depths == (std::vector<std::size_t>{0, 1, 2}), boost::test_tools::per_element());
  BOOST_TEST(links[1] == &lower);
  BOOST_TEST(links[2] == &pages);
}

BOOST_AUTO_TEST_CASE(walk_ends_at_a_foreign_link) {
  std::pmr::unsynchronized_pool_resource pool{strata::system_pages()};
  strata::tracking_resource tracked{&pool};
  std::vector<std::string> names;
  std::vector<bool> is_strata;
  strata::for_each_link(&tracked, [&](const strata::chain_link& link) {
    names.emplace_back(link.name());
    is_strata.push_back(link.strata != nullptr);
  });
  // The pool's own upstream (page_resource) is not visited: the walk cannot see past it.
  BOOST_TEST(names == (std::vector<std::string>{"tracking_resource", "unsynchronized_pool_resource"}),
             boost::test_tools::per_element());
  BOOST_TEST(is_strata == (std::vector<bool>{true, false}), boost::test_tools::per_element());
  BOOST_TEST(strata::link_name(std::pmr::new_delete_resource()) == "new_delete_resource");
  BOOST_TEST(strata::link_name(std::pmr::null_memory_resource()) == "null_memory_resource");
  std::pmr::monotonic_buffer_resource mono{strata::system_pages()};
  BOOST_TEST(strata::link_name(&mono) == "monotonic_buffer_resource");
  std::size_t visited = 0;
  strata::for_each_link(nullptr, [&](const strata::chain_link&) { ++visited; });
  BOOST_TEST(visited == 0u);
}

BOOST_AUTO_TEST_CASE(format_chain_prints_an_aligned_row_per_link) {
  strata::page_resource pages;
  strata::tracking_resource tracked{&pages};
  void* p = tracked.allocate(3 * 1024 * 1024 / 2, 64);  // 1.50 MiB
  const std::string table = strata::format_chain(&tracked);
  const std::vector<std::string> lines = lines_of(table);
  BOOST_REQUIRE(lines.size() == 3u);  // header + two links
  BOOST_TEST(lines[0].find("resource") != std::string::npos);
  BOOST_TEST(lines[0].find("in use") != std::string::npos);
  BOOST_TEST(lines[0].find("misuse") != std::string::npos);
  BOOST_TEST(lines[1].find("tracking_resource") != std::string::npos);
  BOOST_TEST(lines[2].find("page_resource") != std::string::npos);
  BOOST_TEST(lines[1].find("1.50 MiB (1572864)") != std::string::npos);
  // Aligned: every column of figures ends at the same offset in each row.
  BOOST_TEST(lines[1].size() == lines[0].size());
  BOOST_TEST(lines[2].size() == lines[0].size());
  BOOST_TEST(lines[1].find("1.50 MiB") == lines[2].find("1.50 MiB"));
  tracked.deallocate(p, 3 * 1024 * 1024 / 2, 64);
}

BOOST_AUTO_TEST_CASE(format_chain_shows_foreign_links_without_stats) {
  strata::tracking_resource tracked{std::pmr::new_delete_resource()};
  const std::vector<std::string> lines = lines_of(strata::format_chain(&tracked));
  BOOST_REQUIRE(lines.size() == 3u);
  BOOST_TEST(lines[2].find("new_delete_resource") != std::string::npos);
  BOOST_TEST(lines[2].find("(no stats)") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(format_bytes_uses_binary_units_with_exact_counts) {
  BOOST_TEST(strata::format_bytes(0) == "0 B");
  BOOST_TEST(strata::format_bytes(1023) == "1023 B");
  BOOST_TEST(strata::format_bytes(1024) == "1.00 KiB (1024)");
  BOOST_TEST(strata::format_bytes(std::size_t{5} << 30) == "5.00 GiB (5368709120)");
}

BOOST_AUTO_TEST_CASE(fmt_formats_stats_on_one_line) {
  strata::resource_stats s;
  s.bytes_in_use = 2048;
  s.allocations = 3;
  s.misuse_detected = 1;
  const std::string text = fmt::format("{}", s);
  BOOST_TEST(text.find("in use 2.00 KiB (2048)") != std::string::npos);
  BOOST_TEST(text.find("allocations 3") != std::string::npos);
  BOOST_TEST(text.find("misuse 1") != std::string::npos);
  BOOST_TEST(text.find('\n') == std::string::npos);
}

BOOST_AUTO_TEST_CASE(each_link_counts_the_traffic_that_reached_it) {
  strata::tracking_resource bottom{strata::system_pages()};
  std::pmr::unsynchronized_pool_resource pool{&bottom};
  strata::tracking_resource top{&pool};
  {
    std::pmr::vector<std::pmr::string> words{&top};
    for (int i = 0; i < 100; ++i) words.emplace_back(50, 'w');
    BOOST_TEST(top.stats().allocations > 100u);
    // The pool batches small blocks: far fewer calls reach the bottom than the top.
    BOOST_TEST(bottom.stats().allocations < top.stats().allocations / 4);
    BOOST_TEST(top.stats().bytes_in_use >= 100u * 51u);
  }
  BOOST_TEST(top.stats().bytes_in_use == 0u);
  BOOST_TEST(top.live_blocks() == 0u);
}

BOOST_AUTO_TEST_CASE(json_export_lists_every_field_of_every_link) {
  // Distinct values per field and per link: a missing, renamed or swapped field fails.
  const strata::resource_stats lower_stats{.bytes_in_use = 10,
                                           .peak_bytes_in_use = 20,
                                           .bytes_reserved = 30,
                                           .allocations = 40,
                                           .deallocations = 50,
                                           .failed_allocations = 60,
                                           .upstream_allocations = 70,
                                           .upstream_deallocations = 80,
                                           .misuse_detected = 90};
  const strata::resource_stats upper_stats{.bytes_in_use = 1,
                                           .peak_bytes_in_use = 2,
                                           .bytes_reserved = 3,
                                           .allocations = 4,
                                           .deallocations = 5,
                                           .failed_allocations = 6,
                                           .upstream_allocations = 7,
                                           .upstream_deallocations = 8,
                                           .misuse_detected = std::uint64_t{1} << 63};
  fixed_stats_resource lower{"lower", std::pmr::new_delete_resource(), lower_stats};
  fixed_stats_resource upper{"upper", &lower, upper_stats};
  const std::string expected =
      R"({"version":2,"links":[{"depth":0,"name":"upper","strata":true,"stats":{"bytes_in_use":1,"peak_bytes_in_use":2,)"
      R"("bytes_reserved":3,"allocations":4,"deallocations":5,"failed_allocations":6,)"
      R"("upstream_allocations":7,"upstream_deallocations":8,"misuse_detected":9223372036854775808}},)"
      R"({"depth":1,"name":"lower","strata":true,"stats":{"bytes_in_use":10,"peak_bytes_in_use":20,)"
      R"("bytes_reserved":30,"allocations":40,"deallocations":50,"failed_allocations":60,)"
      R"("upstream_allocations":70,"upstream_deallocations":80,"misuse_detected":90}},)"
      R"({"depth":2,"name":"new_delete_resource","strata":false,"stats":null}]})";
  BOOST_TEST(strata::format_chain_json(&upper) == expected);
}

BOOST_AUTO_TEST_CASE(json_export_escapes_names) {
  // A user's resource may carry any name; the output must stay valid JSON.
  fixed_stats_resource odd{"say \"hi\"\\ tab\t nl\n cr\r bs\b ff\f bell\x07 del\x7f \xc3\xa9",
                           std::pmr::null_memory_resource(),
                           {}};
  const std::string json = strata::format_chain_json(&odd);
  const std::string expected_name = R"("name":"say \"hi\"\\ tab\t nl\n cr\r bs\b ff\f bell\u0007 del)"
                                    "\x7f \xc3\xa9\"";
  BOOST_TEST(json.find(expected_name) != std::string::npos, json);
  BOOST_TEST(json.find('\n') == std::string::npos);
  BOOST_TEST(json.ends_with(R"(},{"depth":1,"name":"null_memory_resource","strata":false,"stats":null}]})"),
             json);
}

BOOST_AUTO_TEST_CASE(json_export_of_a_live_chain_tracks_the_counters) {
  strata::page_resource pages;
  strata::tracking_resource tracked{&pages};
  void* p = tracked.allocate(100, 8);
  const std::string page = std::to_string(pages.page_size());
  const std::string expected =
      R"({"version":2,"links":[{"depth":0,"name":"tracking_resource","strata":true,"stats":{"bytes_in_use":100,)"
      R"("peak_bytes_in_use":100,"bytes_reserved":100,"allocations":1,"deallocations":0,)"
      R"("failed_allocations":0,"upstream_allocations":1,"upstream_deallocations":0,"misuse_detected":0}},)"
      R"({"depth":1,"name":"page_resource","strata":true,"stats":{"bytes_in_use":100,)"
      R"("peak_bytes_in_use":100,"bytes_reserved":)" +
      page +
      R"(,"allocations":1,"deallocations":0,)"
      R"("failed_allocations":0,"upstream_allocations":1,"upstream_deallocations":0,"misuse_detected":0}}]})";
  BOOST_TEST(strata::format_chain_json(&tracked) == expected);
  tracked.deallocate(p, 100, 8);
  const std::string after = strata::format_chain_json(&tracked);
  BOOST_TEST(after.find(R"("bytes_in_use":0,"peak_bytes_in_use":100,"bytes_reserved":0,)"
                        R"("allocations":1,"deallocations":1,)") != std::string::npos,
             after);
}

BOOST_AUTO_TEST_CASE(json_export_of_no_chain_is_an_empty_array) {
  BOOST_TEST(strata::format_chain_json(nullptr) == R"({"version":2,"links":[]})");
}

BOOST_AUTO_TEST_SUITE_END()

// Regression (issue 14): details() of every strata resource type reaches
// format_chain and format_chain_json with {.details = true}, each link's under
// its own fields, and neither output shows them without the option.
BOOST_AUTO_TEST_CASE(details_of_every_resource_type_reach_both_formats) {
  strata::page_resource pages;
  strata::chunk_provider chunks{&pages};
  strata::tracking_resource tracked{&chunks};
  strata::monotonic_arena scratch{&tracked};
  strata::slab slots{{.slot_size = 64}, &scratch};
  void* p = slots.allocate(64, 8);
  strata::arena heap{{.capacity = 1 << 20}, &pages};
  strata::extendable_slab xslab{{.slot_size = 32}, &pages};
  void* q = heap.allocate(100, 8);
  void* r = xslab.allocate(32, 8);
  // One distinctive field of each type's details_type, as the output names it.
  const std::vector<std::pair<const std::pmr::memory_resource*, std::vector<std::string>>> chains = {
      {&slots, {"stride", "chunks", "live_blocks", "cached_bytes", "page_size"}},
      {&heap, {"largest_free_extent", "bytes_committed", "page_size"}},
      {&xslab, {"segment_bytes", "page_size"}},
  };
  for (const auto& [top, fields] : chains) {
    const std::string table = strata::format_chain(top, {.details = true});
    const std::string json = strata::format_chain_json(top, {.details = true});
    for (const std::string& field : fields) {
      BOOST_TEST(table.find(field) != std::string::npos, field << " in the table");
      BOOST_TEST(json.find("\"" + field + "\":") != std::string::npos, field << " in the JSON");
      BOOST_TEST(strata::format_chain(top).find(field) == std::string::npos, field << " only on request");
    }
    BOOST_TEST(json.starts_with(R"({"version":2,"links":[)"));
    BOOST_TEST(json.find("\"details\":null") == std::string::npos,
               "every link is strata's: none without details");
  }
  xslab.deallocate(r, 32, 8);
  heap.deallocate(q, 100, 8);
  slots.deallocate(p, 64, 8);
}
