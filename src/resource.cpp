// SPDX-License-Identifier: MIT
// The shared vocabulary: resource's key function, allocation_failure, the
// misuse handler and the error helpers every resource throws through.

#include "strata/resource.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "strata/detail/assert.hpp"

namespace strata {

resource::~resource() = default;

// ------------------------------------------------------------------ names

std::string_view to_string(failure_reason reason) noexcept {
  switch (reason) {
    case failure_reason::capacity:
      return "capacity";
    case failure_reason::budget:
      return "budget";
    case failure_reason::upstream_failed:
      return "upstream failed";
    case failure_reason::size_overflow:
      return "size overflow";
    case failure_reason::allocation_limit:
      return "allocation limit";
  }
  return "unknown";
}

std::string_view to_string(misuse_kind kind) noexcept {
  switch (kind) {
    case misuse_kind::unknown_pointer:
      return "unknown_pointer";
    case misuse_kind::double_free:
      return "double_free";
    case misuse_kind::size_mismatch:
      return "size_mismatch";
    case misuse_kind::alignment_mismatch:
      return "alignment_mismatch";
    case misuse_kind::duplicate_handout:
      return "duplicate_handout";
    case misuse_kind::foreign_marker:
      return "foreign_marker";
    case misuse_kind::wrong_thread:
      return "wrong_thread";
  }
  return "unknown";
}

// ------------------------------------------------------ allocation_failure

allocation_failure::allocation_failure(std::string_view resource_name, std::size_t bytes,
                                       std::size_t alignment, failure_reason reason) noexcept
    : resource_name_(resource_name), bytes_(bytes), alignment_(alignment), reason_(reason) {
  // snprintf into the member buffer: no allocation on an out-of-memory path.
  const std::string_view why = to_string(reason);
  std::snprintf(message_, sizeof message_, "strata::%.*s: cannot allocate %zu bytes aligned to %zu: %.*s",
                static_cast<int>(resource_name.size()), resource_name.data(), bytes, alignment,
                static_cast<int>(why.size()), why.data());
}

// ------------------------------------------------------------------ misuse

namespace {

// The default handler prints at most this many reports one by one; after
// that only the 64th, 128th, 256th, ... so a server with a recurring bug
// logs O(log n) lines, never none and never a flood.
constexpr std::uint64_t misuse_lines_in_full = 32;

std::atomic<misuse_action>& action_slot() noexcept {
  // Read once, on first use; set_default_misuse_action overrides it.
  static std::atomic<misuse_action> slot{
      detail::parse_misuse_action(std::getenv("STRATA_MISUSE"), misuse_action::print)};
  return slot;
}

void print_misuse(const misuse_report& report, std::uint64_t ordinal) noexcept {
  const std::string_view kind = to_string(report.kind);
  // One fprintf per report, so lines from several threads do not interleave.
  std::fprintf(stderr, "strata::%.*s: misuse detected: %.*s (pointer %p, %zu bytes, alignment %zu)%s\n",
               static_cast<int>(report.resource_name.size()), report.resource_name.data(),
               static_cast<int>(kind.size()), kind.data(), report.pointer, report.bytes, report.alignment,
               ordinal > misuse_lines_in_full ? "; further reports printed at powers of two only" : "");
}

void default_misuse_handler(const misuse_report& report) noexcept {
  // Decided at run time, never by NDEBUG (issue 14): the same in every build.
  static std::atomic<std::uint64_t> reports{0};
  switch (action_slot().load(std::memory_order_relaxed)) {
    case misuse_action::quiet:
      return;
    case misuse_action::abort:
      print_misuse(report, 1);
      std::abort();
    case misuse_action::print: {
      const std::uint64_t ordinal = reports.fetch_add(1, std::memory_order_relaxed) + 1;
      if (detail::misuse_report_is_printed(ordinal)) print_misuse(report, ordinal);
      return;
    }
  }
}

// The installed handler: either a plain function (plain != nullptr) or a
// callback with its context. Reports hold the lock shared while the handler
// runs, so installation (exclusive) waits for them: a hook's context is never
// used after set_misuse_hook has replaced it. Misuse is a slow path; the lock
// costs nothing on any allocation path.
struct installed_handler {
  misuse_handler plain = &default_misuse_handler;
  misuse_hook hook{};
};

struct handler_slot {
  std::shared_mutex mutex;
  installed_handler current;  // guarded by mutex
};

handler_slot& slot() noexcept {
  static handler_slot s;  // function-local: usable from other TUs' static initializers
  return s;
}

installed_handler exchange_handler(installed_handler next) noexcept {
  handler_slot& s = slot();
  const std::unique_lock lock(s.mutex);
  return std::exchange(s.current, next);
}

}  // namespace

misuse_hook set_misuse_hook(misuse_hook hook) noexcept {
  installed_handler next;
  if (hook.callback != nullptr) next = {nullptr, hook};
  return exchange_handler(next).hook;
}

misuse_handler set_misuse_handler(misuse_handler handler) noexcept {
  return exchange_handler({handler != nullptr ? handler : &default_misuse_handler, {}}).plain;
}

void set_default_misuse_action(misuse_action action) noexcept {
  action_slot().store(action, std::memory_order_relaxed);
}

misuse_action default_misuse_action() noexcept {
  return action_slot().load(std::memory_order_relaxed);
}

void report_misuse(const misuse_report& report) noexcept {
  handler_slot& s = slot();
  const std::shared_lock lock(s.mutex);
  if (s.current.plain != nullptr) {
    s.current.plain(report);
  } else {
    s.current.hook.callback(report, s.current.hook.context);
  }
}

namespace detail {

misuse_action parse_misuse_action(const char* value, misuse_action fallback) noexcept {
  if (value == nullptr) return fallback;
  const std::string_view v{value};
  if (v == "print") return misuse_action::print;
  if (v == "abort") return misuse_action::abort;
  if (v == "quiet") return misuse_action::quiet;
  return fallback;
}

bool misuse_report_is_printed(std::uint64_t ordinal) noexcept {
  return ordinal <= misuse_lines_in_full || is_power_of_two(ordinal);
}

}  // namespace detail

// ------------------------------------------------------------------ errors

namespace detail {

void assertion_failed(const char* condition, const char* message, const char* file, int line) noexcept {
  std::fprintf(stderr, "%s:%d: strata assertion failed: %s (%s)\n", file, line, message, condition);
  std::abort();
}

void throw_bad_alignment(std::string_view resource_name, std::size_t alignment) {
  throw std::invalid_argument(
      fmt::format("strata::{}: alignment {} is not a power of two", resource_name, alignment));
}

void throw_bad_option(std::string_view resource_name, std::string_view field, std::string_view problem) {
  throw std::invalid_argument(fmt::format("strata::{}: {} {}", resource_name, field, problem));
}

void throw_allocation_failure(std::string_view resource_name, std::size_t bytes, std::size_t alignment,
                              failure_reason reason) {
  throw allocation_failure(resource_name, bytes, alignment, reason);
}

void* allocate_from_upstream(std::pmr::memory_resource* upstream, std::string_view resource_name,
                             std::size_t bytes, std::size_t alignment) {
  try {
    return upstream->allocate(bytes, alignment);
  } catch (const allocation_failure&) {
    throw;  // already names the link that failed
  } catch (const std::bad_alloc&) {
    throw allocation_failure(resource_name, bytes, alignment, failure_reason::upstream_failed);
  }
}

}  // namespace detail
}  // namespace strata
