#!/usr/bin/env python3
"""Writes docs/benchmarks.md from Google Benchmark JSON runs.

Benchmarks are named <workload>/<shape>/<contender>[/real_time][/threads:N].
Contender "floor" is the bare structure behind the same virtual call, names
starting with "strata" are ours, and every other contender is a peer. Ours
are printed as their class (strata::arena, ...; see display()), while the
raw names stay what bench/run, instruction_keys.txt and TARGETS match. Each
ratio is computed per repetition (contenders interleaved in the same
process run) and the median of those ratios is reported, so that machine
noise common to one repetition cancels out.

Near the top, a "which resource wins" table names, per workload family
(WINNER_FAMILIES, and phase_shift's footprint when given), the winner, the
best strata resource and their ratios. Each group's plot draws exactly the
medians of its table, in its order (plot_rows).

Benchmarks named hardening/<resource>/<workload>/<mode> go to a "Hardening
cost" table instead: one row per mode other than "default" (hardened, or
slab's unchecked), with the ratio mode/default per repetition.
Runs given with --preloaded NAME=run.json come from a separate process in
which NAME replaced malloc (LD_PRELOAD): their new_delete contender is shown
as "NAME (LD_PRELOAD, via new_delete)" with its ratio against the floor of
that same process. The label and counters each benchmark sets in its
untimed validation pass carry misaligned blocks and the memory footprint.

The phase_shift workload (bench/phase_shift_bench, footprint over time; not
a Google Benchmark run) is given with --phase-shift run.json: its section
(plot and table) goes between the bench:phase_shift markers at the end of
the report. With --update docs/benchmarks.md, only that section of an
existing report is replaced (bench/run --phase-shift), and no runs are needed.

usage: report.py --out docs/benchmarks.md --plots docs/bench [--instructions instr.json]
                 [--preloaded jemalloc=run.json ...] [--readme README.md]
                 [--phase-shift phase_shift.json] run.json...
       report.py --phase-shift phase_shift.json --update docs/benchmarks.md [--plots docs/bench]
(bench/run keeps its last runs in build-bench/results/, so the report can be remade without re-running.)
"""
import argparse
import collections
import datetime
import json
import math
import os
import re
import statistics
import subprocess

FLOOR = "floor"
HARDENING = "hardening"
# The modes bench/hardening_bench.cpp runs, and the options each one sets.
HARDENING_MODES = {"default": "defaults", "hardened": "hardened = true",
                   "unchecked": "detect_double_free = false"}
# monotonic_arena has no hardened field: its checked mode is the owner-thread check.
HARDENING_OPTION = {("monotonic_arena", "hardened"): "check_owner_thread = true"}
# Every resource with a checked mode (docs/hardening.md): one the run lacks gets a "not measured" row.
CHECKED_RESOURCES = ["slab", "extendable_slab", "arena", "chunk_provider", "monotonic_arena"]
# Counters the validation pass sets; shown in their own columns, not listed.
VALIDATION_COUNTERS = {"checked", "misaligned", "mem_footprint", "mem_requested"}
README_START = "<!-- bench:headline:start -->"
README_END = "<!-- bench:headline:end -->"
PHASE_SHIFT_START = "<!-- bench:phase_shift:start -->"
PHASE_SHIFT_END = "<!-- bench:phase_shift:end -->"


def preloaded_name(name):
    return f"{name} (LD_PRELOAD, via new_delete)"


# The strata class a contender named just "strata" measures, by workload (the
# group name's first part). Rows keep their raw names: bench/run,
# instruction_keys.txt and TARGETS match on those.
STRATA_CLASS = {"chunk_pair": "strata::chunk_provider", "chunk_pair_threads": "strata::chunk_provider",
                "per_request": "strata::monotonic_arena", "word_count": "strata::monotonic_arena",
                "mixed": "strata::arena", "mixed_threads": "strata::arena", "producer_consumer": "strata::arena"}
# strata contenders that are more than a class; any other strata_<class> is strata::<class>.
STRATA_NAMES = {"strata_typed": "strata::allocator<T, monotonic_arena>",
                "strata_slab_typed": "strata::allocator<T, slab>",
                "strata_fresh_arena": "strata::monotonic_arena (new per request)"}


def display(group_name, contender):
    """How a contender is printed: a strata contender as its class, any other as named."""
    if contender == "strata":
        return STRATA_CLASS.get(group_name.split("/")[0], contender)
    if contender in STRATA_NAMES:
        return STRATA_NAMES[contender]
    if contender.startswith("strata_"):
        return "strata::" + contender[len("strata_"):]
    return contender


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
    # The typed path (issue 15): strata::allocator against the floor called
    # through its own type, never against a peer.
    ("slab typed path: 64 B pair ≤ 1.2× inlined floor", "slab_pair/64B", "strata_slab_typed", "floor_inlined", 1.2),
    ("monotonic_arena typed path: request ≤ 1.2× inlined floor", "per_request/2000x16-256B", "strata_typed",
     "floor_inlined", 1.2),
    ("arena: internal waste above 128 B ≤ 12.5 % (worst block / request)", "class_spacing/8B-256KiB", "strata",
     "counter:worst_above_128B", 1.125),
    ("arena: internal waste 64–512 B ≤ 12.5 % (worst block / request; docs/design/arena.md says why not)",
     "class_spacing/8B-256KiB", "strata", "counter:worst_64_512B", 1.125),
    ("arena: mixed 8–512 B, 1 thread ≤ 1.5× floor", "mixed/8-512B_live10000", "strata", "floor", 1.5),
    ("arena: mixed 8–512 B faster than mimalloc direct", "mixed/8-512B_live10000", "strata", "mimalloc_direct", 1.0),
    ("arena: 2 threads scale ≥ 1.8×", "mixed_threads/8-512B_live10000/threads:1", "strata", "scaling", 1.8),
    ("arena: producer/consumer ≤ 1.2× local+remote floor", "producer_consumer/8-512B/threads:2", "strata", "floor",
     1.2),
]


