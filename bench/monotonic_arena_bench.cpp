// SPDX-License-Identifier: MIT
// monotonic_arena on a chunk_provider (no caller buffer) against the bare
// bump floor and the peers, on two per-request workloads:
//
//   request:    2,000 allocations of 16-256 B (each touched), then reset
//   word_count: pmr containers on real text (tokenize, count, rank), then reset
//
// Counters: upstream calls and minor page faults per request in the warm
// loop (getrusage), so "zero upstream calls in steady state" is measured.
// Every block of the first request is written and checked for alignment,
// and the footprint at its end goes to the memory column of the report.
// Peers include foonathan-memory's memory_stack (unwound per request).
//
//   build-release/bench/monotonic_arena_bench --benchmark_repetitions=5
//       --benchmark_enable_random_interleaving=true --benchmark_format=json > out.json
//   python3 bench/report.py --out /tmp/report.md out.json

#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <strata/allocator.hpp>
#include <strata/chunk_provider.hpp>
#include <strata/monotonic_arena.hpp>
#include <strata/page_resource.hpp>

#include "support/foonathan.hpp"
#include "support/peers.hpp"
#include "word_count.hpp"
#if STRATA_BENCH_FOONATHAN
#include <foonathan/memory/std_allocator.hpp>
#endif

namespace {

using strata::bench::opaque;

constexpr std::size_t request_allocations = 2000;

const std::vector<std::size_t>& request_sizes() {
  static const std::vector<std::size_t> sizes = [] {
    std::mt19937 rng(7);
    std::vector<std::size_t> v(request_allocations);
    for (auto& n : v) n = 16 + rng() % 241;
    return v;
  }();
  return sizes;
}

// The text: a license file from the Debian base system if present (real
// prose), else the demo's generated text; split into ~16 KiB requests.
const std::vector<std::string>& documents() {
  static const std::vector<std::string> docs = [] {
    std::ifstream in("/usr/share/common-licenses/GPL-3");
    std::stringstream whole;
    whole << in.rdbuf();
    const std::string text = whole.str();
    if (text.size() < 16 * 1024) return strata::examples::generated_documents(16);
    std::vector<std::string> split;
    for (std::size_t at = 0; at < text.size(); at += 16 * 1024) split.push_back(text.substr(at, 16 * 1024));
    return split;
  }();
  return docs;
}

long minor_faults() {
  rusage usage{};
  ::getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_minflt;
}

// One request: allocate every size (16-byte aligned), touch, keep the pointers.
template <class Allocate>
void fill_with(Allocate allocate, std::vector<void*>& blocks) {
  const auto& sizes = request_sizes();
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    auto* p = static_cast<char*>(allocate(sizes[i]));
    p[0] = static_cast<char>(i);
    blocks[i] = p;
  }
  benchmark::DoNotOptimize(blocks.data());
}

void fill(std::pmr::memory_resource* r, std::vector<void*>& blocks) {
  fill_with([r](std::size_t n) { return r->allocate(n, 16); }, blocks);
}

// The typed rows allocate in 16-byte cells, the bump granule of every
// contender here, so each asks for the same bytes at the same alignment.
struct alignas(16) cell {
  std::byte bytes[16];
};
constexpr std::size_t cells(std::size_t bytes) {
  return (bytes + sizeof(cell) - 1) / sizeof(cell);
}

// The floor called through its own (final) type: devirtualized and inlined.
void fill(strata::bench::bare_bump* floor, std::vector<void*>& blocks) {
  fill_with([floor](std::size_t n) { return floor->allocate(n, 16); }, blocks);
}

template <class TypedAllocator>
requires requires(TypedAllocator a) {
  a.allocate(1);
}
void fill(TypedAllocator typed, std::vector<void*>& blocks) {
  fill_with([&typed](std::size_t n) { return static_cast<void*>(typed.allocate(cells(n))); }, blocks);
}

// A strata link whose upstream calls per request are reported as a counter.
struct counted_link {
  const char* counter;
  const strata::resource* link;
};

