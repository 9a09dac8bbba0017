// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <new>
#include <string_view>

#include "detail/align.hpp"
#include "stats.hpp"

// The shared vocabulary of strata: the `resource` base every strata resource
// derives from, the `allocation_failure` exception every one throws on
// exhaustion, and the process-wide misuse handler every one reports to.

namespace strata {

// ---------------------------------------------------------------- hardening

/// The default of the `hardened` option of every resource that frees single
/// blocks (slab, extendable_slab, arena, chunk_provider): true when the
/// library and its users are built with STRATA_HARDENED defined (meson
/// `-Dhardening=true` defines it for both, through the dependency), false
/// otherwise. One switch, so a whole program is hardened without touching
/// each resource's options; a resource can still opt in or out by setting
/// the field. docs/hardening.md says what each resource then checks and what
/// it costs.
#ifdef STRATA_HARDENED
inline constexpr bool hardened_by_default = true;
#else
inline constexpr bool hardened_by_default = false;
#endif

// ------------------------------------------------------------------ resource

/// Base of every strata resource: a std::pmr::memory_resource that knows its
/// upstream, its name and its statistics, so a chain can be walked and printed
/// from any link (see chain.hpp and format.hpp).
///
/// Equality is identity for every strata resource: memory from one may only be
/// returned to that same object. Resources hand out pointers into themselves,
/// so they are neither copyable nor movable.
///
/// Thread safety: the members of this base are const thread-safe; whether
/// allocation is thread-safe is stated by each derived class.
class resource : public std::pmr::memory_resource {
 public:
  // Resources hand out pointers into themselves: no copy, no move.
  resource(const resource&) = delete;
  resource(resource&&) = delete;
  resource& operator=(const resource&) = delete;
  resource& operator=(resource&&) = delete;

  /// Returns the resource this one obtains memory from, or nullptr at the
  /// bottom of a chain (page_resource). The upstream is held, not owned.
  [[nodiscard]] std::pmr::memory_resource* upstream_resource() const noexcept { return upstream_; }

  /// Returns the class name, such as "chunk_provider"; the string is static.
  [[nodiscard]] std::string_view name() const noexcept { return name_; }

  /// Returns a snapshot of the counters (exact when no other thread is
  /// allocating, best effort otherwise).
  [[nodiscard]] resource_stats stats() const noexcept { return do_stats(); }

  /// Sets peak_bytes_in_use to the current bytes_in_use.
  void reset_peak() noexcept { do_reset_peak(); }

  /// Returns the size, at least bytes, in which a block of bytes is best
  /// requested from this resource: a chunk_provider answers at least the
  /// size of its floor class, the smallest it still caches, so a new
  /// monotonic_arena takes a cached chunk rather than growing through
  /// classes the provider would map and unmap each time. A hint: callers
  /// may ignore it, and it may change as other threads allocate. Resources
  /// without a preference answer bytes.
  [[nodiscard]] std::size_t preferred_size(std::size_t bytes) const noexcept {
    return do_preferred_size(bytes);
  }

  ~resource() override;

 protected:
  /// Stores the name (a string with static storage) and the upstream (held, not owned).
  resource(std::string_view name, std::pmr::memory_resource* upstream) noexcept
      : upstream_(upstream), name_(name) {}

 private:
  virtual resource_stats do_stats() const noexcept = 0;
  virtual void do_reset_peak() noexcept = 0;
  virtual std::size_t do_preferred_size(std::size_t bytes) const noexcept { return bytes; }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept final { return this == &other; }

  std::pmr::memory_resource* upstream_;  // upstream (held, not owned); nullptr at the bottom
  std::string_view name_;                // static string naming the class
};

// ------------------------------------------------------ allocation_failure

/// Why an allocation failed.
enum class failure_reason : std::uint8_t {
  capacity,          ///< a fixed-capacity resource is full
  budget,            ///< a byte budget would be exceeded
  upstream_failed,   ///< the upstream (or the OS) refused
  size_overflow,     ///< the size, rounded and padded for alignment, does not fit in size_t
  allocation_limit,  ///< tracking_resource's allocation limit was reached (test tool)
};

/// Returns a short lower-case name for reason, such as "budget".
[[nodiscard]] std::string_view to_string(failure_reason reason) noexcept;

/// The std::bad_alloc every strata resource throws on exhaustion. It names
/// the link of the chain that failed, the request, and the reason, so a
/// failure deep in a chain is diagnosable from the catch site.
///
/// Constructing, copying and what() never allocate: the message lives in a
/// fixed buffer inside the object, as an out-of-memory path requires.
class allocation_failure : public std::bad_alloc {
 public:
  /// Builds the one-line message, for example
  /// "strata::chunk_provider: cannot allocate 1048576 bytes aligned to 64: budget".
  allocation_failure(std::string_view resource_name, std::size_t bytes, std::size_t alignment,
                     failure_reason reason) noexcept;

  [[nodiscard]] const char* what() const noexcept override { return message_; }
  [[nodiscard]] std::string_view resource_name() const noexcept { return resource_name_; }
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }
  [[nodiscard]] std::size_t alignment() const noexcept { return alignment_; }
  [[nodiscard]] failure_reason reason() const noexcept { return reason_; }

 private:
  std::string_view resource_name_;  // static string: a resource's name()
  std::size_t bytes_;
  std::size_t alignment_;
  failure_reason reason_;
  char message_[160];  // nul-terminated; long enough for any name this library uses
};

// ------------------------------------------------------------------ misuse