def is_ours(contender):
    return contender.startswith("strata")


class Results:
    """Everything read from the runs."""

    def __init__(self):
        self.groups = collections.OrderedDict()  # {group: {contender: {repetition: ns}}}
        self.counters = collections.defaultdict(dict)  # {(group, contender): {name: value}}
        self.labels = {}  # {(group, contender): {key: value}} from "key=value;key=value"
        self.own_floor = {}  # {(group, contender): {repetition: ns}} for contenders of another process
        self.hardening = collections.OrderedDict()  # {(resource, workload): {variant: {repetition: ns}}}
        self.context = {}
        self.preloaded = []  # display names of contenders from preloaded runs
        self.loads = []  # 1-minute load average at the start of each main run

    def load_note(self):
        """The load the runs saw, and a warning when other work shared the CPUs."""
        if not self.loads:
            return ""
        low, high = min(self.loads), max(self.loads)
        shown = f"{low:.1f}" if round(low, 1) == round(high, 1) else f"{low:.1f}–{high:.1f}"
        note = f"1-minute load average {shown} when the runs started"
        cpus = self.context.get("num_cpus")
        if cpus and high >= cpus:
            note += (f", on {cpus} CPUs: other work was running, so absolute times are inflated and "
                     "thread-scaling figures mean little")
        return note


def load(paths, preloaded=()):
    """Reads Google Benchmark JSON runs; preloaded is a list of (name, path)."""
    results = Results()
    for path, preload in [(p, None) for p in paths] + [(p, n) for n, p in preloaded]:
        with open(path) as f:
            data = json.load(f)
        if preload is None:
            results.context = data.get("context", results.context)
            if data.get("context", {}).get("load_avg"):
                results.loads.append(data["context"]["load_avg"][0])
        floors = {}  # of this preloaded process
        rows = []
        for b in data["benchmarks"]:
            if b.get("run_type") != "iteration" or b.get("error_occurred"):
                continue
            parts = b["run_name"].split("/")
            if len(parts) < 3:
                raise SystemExit(f"report.py: {b['run_name']} is not named <workload>/<shape>/<contender>")
            scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b["time_unit"]]
            ns = b["real_time"] * scale
            repetition = b.get("repetition_index", 0)
            threads = [p for p in parts[3:] if p.startswith("threads:")]
            if parts[0] == HARDENING:
                # hardening/<resource>/<workload>/<mode>[/threads:N][/real_time]...
                named = [p for p in parts if not re.match(r"(threads|iterations|repeats|min_time):|real_time$", p)]
                if len(named) < 4 or named[-1] not in HARDENING_MODES:
                    raise SystemExit(f"report.py: {b['run_name']} is not named "
                                     f"hardening/<resource>/<workload>/{{{','.join(HARDENING_MODES)}}}")
                if preload is None:
                    key = (named[1], "/".join(named[2:-1] + threads))
                    results.hardening.setdefault(key, {}).setdefault(named[-1], {})[repetition] = ns
                continue
            group = "/".join(parts[:2] + threads)
            contender = parts[2]
            if preload is not None:
                if contender == FLOOR:
                    floors.setdefault(group, {})[repetition] = ns
                if contender != "new_delete":
                    continue
                contender = preloaded_name(preload)
            rows.append((group, contender, repetition, ns, b))
        for group, contender, repetition, ns, b in rows:
            results.groups.setdefault(group, {}).setdefault(contender, {})[repetition] = ns
            if preload is not None:
                if contender not in results.preloaded:
                    results.preloaded.append(contender)
                if group in floors:
                    results.own_floor[(group, contender)] = floors[group]
            known = {"name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
                     "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit",
                     "items_per_second", "bytes_per_second", "label", "aggregate_name", "aggregate_unit"}
            for key, value in b.items():
                if key not in known and isinstance(value, (int, float)):
                    if key in ("mem_footprint", "mem_requested"):
                        results.counters[(group, contender)].setdefault(key + "_all", []).append(value)
                    results.counters[(group, contender)][key] = value
            for item in filter(None, b.get("label", "").split(";")):
                key, _, value = item.partition("=")
                results.labels.setdefault((group, contender), {})[key] = value
    return results


def median(values):
    return statistics.median(values) if values else None


def ratio(group, a, b):
    """Median over repetitions of a/b, using only repetitions both ran in."""
    common = sorted(set(group[a]) & set(group[b]))
    return median([group[a][r] / group[b][r] for r in common]) if common else None


def best_peer(group, excluded=()):
    """The fastest peer measured in the same process (excluded: contenders of other processes)."""
    peers = [c for c in group if not c.startswith(FLOOR) and not is_ours(c) and c not in excluded]
    return min(peers, key=lambda c: median(list(group[c].values()))) if peers else None


def fmt_time(ns):
    if ns is None:
        return "–"
    return f"{ns / 1e3:.2f} µs" if ns >= 1e3 else f"{ns:.2f} ns"


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}"


def evaluate(results):
    """Rows (description, measured, verdict, comparator, shown) for every DESIGN.md target."""
    groups, counters = results.groups, results.counters
    rows = []
    for description, group_name, contender, comparator, limit in TARGETS:
        group = groups.get(group_name)
        measured = None
        other = None
        if comparator.startswith("counter:"):
            measured = counters.get((group_name, contender), {}).get(comparator.split(":", 1)[1])
        elif group is not None and contender in group:
            if comparator == "scaling":
                two = groups.get(group_name.replace("threads:1", "threads:2"), {})
                if contender in two:
                    measured = median(list(group[contender].values())) / median(list(two[contender].values()))
            else:
                other = best_peer(group, results.preloaded) if comparator == "best_peer" else comparator
                if other in group:
                    measured = ratio(group, contender, other)
        if measured is None:
            verdict = "not measured"
        elif comparator == "scaling":
            verdict = "met" if measured >= limit else "**not met**"
        else:
            verdict = "met" if measured <= limit else "**not met**"
        shown_other = display(group_name, other) if other else other
        rows.append((description, measured, verdict, comparator, shown_measure(measured, comparator, limit,
                                                                                shown_other)))
    return rows


