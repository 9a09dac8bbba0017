// SPDX-License-Identifier: MIT
#include <strata/testing.hpp>

// Concerns:
// 1. The default misuse handler never aborts unless asked, in every build
//    (issue 14: it used to abort without NDEBUG): with the print action it
//    writes one line per report to stderr and returns.
// 2. Its actions: quiet writes nothing; abort writes the line and aborts;
//    STRATA_MISUSE's values map to the actions, anything else to the fallback;
//    print prints the first 32 reports, then powers of two only.
// 3. A hook carries its context; set_misuse_hook returns the previous hook;
//    set_misuse_handler(fn) still works and reports nullptr when the previous
//    handler was a hook.
// 4. misuse_recorder records with its own context, nests (the inner one
//    records, the outer resumes), restores the handler that was installed
//    before it, and takes reports from several threads at once.
// 5. default_resource_guard sets the default resource for one scope and
//    restores the previous one, even when it was not new_delete.
// 6. stats_monitor: in use same/up/down, max up/same, total up/same, each
//    against its snapshot; reset() takes a new one.
// 7. exception_safety_loop runs the body with limits 0, 1, 2, ... until a run
//    completes, finds a leak on a throwing path (and at which limit), passes
//    other exceptions through, and leaves the limit disarmed.

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <memory_resource>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#define BOOST_TEST_MODULE testing
#include <boost/test/unit_test.hpp>

#include "fixtures.hpp"

