// SPDX-License-Identifier: MIT
// The conformance kit's own test: a kit that passes everything proves nothing.

// Concerns:
// 1. A correct strata resource passes every check (no false positives).
// 2. Each check catches the defect it exists for: misaligned blocks, overlapping blocks,
//    wrong bytes_in_use, shared pointers for size 0, bad alignments accepted, impossible
//    sizes not failing, upstream blocks left behind at destruction, a hidden upstream.
//    (Equality cannot be wrong: strata::resource makes do_is_equal identity and final.)

#define BOOST_TEST_MODULE conformance
#include <boost/test/unit_test.hpp>

#include <bit>
#include <map>
#include <memory>

#include <strata/detail/counters.hpp>

#include "conformance.hpp"
#include "fixtures.hpp"

namespace {

enum class flaw {
  none,
  misaligns,           // alignments >= 16 come back 8 bytes off
  overlaps,            // every 64-byte request gets the same static block
  miscounts,           // bytes_in_use drifts by one per allocation
  shares_zero_blocks,  // allocate(0) always returns the same address
  accepts_bad_alignment,
  ignores_impossible_sizes,  // "succeeds" for sizes above 2^61 with a dummy block
  leaks_at_destruction,
  hides_upstream,  // upstream_resource() says nullptr, so chains cannot be walked
};

// A forwarding strata resource with one deliberate defect.
template <flaw Flaw>
class flawed_resource final : public strata::resource {
 public:
  explicit flawed_resource(std::pmr::memory_resource* upstream)
      : resource("flawed_resource", Flaw == flaw::hides_upstream ? nullptr : upstream), next_(upstream) {}
  ~flawed_resource() override {
    if (Flaw == flaw::leaks_at_destruction) return;
    for (const auto& [p, b] : live_) next_->deallocate(p, b.first, b.second);
  }

 private:
  static constexpr std::size_t offset = 8;
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    if (Flaw == flaw::accepts_bad_alignment) alignment = std::bit_ceil(alignment == 0 ? 1 : alignment);
    strata::detail::check_alignment(name(), alignment);
    if ((Flaw == flaw::overlaps && bytes == 64) || (Flaw == flaw::shares_zero_blocks && bytes == 0) ||
        (Flaw == flaw::ignores_impossible_sizes && bytes > (std::size_t{1} << 61))) {
      counters_.on_allocate(bytes);
      return shared_block_;
    }
    const std::size_t shift = Flaw == flaw::misaligns && alignment >= 16 ? offset : 0;
    std::byte* p;
    try {
      p = static_cast<std::byte*>(next_->allocate(bytes + shift, alignment));
    } catch (...) {
      counters_.on_failure();
      throw;
    }
    live_[p] = {bytes + shift, alignment};
    counters_.on_allocate(bytes + (Flaw == flaw::miscounts ? 1 : 0));
    return p + shift;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    counters_.on_deallocate(bytes);
    if (p == shared_block_) return;
    const std::size_t shift = Flaw == flaw::misaligns && alignment >= 16 ? offset : 0;
    std::byte* start = static_cast<std::byte*>(p) - shift;
    const auto it = live_.find(start);
    next_->deallocate(start, it->second.first, it->second.second);
    live_.erase(it);
  }
  strata::resource_stats do_stats() const noexcept override { return counters_.snapshot(); }
  void do_reset_peak() noexcept override { counters_.reset_peak(); }

  alignas(4096) std::byte shared_block_[65536];
  std::pmr::memory_resource* next_;  // upstream (held, not owned)
  std::map<std::byte*, std::pair<std::size_t, std::size_t>> live_;
  strata::detail::plain_counters counters_;
};

template <flaw Flaw>
struct flawed_factory {
  static constexpr bool has_upstream = true;
  static constexpr bool thread_safe = false;
  std::unique_ptr<strata::resource> make(std::pmr::memory_resource* upstream) const {
    return std::make_unique<flawed_resource<Flaw>>(upstream);
  }
};

namespace kit = strata::test::conformance;

template <class Factory>
bool all_checks_pass() {
  bool clean = true;
  for (const kit::findings& f :
       {kit::check_alignment_matrix<Factory>(), kit::check_zero_size<Factory>(),
        kit::check_huge_sizes<Factory>(), kit::check_invalid_alignment<Factory>(),
        kit::check_containers<Factory>(), kit::check_as_std_upstream<Factory>(),
        kit::check_destruction_returns_everything<Factory>(), kit::check_identity<Factory>()}) {
    for (const auto& line : f) BOOST_TEST_MESSAGE("finding: " << line);
    clean = clean && f.empty();
  }
  return clean;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(conformance_kit)

BOOST_AUTO_TEST_CASE(a_correct_resource_passes_every_check) {
  BOOST_TEST(all_checks_pass<flawed_factory<flaw::none>>());
}

BOOST_AUTO_TEST_CASE(misaligned_blocks_are_caught) {
  BOOST_TEST(!kit::check_alignment_matrix<flawed_factory<flaw::misaligns>>().empty());
}

BOOST_AUTO_TEST_CASE(overlapping_blocks_are_caught) {
  BOOST_TEST(!kit::check_alignment_matrix<flawed_factory<flaw::overlaps>>().empty());
}

BOOST_AUTO_TEST_CASE(wrong_bytes_in_use_is_caught) {
  BOOST_TEST(!kit::check_alignment_matrix<flawed_factory<flaw::miscounts>>().empty());
  BOOST_TEST(!kit::check_containers<flawed_factory<flaw::miscounts>>().empty());
}

BOOST_AUTO_TEST_CASE(shared_zero_size_blocks_are_caught) {
  BOOST_TEST(!kit::check_zero_size<flawed_factory<flaw::shares_zero_blocks>>().empty());
}

BOOST_AUTO_TEST_CASE(accepting_a_bad_alignment_is_caught) {
  BOOST_TEST(!kit::check_invalid_alignment<flawed_factory<flaw::accepts_bad_alignment>>().empty());
}

BOOST_AUTO_TEST_CASE(impossible_sizes_that_succeed_are_caught) {
  BOOST_TEST(!kit::check_huge_sizes<flawed_factory<flaw::ignores_impossible_sizes>>().empty());
}

BOOST_AUTO_TEST_CASE(upstream_blocks_left_at_destruction_are_caught) {
  BOOST_TEST(
      !kit::check_destruction_returns_everything<flawed_factory<flaw::leaks_at_destruction>>().empty());
}

BOOST_AUTO_TEST_CASE(a_hidden_upstream_is_caught) {
  BOOST_TEST(!kit::check_identity<flawed_factory<flaw::hides_upstream>>().empty());
}

BOOST_AUTO_TEST_SUITE_END()
