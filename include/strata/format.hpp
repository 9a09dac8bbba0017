// SPDX-License-Identifier: MIT
#pragma once

#include "version.hpp"  // first: it stops a pre-C++20 build with a clear message

#include <cstddef>
#include <memory_resource>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "chain.hpp"
#include "stats.hpp"

// Human-readable rendering of statistics. This is the only strata header that
// includes fmt; include it where you print, not in every translation unit.

namespace strata {

/// Returns bytes in binary units with the exact count, as "1.50 MiB (1572864)",
/// or just "512 B" below one KiB.
[[nodiscard]] std::string format_bytes(std::size_t bytes);

/// Returns one line describing stats, as the fmt formatter prints it.
[[nodiscard]] std::string format_stats(const resource_stats& stats);

/// What format_chain and format_chain_json include beyond the counters.
struct format_options {
  /// Adds each link's details(): for every strata resource type (arena,
  /// byte_limit_resource, chunk_provider, extendable_slab, fallback_resource,
  /// monotonic_arena, page_resource, segregator, slab, tracking_resource) its
  /// details_type, every field under its member name.
  /// A strata resource of another type (a user's own) has no details to show.
  bool details = false;
};

/// The version of the JSON format_chain_json writes, as its "version" field.
/// It goes up when a field is renamed, removed or changes meaning; new fields
/// may appear within a version. Version 1 was the bare array of links that
/// strata wrote before the field existed.
inline constexpr int chain_json_version = 2;

/// Returns the chain from r downwards as an aligned table a person can read:
/// a header row, then one row per link with its name and every counter;
/// foreign links show their name and "(no stats)". With opts.details, each
/// strata link of a known type is followed by lines, indented under its
/// name, listing its details: the scalar fields on one line, then one line
/// per entry of a list (size classes, segments) that holds anything. Ends
/// with a newline.
[[nodiscard]] std::string format_chain(const std::pmr::memory_resource* r, const format_options& opts);

/// Returns format_chain(r, {}).
[[nodiscard]] std::string format_chain(const std::pmr::memory_resource* r);

/// Returns the chain from r downwards as JSON, for dashboards and scripts: an
/// object {"version":chain_json_version,"links":[...]} whose array has one
/// object per link, in walk order, each holding "depth", "name" (escaped as
/// JSON strings require), "strata" (whether the link is a strata resource)
/// and "stats": an object with every resource_stats field under its member
/// name, or null for a foreign link, which (as in format_chain) ends the
/// walk. With opts.details every link also has "details": an object with
/// every field of its details_type under its member name (lists as arrays
/// of objects, pointers as strings, flags as true/false), or null where
/// there is none. Compact, on one line, without a trailing newline, so it
/// can be embedded in a larger document or written as a JSON Lines record:
///
///     {"version":2,"links":[{"depth":0,"name":"monotonic_arena","strata":true,
///      "stats":{"bytes_in_use":0,...}},{"depth":1,"name":"new_delete_resource",
///      "strata":false,"stats":null}]}
///
/// Counters are JSON integers; readers that store numbers as doubles (as
/// JavaScript does) lose precision above 2^53. The links array is empty
/// when r is nullptr.
[[nodiscard]] std::string format_chain_json(const std::pmr::memory_resource* r, const format_options& opts);

/// Returns format_chain_json(r, {}).
[[nodiscard]] std::string format_chain_json(const std::pmr::memory_resource* r);

}  // namespace strata

/// Formats resource_stats in one line: `fmt::print("{}", r.stats())`.
template <>
struct fmt::formatter<strata::resource_stats> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const strata::resource_stats& stats, FormatContext& context) const {
    return fmt::formatter<std::string_view>::format(strata::format_stats(stats), context);
  }
};
