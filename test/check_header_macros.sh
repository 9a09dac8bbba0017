#!/usr/bin/env bash
# The build-flag rule (docs/reliability.md), for the headers: no inline code
# may change behaviour with a macro that libstrata and its user can set
# differently. NDEBUG and assert() differ between builds, and STRATA_ASSERT
# keys on NDEBUG, so none of them may appear in include/ (STRATA_ASSERT is
# defined there for src/ only). Macros that may steer a header are those the
# build carries to users (STRATA_HARDENED, STRATA_EXPENSIVE_CHECKS) and the
# compiler's own sanitizer macros (detail/sanitizer.hpp).
#
#   check_header_macros.sh INCLUDE_DIR
set -euo pipefail
dir=${1:?usage: check_header_macros.sh INCLUDE_DIR}
found=$(grep -rnE '\bNDEBUG\b|(^|[^_[:alnum:]])assert[[:space:]]*\(|STRATA_ASSERT(_EXPENSIVE)?[[:space:]]*\(' \
          --include='*.hpp' "$dir" |
        grep -vE '^[^:]+:[0-9]+:[[:space:]]*//' |                      # comments
        grep -vE 'detail/assert\.hpp:[0-9]+:(#if defined\(NDEBUG\)|#define STRATA_ASSERT)' || true)
if [[ -n $found ]]; then
  echo "headers use a macro that may differ between libstrata and its user:"
  echo "$found"
  exit 1
fi
echo "headers: no NDEBUG, assert or STRATA_ASSERT"
