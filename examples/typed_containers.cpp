// SPDX-License-Identifier: MIT
// The typed path: std::vector, std::list and std::unordered_map on
// strata::allocator<T, R>, whose allocate and deallocate inline the
// resource's fast path (no virtual call), next to a pmr container on the same
// resource. Exits non-zero if a claim below does not hold.

#include <cstdint>
#include <cstdio>
#include <functional>
#include <list>
#include <memory_resource>
#include <unordered_map>
#include <vector>

#include <strata/allocator.hpp>
#include <strata/chunk_provider.hpp>
#include <strata/monotonic_arena.hpp>
#include <strata/page_resource.hpp>
#include <strata/slab.hpp>

namespace {

bool check(bool ok, const char* claim) {
  std::printf("%s: %s\n", ok ? "ok  " : "FAIL", claim);
  return ok;
}

}  // namespace

int main() {
  strata::chunk_provider chunks{strata::system_pages()};
  bool ok = true;

  // Node containers on a slab: every list and map node is one slot.
  strata::slab nodes{{.slot_size = 64, .capacity = 4096}, &chunks};
  {
    std::list<int, strata::allocator<int, strata::slab>> queue{&nodes};
    std::pmr::list<int> same_slab{&nodes};  // the same resource through pmr
    for (int i = 0; i < 1000; ++i) {
      queue.push_back(i);
      same_slab.push_front(i);
    }
    ok &= check(nodes.stats().allocations == 2000, "typed and pmr nodes come from one slab");
  }
  ok &= check(nodes.stats().bytes_in_use == 0, "every node went back to the slab");

  // Per-request scratch on a monotonic_arena: a vector and a hash map.
  strata::monotonic_arena scratch{&chunks};
  std::uint64_t upstream_after_first = 0;
  for (int request = 0; request < 3; ++request) {
    {
      using entry = std::pair<const int, int>;
      std::vector<int, strata::allocator<int, strata::monotonic_arena>> values{&scratch};
      std::unordered_map<int, int, std::hash<int>, std::equal_to<>,
                         strata::allocator<entry, strata::monotonic_arena>>
          counts{&scratch};
      for (int i = 0; i < 5000; ++i) {
        values.push_back(i % 97);
        ++counts[i % 97];
      }
      ok &= check(counts.size() == 97 && counts.at(3) == 52, "the hash map counted every value");
    }
    scratch.reset();  // after the containers are gone: the chunks stay for the next request
    if (request == 0) upstream_after_first = scratch.stats().upstream_allocations;
  }
  ok &= check(scratch.stats().upstream_allocations == upstream_after_first,
              "requests after the first reuse the arena's chunks");
  return ok ? 0 : 1;
}
