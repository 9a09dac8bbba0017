// SPDX-License-Identifier: MIT
#pragma once

// Umbrella header: every strata resource and the chain vocabulary.
// format.hpp is not included, so that fmt stays out of translation units that
// do not print; include <strata/format.hpp> where you do.

#include "allocator.hpp"
#include "arena.hpp"
#include "byte_limit_resource.hpp"
#include "chain.hpp"
#include "chunk_provider.hpp"
#include "extendable_slab.hpp"
#include "fallback_resource.hpp"
#include "literals.hpp"
#include "monotonic_arena.hpp"
#include "page_resource.hpp"
#include "resource.hpp"
#include "segregator.hpp"
#include "slab.hpp"
#include "stats.hpp"
#include "tracking_resource.hpp"
#include "version.hpp"
