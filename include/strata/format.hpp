// SPDX-License-Identifier: MIT
#pragma once

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

/// Returns the chain from r downwards as an aligned table a person can read:
/// a header row, then one row per link with its name and every counter;
/// foreign links show their name and "(no stats)". Ends with a newline.
[[nodiscard]] std::string format_chain(const std::pmr::memory_resource* r);

/// Returns the chain from r downwards as JSON, for dashboards and scripts: an
/// array with one object per link, in walk order, each holding "depth", "name"
/// (escaped as JSON strings require), "strata" (whether the link is a strata
/// resource) and "stats": an object with every resource_stats field under its
/// member name, or null for a foreign link, which (as in format_chain) ends
/// the walk. Compact, on one line, without a trailing newline, so it can be
/// embedded in a larger document or written as a JSON Lines record:
///
///     [{"depth":0,"name":"monotonic_arena","strata":true,"stats":{"bytes_in_use":0,...}},
///      {"depth":1,"name":"new_delete_resource","strata":false,"stats":null}]
///
/// Counters are JSON integers; readers that store numbers as doubles (as
/// JavaScript does) lose precision above 2^53. Returns "[]" when r is nullptr.
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