def shown_measure(measured, comparator, limit, other=None):
    if measured is None:
        return "–"
    # one more digit when two would hide which side of the limit the figure is on
    digits = 2 if f"{measured:.2f}" != f"{limit:.2f}" or measured == limit else 3
    if comparator == "scaling":
        return f"{measured:.{digits}f}× the 1-thread throughput"
    if comparator.startswith("counter:"):
        return f"{measured:.4f}"
    if comparator == "best_peer":
        return f"{measured:.{digits}f}× best peer ({other})"
    return f"{measured:.{digits}f}× {comparator}"


# The one-glance table's workload families, in DESIGN.md's order: (family, group).
WINNER_FAMILIES = [
    ("fixed 64 B allocate+free pair", "slab_pair/64B"),
    ("per request: 2,000 allocs of 16–256 B, then reset", "per_request/2000x16-256B"),
    ("mixed 8–512 B, live set 10,000, 1 thread", "mixed/8-512B_live10000"),
    ("the same, 2 threads each on its own objects", "mixed_threads/8-512B_live10000/threads:2"),
    ("producer allocates, consumer frees", "producer_consumer/8-512B/threads:2"),
    ("64 KiB chunk acquire+release", "chunk_pair/64KiB_align16"),
    ("64 KiB chunk aligned to 64 KiB", "chunk_pair/64KiB_align64KiB"),
    ("1 MiB chunk acquire+release", "chunk_pair/1MiB_align16"),
    ("pmr containers on real text", "word_count/16KiB_text"),
]


def winners(results):
    """Per family measured: (family, group, winner, best strata contender or None, best peer or None,
    best strata / best peer). The best of each side is its fastest median; between them the per-repetition
    ratio decides, like every ratio of the report, so the winner is never a contender its own row shows
    slower. Floors are the yardstick, not contenders; a † or misaligned contender never wins."""
    rows = []
    for family, group_name in WINNER_FAMILIES:
        group = results.groups.get(group_name)
        if not group:
            continue
        excluded = list(results.preloaded) + [c for c in group if misaligned(results, group_name, c)]
        peer = best_peer(group, excluded)
        ours = next((c for c in by_median(group) if is_ours(c) and c not in excluded), None)
        versus = ratio(group, ours, peer) if ours and peer else None
        winner = ours if peer is None or (versus is not None and versus < 1) else peer
        if winner is not None:
            rows.append((family, group_name, winner, ours, peer, versus))
    return rows


def phase_shift_winner(rows):
    """(winner, best strata row, best peer row) by peak footprint among the phase_shift contenders
    that ran every phase to the end without a failed allocation, or None."""
    complete = sorted((r for r in rows if r["status"] == "ok" and not r["failed"] and len(r["phases"]) == 4
                       and r.get("peak")), key=lambda r: r["peak"])
    if not complete:
        return None
    ours = [r for r in complete if r["label"].startswith("strata")]
    peers = [r for r in complete if not r["label"].startswith("strata")]
    return complete[0], ours[0] if ours else None, peers[0] if peers else None


def peak_over_live(row):
    """A phase_shift contender and its peak footprint over the peak live bytes."""
    return f"{row['label']} ({row['peak'] / row['peak_live']:.2f}× live)"


def winner_table(results, phase_shift=None):
    """The "which resource wins" table, as lines; empty when no family was measured."""
    rows = winners(results)
    shift = phase_shift_winner(phase_shift_rows(phase_shift)) if phase_shift else None
    if not rows and not shift:
        return []
    lines = ["## Which resource wins for which workload\n",
             "For each workload family, from this run: the fastest strata resource and the fastest peer (by",
             "median), and the winner between them, decided by the strata resource's ratio to that peer,",
             "repetition by repetition (× best peer below 1: strata wins), so that it never contradicts its",
             "ratios when two contenders are within the noise. Floors are the yardstick, not contenders; a †",
             "(other process) or misaligned contender never wins. Typed and direct contenders",
             "(`strata::allocator`, `*_typed`, `*_direct`) skip the virtual call the floor pays, so they can",
             "beat it. Each workload has its section under Results.\n",
             "| workload | winner | winner × floor | best strata resource | strata × floor | strata × best peer |",
             "|---|---|---|---|---|---|"]
    for family, group_name, winner, ours, peer, versus in rows:
        strata = ("–", "–", "–") if ours is None else (
            display(group_name, ours), fmt_ratio(floor_ratio(results, group_name, ours)), fmt_ratio(versus))
        lines.append(f"| {family} (`{group_name}`) | {display(group_name, winner)} | "
                     f"{fmt_ratio(floor_ratio(results, group_name, winner))} | {' | '.join(strata)} |")
    if shift:
        winner, ours, peer = shift
        lines.append("| footprint after a phase shift (phase_shift: peak footprint / peak live; no floor) | "
                     f"{peak_over_live(winner)} | – | {peak_over_live(ours) if ours else '–'} | – | "
                     f"{fmt_ratio(ours['peak'] / peer['peak']) if ours and peer else '–'} |")
    return lines + [""]


