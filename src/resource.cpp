// SPDX-License-Identifier: MIT
// The shared vocabulary: resource's key function, allocation_failure, the
// misuse handler and the error helpers every resource throws through.

#include "strata/resource.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

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

void default_misuse_handler(const misuse_report& report) noexcept {
  std::fprintf(stderr, "strata::%.*s: misuse detected: %.*s (pointer %p, %zu bytes, alignment %zu)\n",
               static_cast<int>(report.resource_name.size()), report.resource_name.data(),
               static_cast<int>(to_string(report.kind).size()), to_string(report.kind).data(), report.pointer,
               report.bytes, report.alignment);
#if !defined(NDEBUG)
  std::abort();
#endif
}

std::atomic<misuse_handler> installed_handler{&default_misuse_handler};

}  // namespace

misuse_handler set_misuse_handler(misuse_handler handler) noexcept {
  return installed_handler.exchange(handler != nullptr ? handler : &default_misuse_handler);
}

void report_misuse(const misuse_report& report) noexcept {
  installed_handler.load(std::memory_order_acquire)(report);
}

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
