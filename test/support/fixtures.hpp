// SPDX-License-Identifier: MIT
#pragma once

// Fixtures every strata test executable shares, from the public test kit
// (strata/testing.hpp). Include once per test executable, after
// BOOST_TEST_MODULE and <boost/test/unit_test.hpp>.

#include <boost/test/unit_test.hpp>

#include <strata/testing.hpp>

namespace strata::test {

using testing::misuse_recorder;

/// Makes the default resource the null resource for the whole run, so any
/// allocation that silently falls back to it throws.
struct null_default_resource {
  testing::default_resource_guard guard{std::pmr::null_memory_resource()};
};

}  // namespace strata::test

using strata_null_default_resource = strata::test::null_default_resource;
BOOST_TEST_GLOBAL_FIXTURE(strata_null_default_resource);
