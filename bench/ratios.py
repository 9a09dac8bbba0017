#!/usr/bin/env python3
"""Turns Google Benchmark JSON (with repetitions) into markdown tables of ratios.

Benchmarks are named <workload>/<shape>/<contender>[/real_time][/threads:N].
For each workload and shape it prints the median of each contender, the
min-max over repetitions, and the ratio to the floor and to the best peer,
all from the same run. Usage: python3 bench/ratios.py out.json [more.json ...]
"""
import collections
import json
import statistics
import sys

STRATA = "strata"
FLOOR = "floor"


def load(paths):
    times = collections.defaultdict(list)  # (group, contender) -> [ns per iteration]
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        for b in data["benchmarks"]:
            if b.get("run_type") != "iteration" or b.get("error_occurred"):
                continue
            parts = b["run_name"].split("/")
            suffix = [p for p in parts[3:] if p.startswith("threads:")]
            group = "/".join(parts[:2] + suffix)
            scale = {"ns": 1, "us": 1e3, "ms": 1e6}[b["time_unit"]]
            times[(group, parts[2])].append(b["real_time"] * scale)
    return times


def fmt(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.2f} ns"


def main(paths):
    times = load(paths)
    groups = collections.OrderedDict()
    for (group, contender), values in times.items():
        groups.setdefault(group, {})[contender] = values
    for group, contenders in groups.items():
        medians = {c: statistics.median(v) for c, v in contenders.items()}
        floor = medians.get(FLOOR)
        peers = {c: m for c, m in medians.items() if c != FLOOR and not c.startswith(STRATA)}  # "strata*" are ours
        best_peer = min(peers.values()) if peers else None
        print(f"\n**{group}**\n")
        print("| contender | median | min–max | × floor | × best peer |")
        print("|---|---|---|---|---|")
        for c in sorted(medians, key=medians.get):
            m = medians[c]
            lo, hi = min(contenders[c]), max(contenders[c])
            vs_floor = f"{m / floor:.2f}" if floor else "–"
            vs_peer = f"{m / best_peer:.2f}" if best_peer else "–"
            print(f"| {c} | {fmt(m)} | {fmt(lo)}–{fmt(hi)} | {vs_floor} | {vs_peer} |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: ratios.py out.json [more.json ...]")
    main(sys.argv[1:])