// Runs requests on r and calls end_request(r) after each; checks every
// block of the first request (untimed) and reads the footprint at its end,
// and counts minor faults and the links' upstream calls in the warm loop.
template <class Source, class EndRequest>
void run_requests(benchmark::State& state, Source r, EndRequest end_request,
                  const strata::bench::meter& memory, std::vector<counted_link> counted = {}) {
  std::vector<void*> blocks(request_allocations);
  strata::bench::validation checks;
  fill(r, blocks);  // validation; then two more requests to reach steady state
  const auto& sizes = request_sizes();
  std::size_t requested = 0;
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    checks.block(blocks[i], sizes[i], 16);
    requested += sizes[i];
  }
  memory.sample(checks, requested, blocks);
  end_request(r, blocks);
  for (int warm = 0; warm < 2; ++warm) {
    fill(r, blocks);
    end_request(r, blocks);
  }
  std::vector<std::uint64_t> calls_before;
  for (const counted_link& c : counted) calls_before.push_back(c.link->stats().upstream_allocations);
  const long faults_before = minor_faults();
  for (auto _ : state) {
    fill(r, blocks);
    end_request(r, blocks);
  }
  const double requests = static_cast<double>(state.iterations());
  state.counters["minflt/req"] = static_cast<double>(minor_faults() - faults_before) / requests;
  for (std::size_t i = 0; i < counted.size(); ++i) {
    state.counters[counted[i].counter] =
        static_cast<double>(counted[i].link->stats().upstream_allocations - calls_before[i]) / requests;
  }
  checks.finish(state);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(request_allocations));
}

template <class EndRequest>
void run_word_count(benchmark::State& state, std::pmr::memory_resource* r, EndRequest end_request) {
  const auto& docs = documents();
  std::size_t next = 0;
  std::uint64_t sum = 0;
  for (auto _ : state) {
    sum += strata::examples::process(docs[next], r);
    next = next + 1 == docs.size() ? 0 : next + 1;
    end_request(r);
  }
  benchmark::DoNotOptimize(sum);
}