namespace {

const strata::misuse_report sample{"slab", strata::misuse_kind::double_free, nullptr, 64, 8};

// Returns what f wrote to stderr (through a temporary file, as fprintf does).
template <class F>
std::string captured_stderr(F&& f) {
  std::fflush(stderr);
  std::FILE* file = std::tmpfile();
  BOOST_REQUIRE(file != nullptr);
  const int saved = ::dup(2);
  ::dup2(::fileno(file), 2);
  f();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::string text;
  std::rewind(file);
  for (int c = std::fgetc(file); c != EOF; c = std::fgetc(file)) text += static_cast<char>(c);
  std::fclose(file);
  return text;
}

// Restores the default handler's action at scope end.
struct action_guard {
  strata::misuse_action saved = strata::default_misuse_action();
  ~action_guard() { strata::set_default_misuse_action(saved); }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(testing)

BOOST_AUTO_TEST_CASE(default_handler_prints_one_line_and_returns) {
  action_guard restore;
  strata::set_default_misuse_action(strata::misuse_action::print);
  // Fails on the old handler, which aborted here in every build without NDEBUG.
  const std::string text = captured_stderr([] { strata::report_misuse(sample); });
  BOOST_TEST(text.find("strata::slab: misuse detected: double_free") == 0u, text);
  BOOST_TEST(std::count(text.begin(), text.end(), '\n') == 1);
}

BOOST_AUTO_TEST_CASE(default_handler_quiet_writes_nothing) {
  action_guard restore;
  strata::set_default_misuse_action(strata::misuse_action::quiet);
  BOOST_TEST(captured_stderr([] { strata::report_misuse(sample); }).empty());
}

BOOST_AUTO_TEST_CASE(default_handler_abort_aborts) {
  std::fflush(nullptr);
  const pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    ::close(2);                     // keep the expected line out of the test log
    std::signal(SIGABRT, SIG_DFL);  // Boost.Test's handler would resume the suite in the child
    strata::set_default_misuse_action(strata::misuse_action::abort);
    strata::report_misuse(sample);
    ::_exit(0);  // reached only if abort did not abort
  }
  int status = 0;
  BOOST_REQUIRE(::waitpid(child, &status, 0) == child);
  BOOST_TEST(WIFSIGNALED(status));
  BOOST_TEST((WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT));
}

BOOST_AUTO_TEST_CASE(environment_names_the_action) {
  using strata::misuse_action;
  using strata::detail::parse_misuse_action;
  BOOST_TEST((parse_misuse_action("abort", misuse_action::print) == misuse_action::abort));
  BOOST_TEST((parse_misuse_action("quiet", misuse_action::print) == misuse_action::quiet));
  BOOST_TEST((parse_misuse_action("print", misuse_action::quiet) == misuse_action::print));
  BOOST_TEST((parse_misuse_action(nullptr, misuse_action::quiet) == misuse_action::quiet));
  BOOST_TEST((parse_misuse_action("ABORT", misuse_action::print) == misuse_action::print));
  BOOST_TEST((parse_misuse_action("", misuse_action::quiet) == misuse_action::quiet));
}

BOOST_AUTO_TEST_CASE(print_action_thins_out_after_32_reports) {
  std::vector<std::uint64_t> printed;
  for (std::uint64_t n = 1; n <= 1100; ++n) {
    if (strata::detail::misuse_report_is_printed(n)) printed.push_back(n);
  }
  BOOST_TEST(printed.size() == 32u + 5u);  // 1..32, then 64, 128, 256, 512, 1024
  BOOST_TEST(printed[31] == 32u);
  BOOST_TEST(printed[32] == 64u);
  BOOST_TEST(printed.back() == 1024u);
}

namespace {
void count_into(const strata::misuse_report&, void* context) noexcept {
  ++*static_cast<int*>(context);
}
int plain_calls = 0;
void plain_handler(const strata::misuse_report&) noexcept {
  ++plain_calls;
}
}  // namespace

BOOST_AUTO_TEST_CASE(hook_carries_its_context_and_is_restorable) {
  int first = 0;
  int second = 0;
  const strata::misuse_hook original = strata::set_misuse_hook({&count_into, &first});
  strata::report_misuse(sample);
  const strata::misuse_hook previous = strata::set_misuse_hook({&count_into, &second});
  BOOST_TEST((previous.callback == &count_into && previous.context == &first));
  strata::report_misuse(sample);
  strata::report_misuse(sample);
  BOOST_TEST(first == 1);
  BOOST_TEST(second == 2);
  // The plain form still works, and reports that a hook was installed before.
  BOOST_TEST(strata::set_misuse_handler(&plain_handler) == nullptr);
  strata::report_misuse(sample);
  BOOST_TEST(plain_calls == 1);
  BOOST_TEST(second == 2);
  BOOST_TEST(strata::set_misuse_hook(original).callback == nullptr);  // a plain handler is no hook
}

BOOST_AUTO_TEST_CASE(recorder_records_nests_and_restores) {
  int outside = 0;
  const strata::misuse_hook original = strata::set_misuse_hook({&count_into, &outside});
  {
    strata::testing::misuse_recorder outer;
    strata::report_misuse(sample);
    {
      strata::testing::misuse_recorder inner;
      strata::report_misuse({"arena", strata::misuse_kind::size_mismatch, nullptr, 8, 8});
      BOOST_TEST(inner.count() == 1u);
      BOOST_TEST(inner.count(strata::misuse_kind::size_mismatch) == 1u);
      BOOST_TEST(inner.taken()[0].resource_name == "arena");
    }
    strata::report_misuse(sample);
    BOOST_TEST(outer.count() == 2u);
    BOOST_TEST(outer.count(strata::misuse_kind::double_free) == 2u);
    BOOST_TEST(outer.count(strata::misuse_kind::size_mismatch) == 0u);
    outer.clear();
    BOOST_TEST(outer.count() == 0u);
  }
  strata::report_misuse(sample);
  BOOST_TEST(outside == 1);  // the handler from before the recorders is back
  strata::set_misuse_hook(original);
}

BOOST_AUTO_TEST_CASE(recorder_takes_reports_from_several_threads, *boost::unit_test::label("threaded")) {
  strata::testing::misuse_recorder recorder;
  constexpr int per_thread = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([] {
      for (int i = 0; i < per_thread; ++i) strata::report_misuse(sample);
    });
  }
  for (std::size_t seen = 0; seen < 4u * per_thread;) seen = recorder.count();  // observers run meanwhile
  for (std::thread& t : threads) t.join();
  BOOST_TEST(recorder.count() == 4u * per_thread);
}

BOOST_AUTO_TEST_CASE(default_resource_guard_restores_the_previous_default) {
  std::pmr::memory_resource* const before = std::pmr::get_default_resource();
  std::pmr::monotonic_buffer_resource outer_default;
  {
    strata::testing::default_resource_guard outer{&outer_default};
    BOOST_TEST(std::pmr::get_default_resource() == &outer_default);
    {
      strata::testing::default_resource_guard inner;  // the null resource
      BOOST_TEST(inner.previous() == &outer_default);
      BOOST_TEST(std::pmr::get_default_resource() == std::pmr::null_memory_resource());
      BOOST_CHECK_THROW((void)std::pmr::get_default_resource()->allocate(8), std::bad_alloc);
    }
    BOOST_TEST(std::pmr::get_default_resource() == &outer_default);
  }
  BOOST_TEST(std::pmr::get_default_resource() == before);
}

