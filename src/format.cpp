// SPDX-License-Identifier: MIT
#include "strata/format.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "strata/arena.hpp"
#include "strata/byte_limit_resource.hpp"
#include "strata/chunk_provider.hpp"
#include "strata/extendable_slab.hpp"
#include "strata/fallback_resource.hpp"
#include "strata/monotonic_arena.hpp"
#include "strata/page_resource.hpp"
#include "strata/segregator.hpp"
#include "strata/slab.hpp"
#include "strata/tracking_resource.hpp"

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

// ---------------------------------------------------------------- details

namespace {

// A resource's details() flattened to named fields, each value already a
// JSON literal (a number, true/false, or a quoted address), so the table and
// the JSON render the same walk of the same struct.
using field_list = std::vector<std::pair<std::string_view, std::string>>;

struct details_view {
  field_list scalars;
  std::vector<std::pair<std::string_view, std::vector<field_list>>> lists;  // size classes, segments
};

void put(field_list& out, std::string_view key, std::uint64_t value) {
  out.emplace_back(key, fmt::format("{}", value));
}
void put(field_list& out, std::string_view key, bool value) {
  out.emplace_back(key, value ? "true" : "false");
}
void put(field_list& out, std::string_view key, const void* value) {
  out.emplace_back(key, fmt::format("\"{}\"", value));
}

// Each field under its member name: the name cannot drift from the struct.
#define STRATA_FIELD(list, object, member) put(list, #member, (object).member)

details_view describe(const arena::details_type& d) {
  details_view v;
  STRATA_FIELD(v.scalars, d, capacity);
  STRATA_FIELD(v.scalars, d, remaining);
  STRATA_FIELD(v.scalars, d, large_live);
  STRATA_FIELD(v.scalars, d, large_live_bytes);
  STRATA_FIELD(v.scalars, d, free_extents);
  STRATA_FIELD(v.scalars, d, largest_free_extent);
  STRATA_FIELD(v.scalars, d, runs);
  STRATA_FIELD(v.scalars, d, empty_runs_kept);
  STRATA_FIELD(v.scalars, d, runs_returned);
  STRATA_FIELD(v.scalars, d, trims);
  STRATA_FIELD(v.scalars, d, decays);
  STRATA_FIELD(v.scalars, d, remote_frees);
  STRATA_FIELD(v.scalars, d, threads_attached);
  STRATA_FIELD(v.scalars, d, bytes_committed);
  STRATA_FIELD(v.scalars, d, decommits);
  STRATA_FIELD(v.scalars, d, bytes_decommitted);
  auto& classes = v.lists.emplace_back("classes", std::vector<field_list>{}).second;
  for (const auto& c : d.classes) {
    field_list& f = classes.emplace_back();
    STRATA_FIELD(f, c, block_size);
    STRATA_FIELD(f, c, runs);
    STRATA_FIELD(f, c, central_blocks);
    STRATA_FIELD(f, c, central_bytes);
    STRATA_FIELD(f, c, cached_blocks);
    STRATA_FIELD(f, c, transfer_blocks);
  }
  return v;
}

details_view describe(const chunk_provider::details_type& d) {
  details_view v;
  STRATA_FIELD(v.scalars, d, cached_bytes);
  STRATA_FIELD(v.scalars, d, oversized_live);
  STRATA_FIELD(v.scalars, d, oversized_bytes);
  STRATA_FIELD(v.scalars, d, evicted_by_floor);
  STRATA_FIELD(v.scalars, d, evicted_by_trim);
  STRATA_FIELD(v.scalars, d, evicted_by_budget);
  STRATA_FIELD(v.scalars, d, evicted_by_decay);
  STRATA_FIELD(v.scalars, d, returned_over_cache_limit);
  STRATA_FIELD(v.scalars, d, floor_chunk_size);
  STRATA_FIELD(v.scalars, d, threads_attached);
  auto& classes = v.lists.emplace_back("classes", std::vector<field_list>{}).second;
  for (const auto& c : d.classes) {
    field_list& f = classes.emplace_back();
    STRATA_FIELD(f, c, chunk_size);
    STRATA_FIELD(f, c, cached);
    STRATA_FIELD(f, c, in_use);
    STRATA_FIELD(f, c, cache_hits);
    STRATA_FIELD(f, c, cache_misses);
  }
  return v;
}

details_view describe(const extendable_slab::details_type& d) {
  details_view v;
  STRATA_FIELD(v.scalars, d, segment_bytes);
  STRATA_FIELD(v.scalars, d, slots_per_segment);
  STRATA_FIELD(v.scalars, d, stride);
  STRATA_FIELD(v.scalars, d, partial_segments);
  STRATA_FIELD(v.scalars, d, full_segments);
  STRATA_FIELD(v.scalars, d, empty_segments);
  STRATA_FIELD(v.scalars, d, cached_slots);
  STRATA_FIELD(v.scalars, d, growth_events);
  STRATA_FIELD(v.scalars, d, concurrent_growths);
  STRATA_FIELD(v.scalars, d, reclaimed_segments);
  STRATA_FIELD(v.scalars, d, decayed_segments);
  STRATA_FIELD(v.scalars, d, forwarded_too_large);
  STRATA_FIELD(v.scalars, d, forwarded_live);
  STRATA_FIELD(v.scalars, d, corrupted_links);
  STRATA_FIELD(v.scalars, d, double_frees);
  STRATA_FIELD(v.scalars, d, lost_slots);
  STRATA_FIELD(v.scalars, d, threads_attached);
  STRATA_FIELD(v.scalars, d, released_blocks);
  auto& segments = v.lists.emplace_back("segments", std::vector<field_list>{}).second;
  for (const auto& s : d.segments) {
    field_list& f = segments.emplace_back();
    STRATA_FIELD(f, s, address);
    STRATA_FIELD(f, s, slots);
    STRATA_FIELD(f, s, in_use);
    STRATA_FIELD(f, s, colour_offset);
  }
  return v;
}

details_view describe(const monotonic_arena::details_type& d) {
  details_view v;
  STRATA_FIELD(v.scalars, d, chunks);
  STRATA_FIELD(v.scalars, d, spare_chunks);
  STRATA_FIELD(v.scalars, d, dedicated_chunks);
  STRATA_FIELD(v.scalars, d, wasted_tail_bytes);
  STRATA_FIELD(v.scalars, d, request_footprint);
  STRATA_FIELD(v.scalars, d, largest_request_footprint);
  STRATA_FIELD(v.scalars, d, next_chunk_size);
  STRATA_FIELD(v.scalars, d, resets);
  STRATA_FIELD(v.scalars, d, spare_bytes);
  STRATA_FIELD(v.scalars, d, recent_need);
  return v;
}

details_view describe(const page_resource::details_type& d) {
  details_view v;
  STRATA_FIELD(v.scalars, d, page_size);
  STRATA_FIELD(v.scalars, d, over_aligned_mappings);
  STRATA_FIELD(v.scalars, d, huge_page_advice);
  return v;
}

details_view describe(const slab::details_type& d) {
  details_view v;
  STRATA_FIELD(v.scalars, d, capacity);
  STRATA_FIELD(v.scalars, d, stride);
  STRATA_FIELD(v.scalars, d, carved_slots);
  STRATA_FIELD(v.scalars, d, free_slots);
  STRATA_FIELD(v.scalars, d, lost_slots);
  STRATA_FIELD(v.scalars, d, forwarded_too_large);
  STRATA_FIELD(v.scalars, d, forwarded_on_exhaustion);
  STRATA_FIELD(v.scalars, d, forwarded_live);
  STRATA_FIELD(v.scalars, d, corrupted_links);
  STRATA_FIELD(v.scalars, d, double_frees);
  STRATA_FIELD(v.scalars, d, checked);
  return v;
}

details_view describe(const tracking_resource::details_type& d) {
  details_view v;
  STRATA_FIELD(v.scalars, d, live_blocks);
  STRATA_FIELD(v.scalars, d, live_bytes);
  STRATA_FIELD(v.scalars, d, unknown_pointers);
  STRATA_FIELD(v.scalars, d, double_frees);
  STRATA_FIELD(v.scalars, d, size_mismatches);
  STRATA_FIELD(v.scalars, d, alignment_mismatches);
  STRATA_FIELD(v.scalars, d, duplicate_handouts);
  STRATA_FIELD(v.scalars, d, limit_failures);
  STRATA_FIELD(v.scalars, d, largest_alignment);
  return v;
}

details_view describe(const byte_limit_resource::details_type& d) {
  details_view v;
  STRATA_FIELD(v.scalars, d, max_bytes);
  STRATA_FIELD(v.scalars, d, bytes_charged);
  STRATA_FIELD(v.scalars, d, limit_failures);
  STRATA_FIELD(v.scalars, d, upstream_failures);
  return v;
}

// The second link of a two-upstream resource appears here by address, since
// the walk follows upstream_resource() only.
details_view describe(const fallback_resource::details_type& d) {
  details_view v;
  put(v.scalars, "fallback", static_cast<const void*>(d.fallback));
  STRATA_FIELD(v.scalars, d, primary_allocations);
  STRATA_FIELD(v.scalars, d, fallback_allocations);
  STRATA_FIELD(v.scalars, d, fallbacks_taken);
  STRATA_FIELD(v.scalars, d, fallback_live_blocks);
  STRATA_FIELD(v.scalars, d, fallback_live_bytes);
  return v;
}

details_view describe(const segregator::details_type& d) {
  details_view v;
  put(v.scalars, "small_resource", static_cast<const void*>(d.small_resource));
  STRATA_FIELD(v.scalars, d, threshold);
  STRATA_FIELD(v.scalars, d, max_small_alignment);
  STRATA_FIELD(v.scalars, d, small_allocations);
  STRATA_FIELD(v.scalars, d, large_allocations);
  return v;
}

#undef STRATA_FIELD

// Returns link's details if it is one of strata's own resource types. The
// base class has no virtual details (each details_type is its own struct),
// so the closed set of types is tried in turn; the walk is a slow path.
template <class R>
bool try_describe(const strata::resource* link, std::optional<details_view>& out) {
  if (const auto* r = dynamic_cast<const R*>(link)) {
    out = describe(r->details());
    return true;
  }
  return false;
}

std::optional<details_view> details_of(const strata::resource* link) {
  std::optional<details_view> out;
  if (link != nullptr) {
    (void)(try_describe<arena>(link, out) || try_describe<chunk_provider>(link, out) ||
           try_describe<extendable_slab>(link, out) || try_describe<monotonic_arena>(link, out) ||
           try_describe<page_resource>(link, out) || try_describe<slab>(link, out) ||
           try_describe<tracking_resource>(link, out) || try_describe<byte_limit_resource>(link, out) ||
           try_describe<fallback_resource>(link, out) || try_describe<segregator>(link, out));
  }
  return out;
}

// Returns fields as "key=value, key=value", addresses without their quotes.
std::string join_fields(const field_list& fields) {
  std::string out;
  for (const auto& [key, value] : fields) {
    if (!out.empty()) out += ", ";
    out += fmt::format("{}={}", key, value.front() == '"' ? value.substr(1, value.size() - 2) : value);
  }
  return out;
}

// Returns true if an entry of a list holds anything besides its first field
// (the class size, the segment address): the table lists only those.
bool holds_anything(const field_list& entry) {
  return std::any_of(entry.begin() + 1, entry.end(),
                     [](const auto& field) { return field.second != "0" && field.second != "false"; });
}

void append_json_fields(std::string& out, const field_list& fields) {
  out += '{';
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out += ',';
    out += fmt::format("\"{}\":{}", fields[i].first, fields[i].second);
  }
  out += '}';
}

