#!/usr/bin/env python3
"""Writes docs/benchmarks.md from Google Benchmark JSON runs.

Benchmarks are named <workload>/<shape>/<contender>[/real_time][/threads:N].
Contender "floor" is the bare structure behind the same virtual call, names
starting with "strata" are ours, and every other contender is a peer. Each
ratio is computed per repetition (contenders interleaved in the same
process run) and the median of those ratios is reported, so that machine
noise common to one repetition cancels out.

usage: report.py --out docs/benchmarks.md --plots docs/bench [--instructions instr.json] run.json...
(bench/run keeps its last runs in build-bench/results/, so the report can be remade without re-running.)
"""
import argparse
import collections
import datetime
import json
import os
import statistics
import subprocess

FLOOR = "floor"

# DESIGN.md targets: (description, group, contender, comparator, limit).
# comparator: "floor", "best_peer", a contender name, or "scaling" (group is
# the threads:1 group; the threads:2 group must be limit times as fast).
TARGETS = [
    ("chunk_provider: 64 KiB pair ≤ 1.5× floor", "chunk_pair/64KiB_align16", "strata", "floor", 1.5),
    ("chunk_provider: 64 KiB pair faster than every peer", "chunk_pair/64KiB_align16", "strata", "best_peer", 1.0),
    ("chunk_provider: 64 KiB aligned to 64 KiB ≤ 1.5× floor", "chunk_pair/64KiB_align64KiB", "strata", "floor", 1.5),
    ("chunk_provider: 64 KiB aligned to 64 KiB faster than every peer", "chunk_pair/64KiB_align64KiB", "strata",
     "best_peer", 1.0),
    ("chunk_provider: 1 MiB pair ≤ 1.5× floor", "chunk_pair/1MiB_align16", "strata", "floor", 1.5),
    ("chunk_provider: 1 MiB pair faster than every peer", "chunk_pair/1MiB_align16", "strata", "best_peer", 1.0),
    ("chunk_provider: 2 threads scale ≥ 1.8×", "chunk_pair_threads/64KiB/threads:1", "strata", "scaling", 1.8),
    ("monotonic_arena: request ≤ 1.1× floor", "per_request/2000x16-256B", "strata", "floor", 1.1),
    ("monotonic_arena: request faster than std monotonic with 512 KiB buffer", "per_request/2000x16-256B",
     "strata", "std_mono_512KiB_buffer", 1.0),
    ("monotonic_arena: pmr containers on real text ≤ 1.03× floor", "word_count/16KiB_text", "strata", "floor", 1.03),
    ("slab: 64 B pair ≤ 1.15× floor", "slab_pair/64B", "strata_slab", "floor", 1.15),
    ("slab: 64 B pair faster than every peer", "slab_pair/64B", "strata_slab", "best_peer", 1.0),
    ("extendable_slab: 64 B pair ≤ 1.15× floor", "slab_pair/64B", "strata_extendable_slab", "floor", 1.15),
    ("extendable_slab: 64 B pair faster than every peer", "slab_pair/64B", "strata_extendable_slab", "best_peer", 1.0),
    ("extendable_slab: 2 threads scale ≥ 1.8×", "slab_pair_threads/64B/threads:1", "strata_extendable_slab",
     "scaling", 1.8),
    ("slab: memory overhead ≤ 3 % (reserved / requested)", "slab_batch/64B_lifo", "strata_slab",
     "counter:overhead", 1.03),
    ("extendable_slab: memory overhead ≤ 3 % (reserved / requested)", "slab_batch/64B_lifo",
     "strata_extendable_slab", "counter:overhead", 1.03),
    ("arena: mixed 8–512 B, 1 thread ≤ 1.5× floor", "mixed/8-512B_live10000", "strata", "floor", 1.5),
    ("arena: mixed 8–512 B faster than mimalloc direct", "mixed/8-512B_live10000", "strata", "mimalloc_direct", 1.0),
    ("arena: 2 threads scale ≥ 1.8×", "mixed_threads/8-512B_live10000/threads:1", "strata", "scaling", 1.8),
    ("arena: producer/consumer ≤ 1.2× local+remote floor", "producer_consumer/8-512B/threads:2", "strata", "floor",
     1.2),
]


