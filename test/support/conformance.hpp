// SPDX-License-Identifier: MIT
#pragma once

// The conformance kit: the contract of ../shared/DESIGN.md ("Rules every
// resource follows") as checks any strata resource must pass.
//
// A resource's suite instantiates it with STRATA_CONFORMANCE_SUITE(Factory),
// where Factory describes how to build the resource under test:
//
//   struct my_factory {
//     static constexpr bool has_upstream = true;   // false for page_resource
//     static constexpr bool thread_safe = true;    // adds the concurrent check
//     std::unique_ptr<strata::resource> make(std::pmr::memory_resource* upstream) const;
//   };
//
// Each check returns findings (human-readable violations) instead of failing
// the test itself, so the kit can be tested against deliberately broken
// resources (conformance_test.cpp) and shown to catch them.
//
// Every resource under test sits on a tracking_resource over system_pages(),
// so its upstream traffic is checked too and no check touches the default
// resource (null in tests) or the global operator new (which ASan turns into
// a fatal error for impossible sizes).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <memory_resource>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <strata/page_resource.hpp>
#include <strata/resource.hpp>
#include <strata/tracking_resource.hpp>

namespace strata::test::conformance {

using findings = std::vector<std::string>;

/// The resource under test on its checked upstream, in destruction order.
template <class Factory>
struct instance {
  explicit instance(const Factory& factory = Factory{})
      : upstream{system_pages()}, tested{factory.make(&upstream)} {}
  ~instance() { tested.reset(); }
  strata::tracking_resource upstream;
  std::unique_ptr<strata::resource> tested;
};

// ------------------------------------------------------------ live blocks

/// A block handed out by the resource under test, filled with a tag byte so
/// that overlap or corruption shows up when it is checked before freeing.
struct live_block {
  std::byte* pointer;
  std::size_t bytes;
  std::size_t alignment;
  unsigned char tag;
};

inline std::string describe(const live_block& b) {
  std::ostringstream out;
  out << b.bytes << " bytes aligned to " << b.alignment << " at " << static_cast<void*>(b.pointer);
  return out.str();
}

/// Allocates, checks alignment, fills with tag. Records a finding on a bad pointer.
inline bool take(std::pmr::memory_resource& r, std::size_t bytes, std::size_t alignment, unsigned char tag,
                 std::vector<live_block>& live, findings& found) {
  void* p = r.allocate(bytes, alignment);
  live_block b{static_cast<std::byte*>(p), bytes, alignment, tag};
  if (p == nullptr) {
    found.push_back("allocate returned nullptr for " + describe(b));
    return false;
  }
  if (reinterpret_cast<std::uintptr_t>(p) % alignment != 0) {
    found.push_back("misaligned block: " + describe(b));
  }
  std::memset(p, tag, bytes);
  live.push_back(b);
  return true;
}

/// Returns findings for blocks whose tag was overwritten or which overlap.
inline findings check_blocks(std::vector<live_block> live) {
  findings found;
  for (const live_block& b : live) {
    for (std::size_t i = 0; i < b.bytes; ++i) {
      if (std::to_integer<unsigned char>(b.pointer[i]) != b.tag) {
        found.push_back("block contents overwritten (overlap?): " + describe(b));
        break;
      }
    }
  }
  std::sort(live.begin(), live.end(),
            [](const live_block& a, const live_block& b) { return a.pointer < b.pointer; });
  for (std::size_t i = 1; i < live.size(); ++i) {
    const live_block& prev = live[i - 1];
    const live_block& next = live[i];
    if (prev.pointer == next.pointer || prev.pointer + prev.bytes > next.pointer) {
      found.push_back("blocks overlap: " + describe(prev) + " and " + describe(next));
    }
  }
  return found;
}

inline std::size_t total_bytes(const std::vector<live_block>& live) {
  std::size_t sum = 0;
  for (const live_block& b : live) sum += b.bytes;
  return sum;
}

inline void expect(bool condition, findings& found, const std::string& what) {
  if (!condition) found.push_back(what);
}

inline std::string counter_text(const char* name, std::uint64_t got, std::uint64_t want) {
  std::ostringstream out;
  out << name << " is " << got << ", expected " << want;
  return out.str();
}

/// Checks the counters a workload must have moved, from two snapshots.
inline void expect_counts(const resource_stats& before, const resource_stats& after,
                          std::uint64_t allocations, std::uint64_t deallocations, std::uint64_t failures,
                          findings& found) {
  const auto check = [&](const char* name, std::uint64_t got, std::uint64_t want) {
    if (got != want) found.push_back(counter_text(name, got, want));
  };
  check("allocations delta", after.allocations - before.allocations, allocations);
  check("deallocations delta", after.deallocations - before.deallocations, deallocations);
  check("failed_allocations delta", after.failed_allocations - before.failed_allocations, failures);
  check("misuse_detected delta", after.misuse_detected - before.misuse_detected, 0);
  if (after.peak_bytes_in_use < after.bytes_in_use) {
    found.push_back("peak_bytes_in_use below bytes_in_use");
  }
}

// ----------------------------------------------------------------- checks

inline constexpr std::size_t sizes[] = {0,  1,   7,   8,   15,   16,   23,   24,   31,   48,
                                        64, 100, 255, 256, 1000, 4095, 4096, 4097, 65536};
inline constexpr std::size_t max_alignment = 4096;

/// Every power-of-two alignment 1..4096 over a size matrix: aligned, writable,
/// disjoint; bytes_in_use equals the bytes live; all counts exact.
template <class Factory>
findings check_alignment_matrix() {
  findings found;
  instance<Factory> in;
  strata::resource& r = *in.tested;
  const resource_stats before = r.stats();
  std::vector<live_block> live;
  unsigned char tag = 1;
  for (std::size_t alignment = 1; alignment <= max_alignment; alignment *= 2) {
    for (std::size_t bytes : sizes) take(r, bytes, alignment, tag++, live, found);
  }
  const resource_stats middle = r.stats();
  expect(middle.bytes_in_use - before.bytes_in_use == total_bytes(live), found,
         counter_text("bytes_in_use delta with all blocks live", middle.bytes_in_use - before.bytes_in_use,
                      total_bytes(live)));
  expect(middle.peak_bytes_in_use >= middle.bytes_in_use, found, "peak below in use");
  const findings contents = check_blocks(live);
  found.insert(found.end(), contents.begin(), contents.end());
  // Free in a scrambled order: the resource must not depend on LIFO.
  std::mt19937 rng(42);
  std::shuffle(live.begin(), live.end(), rng);
  for (const live_block& b : live) r.deallocate(b.pointer, b.bytes, b.alignment);
  const resource_stats after = r.stats();
  expect_counts(before, after, live.size(), live.size(), 0, found);
  expect(after.bytes_in_use == before.bytes_in_use, found,
         counter_text("bytes_in_use after freeing all", after.bytes_in_use, before.bytes_in_use));
  return found;
}

/// allocate(0) returns distinct valid pointers that can be deallocated.
template <class Factory>
findings check_zero_size() {
  findings found;
  instance<Factory> in;
  strata::resource& r = *in.tested;
  const resource_stats before = r.stats();
  std::vector<void*> blocks;
  for (int i = 0; i < 4; ++i) blocks.push_back(r.allocate(0, 8));
  for (void* p : blocks) expect(p != nullptr, found, "allocate(0) returned nullptr");
  std::sort(blocks.begin(), blocks.end());
  expect(std::adjacent_find(blocks.begin(), blocks.end()) == blocks.end(), found,
         "allocate(0) returned the same pointer twice while both were live");
  for (void* p : blocks) r.deallocate(p, 0, 8);
  expect_counts(before, r.stats(), 4, 4, 0, found);
  return found;
}

/// Sizes that overflow or cannot exist throw std::bad_alloc, are counted as
/// failures, and leave the resource fully usable.
template <class Factory>
findings check_huge_sizes() {
  findings found;
  instance<Factory> in;
  strata::resource& r = *in.tested;
  const std::pair<std::size_t, std::size_t> requests[] = {
      {SIZE_MAX, 8}, {SIZE_MAX - 4095, 4096}, {SIZE_MAX / 2 + 1, 64}, {std::size_t{1} << 62, 16}};
  const resource_stats before = r.stats();
  for (const auto& [bytes, alignment] : requests) {
    try {
      void* p = r.allocate(bytes, alignment);
      r.deallocate(p, bytes, alignment);
      found.push_back("allocate(" + std::to_string(bytes) + ") did not throw");
    } catch (const std::bad_alloc&) {
    } catch (const std::exception& e) {
      found.push_back(std::string("allocate of an impossible size threw the wrong type: ") + e.what());
    }
  }
  std::vector<live_block> live;
  take(r, 64, 16, 0x5a, live, found);  // still usable
  r.deallocate(live[0].pointer, 64, 16);
  expect_counts(before, r.stats(), 1, 1, std::size(requests), found);
  return found;
}

/// A non-power-of-two alignment throws std::invalid_argument, counts nothing
/// as allocated, and leaves the resource usable.
template <class Factory>
findings check_invalid_alignment() {
  findings found;
  instance<Factory> in;
  strata::resource& r = *in.tested;
  const resource_stats before = r.stats();
  for (std::size_t alignment : {std::size_t{0}, std::size_t{3}, std::size_t{24}, std::size_t{4097}}) {
    try {
      void* p = r.allocate(16, alignment);
      r.deallocate(p, 16, alignment);
      found.push_back("alignment " + std::to_string(alignment) + " was accepted");
    } catch (const std::invalid_argument&) {
    } catch (const std::exception& e) {
      found.push_back(std::string("bad alignment threw the wrong type: ") + e.what());
    }
  }
  void* p = r.allocate(16, 16);
  r.deallocate(p, 16, 16);
  expect_counts(before, r.stats(), 1, 1, 0, found);
  return found;
}

/// Randomized differential workload: pmr containers on the resource must hold
/// exactly what the same operations give on std::allocator.
template <class Factory>
findings check_containers(unsigned seed = 7) {
  findings found;
  instance<Factory> in;
  strata::resource& r = *in.tested;
  const resource_stats before = r.stats();
  {
    std::mt19937 rng(seed);
    std::pmr::vector<std::uint64_t> pv{&r};
    std::vector<std::uint64_t> sv;
    std::pmr::string ps{&r};
    std::string ss;
    std::pmr::list<std::uint32_t> pl{&r};
    std::list<std::uint32_t> sl;
    std::pmr::map<std::uint32_t, std::pmr::string> pm{&r};
    std::map<std::uint32_t, std::string> sm;
    std::pmr::unordered_map<std::uint32_t, std::uint64_t> pu{&r};
    std::unordered_map<std::uint32_t, std::uint64_t> su;
    for (int step = 0; step < 4000; ++step) {
      const std::uint32_t key = rng() % 500;
      switch (rng() % 8) {
        case 0:
          pv.push_back(key);
          sv.push_back(key);
          break;
        case 1:
          if (!sv.empty()) {
            pv.pop_back();
            sv.pop_back();
          }
          break;
        case 2:
          ps.append(key % 40, static_cast<char>('a' + key % 26));
          ss.append(key % 40, static_cast<char>('a' + key % 26));
          break;
        case 3:
          if (ss.size() > 10) {
            ps.erase(key % 10, 7);
            ss.erase(key % 10, 7);
          }
          break;
        case 4:
          pl.push_front(key);
          sl.push_front(key);
          break;
        case 5:
          pm.try_emplace(key, std::string(key % 60, 'x'));
          sm.try_emplace(key, std::string(key % 60, 'x'));
          break;
        case 6:
          pm.erase(key);
          sm.erase(key);
          pl.remove(key);
          sl.remove(key);
          break;
        case 7:
          pu[key] += step;
          su[key] += step;
          if (key % 3 == 0) {
            pu.erase(key / 2);
            su.erase(key / 2);
          }
          break;
      }
    }
    expect(std::equal(pv.begin(), pv.end(), sv.begin(), sv.end()), found, "pmr::vector differs");
    expect(std::string_view(ps) == ss, found, "pmr::string differs");
    expect(std::equal(pl.begin(), pl.end(), sl.begin(), sl.end()), found, "pmr::list differs");
    expect(pm.size() == sm.size() && std::equal(pm.begin(), pm.end(), sm.begin(),
                                                [](const auto& a, const auto& b) {
                                                  return a.first == b.first &&
                                                         std::string_view(a.second) == b.second;
                                                }),
           found, "pmr::map differs");
    expect(pu.size() == su.size() && std::all_of(su.begin(), su.end(),
                                                 [&](const auto& kv) {
                                                   auto it = pu.find(kv.first);
                                                   return it != pu.end() && it->second == kv.second;
                                                 }),
           found, "pmr::unordered_map differs");
  }
  const resource_stats after = r.stats();
  expect(after.bytes_in_use == before.bytes_in_use, found,
         counter_text("bytes_in_use after the containers died", after.bytes_in_use, before.bytes_in_use));
  expect(after.allocations - before.allocations == after.deallocations - before.deallocations, found,
         "allocations and deallocations do not balance after the containers died");
  expect(after.misuse_detected == before.misuse_detected, found, "containers triggered misuse detection");
  return found;
}

/// Works as the upstream of the standard pool and monotonic resources, and
/// gets every byte back when they are destroyed.
template <class Factory>
findings check_as_std_upstream() {
  findings found;
  instance<Factory> in;
  strata::resource& r = *in.tested;
  const resource_stats before = r.stats();
  {
    std::pmr::unsynchronized_pool_resource pool{
        {.max_blocks_per_chunk = 64, .largest_required_pool_block = 512}, &r};
    std::pmr::monotonic_buffer_resource mono{&r};
    std::pmr::vector<std::pmr::string> a{&pool};
    std::pmr::vector<std::pmr::string> b{&mono};
    for (int i = 0; i < 2000; ++i) {
      a.emplace_back(static_cast<std::size_t>(i % 300), 'p');
      b.emplace_back(static_cast<std::size_t>(i % 300), 'm');
      if (i % 3 == 0) a.erase(a.begin() + (i % static_cast<int>(a.size())));
    }
    expect(r.stats().allocations > before.allocations, found, "std resources never reached the resource");
  }
  const resource_stats after = r.stats();
  expect(after.bytes_in_use == before.bytes_in_use, found,
         counter_text("bytes_in_use after std resources died", after.bytes_in_use, before.bytes_in_use));
  expect(after.misuse_detected == before.misuse_detected, found, "std resources triggered misuse detection");
  return found;
}

/// Destroying the resource with blocks still live returns every byte to its
/// upstream, which never saw a bad deallocate.
template <class Factory>
findings check_destruction_returns_everything() {
  findings found;
  if constexpr (Factory::has_upstream) {
    strata::tracking_resource upstream{
        {.on_leak =
             [&](const auto& report) {
               found.push_back(std::to_string(report.blocks) + " upstream blocks leaked");
             }},
        system_pages()};
    {
      std::unique_ptr<strata::resource> r = Factory{}.make(&upstream);
      std::vector<live_block> live;
      for (std::size_t i = 0; i < 300; ++i)
        take(*r, 8 + (i * 37) % 3000, std::size_t{1} << (i % 8), 0x11, live, found);
      for (std::size_t i = 0; i < live.size(); i += 2)
        r->deallocate(live[i].pointer, live[i].bytes, live[i].alignment);
      expect(upstream.live_blocks() > 0, found, "the resource took nothing from its upstream");
    }  // destroyed with half its blocks still live
    expect(upstream.live_blocks() == 0, found,
           std::to_string(upstream.live_blocks()) + " upstream blocks still live after destruction");
    expect(upstream.stats().misuse_detected == 0, found, "the resource misused its upstream");
  }
  return found;
}

/// BDE-style exception-safety loop: for k = 0, 1, 2, ... the k-th upstream
/// allocation throws once, during construction or a container workload. After
/// each throw the resource must be usable with consistent stats, and once it
/// is destroyed the upstream must hold nothing. The loop ends when the
/// workload completes without a throw (every failure point was visited).
template <class Factory>
findings check_exception_safety() {
  findings found;
  if constexpr (Factory::has_upstream) {
    for (std::uint64_t k = 0; k < 500; ++k) {
      bool threw = false;
      strata::tracking_resource upstream{{.on_leak =
                                              [&](const auto& report) {
                                                found.push_back("failure point " + std::to_string(k) + ": " +
                                                                std::to_string(report.blocks) +
                                                                " upstream blocks leaked");
                                              }},
                                         system_pages()};
      upstream.set_allocation_limit(k);
      std::unique_ptr<strata::resource> r;
      try {
        r = Factory{}.make(&upstream);
      } catch (const std::bad_alloc&) {
        expect(upstream.live_blocks() == 0, found, "a failed construction left upstream blocks behind");
        continue;
      }
      try {
        std::pmr::vector<std::pmr::string> words{r.get()};
        std::pmr::map<int, std::pmr::string> index{r.get()};
        for (int i = 0; i < 60; ++i) {
          words.emplace_back(static_cast<std::size_t>(20 + i * 37 % 700), 'w');
          index.emplace(i, words.back());
        }
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      upstream.set_allocation_limit(
          strata::tracking_resource::unlimited);  // if the workload never reached it
      const resource_stats s = r->stats();
      expect(s.bytes_in_use == 0, found,
             "failure point " + std::to_string(k) + ": bytes_in_use is " + std::to_string(s.bytes_in_use) +
                 " after the containers unwound");
      expect(s.misuse_detected == 0, found, "failure point " + std::to_string(k) + ": misuse reported");
      try {
        void* p = r->allocate(64, 8);  // usable again
        r->deallocate(p, 64, 8);
      } catch (const std::exception& e) {
        found.push_back("failure point " + std::to_string(k) + ": unusable after the throw: " + e.what());
      }
      r.reset();
      expect(upstream.live_blocks() == 0, found,
             "failure point " + std::to_string(k) + ": upstream blocks left after destruction");
      if (!threw) return found;
    }
    found.push_back("the workload still hit the allocation limit after 500 failure points");
  }
  return found;
}

/// Two instances are unequal; each equals itself.
template <class Factory>
findings check_identity() {
  findings found;
  instance<Factory> a;
  instance<Factory> b;
  expect(a.tested->is_equal(*a.tested), found, "a resource is not equal to itself");
  expect(!a.tested->is_equal(*b.tested), found, "two distinct resources compare equal");
  expect(!a.tested->is_equal(*std::pmr::new_delete_resource()), found,
         "a resource equals new_delete_resource");
  expect(a.tested->upstream_resource() == (Factory::has_upstream ? &a.upstream : nullptr), found,
         "upstream_resource() is not the upstream given");
  expect(!a.tested->name().empty(), found, "name() is empty");
  return found;
}

/// Threads allocate and free concurrently (some blocks freed by another
/// thread); no block is ever handed out twice while live.
template <class Factory>
findings check_concurrent_use() {
  constexpr int thread_count = 4;
  constexpr int rounds = 1500;
  findings found;
  instance<Factory> in;
  strata::resource& r = *in.tested;
  const resource_stats before = r.stats();
  std::vector<std::vector<live_block>> handed(thread_count);  // blocks each thread passes on
  std::vector<findings> per_thread(thread_count);
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < thread_count; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(t) + 1);
        std::vector<live_block> live;
        for (int i = 0; i < rounds; ++i) {
          const std::size_t bytes = 1 + rng() % 700;
          // Tags differ between consecutive blocks, so a block handed out twice shows.
          const auto tag = static_cast<unsigned char>(1 + (t * 61 + i) % 251);
          take(r, bytes, std::size_t{1} << (rng() % 7), tag, live, per_thread[t]);
          if (i % 100 == 99) {  // every live block of this thread: contents and overlap
            const findings bad = check_blocks(live);
            per_thread[t].insert(per_thread[t].end(), bad.begin(), bad.end());
          }
          if (live.size() > 40 || rng() % 3 == 0) {
            const std::size_t k = rng() % live.size();
            const findings bad = check_blocks({live[k]});
            per_thread[t].insert(per_thread[t].end(), bad.begin(), bad.end());
            r.deallocate(live[k].pointer, live[k].bytes, live[k].alignment);
            live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
          }
        }
        handed[t] = std::move(live);
      });
    }
  }
  // Blocks are freed by a different thread than the one that allocated them.
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < thread_count; ++t) {
      threads.emplace_back([&, t] {
        const std::vector<live_block>& blocks = handed[(t + 1) % thread_count];
        const findings bad = check_blocks(blocks);
        per_thread[t].insert(per_thread[t].end(), bad.begin(), bad.end());
        for (const live_block& b : blocks) r.deallocate(b.pointer, b.bytes, b.alignment);
      });
    }
  }
  for (const findings& f : per_thread) found.insert(found.end(), f.begin(), f.end());
  const resource_stats after = r.stats();
  expect(after.bytes_in_use == before.bytes_in_use, found,
         counter_text("bytes_in_use after all threads freed", after.bytes_in_use, before.bytes_in_use));
  expect_counts(before, after, thread_count * rounds, thread_count * rounds, 0, found);
  return found;
}

