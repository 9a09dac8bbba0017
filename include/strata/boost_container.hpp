// SPDX-License-Identifier: MIT
#pragma once

#include "version.hpp"  // first: it stops a pre-C++20 build with a clear message

// Bridges between std::pmr and Boost.Container's pmr.
//
// Boost.Container's pmr containers (boost::container::pmr::vector,
// flat_map, small_vector, stable_vector, devector, ...) take a
// boost::container::pmr::memory_resource*: a class of Boost's own with the
// same three virtual functions as std::pmr::memory_resource and no common
// base. So a strata resource cannot be handed to them directly, and a Boost
// pool cannot be the upstream of a strata resource. The two adaptors here
// close that gap, one virtual call each way:
//
//   strata::monotonic_arena scratch{&chunks};
//   strata::boost_resource_adaptor for_boost{&scratch};
//   boost::container::pmr::flat_map<int, int> index{&for_boost};   // lives on scratch
//
// This is the only strata header that includes Boost, and strata.hpp does
// not include it. The adaptors themselves need only Boost.Container's headers;
// Boost's pmr containers and resources need its compiled library too
// (Debian: libboost-container-dev; meson: dependency('boost', modules :
// ['container']); CMake: Boost::container).
//
// Thread-safety: an adaptor adds no state of its own after construction; it
// is exactly as thread-safe as the resource it forwards to.

#include <cstddef>
#include <memory_resource>
#include <stdexcept>

#include <boost/container/pmr/memory_resource.hpp>

namespace strata {

/// A boost::container::pmr::memory_resource that forwards every call to a
/// std::pmr::memory_resource (a strata resource or any other): Boost.Container's
/// pmr containers then allocate from it, and its stats and checks see every call.
/// Holds the target without owning it; the target must outlive the adaptor.
class boost_resource_adaptor final : public boost::container::pmr::memory_resource {
 public:
  /// Throws std::invalid_argument when target is null.
  explicit boost_resource_adaptor(std::pmr::memory_resource* target) : target_(checked(target)) {}
  boost_resource_adaptor(const boost_resource_adaptor&) = delete;
  boost_resource_adaptor& operator=(const boost_resource_adaptor&) = delete;

  /// The std::pmr resource every call goes to.
  [[nodiscard]] std::pmr::memory_resource* target() const noexcept { return target_; }

 private:
  static std::pmr::memory_resource* checked(std::pmr::memory_resource* target) {
    if (target == nullptr) throw std::invalid_argument("strata::boost_resource_adaptor: target is null");
    return target;
  }
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    return target_->allocate(bytes, alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    target_->deallocate(p, bytes, alignment);
  }
  // Two adaptors are interchangeable exactly when their targets are.
  bool do_is_equal(const boost::container::pmr::memory_resource& other) const noexcept override {
    if (this == &other) return true;
    const auto* adaptor = dynamic_cast<const boost_resource_adaptor*>(&other);
    return adaptor != nullptr && target_->is_equal(*adaptor->target_);
  }

  std::pmr::memory_resource* target_;
};

/// The reverse: a std::pmr::memory_resource that forwards every call to a
/// boost::container::pmr::memory_resource, so a Boost resource (its pools or
/// monotonic buffer, or an application's own) can be the upstream of a strata
/// resource or back std::pmr containers. Holds the target without owning it.
class std_resource_adaptor final : public std::pmr::memory_resource {
 public:
  /// Throws std::invalid_argument when target is null.
  explicit std_resource_adaptor(boost::container::pmr::memory_resource* target) : target_(checked(target)) {}
  std_resource_adaptor(const std_resource_adaptor&) = delete;
  std_resource_adaptor& operator=(const std_resource_adaptor&) = delete;

  /// The Boost resource every call goes to.
  [[nodiscard]] boost::container::pmr::memory_resource* target() const noexcept { return target_; }

 private:
  static boost::container::pmr::memory_resource* checked(boost::container::pmr::memory_resource* target) {
    if (target == nullptr) throw std::invalid_argument("strata::std_resource_adaptor: target is null");
    return target;
  }
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    return target_->allocate(bytes, alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    target_->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    if (this == &other) return true;
    const auto* adaptor = dynamic_cast<const std_resource_adaptor*>(&other);
    return adaptor != nullptr && target_->is_equal(*adaptor->target_);
  }

  boost::container::pmr::memory_resource* target_;
};

}  // namespace strata