def floor_ratio(results, group_name, contender):
    """contender / floor per repetition; a contender of another process uses that process's floor."""
    group = results.groups[group_name]
    own = results.own_floor.get((group_name, contender))
    if own is not None:
        return ratio({"a": group[contender], "b": own}, "a", "b")
    if contender in results.preloaded or FLOOR not in group:
        return None
    return ratio(group, contender, FLOOR)


def memory_overhead(results, group_name, contender):
    """(median of footprint/requested - 1, method) or None."""
    values = results.counters.get((group_name, contender), {})
    footprints = values.get("mem_footprint_all")
    requested = values.get("mem_requested_all")
    if not footprints or not requested:
        return None
    method = results.labels.get((group_name, contender), {}).get("memory", "?")
    return median([f / r - 1 for f, r in zip(footprints, requested) if r > 0]), method


def misaligned(results, group_name, contender):
    """A description of the misaligned blocks a contender returned, or None."""
    count = results.counters.get((group_name, contender), {}).get("misaligned", 0)
    if not count:
        return None
    checked = results.counters[(group_name, contender)].get("checked", 0)
    first = results.labels.get((group_name, contender), {}).get("misaligned", "")
    match = re.fullmatch(r"(\d+|\?)B/align(\d+)@(\d+)", first)
    size = "a block" if match and match.group(1) == "?" else f"{match.group(1)} B" if match else ""
    example = (f"; first: {size} aligned to {match.group(2)} came back at an address ≡ "
               f"{match.group(3)} mod {match.group(2)}") if match else ""
    of = f" of {int(checked):,} checked" if checked else ""
    return f"{int(count):,}{of} blocks misaligned{example}"


def hardening_rows(results):
    """One row per resource, workload and mode other than default: (resource, workload, mode's options,
    default median, mode's median, median of per-repetition ratios mode/default, min, max)."""
    rows = []
    for (resource, workload), variants in results.hardening.items():
        default = variants.get("default", {})
        for mode in HARDENING_MODES:
            checked = variants.get(mode)
            if mode == "default" or checked is None:
                continue
            ratios = [checked[r] / default[r] for r in sorted(set(default) & set(checked))]
            rows.append((resource, workload, HARDENING_OPTION.get((resource, mode), HARDENING_MODES[mode]),
                         median(list(default.values())), median(list(checked.values())), median(ratios),
                         min(ratios) if ratios else None, max(ratios) if ratios else None))
    # The run's order is shuffled by random interleaving: order by resource, then workload.
    known = {r: i for i, r in enumerate(CHECKED_RESOURCES)}
    return sorted(rows, key=lambda row: (known.get(row[0], len(known)), row[0], row[1]))


def by_median(group):
    """The group's contenders, fastest first: the order of its table and its plot."""
    return sorted(group, key=lambda c: median(list(group[c].values())))


def contender_label(results, group_name, contender):
    """A contender's name in its group's table and plot: † from a preloaded process, ⚠ if misaligned."""
    label = display(group_name, contender)
    if contender in results.preloaded:
        label += " †"
    if misaligned(results, group_name, contender):
        label += " ⚠ misaligned"
    return label


def plot_rows(results, group_name):
    """(label, median ns) per contender in table order: the bars plot() draws."""
    group = results.groups[group_name]
    return [(contender_label(results, group_name, c), median(list(group[c].values()))) for c in by_median(group)]


def wrap_name(name, width):
    """A group name in lines of at most width characters, broken after a "/" where one fits, else
    after "_" or "-", else anywhere."""
    lines = [""]
    for part in re.findall(r"[^/]+/?", name):
        pieces = [part] if len(part) <= width else re.findall(r"[^_-]+[_-]?", part)
        for piece in pieces:
            for cut in range(0, len(piece), width):
                chunk = piece[cut:cut + width]
                if lines[-1] and len(lines[-1]) + len(chunk) > width:
                    lines.append("")
                lines[-1] += chunk
    return lines


def gnuplot(script):
    """Runs a gnuplot script; False if gnuplot is missing or fails (the report is written without the plot)."""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return True


def plot(group_name, rows, plots_dir):
    """Draws rows (label, median ns) as horizontal bars, in the order given from the top, with gnuplot;
    returns the file name or None."""
    if not plots_dir or not rows:
        return None
    name = group_name.replace("/", "_").replace(":", "") + ".png"
    # The median printed at each bar's end is the table's, so the log-scale bar cannot mislead.
    data = "\n".join(f'"{label}" {ns!r} "{fmt_time(ns)}"' for label, ns in rows)
    # The title is centred on the canvas (a gnuplot title centres on the plot area, which
    # long contender names push right and off the canvas), wrapped to fit.
    title = "\\n".join(wrap_name(group_name, 60) + ["median per iteration, lower is better"])
    title_lines = title.count("\\n") + 1
    low = 10 ** math.floor(math.log10(max(min(ns for _, ns in rows), 1e-3)))  # a decade below the fastest
    script = f"""$data << EOD
{data}
EOD
set terminal pngcairo size 720,{130 + 28 * len(rows)} font ",10"
set output "{os.path.join(plots_dir, name)}"
set tmargin {2 + title_lines}
set label 1 "{title}" at screen 0.5, screen 1 center offset 0,-1 front noenhanced
set style fill solid 0.8
set yrange [{len(rows) - 0.5}:-0.5]
set xrange [{low!r}:{max(ns for _, ns in rows) * 4!r}]
set xlabel "ns per iteration (log scale)"
set logscale x
set ytics noenhanced
unset key
plot $data using 2:0:({low!r}):2:($0-0.3):($0+0.3):ytic(1) with boxxyerror, \\
     $data using 2:0:3 with labels left offset 0.5,0 noenhanced
"""
    return name if gnuplot(script) else None