inline void expect_clean(const findings& found) {
  for (const std::string& f : found) BOOST_ERROR(f);
  BOOST_TEST(found.empty());
}

}  // namespace strata::test::conformance

/// Instantiates every conformance check for Factory as test cases of a
/// "conformance" suite; the concurrent check is labelled "threaded" (the
/// TSan run selects it) and is disabled for resources that are not thread-safe.
#define STRATA_CONFORMANCE_SUITE(Factory)                                                                   \
  BOOST_AUTO_TEST_SUITE(conformance)                                                                        \
  BOOST_AUTO_TEST_CASE(every_alignment_and_size_is_honoured) {                                              \
    strata::test::conformance::expect_clean(strata::test::conformance::check_alignment_matrix<Factory>());  \
  }                                                                                                         \
  BOOST_AUTO_TEST_CASE(size_zero_gives_unique_pointers) {                                                   \
    strata::test::conformance::expect_clean(strata::test::conformance::check_zero_size<Factory>());         \
  }                                                                                                         \
  BOOST_AUTO_TEST_CASE(impossible_sizes_throw_bad_alloc_and_leave_it_usable) {                              \
    strata::test::conformance::expect_clean(strata::test::conformance::check_huge_sizes<Factory>());        \
  }                                                                                                         \
  BOOST_AUTO_TEST_CASE(bad_alignment_throws_invalid_argument) {                                             \
    strata::test::conformance::expect_clean(strata::test::conformance::check_invalid_alignment<Factory>()); \
  }                                                                                                         \
  BOOST_AUTO_TEST_CASE(pmr_containers_match_std_allocator) {                                                \
    strata::test::conformance::expect_clean(strata::test::conformance::check_containers<Factory>());        \
  }                                                                                                         \
  BOOST_AUTO_TEST_CASE(serves_as_upstream_of_std_resources) {                                               \
    strata::test::conformance::expect_clean(strata::test::conformance::check_as_std_upstream<Factory>());   \
  }                                                                                                         \
  BOOST_AUTO_TEST_CASE(destruction_returns_everything_upstream,                                             \
                       *boost::unit_test::enable_if<Factory::has_upstream>()) {                             \
    strata::test::conformance::expect_clean(                                                                \
        strata::test::conformance::check_destruction_returns_everything<Factory>());                        \
  }                                                                                                         \
  BOOST_AUTO_TEST_CASE(survives_an_upstream_failure_at_every_point,                                         \
                       *boost::unit_test::enable_if<Factory::has_upstream>()) {                             \
    strata::test::conformance::expect_clean(strata::test::conformance::check_exception_safety<Factory>());  \
  }                                                                                                         \
  BOOST_AUTO_TEST_CASE(equality_is_identity) {                                                              \
    strata::test::conformance::expect_clean(strata::test::conformance::check_identity<Factory>());          \
  }                                                                                                         \
  BOOST_AUTO_TEST_CASE(                                                                                     \
      concurrent_use_never_hands_out_a_block_twice,                                                         \
      *boost::unit_test::label("threaded") * boost::unit_test::enable_if<Factory::thread_safe>()) {         \
    strata::test::conformance::expect_clean(strata::test::conformance::check_concurrent_use<Factory>());    \
  }                                                                                                         \
  BOOST_AUTO_TEST_SUITE_END()