/// Kinds of deallocate (or rewind) a resource can prove wrong.
enum class misuse_kind : std::uint8_t {
  unknown_pointer,     ///< the pointer was never handed out by this resource
  double_free,         ///< the block was already returned
  size_mismatch,       ///< deallocate's size differs from allocate's
  alignment_mismatch,  ///< deallocate's alignment differs from allocate's
  duplicate_handout,   ///< an upstream handed out a block that is still live (tracking_resource)
  foreign_marker,      ///< a marker from another arena, or from before a reset
  wrong_thread,        ///< a single-owner resource used from a second thread
};

/// Returns a short lower-case name for kind, such as "double_free".
[[nodiscard]] std::string_view to_string(misuse_kind kind) noexcept;

/// One detected misuse, as passed to the misuse handler.
struct misuse_report {
  std::string_view resource_name;  ///< the resource that detected it
  misuse_kind kind;
  const void* pointer;    ///< the block concerned (may be nullptr)
  std::size_t bytes;      ///< the size the caller passed
  std::size_t alignment;  ///< the alignment the caller passed
};

/// A function called for every detected misuse, after it has been counted in
/// misuse_detected and before the resource goes on (ignoring or repairing the
/// bad call). It must not throw; it may abort. It must not install a handler.
using misuse_handler = void (*)(const misuse_report&) noexcept;

/// The same, with the context pointer given at installation: the form a
/// handler object (a test's recorder, a logger) installs itself with.
using misuse_callback = void (*)(const misuse_report&, void* context) noexcept;

/// A handler with its user context: report_misuse calls
/// callback(report, context). A null callback stands for the default handler.
struct misuse_hook {
  misuse_callback callback = nullptr;
  void* context = nullptr;
};

/// What the default handler does with a report.
enum class misuse_action : std::uint8_t {
  print,  ///< one line on stderr per report (the first 32, then the 64th, 128th, 256th, ...)
  abort,  ///< one line on stderr, then std::abort()
  quiet,  ///< nothing: the count in misuse_detected is the signal
};

/// Installs hook for the whole process and returns the previous one; a null
/// callback restores the default handler. Installation waits for reports
/// already running in other threads to return, so once this returns the
/// previous hook is no longer called and its context may be destroyed.
/// Thread safety: thread-safe.
misuse_hook set_misuse_hook(misuse_hook hook) noexcept;

/// Installs a plain handler for the whole process and returns the previous
/// plain one; nullptr restores the default. Returns nullptr when the previous
/// handler was installed with set_misuse_hook (save and restore through
/// set_misuse_hook to keep a context). The default handler's address is
/// returned while the default is installed, and restores it.
/// Thread safety: thread-safe.
misuse_handler set_misuse_handler(misuse_handler handler) noexcept;

/// Sets what the default handler does. The initial action is read once, at
/// the first call of this function, default_misuse_action or the default
/// handler, from the environment variable STRATA_MISUSE ("print", "abort" or
/// "quiet"); unset or anything else means print. The same in every build:
/// neither the library's nor the user's NDEBUG changes it.
/// Thread safety: thread-safe.
void set_default_misuse_action(misuse_action action) noexcept;

/// Returns what the default handler does now.
/// Thread safety: thread-safe.
[[nodiscard]] misuse_action default_misuse_action() noexcept;

/// Calls the installed misuse handler. Resources call this; users rarely need to.
/// Thread safety: thread-safe; reports from several threads may run at once.
void report_misuse(const misuse_report& report) noexcept;

// ------------------------------------------------- helpers for resources

namespace detail {

/// Throws std::invalid_argument naming the resource and the bad alignment.
[[noreturn, gnu::cold]] void throw_bad_alignment(std::string_view resource_name, std::size_t alignment);

/// Returns the action STRATA_MISUSE's value names, or fallback when it names
/// none (value may be nullptr, as getenv returns for an unset variable).
[[nodiscard]] misuse_action parse_misuse_action(const char* value, misuse_action fallback) noexcept;

/// Returns whether the default handler's print action prints the ordinal-th
/// report it receives (counting from 1): the first 32, then powers of two.
[[nodiscard]] bool misuse_report_is_printed(std::uint64_t ordinal) noexcept;

/// Throws std::invalid_argument "strata::<resource>: <field> <problem>".
[[noreturn, gnu::cold]] void throw_bad_option(std::string_view resource_name, std::string_view field,
                                              std::string_view problem);

/// Throws allocation_failure.
[[noreturn, gnu::cold]] void throw_allocation_failure(std::string_view resource_name, std::size_t bytes,
                                                      std::size_t alignment, failure_reason reason);

/// Returns upstream->allocate(bytes, alignment). A plain std::bad_alloc from
/// the upstream becomes allocation_failure(resource_name, upstream_failed), so
/// the caller sees which link failed; an allocation_failure from a strata
/// upstream and every other exception pass through unchanged.
void* allocate_from_upstream(std::pmr::memory_resource* upstream, std::string_view resource_name,
                             std::size_t bytes, std::size_t alignment);

/// Throws std::invalid_argument unless alignment is a power of two, as every
/// strata allocate must.
inline void check_alignment(std::string_view resource_name, std::size_t alignment) {
  if (!is_power_of_two(alignment)) [[unlikely]] {
    throw_bad_alignment(resource_name, alignment);
  }
}

/// Throws std::invalid_argument unless upstream is non-null.
inline void check_upstream(std::string_view resource_name, std::pmr::memory_resource* upstream) {
  if (upstream == nullptr) [[unlikely]] {
    throw_bad_option(resource_name, "upstream", "must not be null");
  }
}

}  // namespace detail
}  // namespace strata
