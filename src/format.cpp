// SPDX-License-Identifier: MIT
#include "strata/format.hpp"

#include <algorithm>
#include <array>
#include <vector>

namespace strata {

std::string format_bytes(std::size_t bytes) {
  static constexpr std::array<const char*, 6> units{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return fmt::format("{} B", bytes);
  double scaled = static_cast<double>(bytes) / 1024.0;
  std::size_t unit = 0;
  while (scaled >= 1024.0 && unit + 1 < units.size()) {
    scaled /= 1024.0;
    ++unit;
  }
  return fmt::format("{:.2f} {} ({})", scaled, units[unit], bytes);
}

std::string format_stats(const resource_stats& s) {
  return fmt::format(
      "in use {}, peak {}, reserved {}, allocations {}, deallocations {}, failed {}, "
      "upstream {}/{}, misuse {}",
      format_bytes(s.bytes_in_use), format_bytes(s.peak_bytes_in_use), format_bytes(s.bytes_reserved),
      s.allocations, s.deallocations, s.failed_allocations, s.upstream_allocations,
      s.upstream_deallocations, s.misuse_detected);
}

std::string format_chain(const std::pmr::memory_resource* r) {
  using row = std::vector<std::string>;
  std::vector<row> rows{{"#", "resource", "in use", "peak", "reserved", "allocs", "deallocs",
                         "failed", "upstream alloc/dealloc", "misuse"}};
  for_each_link(r, [&](const chain_link& link) {
    if (link.strata == nullptr) {
      rows.push_back({fmt::format("{}", link.depth), std::string(link.name()), "(no stats)"});
      return;
    }
    const resource_stats s = link.strata->stats();
    rows.push_back({fmt::format("{}", link.depth), std::string(link.name()),
                    format_bytes(s.bytes_in_use), format_bytes(s.peak_bytes_in_use),
                    format_bytes(s.bytes_reserved), fmt::format("{}", s.allocations),
                    fmt::format("{}", s.deallocations), fmt::format("{}", s.failed_allocations),
                    fmt::format("{}/{}", s.upstream_allocations, s.upstream_deallocations),
                    fmt::format("{}", s.misuse_detected)});
  });

  // Widths come from full rows; a foreign link's "(no stats)" may overhang.
  std::vector<std::size_t> width(rows.front().size(), 0);
  for (const row& cells : rows) {
    if (cells.size() != width.size()) continue;
    for (std::size_t c = 0; c < cells.size(); ++c) width[c] = std::max(width[c], cells[c].size());
  }
  std::string out;
  for (const row& cells : rows) {
    std::string line;
    for (std::size_t c = 0; c < cells.size(); ++c) {
      // The link number and name left-aligned, figures right-aligned.
      if (c > 0) line += "  ";
      const bool overhang = cells.size() != width.size() && c + 1 == cells.size();
      if (overhang) {
        line += cells[c];
      } else if (c < 2) {
        line += fmt::format("{:<{}}", cells[c], width[c]);
      } else {
        line += fmt::format("{:>{}}", cells[c], width[c]);
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  }
  return out;
}

}  // namespace strata
