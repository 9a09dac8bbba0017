// SPDX-License-Identifier: MIT
#pragma once

// Boost.Container's pool resources, compiled when meson found the compiled
// boost_container library (STRATA_BENCH_BOOST_CONTAINER=1). They derive from
// boost::container::pmr::memory_resource, not std::pmr's, so a small adapter
// puts them behind the same std::pmr virtual call as every other contender;
// their upstream counts what they hold, for the memory column.

#if STRATA_BENCH_BOOST_CONTAINER

#include <cstddef>
#include <memory_resource>
#include <new>

#include <boost/container/pmr/memory_resource.hpp>
#include <boost/container/pmr/unsynchronized_pool_resource.hpp>

#include "peers.hpp"

namespace strata::bench::boost_container {

namespace bpmr = ::boost::container::pmr;

/// A Boost memory_resource over operator new counting the bytes outstanding.
class counting_upstream final : public bpmr::memory_resource {
 public:
  std::size_t outstanding() const noexcept { return outstanding_; }

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    void* p = ::operator new (bytes, std::align_val_t{alignment});
    outstanding_ += bytes;
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    ::operator delete (p, bytes, std::align_val_t{alignment});
    outstanding_ -= bytes;
  }
  bool do_is_equal(const bpmr::memory_resource& other) const noexcept override { return this == &other; }

  std::size_t outstanding_ = 0;
};

/// boost::container::pmr::unsynchronized_pool_resource behind std::pmr.
class unsync_pool_resource final : public std::pmr::memory_resource {
 public:
  unsync_pool_resource() = default;
  /// A meter reading the bytes the pool holds from its upstream.
  meter memory() const {
    return {"upstream", [this] { return upstream_.outstanding(); }};
  }

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    return pool_.allocate(bytes, alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    pool_.deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

  counting_upstream upstream_;
  bpmr::unsynchronized_pool_resource pool_{&upstream_};
};

}  // namespace strata::bench::boost_container

#endif
