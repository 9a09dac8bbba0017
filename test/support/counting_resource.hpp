// SPDX-License-Identifier: MIT
#pragma once

// An independent oracle for tests: an upstream that records every block it
// hands out (from the global operator new, never the default resource) and
// fails the test on a deallocate that does not match, and on bytes still
// outstanding at destruction. Deliberately simpler than tracking_resource, so
// it can check tracking_resource too. Not thread-safe.

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory_resource>
#include <new>

#include <boost/test/unit_test.hpp>

namespace strata::test {

class counting_resource final : public std::pmr::memory_resource {
 public:
  counting_resource() = default;
  counting_resource(const counting_resource&) = delete;
  counting_resource& operator=(const counting_resource&) = delete;
  ~counting_resource() override {
    BOOST_CHECK_MESSAGE(blocks_.empty(),
                        "counting_resource destroyed with " << blocks_.size() << " blocks outstanding");
    for (const auto& [p, b] : blocks_) ::operator delete (p, std::align_val_t{b.alignment});
  }

  [[nodiscard]] std::size_t bytes_outstanding() const noexcept { return bytes_; }
  [[nodiscard]] std::size_t blocks_outstanding() const noexcept { return blocks_.size(); }
  [[nodiscard]] std::uint64_t allocations() const noexcept { return allocations_; }
  [[nodiscard]] std::uint64_t deallocations() const noexcept { return deallocations_; }
  [[nodiscard]] std::uint64_t mismatches() const noexcept { return mismatches_; }
  /// Makes every allocation throw std::bad_alloc while set.
  void fail_allocations(bool fail) noexcept { failing_ = fail; }

 private:
  struct info {
    std::size_t bytes;
    std::size_t alignment;
  };
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    if (failing_) throw std::bad_alloc();
    void* p = ::operator new (bytes == 0 ? 1 : bytes, std::align_val_t{alignment});
    blocks_.emplace(p, info{bytes, alignment});
    bytes_ += bytes;
    ++allocations_;
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    const auto it = blocks_.find(p);
    if (it == blocks_.end() || it->second.bytes != bytes || it->second.alignment != alignment) {
      ++mismatches_;
      BOOST_ERROR("counting_resource: deallocate(" << p << ", " << bytes << ", " << alignment
                                                   << ") matches no live block");
      return;
    }
    bytes_ -= bytes;
    ++deallocations_;
    blocks_.erase(it);
    ::operator delete (p, std::align_val_t{alignment});
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

  std::map<void*, info> blocks_;
  std::size_t bytes_ = 0;
  std::uint64_t allocations_ = 0;
  std::uint64_t deallocations_ = 0;
  std::uint64_t mismatches_ = 0;
  bool failing_ = false;
};

}  // namespace strata::test