void register_all() {
  const auto free_all = [](std::pmr::memory_resource* r, std::vector<void*>& blocks) {
    const auto& sizes = request_sizes();
    for (std::size_t i = 0; i < blocks.size(); ++i) r->deallocate(blocks[i], sizes[i], 16);
  };
  namespace sb = strata::bench;
  sb::add("per_request/2000x16-256B/floor", [](benchmark::State& s) {
    sb::bare_bump floor;
    run_requests(s, opaque(&floor), [&](auto*, auto&) { floor.reset(); },
                 {"carved", [&floor] { return floor.carved(); }});
  });
  sb::add("per_request/2000x16-256B/strata", [](benchmark::State& s) {
    strata::chunk_provider chunks{strata::system_pages()};
    strata::monotonic_arena arena{&chunks};
    run_requests(s, opaque(&arena), [&](auto*, auto&) { arena.reset(); },
                 {"stats", [&arena] { return arena.stats().bytes_reserved; }},
                 {{"arena_upstream/req", &arena}, {"mmap/req", &chunks}});
  });
  // The typed path (issue 15): strata::allocator inlines the arena's bump into
  // the loop, with no virtual call; the target is 1.2x floor_inlined.
  sb::add("per_request/2000x16-256B/floor_inlined", [](benchmark::State& s) {
    sb::bare_bump floor;
    run_requests(s, &floor, [&](auto*, auto&) { floor.reset(); },
                 {"carved", [&floor] { return floor.carved(); }});
  });
  sb::add("per_request/2000x16-256B/strata_typed", [](benchmark::State& s) {
    strata::chunk_provider chunks{strata::system_pages()};
    strata::monotonic_arena arena{&chunks};
    run_requests(s, strata::allocator<cell, strata::monotonic_arena>{&arena},
                 [&](auto, auto&) { arena.reset(); },
                 {"stats", [&arena] { return arena.stats().bytes_reserved; }},
                 {{"arena_upstream/req", &arena}, {"mmap/req", &chunks}});
  });
  // The README's stacking example: a new arena per request on a shared
  // provider, construction and destruction inside the timed loop. Blocks are
  // checked like the others' in one untimed request first.
  sb::add("per_request/2000x16-256B/strata_fresh_arena", [](benchmark::State& s) {
    strata::chunk_provider chunks{strata::system_pages()};
    std::vector<void*> blocks(request_allocations);
    strata::bench::validation checks;
    for (int warm = 0; warm < 3; ++warm) {
      strata::monotonic_arena arena{&chunks};
      fill(opaque(&arena), blocks);
      for (std::size_t i = 0; i < blocks.size(); ++i) checks.block(blocks[i], request_sizes()[i], 16);
    }
    const std::uint64_t calls_before = chunks.stats().upstream_allocations;
    for (auto _ : s) {
      strata::monotonic_arena arena{&chunks};
      fill(opaque(&arena), blocks);
    }
    s.counters["mmap/req"] = static_cast<double>(chunks.stats().upstream_allocations - calls_before) /
                             static_cast<double>(s.iterations());
    checks.finish(s);
    s.SetItemsProcessed(s.iterations() * static_cast<std::int64_t>(request_allocations));
  });
  sb::add("per_request/2000x16-256B/std_mono_512KiB_buffer", [](benchmark::State& s) {
    std::vector<std::byte> buffer(512 * 1024);
    sb::counting_upstream upstream;
    std::pmr::monotonic_buffer_resource mono{buffer.data(), buffer.size(), &upstream};
    run_requests(s, opaque(&mono), [&](auto*, auto&) { mono.release(); },
                 {"buffer + upstream", [&] { return buffer.size() + upstream.peak(); }});
  });
  sb::add("per_request/2000x16-256B/std_mono_no_buffer", [](benchmark::State& s) {
    sb::counting_upstream upstream;
    std::pmr::monotonic_buffer_resource mono{&upstream};
    run_requests(
        s, opaque(&mono), [&](auto*, auto&) { mono.release(); }, upstream.peak_meter());
  });
  if (sb::mi_heap_resource::available() && sb::mi_direct().malloc != nullptr) {
    sb::add("per_request/2000x16-256B/mi_heap", [](benchmark::State& s) {
      sb::mi_heap_resource heap;
      run_requests(
          s, opaque(&heap), [&](auto*, auto&) { heap.reset(); }, sb::mi_direct().memory());
    });
  }
#if STRATA_BENCH_FOONATHAN
  sb::add("per_request/2000x16-256B/foonathan_stack", [](benchmark::State& s) {
    sb::foonathan::stack_resource stack;
    run_requests(
        s, opaque(&stack), [&](auto*, auto&) { stack.reset(); }, sb::foonathan::heap_meter());
  });
  // foonathan's own typed allocator (std_allocator over the same stack), the
  // peer of strata_typed.
  sb::add("per_request/2000x16-256B/foonathan_stack_typed", [](benchmark::State& s) {
    sb::foonathan::stack stack{std::size_t{64} << 10};
    const auto start = stack.top();
    run_requests(
        s, ::foonathan::memory::std_allocator<cell, sb::foonathan::stack>{stack},
        [&](auto, auto&) { stack.unwind(start); }, sb::foonathan::heap_meter());
  });
#endif
  sb::add("per_request/2000x16-256B/new_delete", [=](benchmark::State& s) {
    run_requests(s, std::pmr::new_delete_resource(), free_all, sb::new_delete_meter());
  });

  strata::bench::add("word_count/16KiB_text/floor", [](benchmark::State& s) {
    strata::bench::bare_bump floor;
    run_word_count(s, opaque(&floor), [&](auto*) { floor.reset(); });
  });
  strata::bench::add("word_count/16KiB_text/strata", [](benchmark::State& s) {
    strata::chunk_provider chunks{strata::system_pages()};
    strata::monotonic_arena arena{&chunks};
    run_word_count(s, opaque(&arena), [&](auto*) { arena.reset(); });
  });
  strata::bench::add("word_count/16KiB_text/std_mono_512KiB_buffer", [](benchmark::State& s) {
    std::vector<std::byte> buffer(512 * 1024);
    std::pmr::monotonic_buffer_resource mono{buffer.data(), buffer.size()};
    run_word_count(s, opaque(&mono), [&](auto*) { mono.release(); });
  });
  strata::bench::add("word_count/16KiB_text/new_delete", [](benchmark::State& s) {
    run_word_count(s, std::pmr::new_delete_resource(), [](auto*) {});
  });
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
