// SPDX-License-Identifier: MIT
// A slab for the nodes of std::pmr::map and std::pmr::list.
//
// Node-based containers allocate one node per element, always of the same
// size, which is exactly what a slab serves in O(1) without a header. The
// catch: the node size is chosen by the standard library (tree or list links
// plus the value, padded), not by you. slab::options::for_type<value_type>
// is therefore too small, and every node would silently go to the upstream.
// The robust way is to ask the container once what it allocates.

#include <cstddef>
#include <cstdio>
#include <list>
#include <map>
#include <memory_resource>
#include <string>

#include <strata/slab.hpp>

namespace {

bool all_ok = true;
void check(bool condition, const char* claim) {
  std::printf("%s: %s\n", condition ? "ok  " : "FAIL", claim);
  all_ok = all_ok && condition;
}

// Records the largest request a container makes, and forwards it.
class probe final : public std::pmr::memory_resource {
 public:
  std::size_t bytes = 0;
  std::size_t alignment = 0;

 private:
  void* do_allocate(std::size_t n, std::size_t a) override {
    if (n > bytes) bytes = n;
    if (a > alignment) alignment = a;
    return std::pmr::new_delete_resource()->allocate(n, a);
  }
  void do_deallocate(void* p, std::size_t n, std::size_t a) override {
    std::pmr::new_delete_resource()->deallocate(p, n, a);
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override { return this == &o; }
};

// Builds a slab whose slots fit one node of Container (one element inserted).
template <class Container, class Insert>
strata::slab::options node_slab_options(std::size_t capacity, Insert insert) {
  probe p;
  {
    Container c{&p};
    insert(c);
  }
  return {.slot_size = p.bytes, .slot_alignment = p.alignment, .capacity = capacity};
}

}  // namespace

int main() {
  // Requests a slot cannot serve (too large, or the slab full) are forwarded
  // here; a general-purpose resource suits them.
  std::pmr::memory_resource* fallback = std::pmr::new_delete_resource();

  // --- std::pmr::map<int, double>: sized by probing.
  using map_type = std::pmr::map<int, double>;
  const auto map_options = node_slab_options<map_type>(10'000, [](map_type& m) { m.emplace(1, 1.0); });
  std::printf("map node: %zu bytes aligned to %zu (value_type alone is %zu)\n", map_options.slot_size,
              map_options.slot_alignment, sizeof(map_type::value_type));
  strata::slab map_nodes{map_options, fallback};
  {
    map_type squares{&map_nodes};
    for (int i = 0; i < 5'000; ++i) squares.emplace(i, double(i) * i);
    check(squares.at(70) == 4900.0, "map works on the slab");
    check(map_nodes.details().forwarded_too_large == 0, "every map node fits a slot");
    check(map_nodes.stats().upstream_allocations == 1, "only the slab's region came from upstream");
  }
  check(map_nodes.stats().bytes_in_use == 0, "all map nodes returned");

  // --- The tempting mistake: slots sized for the value, not the node.
  // Not a crash, just no benefit: watch details().forwarded_too_large.
  strata::slab too_small{strata::slab::options::for_type<map_type::value_type>(10'000), fallback};
  {
    map_type m{&too_small};
    for (int i = 0; i < 100; ++i) m.emplace(i, 0.0);
  }
  check(too_small.details().forwarded_too_large == 100, "for_type<value_type>: every node was forwarded");

  // --- std::pmr::list<std::string>: probing again, plus what happens when full.
  using list_type = std::pmr::list<std::string>;
  auto list_options = node_slab_options<list_type>(1'000, [](list_type& l) { l.emplace_back("x"); });
  strata::slab list_nodes{list_options, fallback};  // on_exhaustion: forward_upstream (default)
  {
    list_type names{&list_nodes};
    for (int i = 0; i < 1'500; ++i) names.emplace_back("name");  // 500 more than the slab holds
    const auto d = list_nodes.details();
    check(d.forwarded_too_large == 0, "every list node fits a slot");
    check(d.forwarded_on_exhaustion == 500, "the 500 nodes past capacity went to the fallback");
    check(d.free_slots == 0, "the slab is full");
  }
  check(list_nodes.stats().bytes_in_use == 0 && list_nodes.details().forwarded_live == 0,
        "every node, slot or forwarded, came back");

  // If the count is unknown in advance, or several threads share the
  // container, use strata::extendable_slab with the same slot_size: it grows
  // by segments instead of forwarding, and is thread-safe.
  return all_ok ? 0 : 1;
}
