// SPDX-License-Identifier: MIT
// Composing resources (issue 17): a slab for small nodes with a fallback
// when it is full, a per-tenant byte quota for everything else, routed by a
// segregator, with the sizes written as literals.
//
//   route (segregator: <= 64 bytes aligned <= 16 go small)
//   ├─ small: nodes_or_heap (fallback_resource)
//   │         ├─ primary:  nodes (slab of 256 slots, throws when full)
//   │         └─ fallback: new_delete_resource()
//   └─ large: tenant (byte_limit_resource, 64 KiB)
//             └─ chunks (chunk_provider, 256 MiB budget) ─ system pages
//
// Each claim is checked; the program exits non-zero when one does not hold.

#include <cstdio>
#include <map>
#include <memory_resource>
#include <new>
#include <vector>

#include <fmt/format.h>

#include <strata/byte_limit_resource.hpp>
#include <strata/chunk_provider.hpp>
#include <strata/fallback_resource.hpp>
#include <strata/format.hpp>
#include <strata/literals.hpp>
#include <strata/page_resource.hpp>
#include <strata/segregator.hpp>
#include <strata/slab.hpp>

namespace {

bool all_ok = true;
void check(bool condition, const char* claim) {
  fmt::print("{}: {}\n", condition ? "ok  " : "FAIL", claim);
  all_ok = all_ok && condition;
}

}  // namespace

int main() {
  using namespace strata::literals;

  // `256 << 20` is an int; `4 << 30` overflows it and is 0 in practice. The
  // literals are std::size_t and checked at compile time.
  static_assert(4_GiB == 4294967296u);
  strata::chunk_provider chunks{{.max_chunk_size = 1_MiB, .byte_budget = 256_MiB}, strata::system_pages()};

  strata::slab nodes{
      {.slot_size = 64, .capacity = 256, .on_exhaustion = strata::slab::exhaustion::throw_bad_alloc},
      &chunks};
  strata::fallback_resource nodes_or_heap{&nodes, std::pmr::new_delete_resource()};
  strata::byte_limit_resource tenant{{.max_bytes = 64_KiB}, &chunks};
  strata::segregator route{{.threshold = 64, .max_small_alignment = 16}, &nodes_or_heap, &tenant};

  {
    // 1000 map nodes: the first 256 fill the slab, the rest take the fallback.
    std::pmr::map<int, int> index{&route};
    for (int i = 0; i < 1000; ++i) index.emplace(i, i);
    const auto d = nodes_or_heap.details();
    check(d.primary_allocations == 256, "the slab served the first 256 nodes");
    check(d.fallback_allocations == 1000 - 256, "the heap served the nodes the slab had no room for");
    check(tenant.stats().allocations == 0, "no node went to the tenant's quota");

    // A buffer that grows past the quota: the growth that would cross 64 KiB
    // throws, and what was there is intact and still usable.
    std::pmr::vector<char> buffer{&route};
    bool refused = false;
    try {
      for (int i = 0; i < 1'000'000; ++i) buffer.push_back('x');
    } catch (const std::bad_alloc& e) {
      refused = true;
      fmt::print("refused as expected: {}\n", e.what());
    }
    check(refused, "the tenant's quota refused a buffer beyond 64 KiB");
    check(tenant.details().limit_failures == 1, "the quota, not the chunk provider, refused it");
    check(buffer.size() <= 64_KiB && buffer.back() == 'x', "the buffer kept its contents");

    fmt::print("{}", strata::format_chain(&route, {.details = true}));
  }

  // Every block went back where it came from: the slab's and the quota's
  // counters balance, and the fallback holds no block.
  check(nodes.stats().bytes_in_use == 0 && tenant.stats().bytes_in_use == 0, "everything was returned");
  check(nodes_or_heap.details().fallback_live_blocks == 0, "no fallback block is live");
  check(route.stats().allocations == route.stats().deallocations, "the router's counts balance");
  return all_ok ? 0 : 1;
}