def write(out, results, instructions, plots_dir, commands, phase_shift=None):
    groups, counters, context = results.groups, results.counters, results.context
    lines = []
    emit = lines.append
    when = context.get("date", datetime.datetime.now().isoformat())[:10]
    emit("# Benchmarks\n")
    emit("Generated by `bench/run`; do not edit by hand, except between the bench:notes markers (kept")
    emit("verbatim by every run, for before/after comparisons one run cannot make). Every figure comes from `bench/`, and every ratio")
    emit("compares contenders measured in the same process run, repetition by repetition (random")
    emit("interleaving), because these machines are shared and noisy. \"floor\" is the bare structure (chunk")
    emit("stack, bump pointer, free list) behind the same `std::pmr::memory_resource` virtual call, built so it")
    emit("cannot be devirtualized; \"floor_inlined\" (64 B pair) is the same free list called through its own")
    emit("type, so the compiler inlines it: the price of the virtual call itself, shown for reference and")
    emit("never a peer. \"best peer\" is the fastest other allocator in the same process run.")
    emit("Peers are loaded with `dlopen(RTLD_LOCAL)` so none replaces malloc for the process, except")
    emit("foonathan-memory and Boost, which are linked (they replace nothing); `scripts/bootstrap --bench`")
    emit("installs them.\n")
    emit("jemalloc cannot be loaded with `dlopen` (it needs static TLS), so `bench/run` runs the benchmarks a")
    emit("second time with jemalloc in `LD_PRELOAD`, where `new_delete` reaches jemalloc through")
    emit("`operator new`; those rows are marked † and named \"jemalloc (LD_PRELOAD, via new_delete)\". A ratio")
    emit("across two processes is weaker than one within a run, so a † row's × floor is against the floor")
    emit("measured in that same preloaded process, it has no × best peer, and it never counts as the best")
    emit("peer of a DESIGN.md target.\n")
    emit("Every block a contender returns in the untimed validation pass before (or after) the timed loop is")
    emit("written over its whole size and checked for the requested alignment. A contender that returns a")
    emit("misaligned block is still measured, and marked ⚠ with a note saying which size and alignment")
    emit("came back misaligned.\n")
    emit("Memory: in the same untimed pass, at the workload's peak (a batch live, the mixed live set after")
    emit("one pass of the sequence, the end of a request), the contender's footprint is compared with the")
    emit("bytes the workload has requested: overhead = footprint / requested − 1. How the footprint is read")
    emit("(column \"method\"):\n")
    emit("- *stats*: the strata resource's own `bytes_reserved` (everything it took from upstream);")
    emit("- *carved*: bytes carved from a pre-reserved region (the floors; `arena`, whose region is reserved")
    emit("  whole at construction, counts the region less what was never carved, so free blocks held in")
    emit("  thread caches count as used);")
    emit("- *upstream*: a counting upstream (or block allocator) under the resource — std pools and")
    emit("  monotonic resources, boost::pool, foonathan-memory; *buffer + upstream* adds the caller's buffer;")
    emit("- *usable size*: for malloc-style peers, which share the process and keep no per-workload count,")
    emit("  the sum over the live blocks of their usable size (plus glibc's 8-byte chunk header). It shows")
    emit("  size-class rounding and headers but not page-level fragmentation, allocator metadata or memory")
    emit("  kept in caches, so it is a lower bound; process-wide figures (RSS, `mallinfo2`, mimalloc's")
    emit("  commit) were not used because they read near zero once an allocator reuses memory it kept from")
    emit("  an earlier benchmark in the same process.\n")
    emit("Workloads without a live set (allocate+free pairs, threads, word counts) have no memory figure.")
    emit("A resource that reserves its capacity up front shows it all: `slab` (4,096 slots) and foonathan's")
    emit("`memory_pool` (a first block of 4,096 nodes) with a batch of 1,000 blocks live; the DESIGN.md slab")
    emit("overhead targets are per slot (the `overhead` counter: bytes reserved / capacity in bytes).\n")
    load = results.load_note()
    emit(f"Machine: {context.get('num_cpus', '?')} CPUs at {context.get('mhz_per_cpu', '?')} MHz "
         f"(host `{context.get('host_name', '?')}`), measured {when}" + (f"; {load}" if load else "") + ".\n")
    emit("Reproduce:\n\n```sh\n" + "\n".join(commands) + "\n```\n")
    # Before the targets: it answers what a reader comes for (which resource to pick for a
    # workload); the targets table answers whether strata keeps DESIGN.md's contract.
    lines.extend(winner_table(results, phase_shift))
    emit("## DESIGN.md targets\n")
    emit("| target | measured | verdict |")
    emit("|---|---|---|")
    for description, measured, verdict, comparator, shown in evaluate(results):
        emit(f"| {description} | {shown} | {verdict} |")
    emit("")
    hardening = hardening_rows(results)
    if hardening:
        emit("## Hardening cost\n")
        emit("Each resource with a checked mode (`bench/hardening_bench.cpp`), with its default options and with")
        emit("the mode's option set, on the same workload in the same process run; the ratio is mode / default")
        emit("per repetition, median (min–max). `default` is the options' defaults with the checks forced off")
        emit("(slab's default `detect_double_free = true` stays on: its `detect_double_free = false` row shows")
        emit("what that check costs). docs/hardening.md says what each mode checks.\n")
        emit("| resource | workload | default median | checked mode | its median | mode / default |")
        emit("|---|---|---|---|---|---|")
        for resource, workload, mode, default, checked, r, low, high in hardening:
            spread = f" ({low:.2f}–{high:.2f})" if low is not None and f"{low:.2f}" != f"{high:.2f}" else ""
            emit(f"| strata::{resource} | {workload} | {fmt_time(default)} | `{mode}` | {fmt_time(checked)} | "
                 f"{fmt_ratio(r)}{spread} |")
        for resource in CHECKED_RESOURCES:
            if not any(row[0] == resource for row in hardening):
                emit(f"| strata::{resource} | not measured | – | – | – | – |")
        emit("")
    lines.extend(kept_notes(out))
    emit("## Results\n")
    for group_name, group in groups.items():
        emit(f"### {group_name}\n")
        picture = plot(group_name, plot_rows(results, group_name), plots_dir)
        if picture:
            emit(f"![{group_name}](bench/{picture})\n")
        peer = best_peer(group, results.preloaded)
        has_instr = any((group_name, c) in instructions for c in group)
        has_memory = any(memory_overhead(results, group_name, c) for c in group)
        header = "| contender | median | min–max | × floor | × best peer |"
        if has_memory:
            header += " memory overhead | method |"
        if has_instr:
            header += " instructions/op |"
        emit(header)
        emit("|---" * (header.count("|") - 1) + "|")
        notes = []
        for c in by_median(group):
            values = list(group[c].values())
            name = contender_label(results, group_name, c)
            problem = misaligned(results, group_name, c)
            if problem:
                notes.append(f"- ⚠ {display(group_name, c)}: {problem}.")
            other_process = c in results.preloaded
            row = (f"| {name} | {fmt_time(median(values))} | {fmt_time(min(values))}–{fmt_time(max(values))} | "
                   f"{fmt_ratio(floor_ratio(results, group_name, c))} | "
                   f"{fmt_ratio(ratio(group, c, peer) if peer and not other_process else None)} |")
            if has_memory:
                memory = memory_overhead(results, group_name, c)
                row += f" {memory[0] * 100:+.1f} % | {memory[1]} |" if memory else " – | – |"
            if has_instr:
                count = instructions.get((group_name, c))
                row += f" {count:.1f} |" if count is not None else " – |"
            emit(row)
        if any(c in results.preloaded for c in group):
            notes.append("- † measured in a separate process with the allocator in `LD_PRELOAD`; "
                         + ("× floor is against that process's floor." if FLOOR in group else
                            "no floor in this workload, so no ratio across the two processes."))
        extra = {}
        for c in group:
            values = {k: v for k, v in counters.get((group_name, c), {}).items()
                      if k not in VALIDATION_COUNTERS and not k.endswith("_all")}
            if values:
                extra[c] = values
        if notes or extra:
            emit("")
            lines.extend(notes)
            for c, values in extra.items():
                emit(f"- {display(group_name, c)}: " + ", ".join(f"{k} = {v:.4g}" for k, v in sorted(values.items())))
        emit("")
    if phase_shift is not None:
        lines.extend(phase_shift_section(phase_shift, plots_dir))
        emit("")
    with open(out, "w") as f:
        f.write("\n".join(lines))


