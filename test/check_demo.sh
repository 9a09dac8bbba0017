#!/usr/bin/env bash
# Runs strata-demo as a user would and checks what it promises (issue 16):
# a clean exit; the table with every backend and every column; the strata
# chain with every link; the same responses on every backend; --json output
# that python3 parses, with every backend and its figures; no progress line
# or escape code when stdout is not a terminal, nor with --quiet on one;
# usage errors that exit 2 with a message naming the argument, the value and
# the reason; --help and --version exiting 0; runtime errors exiting 1.
# Nothing here is timed: it checks shape and exit codes, not speed.
set -u
demo=$1
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check() { if ! grep -qF -- "$2" <<<"$1"; then echo "missing from output: $2"; fail=1; fi; }

out=$("$demo" --requests 100 --rounds 2 --threads 2 2>&1) || { echo "strata-demo failed: $out"; exit 1; }
for text in "req/s" "vs glibc" "p99 µs" "mem calls" "faults/req" "peak RSS" "reserved" \
  "strata chain (arena/thread)" "strata::arena (shared)" "new_delete (glibc malloc)" \
  "std monotonic (per request)" "std sync_pool (shared)" "mimalloc (mi_heap/thread)" \
  "0  monotonic_arena" "1  chunk_provider" "2  page_resource" \
  "What the columns measure" "All backends produced the same responses"; do
  check "$out" "$text"
done
check "$out" "each row is its backend's median round of 2, rounds interleaved"
grep -qE "^ +(counted by the kernel|not counted)" <<<"$out" || { echo "mem calls: no line saying how"; fail=1; }
grep -qE "each child started at [0-9.]+ [KMG]iB\)$" <<<"$out" || { echo "peak RSS: no start RSS"; fail=1; }
# stdout is a pipe here: no progress line, no escape code.
if grep -q $'\r\|\x1b' <<<"$out"; then echo "progress or escape codes written to a pipe"; fail=1; fi

# --no-trace: no ptrace, and the table says the calls were not counted.
out=$("$demo" --requests 20 --rounds 1 --threads 1 --backends new_delete --no-trace 2>&1) ||
  { echo "strata-demo --no-trace failed: $out"; fail=1; }
check "$out" "not counted (--no-trace)"

# The lighter workload, and requests from files.
out=$("$demo" --workload words --requests 50 --rounds 1 --threads 1 --backends strata,new_delete 2>&1) ||
  { echo "strata-demo --workload words failed: $out"; fail=1; }
check "$out" "words workload"
printf 'the quick brown fox\njumps over the lazy dog\nthe end\n' >"$tmp/text"
out=$("$demo" --workload words --requests 5 --input "$tmp/text" --backends strata 2>&1) ||
  { echo "strata-demo --input (words) failed: $out"; fail=1; }
printf '{"batch":1,"orders":[{"id":"a","customer":{"name":"Ann"},"items":[{"qty":2,"price":1.5,"tags":["x"]}]}]}\n\n{"batch":2,"orders":[]}\n' >"$tmp/batches.jsonl"
out=$("$demo" --requests 5 --rounds 1 --threads 1 --input "$tmp/batches.jsonl" 2>&1) ||
  { echo "strata-demo --input (json) failed: $out"; fail=1; }
check "$out" "2 documents from"

# --json: parses, every backend, every figure; '-' writes only JSON to stdout.
"$demo" --requests 100 --rounds 3 --threads 2 --json "$tmp/out.json" >/dev/null 2>&1 || { echo "--json FILE failed"; fail=1; }
"$demo" --requests 100 --rounds 1 --threads 1 --backends strata,new_delete --json - >"$tmp/stdout.json" 2>&1 ||
  { echo "--json - failed"; fail=1; }
python3 - "$tmp/out.json" "$tmp/stdout.json" <<'PY' || fail=1
import json, sys
full = json.load(open(sys.argv[1]))
keys = [b["key"] for b in full["backends"]]
assert keys == ["strata", "arena", "new_delete", "std_mono", "sync_pool", "mimalloc"], keys
assert full["threads"] == 2 and full["requests"] == 100 and full["rounds"] == 3 and full["workload"] == "json"
for b in full["backends"]:
    if not b["available"]:
        continue
    assert b["ok"], b
    for field in ("requests_per_second", "latency_us", "minor_faults_per_request", "peak_rss_bytes",
                  "reserved_bytes", "checksum", "syscalls_counted"):
        assert field in b, (b["key"], field)
    assert set(b["latency_us"]) == {"p50", "p99", "p999", "max"}, b["latency_us"]
    rates = b["round_requests_per_second"]
    assert len(rates) == 3 and sorted(rates)[1] == rates[b["median_round"]], (rates, b["median_round"])
    if b["syscalls_counted"]:
        assert set(b["map_calls"]) >= {"mmap", "munmap", "brk", "madvise", "mapping"}, b["map_calls"]
