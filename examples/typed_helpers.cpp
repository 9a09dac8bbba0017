// SPDX-License-Identifier: MIT
// The typed helpers (issue 17), as a server uses them:
//   - object_pool<T>: connection objects on their own thread-safe slab;
//   - allocate_unique<T>: one request's state on that request's arena, owned
//     by a unique_ptr whose deleter knows the resource;
//   - node_layout_of<Container>(): a slab sized for a pmr map's nodes on
//     this standard library, instead of a guessed number;
//   - thread_resource_scope: code that allocates from this_thread_resource()
//     uses the request's arena while the scope lasts.
// Each claim is checked; the program exits non-zero when one does not hold.

#include <cstdio>
#include <map>
#include <memory_resource>
#include <string>
#include <vector>

#include <strata/allocate_unique.hpp>
#include <strata/chunk_provider.hpp>
#include <strata/extendable_slab.hpp>
#include <strata/literals.hpp>
#include <strata/monotonic_arena.hpp>
#include <strata/node_size.hpp>
#include <strata/object_pool.hpp>
#include <strata/page_resource.hpp>
#include <strata/slab.hpp>
#include <strata/thread_resource.hpp>

namespace {

bool check(bool ok, const char* claim) {
  std::printf("%s: %s\n", ok ? "ok  " : "FAIL", claim);
  return ok;
}

struct connection {
  int fd;
  long bytes_read = 0;
  explicit connection(int f) : fd(f) {}
};

struct request_state {
  int id;
  std::pmr::string path;
  request_state(int i, const char* p, std::pmr::memory_resource* r) : id(i), path(p, r) {}
};

struct order {
  long quantity;
  double price;
  int flags;
};

// Library code that knows nothing of strata: it allocates from the thread's
// current resource.
std::pmr::vector<int> parse_ids(int n) {
  std::pmr::vector<int> ids{strata::this_thread_resource()};
  for (int i = 0; i < n; ++i) ids.push_back(i);
  return ids;
}

}  // namespace

int main() {
  using namespace strata::literals;
  bool ok = true;
  strata::chunk_provider chunks{{.max_chunk_size = 1_MiB}, strata::system_pages()};

  // Connections: created and destroyed by type, slots fitted to connection.
  strata::object_pool<connection> connections{&chunks};
  {
    std::vector<connection*> open;
    for (int fd = 3; fd < 103; ++fd) open.push_back(connections.create(fd));
    ok &= check(open[41]->fd == 44, "create() constructs each object with its arguments");
    ok &= check(connections.resource().stats().allocations == 100u, "one slab slot per connection");
    for (connection* c : open) connections.destroy(c);
    auto scoped = connections.make_unique(200);
    ok &= check(
        scoped->fd == 200 &&
            connections.resource().stats().allocations - connections.resource().stats().deallocations == 1u,
        "make_unique() gives a unique_ptr that destroys into the pool");
  }
  ok &= check(connections.resource().stats().bytes_in_use == 0u, "every connection went back");

  // One request: its state and its temporaries on the request's arena.
  strata::monotonic_arena scratch{&chunks};
  {
    auto state = strata::allocate_unique<request_state>(&scratch, 7, "/orders/42", &scratch);
    ok &= check(state.get_deleter().resource() == &scratch, "the deleter knows the arena it came from");
    ok &= check(scratch.stats().allocations >= 1u, "the state is on the arena");
    strata::thread_resource_scope on_scratch{&scratch};
    const auto before = scratch.stats().allocations;
    const std::pmr::vector<int> ids = parse_ids(1000);
    ok &= check(scratch.stats().allocations > before && ids.get_allocator().resource() == &scratch,
                "code inside the scope allocates from the request's arena");
  }
  ok &= check(strata::this_thread_resource() == std::pmr::get_default_resource(),
              "outside the scope, this_thread_resource() is the default resource again");
  scratch.reset();

  // A slab sized for this library's map nodes, measured rather than guessed.
  using order_book = std::pmr::map<long, order>;
  const strata::node_layout node = strata::node_layout_of<order_book>();
  std::printf("std::pmr::map<long, order> node: %zu bytes, aligned to %zu\n", node.size, node.alignment);
  strata::slab nodes{{.slot_size = node.size, .slot_alignment = node.alignment, .capacity = 1000}, &chunks};
  {
    order_book book{&nodes};
    for (long id = 0; id < 1000; ++id) book.emplace(id, order{id, 1.5, 0});
    ok &= check(nodes.details().forwarded_too_large == 0u, "every map node fits one slot");
    ok &= check(nodes.stats().allocations == 1000u, "1000 nodes, 1000 slots, no more");
  }
  return ok ? 0 : 1;
}
