// SPDX-License-Identifier: MIT
// Per-request scratch memory in a server loop.
//
// Each request builds short-lived pmr containers and throws them all away at
// the end. A monotonic_arena makes that nearly free: allocation is a pointer
// bump, and the whole request is released in one call. Chunks come from a
// chunk_provider shared by the whole process, which caches them, so once the
// loop is warm neither the arena nor the provider calls the OS again.
//
// Chain: monotonic_arena -> chunk_provider -> system_pages() (mmap)

#include <cstdio>
#include <memory_resource>
#include <string>
#include <vector>

#include <strata/chunk_provider.hpp>
#include <strata/literals.hpp>
#include <strata/monotonic_arena.hpp>
#include <strata/page_resource.hpp>

namespace {

bool all_ok = true;
void check(bool condition, const char* claim) {
  std::printf("%s: %s\n", condition ? "ok  " : "FAIL", claim);
  all_ok = all_ok && condition;
}

// The work of one request: tokenize-like churn on the resource it is given.
std::size_t handle_request(int id, std::pmr::memory_resource* scratch) {
  std::pmr::vector<std::pmr::string> words{scratch};
  const int count = 400 + (id % 7) * 25;  // requests differ a little in size
  for (int i = 0; i < count; ++i) words.emplace_back(static_cast<std::size_t>(16 + i % 48), 'a' + i % 26);
  std::size_t total = 0;
  for (const auto& w : words) total += w.size();
  return total;  // words (and every string) die here, before the arena is reset
}

}  // namespace

int main() {
  using namespace strata::literals;  // 1_MiB: a std::size_t, checked at compile time
  // One provider for the process (thread-safe): 1 MiB chunks at most, and a
  // budget so a runaway request fails with allocation_failure, not the OOM killer.
  strata::chunk_provider chunks{{.max_chunk_size = 1_MiB, .byte_budget = 64_MiB}, strata::system_pages()};

  // Style 1: one long-lived arena per worker thread, reset after each request.
  // reset() keeps the largest chunk (retention keep_largest, the default) and
  // remembers how much the request needed, so the next one fits in one chunk.
  strata::monotonic_arena scratch{&chunks};
  constexpr int warm_up = 10;
  constexpr int requests = 200;
  strata::resource_stats arena_warm{}, chunks_warm{};
  for (int id = 0; id < requests; ++id) {
    handle_request(id, &scratch);
    scratch.reset();  // every block freed at once; no destructor walks the memory
    if (id + 1 == warm_up) {
      arena_warm = scratch.stats();
      chunks_warm = chunks.stats();
    }
  }
  const strata::resource_stats arena_end = scratch.stats();
  const strata::resource_stats chunks_end = chunks.stats();
  std::printf("arena:  %llu allocations, %llu chunks taken from the provider, footprint %zu bytes\n",
              static_cast<unsigned long long>(arena_end.allocations),
              static_cast<unsigned long long>(arena_end.upstream_allocations),
              scratch.details().largest_request_footprint);
  check(arena_end.upstream_allocations == arena_warm.upstream_allocations,
        "reset arena: no chunk requests after warm-up");
  check(chunks_end.upstream_allocations == chunks_warm.upstream_allocations,
        "reset arena: the provider made no mmap calls after warm-up");
  check(arena_end.bytes_in_use == 0, "reset arena: nothing in use between requests");
  check(scratch.details().chunks == 1, "reset arena: one chunk kept for the next request");

  // Style 2: a fresh arena per request (simplest to reason about: nothing
  // survives the scope). The arena asks the provider for its preferred size
  // before taking a chunk, and the provider answers the class it caches (its
  // floor, raised by the largest chunks asked so far), so each request takes
  // exactly one cached chunk and gives it back at scope end.
  const strata::resource_stats before = chunks.stats();
  for (int id = 0; id < requests; ++id) {
    strata::monotonic_arena per_request{&chunks};
    handle_request(id, &per_request);
  }  // the arena's destructor returns its chunk to the provider's cache
  const strata::resource_stats after = chunks.stats();
  std::printf("provider: %llu chunk requests served, %llu mmap calls in style 2\n",
              static_cast<unsigned long long>(after.allocations - before.allocations),
              static_cast<unsigned long long>(after.upstream_allocations - before.upstream_allocations));
  check(after.allocations - before.allocations == requests, "new arena per request: one chunk per request");
  // One mmap at most: the first arena's chunk (style 1's arena still holds
  // the one cached chunk of that class); every later request reuses it.
  check(after.upstream_allocations - before.upstream_allocations <= 1,
        "new arena per request: served from the provider's cache after the first");
  check(after.bytes_in_use == scratch.stats().bytes_reserved,
        "only style 1's kept chunk is still handed out");
  return all_ok ? 0 : 1;
}
