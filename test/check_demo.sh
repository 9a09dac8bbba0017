#!/usr/bin/env bash
# Runs strata-demo as a user would and checks what it promises: a clean exit,
# the comparison table, the chain table with every link, matching results on
# every backend, and exit code 2 with a usage message for bad arguments.
set -u
demo=$1
fail=0
check() { if ! grep -q -- "$2" <<<"$1"; then echo "missing from output: $2"; fail=1; fi; }

out=$("$demo" --requests 200 --threads 2 2>&1) || { echo "strata-demo failed: $out"; exit 1; }
check "$out" "requests/s"
check "$out" "strata monotonic_arena + chunks"
check "$out" "0  monotonic_arena"
check "$out" "1  chunk_provider"
check "$out" "2  page_resource"
check "$out" "all backends produced the same rankings"

text=$(mktemp)
printf 'the quick brown fox\njumps over the lazy dog\nthe end\n' >"$text"
out=$("$demo" --requests 5 --input "$text" 2>&1) || { echo "strata-demo --input failed: $out"; fail=1; }
rm -f "$text"

"$demo" --requests zero >/dev/null 2>&1; code=$?
[ "$code" -eq 2 ] || { echo "bad --requests gave exit code $code, expected 2"; fail=1; }
"$demo" --frobnicate >/dev/null 2>&1; code=$?
[ "$code" -eq 2 ] || { echo "unknown option gave exit code $code, expected 2"; fail=1; }
err=$("$demo" --input /nonexistent/file 2>&1); code=$?
[ "$code" -eq 1 ] || { echo "unreadable file gave exit code $code, expected 1"; fail=1; }
check "$err" "cannot read /nonexistent/file"

[ "$fail" -eq 0 ] && echo "strata-demo checks passed"
exit "$fail"
