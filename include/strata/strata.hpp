// SPDX-License-Identifier: MIT
#pragma once

// Umbrella header: every strata resource, the composition resources, the
// typed helpers and the chain vocabulary. Two headers are left out:
// format.hpp, so that fmt stays out of translation units that do not print
// (include <strata/format.hpp> where you do), and boost_container.hpp, the
// one header that includes Boost.

#include "allocate_unique.hpp"
#include "allocator.hpp"
#include "arena.hpp"
#include "byte_limit_resource.hpp"
#include "chain.hpp"
#include "chunk_provider.hpp"
#include "extendable_slab.hpp"
#include "fallback_resource.hpp"
#include "literals.hpp"
#include "monotonic_arena.hpp"
#include "node_size.hpp"
#include "object_pool.hpp"
#include "page_resource.hpp"
#include "resource.hpp"
#include "segregator.hpp"
#include "slab.hpp"
#include "stats.hpp"
#include "thread_resource.hpp"
#include "tracking_resource.hpp"
#include "version.hpp"
