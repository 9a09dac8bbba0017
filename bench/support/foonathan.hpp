// SPDX-License-Identifier: MIT
#pragma once

// foonathan-memory contenders, compiled when meson found the library
// (STRATA_BENCH_FOONATHAN=1). Each foonathan allocator is wrapped in
// foonathan's own memory_resource_adapter, which derives from
// std::pmr::memory_resource when <memory_resource> is available, so it is
// measured behind the same virtual call as every other contender. Its blocks
// come from the heap through counting_heap, which counts what the allocator
// holds for the memory column of the report.

#if STRATA_BENCH_FOONATHAN

#include <cstddef>
#include <memory_resource>
#include <new>
#include <type_traits>

#include <foonathan/memory/memory_arena.hpp>
#include <foonathan/memory/memory_pool.hpp>
#include <foonathan/memory/memory_pool_collection.hpp>
#include <foonathan/memory/memory_resource_adapter.hpp>
#include <foonathan/memory/memory_stack.hpp>

#include "peers.hpp"

namespace strata::bench::foonathan {

namespace fm = ::foonathan::memory;

static_assert(std::is_base_of_v<std::pmr::memory_resource, fm::memory_resource>,
              "foonathan's memory_resource must be std::pmr's for the adapter to be comparable");

/// A stateless RawAllocator over operator new that counts the bytes it holds
/// (one thread only; the bench runs foonathan contenders single-threaded).
struct counting_heap {
  using is_stateful = std::false_type;
  static inline std::size_t outstanding = 0;

  void* allocate_node(std::size_t size, std::size_t alignment) {
    void* p = ::operator new (size, std::align_val_t{alignment});
    outstanding += size;
    return p;
  }
  void deallocate_node(void* p, std::size_t size, std::size_t alignment) noexcept {
    ::operator delete (p, size, std::align_val_t{alignment});
    outstanding -= size;
  }
};

using block_allocator = fm::growing_block_allocator<counting_heap>;
using pool = fm::memory_pool<fm::node_pool, block_allocator>;
using pool_collection = fm::memory_pool_collection<fm::node_pool, fm::log2_buckets, block_allocator>;
using stack = fm::memory_stack<block_allocator>;

/// A meter reading the bytes counting_heap holds: all of one contender's,
/// as foonathan contenders run one at a time and free everything when they die.
inline meter heap_meter() {
  return {"upstream", [] { return counting_heap::outstanding; }};
}

/// memory_pool (a node pool of one size) behind std::pmr::memory_resource.
class pool_resource final : public fm::memory_resource_adapter<pool> {
 public:
  explicit pool_resource(std::size_t node_size, std::size_t nodes_per_block = 4096)
      : fm::memory_resource_adapter<pool>(pool(node_size, pool::min_block_size(node_size, nodes_per_block))) {
  }
};

/// memory_pool_collection (one node pool per power-of-two size, up to
/// max_node_size) behind std::pmr::memory_resource. log2_buckets, because
/// with identity_buckets (one pool per byte size) nodes are packed at their
/// size and most blocks of the mixed workload come back misaligned (333 B
/// asked with alignment 16 at an address = 13 mod 16).
class pool_collection_resource final : public fm::memory_resource_adapter<pool_collection> {
 public:
  explicit pool_collection_resource(std::size_t max_node_size, std::size_t block_size = std::size_t{1} << 20)
      : fm::memory_resource_adapter<pool_collection>(pool_collection(max_node_size, block_size)) {}
};

/// memory_stack behind std::pmr::memory_resource; reset() unwinds to where
/// the stack was at construction, keeping its blocks.
class stack_resource final : public fm::memory_resource_adapter<stack> {
 public:
  explicit stack_resource(std::size_t block_size = std::size_t{64} << 10)
      : fm::memory_resource_adapter<stack>(stack(block_size)), start_(get_allocator().top()) {}
  void reset() noexcept { get_allocator().unwind(start_); }

 private:
  stack::marker start_;
};

}  // namespace strata::bench::foonathan

#endif
