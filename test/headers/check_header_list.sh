#!/usr/bin/env bash
# Fails when include/strata/ holds a header that include/strata/meson.build does
# not list (it would be missing from `meson install` and from the header check),
# or lists one that does not exist.
#   check_header_list.sh INCLUDE_STRATA_DIR LISTED_HEADER...
set -euo pipefail
dir=$1
shift
listed=$(printf '%s\n' "$@" | sort)
present=$(cd "$dir" && find . -name '*.hpp' | sed 's|^\./||' | sort)
if [[ "$listed" != "$present" ]]; then
  echo "include/strata/meson.build and include/strata/ disagree (< listed, > present):"
  diff <(echo "$listed") <(echo "$present") || true
  exit 1
fi
echo "$(echo "$present" | wc -l) headers, all listed"