NOTES_START = "<!-- bench:notes:start -->"
NOTES_END = "<!-- bench:notes:end -->"


def kept_notes(path):
    """The hand-written block of an existing report (before/after comparisons
    that one run cannot produce), kept verbatim between its markers."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return []
    start, end = text.find(NOTES_START), text.find(NOTES_END)
    if start < 0 or end < start:
        return []
    return text[start:end + len(NOTES_END)].split("\n") + [""]


# ------------------------------------------------------------------ phase_shift

MIB = 1 << 20
PHASE_TICKS = [("small 16–128 B", 0.5), ("medium 256 B–4 KiB", 1.5), ("large 16 KiB–1 MiB", 2.5),
               ("small again", 3.5), ("idle", 4.45), ("trim", 5.0)]


def mib(n):
    return "–" if n is None else f"{n / MIB:.1f} MiB"


def phase_shift_rows(data):
    """One dict per contender: its peaks, what it held after idle and trim, failures, status."""
    rows = []
    for c in data["contenders"]:
        meta, end, samples = c["meta"], c.get("end") or {}, c.get("samples", [])
        columns = meta.get("columns", ["phase", "x", "op", "seconds", "live", "footprint", "own", "failed"])
        named = [dict(zip(columns, s)) for s in samples]
        row = {"label": meta.get("label", meta.get("id", "?")), "status": c.get("status", "ok"),
               "phases": meta.get("phases", []), "own_method": meta.get("own", ""), "trim": meta.get("trim", ""),
               "failed": end.get("failed", named[-1]["failed"] if named else 0),
               "first_failure": end.get("first_failure", ""), "samples": named,
               "misaligned": named[-1].get("misaligned", 0) if named else 0}
        if named:
            peak = max(named, key=lambda s: s["footprint"])
            row["peak"] = peak["footprint"]
            row["peak_live"] = max(s["live"] for s in named)
            row["peak_own"] = max((s["own"] for s in named if s["own"] is not None and s["own"] >= 0), default=None)
            idle = [s for s in named if s["phase"] == 4]
            trimmed = [s for s in named if s["phase"] == 5]
            row["idle"] = idle[-1] if idle else None
            row["trimmed"] = trimmed[-1] if trimmed else None
        rows.append(row)
    return rows


def held(sample):
    """Footprint after the idle phase: bytes held when nothing is live, else the ratio to the live bytes."""
    if sample is None:
        return "–"
    if sample["live"] == 0:
        return mib(sample["footprint"]) + " held"
    return f"{mib(sample['footprint'])} ({sample['footprint'] / sample['live']:.2f}× live)"


def phase_shift_plot(rows, plots_dir):
    """Footprint over the phases for every contender, with the live bytes; returns the file name or None."""
    if not plots_dir:
        return None
    reference = next((r for r in rows if r["status"] == "ok" and not r["failed"] and len(r["phases"]) == 4
                      and r["samples"]), None)
    drawn = [r for r in rows if r["samples"]]
    if not drawn:
        return None
    name = "phase_shift.png"
    blocks, plots = [], []
    if reference is not None:
        blocks.append("$live << EOD\n" + "\n".join(f"{s['x']} {s['live'] / MIB:.3f}" for s in reference["samples"])
                      + "\nEOD")
        plots.append('$live using 1:2 with lines dt 2 lw 2 lc rgb "black" title "live bytes requested"')
    for i, r in enumerate(drawn):
        points = []
        for before, s in zip([None] + r["samples"], r["samples"]):
            if before is not None and s["phase"] > before["phase"] + 1:
                points.append("")  # a blank line breaks the line: phases this contender did not run
            points.append(f"{s['x']} {s['footprint'] / MIB:.3f}")
        blocks.append(f"$c{i} << EOD\n" + "\n".join(points) + "\nEOD")
        title = r["label"]
        if len(r["phases"]) < 4:
            title += " (large phase only)"
        if r["failed"]:
            title += f" ({r['failed']:,} failed allocations)"
        if r["status"] != "ok":
            title += f" ({r['status']})"
        twin = next((o for o in drawn[:i] if len(o["samples"]) == len(r["samples"]) and all(
            abs(a["footprint"] - b["footprint"]) <= MIB / 4 for a, b in zip(o["samples"], r["samples"]))), None)
        if twin is not None:
            title += f" (hides {twin['label']}: within 0.25 MiB)"
        plots.append(f'$c{i} using 1:2 with linespoints pt {i + 4} ps 0.6 lw 1.5 title "{title}"')
    tics = ", ".join(f'"{label}" {x}' for label, x in PHASE_TICKS)
    arrows = "\n".join(f"set arrow from {x}, graph 0 to {x}, graph 1 nohead dt 3 lc rgb 'gray'" for x in (1, 2, 3, 4))
    script = f"""
