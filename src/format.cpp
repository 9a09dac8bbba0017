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
      s.allocations, s.deallocations, s.failed_allocations, s.upstream_allocations, s.upstream_deallocations,
      s.misuse_detected);
}

std::string format_chain(const std::pmr::memory_resource* r) {
  using row = std::vector<std::string>;
  std::vector<row> rows{{"#", "resource", "in use", "peak", "reserved", "allocs", "deallocs", "failed",
                         "upstream alloc/dealloc", "misuse"}};
  for_each_link(r, [&](const chain_link& link) {
    if (link.strata == nullptr) {
      rows.push_back({fmt::format("{}", link.depth), std::string(link.name()), "(no stats)"});
      return;
    }
    const resource_stats s = link.strata->stats();
    rows.push_back({fmt::format("{}", link.depth), std::string(link.name()), format_bytes(s.bytes_in_use),
                    format_bytes(s.peak_bytes_in_use), format_bytes(s.bytes_reserved),
                    fmt::format("{}", s.allocations), fmt::format("{}", s.deallocations),
                    fmt::format("{}", s.failed_allocations),
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

namespace {

// Appends text as a JSON string: quotes, backslashes and control characters
// escaped (RFC 8259); other bytes, UTF-8 included, copied as they are.
void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

}  // namespace

std::string format_chain_json(const std::pmr::memory_resource* r) {
  std::string out = "[";
  for_each_link(r, [&](const chain_link& link) {
    if (link.depth > 0) out += ',';
    out += fmt::format("{{\"depth\":{},\"name\":", link.depth);
    append_json_string(out, link.name());
    if (link.strata == nullptr) {
      out += ",\"strata\":false,\"stats\":null}";
      return;
    }
    const resource_stats s = link.strata->stats();
    // Every field of resource_stats, in declaration order, under its own name.
    out += fmt::format(
        ",\"strata\":true,\"stats\":{{\"bytes_in_use\":{},\"peak_bytes_in_use\":{},"
        "\"bytes_reserved\":{},\"allocations\":{},\"deallocations\":{},"
        "\"failed_allocations\":{},\"upstream_allocations\":{},"
        "\"upstream_deallocations\":{},\"misuse_detected\":{}}}}}",
        s.bytes_in_use, s.peak_bytes_in_use, s.bytes_reserved, s.allocations, s.deallocations,
        s.failed_allocations, s.upstream_allocations, s.upstream_deallocations, s.misuse_detected);
  });
  out += ']';
  return out;
}

}  // namespace strata