def is_ours(contender):
    return contender.startswith("strata")


def load(paths):
    """Returns groups: {group: {contender: {repetition: ns}}} and counters and context."""
    groups = collections.OrderedDict()
    counters = collections.defaultdict(dict)
    context = {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        context = data.get("context", context)
        for b in data["benchmarks"]:
            if b.get("run_type") != "iteration" or b.get("error_occurred"):
                continue
            parts = b["run_name"].split("/")
            if len(parts) < 3:
                raise SystemExit(f"report.py: {b['run_name']} is not named <workload>/<shape>/<contender>")
            threads = [p for p in parts[3:] if p.startswith("threads:")]
            group = "/".join(parts[:2] + threads)
            contender = parts[2]
            scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]
            groups.setdefault(group, {}).setdefault(contender, {})[b.get("repetition_index", 0)] = (
                b["real_time"] * scale)
            known = {"name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
                     "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit",
                     "items_per_second", "bytes_per_second", "label", "aggregate_name", "aggregate_unit"}
            for key, value in b.items():
                if key not in known and isinstance(value, (int, float)):
                    counters[(group, contender)][key] = value
    return groups, counters, context


def median(values):
    return statistics.median(values) if values else None


def ratio(group, a, b):
    """Median over repetitions of a/b, using only repetitions both ran in."""
    common = sorted(set(group[a]) & set(group[b]))
    return median([group[a][r] / group[b][r] for r in common]) if common else None


def best_peer(group):
    peers = [c for c in group if c != FLOOR and not is_ours(c)]
    return min(peers, key=lambda c: median(list(group[c].values()))) if peers else None


def fmt_time(ns):
    if ns is None:
        return "–"
    return f"{ns / 1e3:.2f} µs" if ns >= 1e3 else f"{ns:.2f} ns"


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}"


def evaluate(groups, counters):
    rows = []
    for description, group_name, contender, comparator, limit in TARGETS:
        group = groups.get(group_name)
        measured = None
        if comparator.startswith("counter:"):
            measured = counters.get((group_name, contender), {}).get(comparator.split(":", 1)[1])
        elif group is not None and contender in group:
            if comparator == "scaling":
                two = groups.get(group_name.replace("threads:1", "threads:2"), {})
                if contender in two:
                    measured = median(list(group[contender].values())) / median(list(two[contender].values()))
            else:
                other = best_peer(group) if comparator == "best_peer" else comparator
                if other in group:
                    measured = ratio(group, contender, other)
        if measured is None:
            verdict = "not measured"
        elif comparator == "scaling":
            verdict = "met" if measured >= limit else "**not met**"
        else:
            verdict = "met" if measured <= limit else "**not met**"
        rows.append((description, measured, verdict, comparator))
    return rows