set terminal pngcairo size 960,640 font ",10"
set output "{os.path.join(plots_dir, name)}"
set title "phase_shift: footprint (resident bytes above the baseline, a fresh process per contender)" noenhanced
set ylabel "MiB"
set xrange [-0.05:5.1]
set yrange [0:*]
set xtics ({tics}) noenhanced
set key below maxrows 4 noenhanced
set grid ytics
{arrows}
plot {", ".join(plots)}
"""
    return name if gnuplot("\n".join(blocks) + "\n" + script) else None


def phase_shift_section(data, plots_dir):
    """The phase_shift section, markers included, as a list of lines."""
    config, context = data.get("config", {}), data.get("context", {})
    rows = phase_shift_rows(data)
    lines = [PHASE_SHIFT_START,
             "<!-- generated by bench/report.py from bench/phase_shift_bench (bench/run, or bench/run --phase-shift "
             "for this section alone); edits between these markers are overwritten -->",
             "## Footprint over time: phase_shift\n"]
    emit = lines.append
    phases = config.get("phases", [])
    mix = "; ".join(f"{p['name']} {p['min']:,}–{p['max']:,} B {p['distribution']} ({p['ops']:,} operations)"
                    for p in phases)
    live = config.get("live", 0)
    emit("A long-running server whose request mix shifts (issue 13): one deterministic run (seed "
         f"{config.get('seed', '?')}) per contender, each in a fresh child process. In each phase the live set is "
         f"held at {mib(live)}: a block of the phase's mix is allocated (and written whole) while the live bytes "
         "are below that, otherwise a random live block of any phase is freed, 1 in "
         f"{config.get('remote_one_in', '?')} of them on a second thread (in batches of "
         f"{config.get('remote_batch', '?')}, the main thread waiting). Each phase allocates "
         f"{config.get('turnover', '?')}× the live target, so a few blocks of the previous mix survive it. "
         f"Phases: {mix}. Then idle: every block freed, {config.get('idle_seconds', '?')} s of waiting with one "
         "64 B allocate+free per thread per sample (allocators that decay lazily act only inside a call), and "
         "the contender's trim where it has one.\n")
    emit("Footprint, the same measure for every contender: the process's resident bytes (`/proc/self/statm`) "
         "less those just before the contender was constructed, sampled "
         f"{config.get('samples_per_phase', '?')} times per phase and {config.get('idle_samples', '?')} times "
         "while idle. The own count is the contender's view of what it holds. `strata::arena` has a fixed region "
         f"of {mib(config.get('arena_capacity'))} ({config.get('arena_capacity', 0) / max(live, 1):.2g}× the live "
         "target, as an operator leaves headroom); an allocation it refuses is counted and the run goes on. `strata::chunk_provider` hands out chunks of at least 4 KiB, so it runs the large phase only. "
         "`strata::extendable_slab` serves one block size and is left out.\n")
    load = context.get("load_avg")
    emit(f"Measured {context.get('date', '?')[:10]} on {context.get('num_cpus', '?')} CPUs (host "
         f"`{context.get('host_name', '?')}`, glibc {context.get('glibc', '?')}"
         + (f", 1-minute load average {load:.1f}" if isinstance(load, (int, float)) and load >= 0 else "")
         + ")" + (", quick mode (`bench/run --quick`)" if config.get("quick") else "") + ".\n")
    picture = phase_shift_plot(rows, plots_dir)
    if picture:
        emit(f"![phase_shift](bench/{picture})\n")
        emit("Each phase is drawn the same width, whatever its operation count; idle is drawn by time. "
             "Peak / peak live compares the largest footprint with the largest live set; after idle and after "
             "trim nothing is live, so the footprint there is what the contender still holds.\n")
    emit("| contender | peak footprint | peak live | peak / peak live | after idle | after trim | trim | "
         "own count at its peak | failed allocations |")
    emit("|---|---|---|---|---|---|---|---|---|")
    notes = []
    for r in rows:
        label = r["label"] + (" (large phase only)" if 0 < len(r["phases"]) < 4 else "")
        if r["status"] != "ok":
            label += f" ⚠ {r['status']}"
            notes.append(f"- ⚠ {r['label']} {r['status']} after {len(r['samples'])} samples; its figures "
                         "cover those samples only.")
        if r["misaligned"]:
            notes.append(f"- {r['label']}: {r['misaligned']:,} blocks misaligned.")
        if "peak" not in r:
            emit(f"| {label} | – | – | – | – | – | – | – | – |")
            continue
        ratio = f"{r['peak'] / r['peak_live']:.2f}" if r["peak_live"] else "–"
        own = f"{mib(r['peak_own'])} ({r['own_method']})" if r["peak_own"] is not None and r["own_method"] else "–"
        failed = f"{r['failed']:,}" + (f" (first: {r['first_failure']})" if r["failed"] and r["first_failure"] else "")
        emit(f"| {label} | {mib(r['peak'])} | {mib(r['peak_live'])} | {ratio} | {held(r['idle'])} | "
             f"{held(r['trimmed'])} | {r['trim'] or 'none'} | {own} | {failed} |")
    if notes:
        emit("")
        lines.extend(notes)
    emit("")
    emit("Run alone (about a minute; rewrites this section and its plot): `bench/run --phase-shift`.")
    emit(PHASE_SHIFT_END)
    return lines


def update_phase_shift(path, data, plots_dir):
    """Replaces the phase_shift section of an existing report (appends it if it has none)."""
    with open(path) as f:
        text = f.read()
    section = "\n".join(phase_shift_section(data, plots_dir))
    start, end = text.find(PHASE_SHIFT_START), text.find(PHASE_SHIFT_END)
    if start >= 0 and end > start:
        text = text[:start] + section + text[end + len(PHASE_SHIFT_END):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)


# DESIGN.md resources in the README headline, and the first workload shown for each.
HEADLINE = [("chunk_provider", "chunk_pair/64KiB_align16", "strata"),
            ("monotonic_arena", "per_request/2000x16-256B", "strata"),
            ("slab", "slab_pair/64B", "strata_slab"),
            ("extendable_slab", "slab_pair/64B", "strata_extendable_slab"),
            ("arena", "mixed/8-512B_live10000", "strata")]


def headline(results):
    """The README's headline section (between the markers), from the same figures as the report."""
    context = results.context
    when = context.get("date", datetime.datetime.now().isoformat())[:10]
    lines = [README_START,
             "<!-- generated by bench/report.py (bench/run); edits between these markers are overwritten -->",
             f"Headline numbers, measured {when} on {context.get('num_cpus', '?')} CPUs by `bench/run`: every",
             "ratio is within one process run, \"floor\" being the bare structure behind the same virtual call.",
             "[docs/benchmarks.md](docs/benchmarks.md) has every workload, peer and DESIGN.md target."
             + (f" {results.load_note()[0].upper()}{results.load_note()[1:]}." if results.loads else ""), "",
             "| resource | headline | DESIGN.md target | measured | verdict |", "|---|---|---|---|---|"]
    rows = evaluate(results)
    for resource, group_name, contender in HEADLINE:
        group = results.groups.get(group_name, {})
        values = list(group.get(contender, {}).values())
        shown = f"{group_name}: {fmt_time(median(values))}" if values else "not measured"
        name = f"`{display(group_name, contender)}`"
        first = True
        for description, measured, verdict, comparator, measure in rows:
            if not description.startswith(resource + ":"):
                continue
            lines.append(f"| {name if first else ''} | {shown if first else ''} | "
                         f"{description.split(': ', 1)[1]} | {measure} | {verdict} |")
            first = False
    lines.append(README_END)
    return "\n".join(lines)


