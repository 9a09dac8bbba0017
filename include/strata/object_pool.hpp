// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <memory>
#include <memory_resource>
#include <new>
#include <type_traits>
#include <utility>

#include "allocator.hpp"
#include "extendable_slab.hpp"
#include "slab.hpp"

namespace strata {

/// A typed pool of T objects on its own slab (R = slab: one thread, a fixed
/// region) or extendable_slab (R = extendable_slab, the default: thread-safe,
/// grows by segments): create() allocates a slot and constructs a T in it,
/// destroy() destroys and frees it. Slots are sized and aligned for T (the
/// options' slot_size and slot_alignment are set from T, whatever they
/// held), and both calls take the resource's inline fast path through
/// strata::allocator, with no virtual call.
///
/// The pool owns its resource; resource() exposes it for stats(), details(),
/// trim() and for pmr containers of T-sized nodes. Objects still alive when
/// the pool dies are not destroyed (their memory goes back upstream with the
/// resource's), as with std::pmr resources.
///
/// Thread safety: that of R.
///
///     strata::object_pool<connection> connections{{.slots_per_segment = 256}, &chunks};
///     connection* c = connections.create(fd);
///     connections.destroy(c);
template <class T, class R = extendable_slab>
class object_pool {
  static_assert(std::is_same_v<R, slab> || std::is_same_v<R, extendable_slab>,
                "object_pool runs on strata::slab or strata::extendable_slab");

 public:
  using value_type = T;
  using resource_type = R;
  using options = typename R::options;

  /// A unique_ptr deleter returning the object to this pool.
  class deleter {
   public:
    explicit deleter(object_pool* pool) noexcept : pool_(pool) {}
    void operator()(T* p) const noexcept { pool_->destroy(p); }

   private:
    object_pool* pool_;
  };
  using unique_ptr = std::unique_ptr<T, deleter>;

  /// Creates a pool with R's default options (slots fitted to T) on upstream.
  explicit object_pool(std::pmr::memory_resource* upstream = std::pmr::get_default_resource())
      : object_pool(options{}, upstream) {}
  /// Creates a pool with opts (slot_size and slot_alignment replaced by T's);
  /// throws what R's constructor throws for the other fields.
  object_pool(options opts, std::pmr::memory_resource* upstream) : resource_(fitted(opts), upstream) {}
  object_pool(const object_pool&) = delete;
  object_pool& operator=(const object_pool&) = delete;

  /// Allocates a slot and constructs a T from args in it. If the constructor
  /// throws, the slot is freed and the exception passes through; exhaustion
  /// is R's (forwarded upstream or allocation_failure, by its options).
  template <class... Args>
  [[nodiscard]] T* create(Args&&... args) {
    T* slot = allocator_type{&resource_}.allocate(1);
    try {
      return ::new (static_cast<void*>(slot)) T(std::forward<Args>(args)...);
    } catch (...) {
      allocator_type{&resource_}.deallocate(slot, 1);
      throw;
    }
  }
  /// As create(), owned by a unique_ptr that destroys it into this pool.
  template <class... Args>
  [[nodiscard]] unique_ptr make_unique(Args&&... args) {
    return unique_ptr{create(std::forward<Args>(args)...), deleter{this}};
  }
  /// Destroys *p and frees its slot. Requires: p came from this pool's
  /// create() and was not destroyed yet (R detects and refuses a double free
  /// where its options check one).
  void destroy(T* p) noexcept {
    p->~T();
    allocator_type{&resource_}.deallocate(p, 1);
  }

  /// The pool's resource: stats(), details(), trim(), or pmr containers.
  [[nodiscard]] R& resource() noexcept { return resource_; }
  [[nodiscard]] const R& resource() const noexcept { return resource_; }

 private:
  using allocator_type = strata::allocator<T, R>;

  static options fitted(options opts) noexcept {
    opts.slot_size = sizeof(T);
    opts.slot_alignment = alignof(T);
    return opts;
  }

  R resource_;
};

}  // namespace strata