def plot(group_name, group, plots_dir):
    """Draws a horizontal bar chart of medians with gnuplot; returns the file name or None."""
    if not plots_dir:
        return None
    name = group_name.replace("/", "_").replace(":", "") + ".png"
    contenders = sorted(group, key=lambda c: median(list(group[c].values())))
    data = "\n".join(f'"{c}" {median(list(group[c].values())):.3f}' for c in contenders)
    script = f"""
set terminal pngcairo size 640,{120 + 28 * len(contenders)} font ",10"
set output "{os.path.join(plots_dir, name)}"
set title "{group_name} (median, lower is better)" noenhanced
set style fill solid 0.8
set boxwidth 0.6
set yrange [-0.5:{len(contenders) - 0.5}]
set xlabel "ns per iteration (log scale)"
set logscale x
set ytics noenhanced
unset key
plot $data using 2:0:(0):2:($0-0.3):($0+0.3):ytic(1) with boxxyerror
"""
    try:
        subprocess.run(["gnuplot"], input="$data << EOD\n" + data + "\nEOD\n" + script, text=True,
                       check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return name


def write(out, groups, counters, context, instructions, plots_dir, commands):
    lines = []
    emit = lines.append
    when = context.get("date", datetime.datetime.now().isoformat())[:10]
    emit("# Benchmarks\n")
    emit("Generated by `bench/run`; do not edit by hand. Every figure comes from `bench/`, and every ratio")
    emit("compares contenders measured in the same process run, repetition by repetition (random")
    emit("interleaving), because these machines are shared and noisy. \"floor\" is the bare structure (chunk")
    emit("stack, bump pointer, free list) behind the same `std::pmr::memory_resource` virtual call, built so it")
    emit("cannot be devirtualized; \"best peer\" is the fastest other allocator in the run. Peers are loaded")
    emit("with `dlopen(RTLD_LOCAL)` so none replaces malloc for the process (jemalloc cannot be loaded that")
    emit("way and is absent); `scripts/bootstrap --bench` installs them.\n")
    emit(f"Machine: {context.get('num_cpus', '?')} CPUs at {context.get('mhz_per_cpu', '?')} MHz "
         f"(host `{context.get('host_name', '?')}`), measured {when}.\n")
    emit("Reproduce:\n\n```sh\n" + "\n".join(commands) + "\n```\n")
    emit("## DESIGN.md targets\n")
    emit("| target | measured | verdict |")
    emit("|---|---|---|")
    for description, measured, verdict, comparator in evaluate(groups, counters):
        if measured is None:
            shown = "–"
        elif comparator == "scaling":
            shown = f"{measured:.2f}× the 1-thread throughput"
        elif comparator.startswith("counter:"):
            shown = f"{measured:.4f}"
        else:
            shown = f"{measured:.2f}× {'best peer' if comparator == 'best_peer' else comparator}"
        emit(f"| {description} | {shown} | {verdict} |")
    emit("")
    emit("## Results\n")
    for group_name, group in groups.items():
        emit(f"### {group_name}\n")
        picture = plot(group_name, group, plots_dir)
        if picture:
            emit(f"![{group_name}](bench/{picture})\n")
        peer = best_peer(group)
        has_instr = any((group_name, c) in instructions for c in group)
        header = "| contender | median | min–max | × floor | × best peer |"
        if has_instr:
            header += " instructions/op |"
        emit(header)
        emit("|---" * (header.count("|") - 1) + "|")
        for c in sorted(group, key=lambda c: median(list(group[c].values()))):
            values = list(group[c].values())
            row = (f"| {c} | {fmt_time(median(values))} | {fmt_time(min(values))}–{fmt_time(max(values))} | "
                   f"{fmt_ratio(ratio(group, c, FLOOR) if FLOOR in group else None)} | "
                   f"{fmt_ratio(ratio(group, c, peer) if peer else None)} |")
            if has_instr:
                count = instructions.get((group_name, c))
                row += f" {count:.1f} |" if count is not None else " – |"
            emit(row)
        extra = {c: counters.get((group_name, c)) for c in group if counters.get((group_name, c))}
        if extra:
            emit("")
            for c, values in extra.items():
                emit(f"- {c}: " + ", ".join(f"{k} = {v:.4g}" for k, v in sorted(values.items())))
        emit("")
    with open(out, "w") as f:
        f.write("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--plots", default="")
    parser.add_argument("--instructions", default="")
    parser.add_argument("--command", action="append", default=[])
    parser.add_argument("runs", nargs="+")
    args = parser.parse_args()
    groups, counters, context = load(args.runs)
    instructions = {}
    if args.instructions and os.path.exists(args.instructions):
        with open(args.instructions) as f:
            for entry in json.load(f):
                instructions[(entry["group"], entry["contender"])] = entry["per_op"]
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
    write(args.out, groups, counters, context, instructions, args.plots, args.command or ["bench/run"])


if __name__ == "__main__":
    main()