void append_json_details(std::string& out, const std::optional<details_view>& details) {
  out += ",\"details\":";
  if (!details) {
    out += "null";
    return;
  }
  append_json_fields(out, details->scalars);
  out.pop_back();  // reopen the object for the lists
  for (const auto& [key, entries] : details->lists) {
    out += fmt::format(",\"{}\":[", key);
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (i > 0) out += ',';
      append_json_fields(out, entries[i]);
    }
    out += ']';
  }
  out += '}';
}

}  // namespace

std::string format_chain(const std::pmr::memory_resource* r, const format_options& opts) {
  using row = std::vector<std::string>;
  std::vector<row> rows{{"#", "resource", "in use", "peak", "reserved", "allocs", "deallocs", "failed",
                         "upstream alloc/dealloc", "misuse"}};
  std::vector<std::pair<std::size_t, std::optional<details_view>>> notes;  // row index -> its details
  for_each_link(r, [&](const chain_link& link) {
    if (link.strata == nullptr) {
      rows.push_back({fmt::format("{}", link.depth), std::string(link.name()), "(no stats)"});
      return;
    }
    const resource_stats s = link.strata->stats();
    if (opts.details) notes.emplace_back(rows.size(), details_of(link.strata));
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
  auto note = notes.begin();
  for (std::size_t row_index = 0; row_index < rows.size(); ++row_index) {
    const row& cells = rows[row_index];
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
    if (note != notes.end() && note->first == row_index) {
      // Indented under the name, past the link number's column.
      const std::string indent(width[0] + 4, ' ');
      if (note->second) {
        out += fmt::format("{}{}\n", indent, join_fields(note->second->scalars));
        for (const auto& [key, entries] : note->second->lists) {
          for (const field_list& entry : entries) {
            if (holds_anything(entry)) out += fmt::format("{}{}: {}\n", indent, key, join_fields(entry));
          }
        }
      } else {
        out += fmt::format("{}(no details)\n", indent);
      }
      ++note;
    }
  }
  return out;
}

std::string format_chain(const std::pmr::memory_resource* r) {
  return format_chain(r, format_options{});
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

std::string format_chain_json(const std::pmr::memory_resource* r, const format_options& opts) {
  std::string out = fmt::format("{{\"version\":{},\"links\":[", chain_json_version);
  for_each_link(r, [&](const chain_link& link) {
    if (link.depth > 0) out += ',';
    out += fmt::format("{{\"depth\":{},\"name\":", link.depth);
    append_json_string(out, link.name());
    if (link.strata == nullptr) {
      out += ",\"strata\":false,\"stats\":null";
      if (opts.details) out += ",\"details\":null";
      out += '}';
      return;
    }
    const resource_stats s = link.strata->stats();
    // Every field of resource_stats, in declaration order, under its own name.
    out += fmt::format(
        ",\"strata\":true,\"stats\":{{\"bytes_in_use\":{},\"peak_bytes_in_use\":{},"
        "\"bytes_reserved\":{},\"allocations\":{},\"deallocations\":{},"
        "\"failed_allocations\":{},\"upstream_allocations\":{},"
        "\"upstream_deallocations\":{},\"misuse_detected\":{}}}",
        s.bytes_in_use, s.peak_bytes_in_use, s.bytes_reserved, s.allocations, s.deallocations,
        s.failed_allocations, s.upstream_allocations, s.upstream_deallocations, s.misuse_detected);
    if (opts.details) append_json_details(out, details_of(link.strata));
    out += '}';
  });
  out += "]}";
  return out;
}

std::string format_chain_json(const std::pmr::memory_resource* r) {
  return format_chain_json(r, format_options{});
}

}  // namespace strata