BOOST_AUTO_TEST_CASE(stats_monitor_compares_with_its_snapshot) {
  strata::tracking_resource tracked{std::pmr::new_delete_resource()};
  void* a = tracked.allocate(100);
  strata::testing::stats_monitor monitor{tracked};
  BOOST_TEST(monitor.is_in_use_same());
  BOOST_TEST(!monitor.is_in_use_up());
  BOOST_TEST(!monitor.is_in_use_down());
  BOOST_TEST(monitor.is_max_same());
  BOOST_TEST(monitor.is_total_same());
  BOOST_TEST(monitor.snapshot().bytes_in_use == 100u);

  void* b = tracked.allocate(50);
  BOOST_TEST(monitor.is_in_use_up());
  BOOST_TEST(monitor.is_max_up());
  BOOST_TEST(monitor.is_total_up());
  tracked.deallocate(b, 50);
  BOOST_TEST(monitor.is_in_use_same());
  BOOST_TEST(monitor.is_max_up());  // the peak stays raised
  tracked.deallocate(a, 100);
  BOOST_TEST(monitor.is_in_use_down());
  BOOST_TEST(!monitor.is_in_use_same());

  monitor.reset();
  BOOST_TEST(monitor.is_in_use_same());
  BOOST_TEST(monitor.is_max_same());
  BOOST_TEST(monitor.is_total_same());
}

BOOST_AUTO_TEST_CASE(exception_safety_loop_runs_every_limit_until_completion) {
  strata::tracking_resource tracked{std::pmr::new_delete_resource()};
  std::vector<std::uint64_t> allocations_per_run;
  const auto result = strata::testing::exception_safety_loop(tracked, [&] {
    allocations_per_run.push_back(0);
    std::pmr::vector<std::pmr::string> v{&tracked};
    for (int i = 0; i < 3; ++i) {
      v.emplace_back(100, 'x');  // a long string: one allocation each, plus the vector's growth
      ++allocations_per_run.back();
    }
  });
  BOOST_TEST(result.ok());
  BOOST_TEST(result.leaked_blocks == 0u);
  // 3 strings and 3 vector growths (1, 2, 4): 6 allocations, so limits 0..6.
  BOOST_TEST(result.runs == 7u);
  BOOST_TEST(allocations_per_run.size() == 7u);
  BOOST_TEST(allocations_per_run.back() == 3u);
  BOOST_TEST(tracked.live_blocks() == 0u);
  void* p = tracked.allocate(8);  // disarmed: allocation goes on
  tracked.deallocate(p, 8);
}

BOOST_AUTO_TEST_CASE(exception_safety_loop_finds_a_leak_on_a_throwing_path) {
  strata::tracking_resource tracked{std::pmr::new_delete_resource()};
  std::vector<void*> leaked;
  const auto result = strata::testing::exception_safety_loop(tracked, [&] {
    void* first = tracked.allocate(16);
    void* second = tracked.allocate(32);  // bug: a throw here leaks first
    tracked.deallocate(second, 32);
    tracked.deallocate(first, 16);
  });
  BOOST_TEST(!result.ok());
  BOOST_TEST(result.runs == 3u);
  BOOST_TEST(result.leaking_runs == 1u);
  BOOST_TEST(result.first_leak_limit == 1u);
  BOOST_TEST(result.leaked_blocks == 1u);
  tracked.release();
}

BOOST_AUTO_TEST_CASE(exception_safety_loop_passes_other_exceptions_through) {
  strata::tracking_resource tracked{std::pmr::new_delete_resource()};
  int runs = 0;
  BOOST_CHECK_THROW(strata::testing::exception_safety_loop(tracked,
                                                           [&] {
                                                             if (++runs == 2) throw std::runtime_error("bug");
                                                             tracked.deallocate(tracked.allocate(8), 8);
                                                           }),
                    std::runtime_error);
  BOOST_TEST(runs == 2);
  void* p = tracked.allocate(8);  // the limit was disarmed on the way out
  tracked.deallocate(p, 8);
  BOOST_TEST(tracked.details().limit_failures == 1u);
}

BOOST_AUTO_TEST_CASE(exception_safety_loop_continues_when_the_body_swallows_the_failure) {
  strata::tracking_resource tracked{std::pmr::new_delete_resource()};
  const auto result = strata::testing::exception_safety_loop(tracked, [&] {
    for (int i = 0; i < 2; ++i) {
      try {
        tracked.deallocate(tracked.allocate(8), 8);
      } catch (const std::bad_alloc&) {
        // handled: the body goes on, but the run did not complete cleanly
      }
    }
  });
  BOOST_TEST(result.runs == 3u);
  BOOST_TEST(result.ok());
}

BOOST_AUTO_TEST_SUITE_END()
