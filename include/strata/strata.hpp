// SPDX-License-Identifier: MIT
#pragma once

// Umbrella header: every strata resource, the typed helpers and the chain
// vocabulary. boost_container.hpp (it includes Boost) is not included either.
// format.hpp is not included, so that fmt stays out of translation units that
// do not print; include <strata/format.hpp> where you do.

#include "allocate_unique.hpp"
#include "allocator.hpp"
#include "arena.hpp"
#include "chain.hpp"
#include "chunk_provider.hpp"
#include "extendable_slab.hpp"
#include "monotonic_arena.hpp"
#include "node_size.hpp"
#include "object_pool.hpp"
#include "page_resource.hpp"
#include "resource.hpp"
#include "slab.hpp"
#include "stats.hpp"
#include "thread_resource.hpp"
#include "tracking_resource.hpp"
#include "version.hpp"