def update_readme(path, results):
    """Replaces the text between the headline markers; touches nothing else."""
    with open(path) as f:
        text = f.read()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        print(f"report.py: no {README_START} ... {README_END} markers in {path}; left unchanged")
        return
    updated = text[:start] + headline(results) + text[end + len(README_END):]
    if updated != text:
        with open(path, "w") as f:
            f.write(updated)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="")
    parser.add_argument("--plots", default="")
    parser.add_argument("--instructions", default="")
    parser.add_argument("--command", action="append", default=[])
    parser.add_argument("--preloaded", action="append", default=[], metavar="NAME=RUN.json",
                        help="a run in which NAME replaced malloc through LD_PRELOAD")
    parser.add_argument("--readme", default="", help="README whose headline section to refresh")
    parser.add_argument("--phase-shift", default="", help="phase_shift_bench output (JSON)")
    parser.add_argument("--update", default="", help="report whose phase_shift section alone to replace")
    parser.add_argument("runs", nargs="*")
    args = parser.parse_args()
    phase_shift = None
    if args.phase_shift:
        with open(args.phase_shift) as f:
            phase_shift = json.load(f)
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
    if args.update:
        if phase_shift is None:
            raise SystemExit("report.py: --update needs --phase-shift")
        update_phase_shift(args.update, phase_shift, args.plots)
        return
    if not args.runs or not args.out:
        raise SystemExit("report.py: --out and at least one run are needed (or --phase-shift with --update)")
    preloaded = []
    for item in args.preloaded:
        name, sep, path = item.partition("=")
        if not sep:
            raise SystemExit(f"report.py: --preloaded {item} is not NAME=RUN.json")
        preloaded.append((name, path))
    results = load(args.runs, preloaded)
    instructions = {}
    if args.instructions and os.path.exists(args.instructions):
        with open(args.instructions) as f:
            for entry in json.load(f):
                instructions[(entry["group"], entry["contender"])] = entry["per_op"]
    write(args.out, results, instructions, args.plots, args.command or ["bench/run"], phase_shift)
    if args.readme:
        update_readme(args.readme, results)


if __name__ == "__main__":
    main()