assert len({b["checksum"] for b in full["backends"] if b["ok"]}) == 1
assert [l["name"] for l in full["backends"][0]["chain"]["links"]] == ["monotonic_arena", "chunk_provider",
                                                                      "page_resource"]
only = json.load(open(sys.argv[2]))
assert [b["key"] for b in only["backends"]] == ["strata", "new_delete"]
PY

# On a terminal (script(1) gives the demo one) a progress line is drawn
# when each backend starts; --quiet draws none.
if command -v script >/dev/null; then
  script -qec "$demo --requests 10 --rounds 1 --threads 1 --backends strata,new_delete" /dev/null >"$tmp/tty" 2>&1
  grep -qF $'\r\x1b[K[2/2] new_delete (glibc malloc): ' "$tmp/tty" || { echo "no progress line on a terminal"; fail=1; }
  script -qec "$demo --requests 100 --threads 1 --backends new_delete --quiet" /dev/null >"$tmp/tty" 2>&1
  if grep -q $'\x1b' "$tmp/tty"; then echo "--quiet still showed progress on a terminal"; fail=1; fi
fi

# Usage errors: exit 2, the argument, the value and the reason.
usage_error() {  # expected message, arguments...
  local want=$1 err code
  shift
  err=$("$demo" "$@" 2>&1 >/dev/null)
  code=$?
  [ "$code" -eq 2 ] || { echo "'$*' gave exit code $code, expected 2"; fail=1; }
  [ "$(head -n1 <<<"$err")" = "strata-demo: $want" ] || { echo "'$*' said: $err"; echo "  expected: $want"; fail=1; }
}
usage_error "--threads: 0 is out of range 1..64" --threads 0
usage_error "--threads: 65 is out of range 1..64" --threads 65
usage_error "--threads: 'abc' is not a whole number" --threads abc
usage_error "--threads: 'abc' is not a whole number" --threads=abc
usage_error "--threads needs a value (a count, 1..64)" --threads
usage_error "--requests: 'zero' is not a whole number" --requests zero
usage_error "--requests: 0 is out of range 1..100000000" --requests=0
usage_error "--rounds: 21 is out of range 1..20" --rounds 21
usage_error "unknown option '--bogus'" --bogus
usage_error "unexpected argument 'extra'" extra
usage_error "--workload: 'xml' is not one of json, words" --workload xml
usage_error "--backends: 'tcmalloc' is not one of strata,arena,new_delete,std_mono,sync_pool,mimalloc" \
  --backends strata,tcmalloc
usage_error "--quiet takes no value (got 'yes')" --quiet=yes

# --help and --version: stdout, exit 0; --threads=N is accepted.
out=$("$demo" --help 2>&1) || { echo "--help exited $?"; fail=1; }
check "$out" "usage: strata-demo"
check "$out" "--threads T"
out=$("$demo" --version 2>&1) || { echo "--version exited $?"; fail=1; }
[[ $out =~ ^strata-demo\ \(strata\ [0-9]+\.[0-9]+\.[0-9]+\)$ ]] || { echo "--version said: $out"; fail=1; }
"$demo" --threads=1 --requests=10 --backends=new_delete >/dev/null 2>&1 || { echo "--threads=1 failed"; fail=1; }

# Runtime errors: exit 1 with the reason.
err=$("$demo" --input /nonexistent/file 2>&1); code=$?
[ "$code" -eq 1 ] || { echo "unreadable file gave exit code $code, expected 1"; fail=1; }
check "$err" "strata-demo: cannot read /nonexistent/file: No such file or directory"
printf '{"batch":1}\n{"batch":\n' >"$tmp/bad.jsonl"
err=$("$demo" --input "$tmp/bad.jsonl" 2>&1); code=$?
[ "$code" -eq 1 ] || { echo "malformed JSON gave exit code $code, expected 1"; fail=1; }
check "$err" "bad.jsonl:2: not JSON at byte 10: unexpected end of the document"
err=$("$demo" --requests 10 --backends new_delete --json /nonexistent/dir/out.json 2>&1); code=$?
[ "$code" -eq 1 ] || { echo "unwritable --json gave exit code $code, expected 1"; fail=1; }
check "$err" "cannot write /nonexistent/dir/out.json"

[ "$fail" -eq 0 ] && echo "strata-demo checks passed"
exit "$fail"
