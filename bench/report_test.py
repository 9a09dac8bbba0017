#!/usr/bin/env python3
"""Checks bench/report.py on small synthetic Google Benchmark runs: the
hardening-cost table (present only when hardening/... benchmarks are), the
LD_PRELOAD contender and its same-process floor, misaligned contenders kept
and flagged, the memory column, the README headline markers, the
phase_shift section (its table, a crashed contender, the update in place),
strata contenders shown as their class, the "which resource wins" table
(a peer winning, strata winning), and the bars handed to gnuplot being the
tabled medians with titles that fit.

usage: python3 bench/report_test.py   (no build needed; meson registers it as a test)
"""
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import unittest

REPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.py")
_spec = importlib.util.spec_from_file_location("report", REPORT)
report = importlib.util.module_from_spec(_spec)  # in-process, for what write() hands to gnuplot
_spec.loader.exec_module(report)


def bench(name, ns, repetition=0, label="", **counters):
    entry = {"name": name, "run_name": name, "run_type": "iteration", "repetitions": 3,
             "repetition_index": repetition, "threads": 1, "iterations": 1000, "real_time": ns, "cpu_time": ns,
             "time_unit": "ns"}
    if label:
        entry["label"] = label
    entry.update(counters)
    return entry


def run_file(directory, name, benchmarks):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        json.dump({"context": {"date": "2026-12-01T06:00:00+00:00", "num_cpus": 2, "mhz_per_cpu": 2596,
                               "host_name": "test", "load_avg": [3.5, 2.0, 1.0]}, "benchmarks": benchmarks}, f)
    return path


class ReportTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def report(self, runs, *extra):
        out = os.path.join(self.dir, "out.md")
        subprocess.run([sys.executable, REPORT, "--out", out, *extra, *runs], check=True, capture_output=True)
        with open(out) as f:
            return f.read()

    def main_run(self, with_hardening):
        rows = []
        for rep, scale in enumerate([1.0, 1.5, 1.2]):  # noise common to one repetition cancels in ratios
            rows += [bench("slab_pair/64B/floor", 4 * scale, rep),
                     bench("slab_pair/64B/strata_slab", 4.4 * scale, rep),
                     bench("slab_pair/64B/new_delete", 14 * scale, rep),
                     bench("slab_pair/64B/std_sync_pool", 30 * scale, rep,
                           label="misaligned=23B/align16@8", checked=100, misaligned=7),
                     bench("slab_batch/64B_lifo/strata_slab", 4000 * scale, rep, label="memory=stats",
                           checked=1000, misaligned=0, mem_footprint=65536, mem_requested=64000, overhead=1.0)]
            if with_hardening:
                rows += [bench("hardening/slab/pair_64B/default", 5 * scale, rep),
                         bench("hardening/slab/pair_64B/hardened", 6 * scale, rep),
                         bench("hardening/slab/pair_64B/unchecked", 4 * scale, rep),
                         bench("hardening/monotonic_arena/pair_64B/default", 3 * scale, rep),
                         bench("hardening/monotonic_arena/pair_64B/hardened", 4 * scale, rep),
                         bench("hardening/arena/mixed_8-512B/default", 10 * scale, rep),
                         bench("hardening/arena/mixed_8-512B/hardened", [13, 12, 14][rep] * scale, rep),
                         bench("hardening/arena/pair/default/real_time/threads:2", 8 * scale, rep),
                         bench("hardening/arena/pair/hardened/real_time/threads:2", 8 * scale, rep)]
        return run_file(self.dir, "slab_bench.json", rows)

    def test_hardening_table_when_present(self):
        text = self.report([self.main_run(True)])
        self.assertIn("## Hardening cost", text)
        self.assertIn("| strata::slab | pair_64B | 6.00 ns | `hardened = true` | 7.20 ns | 1.20 |", text)
        # a third mode gets its own row against the same default
        self.assertIn("| strata::slab | pair_64B | 6.00 ns | `detect_double_free = false` | 4.80 ns | 0.80 |", text)
        # ratios per repetition 1.3, 1.2, 1.4: median 1.30, spread shown
        self.assertIn("| strata::arena | mixed_8-512B | 12.00 ns | `hardened = true` | 16.80 ns | 1.30 (1.20–1.40) |",
                      text)
        self.assertIn("| strata::arena | pair/threads:2 | 9.60 ns | `hardened = true` | 9.60 ns | 1.00 |", text)
        # monotonic_arena's checked mode is its owner-thread check, not a hardened field
        self.assertIn("| strata::monotonic_arena | pair_64B | 3.60 ns | `check_owner_thread = true` | 4.80 ns | 1.33 |",
                      text)
        self.assertNotIn("### hardening", text)  # not mistaken for a workload
        # a resource with a checked mode that the run lacks is not silently dropped
        self.assertIn("| strata::chunk_provider | not measured | – | – | – | – |", text)
        self.assertNotIn("| strata::slab | not measured", text)
        # in CHECKED_RESOURCES order, whatever the run's (shuffled) order
        self.assertLess(text.index("| strata::slab | pair_64B"), text.index("| strata::arena | mixed_8-512B"))
        self.assertLess(text.index("| strata::arena | pair/threads:2"), text.index("| strata::monotonic_arena |"))

    def test_hand_written_notes_survive_a_regeneration(self):
        out = os.path.join(self.dir, "out.md")
        with open(out, "w") as f:
            f.write("# old report\n\n<!-- bench:notes:start -->\n## Before and after\n| a | b |\n"
                    "<!-- bench:notes:end -->\n\n## Results\nstale\n")
        text = self.report([self.main_run(False)])
        self.assertIn("<!-- bench:notes:start -->\n## Before and after\n| a | b |\n<!-- bench:notes:end -->", text)
        self.assertNotIn("stale", text)
        self.assertLess(text.index("bench:notes:end"), text.index("## Results"))
        self.assertEqual(self.report([self.main_run(False)]).count("bench:notes:start"), 1)  # kept once, not doubled

    def test_load_is_reported(self):
        self.assertIn("1-minute load average 3.5 when the runs started, on 2 CPUs: other work was running",
                      self.report([self.main_run(False)]))

    def test_no_hardening_table_when_absent(self):
        self.assertNotIn("Hardening cost", self.report([self.main_run(False)]))

    def test_misaligned_contender_is_measured_and_flagged(self):
        text = self.report([self.main_run(False)])
        self.assertIn("| std_sync_pool ⚠ misaligned | 36.00 ns |", text)
        self.assertIn("7 of 100 checked blocks misaligned; first: 23 B aligned to 16 came back at an address ≡ 8 "
                      "mod 16", text)

    def test_memory_column(self):
        text = self.report([self.main_run(False)])
        self.assertIn("| memory overhead | method |", text)
        self.assertIn("+2.4 % | stats |", text)

    def test_preloaded_contender_uses_its_own_floor(self):
        preloaded = run_file(self.dir, "slab_bench.jemalloc.json", [
            bench("slab_pair/64B/floor", 8, 0), bench("slab_pair/64B/new_delete", 10, 0),
            bench("slab_pair/64B/floor", 8, 1), bench("slab_pair/64B/new_delete", 12, 1)])
        text = self.report([self.main_run(False)], "--preloaded", "jemalloc=" + preloaded)
        row = next(l for l in text.splitlines() if l.startswith("| jemalloc (LD_PRELOAD, via new_delete) †"))
        self.assertEqual(row.split("|")[4].strip(), "1.38")  # median of 10/8 and 12/8, not against the main floor
        self.assertEqual(row.split("|")[5].strip(), "–")  # no cross-process best-peer ratio
        # the best peer stays a same-process one: strata_slab is 4.4/14 of new_delete
        self.assertIn("| slab: 64 B pair faster than every peer | 0.31× best peer (new_delete) | met |", text)

    def test_readme_headline_between_markers_only(self):
        readme = os.path.join(self.dir, "README.md")
        with open(readme, "w") as f:
            f.write("before\n<!-- bench:headline:start -->\nold\n<!-- bench:headline:end -->\nafter\n")
        self.report([self.main_run(False)], "--readme", readme)
        with open(readme) as f:
            text = f.read()
        self.assertTrue(text.startswith("before\n<!-- bench:headline:start -->\n"))
        self.assertTrue(text.endswith("<!-- bench:headline:end -->\nafter\n"))
        self.assertNotIn("old", text)
        self.assertIn("| `strata::slab` | slab_pair/64B: 5.28 ns | 64 B pair ≤ 1.15× floor | 1.10× floor | met |",
                      text)
        self.assertIn("| `strata::chunk_provider` | not measured |", text)

    def test_readme_without_markers_is_left_alone(self):
        readme = os.path.join(self.dir, "README.md")
        with open(readme, "w") as f:
            f.write("no markers\n")
        self.report([self.main_run(False)], "--readme", readme)
        with open(readme) as f:
            self.assertEqual(f.read(), "no markers\n")

    # ------------------------------------------------- display names, winners

    def run_of(self, name, times):
        """A run file from {benchmark name: [ns per repetition]}."""
        return run_file(self.dir, name, [bench(n, ns, rep) for n, values in times.items()
                                         for rep, ns in enumerate(values)])

    def table_row(self, text, section, first_cell):
        """The cells of the table row starting with first_cell in the given ### or ## section."""
        body = text[text.index(section + "\n"):]
        row = next(l for l in body.splitlines() if l.startswith(f"| {first_cell} |"))
        return [cell.strip() for cell in row.strip("|").split("|")]

    def test_strata_contenders_are_shown_as_their_class(self):
        run = self.run_of("arena_bench.json", {
            "mixed/8-512B_live10000/floor": [10, 10, 10], "mixed/8-512B_live10000/strata": [12, 12, 12],
            "chunk_pair/64KiB_align16/strata": [5, 5, 5], "per_request/2000x16-256B/strata_typed": [9, 9, 9],
            "slab_pair/64B/strata_extendable_slab": [6, 6, 6], "page_block/64KiB/strata_page_resource": [7, 7, 7]})
        text = self.report([run])
        for shown in ("strata::arena", "strata::chunk_provider", "strata::allocator<T, monotonic_arena>",
                      "strata::extendable_slab", "strata::page_resource"):
            self.assertRegex(text, re.escape(f"| {shown} | "))
        self.assertNotRegex(text, r"\| strata(_\w+)? \|")  # no raw name left in a table
        # the targets still find the raw rows
        self.assertIn("| arena: mixed 8–512 B, 1 thread ≤ 1.5× floor | 1.20× floor | met |", text)

    def winner_run(self, strata_ns, peer_ns, misaligned_ns=None):
        """A mixed group: floor, strata, a peer (tcmalloc), a slower peer, and optionally a misaligned one."""
        rows = []
        for rep in range(3):
            rows += [bench("mixed/8-512B_live10000/floor", 10, rep),
                     bench("mixed/8-512B_live10000/strata", strata_ns[rep], rep),
                     bench("mixed/8-512B_live10000/tcmalloc", peer_ns[rep], rep),
                     bench("mixed/8-512B_live10000/new_delete", 50, rep)]
            if misaligned_ns is not None:
                rows.append(bench("mixed/8-512B_live10000/std_unsync_pool", misaligned_ns, rep,
                                  label="misaligned=23B/align16@8", checked=10, misaligned=1))
        return run_file(self.dir, "arena_bench.json", rows)

    def winner_row(self, text):
        return self.table_row(text, "## Which resource wins for which workload",
                              "mixed 8–512 B, live set 10,000, 1 thread (`mixed/8-512B_live10000`)")

    def test_winner_table_when_a_peer_wins(self):
        text = self.report([self.winner_run([15, 15, 15], [12, 12, 12], misaligned_ns=5)])
        # the misaligned pool is fastest but never wins; tcmalloc does, strata is 15/12 of it
        self.assertEqual(self.winner_row(text)[1:], ["tcmalloc", "1.20", "strata::arena", "1.50", "1.25"])
        self.assertLess(text.index("## Which resource wins"), text.index("## DESIGN.md targets"))

    def test_winner_table_when_strata_wins(self):
        text = self.report([self.winner_run([11, 11, 11], [12, 12, 12])])
        self.assertEqual(self.winner_row(text)[1:], ["strata::arena", "1.10", "strata::arena", "1.10", "0.92"])

    def test_winner_follows_the_per_repetition_ratio(self):
        # strata's median (11) is below tcmalloc's (12), but it is slower in two repetitions out of three:
        # the table must not name strata the winner beside a × best peer above 1
        text = self.report([self.winner_run([13, 11, 6.5], [12, 24, 6])])
        results = text[text.index("### mixed/8-512B_live10000"):]
        self.assertLess(results.index("| strata::arena |"), results.index("| tcmalloc |"))  # by median
        self.assertEqual(self.winner_row(text)[1], "tcmalloc")
        self.assertEqual(self.winner_row(text)[5], "1.08")

    def test_winner_table_has_the_phase_shift_row_when_given(self):
        text = self.report([self.winner_run([11, 11, 11], [12, 12, 12])], "--phase-shift", self.phase_shift_run())
        # strata::arena failed allocations and chunk_provider crashed: neither competes; glibc peaks at 36 MiB
        row = self.table_row(text, "## Which resource wins for which workload",
                             "footprint after a phase shift (phase_shift: peak footprint / peak live; no floor)")
        self.assertEqual(row[1:], ["new_delete_resource (glibc) (1.12× live)", "–", "–", "–", "–"])

    def test_plotted_bars_are_the_tabled_medians(self):
        # Noisy repetitions (means differ from medians; per-repetition ratios order the contenders
        # differently from their medians), a † preloaded contender and a long group name.
        group = "producer_consumer/8-512B_with_a_group_name_long_enough_to_need_wrapping_in_a_title/threads:2"
        times = {"floor": [19, 17, 400], "strata": [27, 25, 30], "tcmalloc": [21, 35, 19],
                 "mimalloc": [39, 146, 37], "new_delete": [408, 707, 366]}
        main = self.run_of("arena_bench.json", {f"{group.split('/threads')[0]}/{c}/real_time/threads:2": v
                                                for c, v in times.items()})
        preloaded = self.run_of("arena_bench.jemalloc.json", {
            f"{group.split('/threads')[0]}/{c}/real_time/threads:2": v
            for c, v in {"floor": [18, 20, 19], "new_delete": [37, 39, 36]}.items()})
        results = report.load([main], [("jemalloc", preloaded)])
        scripts = []
        original = report.gnuplot
        report.gnuplot = lambda script: scripts.append(script) or True
        try:
            out = os.path.join(self.dir, "out.md")
            report.write(out, results, {}, self.dir, ["bench/run"])
        finally:
            report.gnuplot = original
        with open(out) as f:
            text = f.read()
        lines = text[text.index(f"### {group}\n"):].splitlines()
        start = next(i for i, l in enumerate(lines) if l.startswith("| contender |")) + 2
        end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
        table = [[cell.strip() for cell in l.strip("|").split("|")] for l in lines[start:end]]
        self.assertEqual(len(scripts), 1)
        bars = re.findall(r'^"(.*)" (\S+) "(.*)"$', scripts[0], re.MULTILINE)
        self.assertEqual([label for label, _, _ in bars], [row[0] for row in table])  # same order, same names
        self.assertEqual([shown for _, _, shown in bars], [row[1] for row in table])  # printed medians
        self.assertEqual([report.fmt_time(float(ns)) for _, ns, _ in bars], [row[1] for row in table])
        medians = {"strata::arena": 27, "tcmalloc": 21, "floor": 19, "mimalloc": 39, "new_delete": 408,
                   "jemalloc (LD_PRELOAD, via new_delete) †": 37}
        self.assertEqual({label: float(ns) for label, ns, _ in bars}, medians)
        self.assertNotEqual(statistics.mean(times["tcmalloc"]), medians["tcmalloc"])  # not means
        title = re.search(r'^set label 1 "(.*)" at screen', scripts[0], re.MULTILINE).group(1).split("\\n")
        self.assertGreater(len(title), 2)  # the long name was wrapped...
        self.assertTrue(all(len(line) <= 60 for line in title), title)  # ...to lines that fit
        self.assertEqual("".join(title[:-1]), group)  # ...without losing any of it

    # ------------------------------------------------------------ phase_shift

    def phase_shift_run(self):
        columns = ["phase", "x", "op", "seconds", "live", "footprint", "own", "failed", "misaligned"]
        mib = 1 << 20

        def contender(cid, label, samples, phases=(0, 1, 2, 3), status="ok", end=True, failed=0):
            meta = {"id": cid, "label": label, "own": "stats().bytes_reserved", "trim": "trim()",
                    "phases": list(phases), "columns": columns}
            return {"meta": meta, "status": status,
                    "end": {"end": True, "failed": failed, "first_failure": "medium, 300 B at op 7" if failed else ""}
                    if end else None, "samples": samples}

        arena = [[0, 0, 0, 0, 0, 0, 64 * mib, 0, 0], [0, 1, 10, 0.1, 32 * mib, 40 * mib, 64 * mib, 0, 0],
                 [1, 2, 20, 0.2, 30 * mib, 48 * mib, 64 * mib, 5, 0], [3, 4, 40, 0.4, 32 * mib, 48 * mib, 64 * mib, 5, 0],
                 [4, 4, 40, 0.5, 0, 48 * mib, 64 * mib, 5, 0], [4, 4.9, 40, 1.5, 0, 47 * mib, 64 * mib, 5, 0],
                 [5, 5, 40, 1.6, 0, 47 * mib, 64 * mib, 5, 0]]
        glibc = [[0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 1, 10, 0.1, 32 * mib, 36 * mib, 40 * mib, 0, 0],
                 [4, 4, 40, 0.5, 0, 30 * mib, 30 * mib, 0, 0], [5, 5, 40, 1.6, 0, 2 * mib, 2 * mib, 0, 0]]
        data = {"workload": "phase_shift",
                "context": {"date": "2026-12-03T12:00:00Z", "host_name": "test", "num_cpus": 2, "load_avg": 1.5,
                            "glibc": "2.36"},
                "config": {"quick": False, "live": 32 * mib, "turnover": 3, "samples_per_phase": 40,
                           "idle_seconds": 5, "idle_samples": 10, "seed": 13, "remote_batch": 256,
                           "remote_one_in": 4, "arena_capacity": 64 * mib,
                           "phases": [{"name": "small", "min": 16, "max": 128, "distribution": "uniform",
                                       "ops": 100}]},
                "contenders": [contender("arena", "strata::arena", arena, failed=5),
                               contender("new_delete", "new_delete_resource (glibc)", glibc),
                               contender("chunk_provider", "strata::chunk_provider", glibc[:2], phases=(2,),
                                         status="crashed (signal 11)", end=False)]}
        path = os.path.join(self.dir, "phase_shift.json")
        with open(path, "w") as f:
            json.dump(data, f)
        return path

    def test_phase_shift_table(self):
        text = self.report([self.main_run(False)], "--phase-shift", self.phase_shift_run())
        self.assertIn("<!-- bench:phase_shift:start -->", text)
        # peak 48 MiB over a peak live of 32 MiB; idle and trimmed footprints with nothing live are bytes held
        self.assertIn("| strata::arena | 48.0 MiB | 32.0 MiB | 1.50 | 47.0 MiB held | 47.0 MiB held | trim() | "
                      "64.0 MiB (stats().bytes_reserved) | 5 (first: medium, 300 B at op 7) |", text)
        self.assertIn("| new_delete_resource (glibc) | 36.0 MiB | 32.0 MiB | 1.12 | 30.0 MiB held | 2.0 MiB held |",
                      text)
        self.assertIn("| strata::chunk_provider (large phase only) ⚠ crashed (signal 11) |", text)
        self.assertIn("- ⚠ strata::chunk_provider crashed (signal 11) after 2 samples", text)
        self.assertTrue(text.rstrip().endswith("<!-- bench:phase_shift:end -->"))

    def test_phase_shift_update_replaces_its_section_only(self):
        report = os.path.join(self.dir, "benchmarks.md")
        with open(report, "w") as f:
            f.write("# Benchmarks\nkept\n\n<!-- bench:phase_shift:start -->\nstale section\n<!-- bench:phase_shift:end -->\n"
                    "after\n")
        run = self.phase_shift_run()
        subprocess.run([sys.executable, REPORT, "--phase-shift", run, "--update", report], check=True,
                       capture_output=True)
        with open(report) as f:
            text = f.read()
        self.assertTrue(text.startswith("# Benchmarks\nkept\n\n<!-- bench:phase_shift:start -->\n"))
        self.assertTrue(text.endswith("<!-- bench:phase_shift:end -->\nafter\n"))
        self.assertNotIn("stale section", text)
        self.assertEqual(text.count("## Footprint over time: phase_shift"), 1)
        # a report without the markers gets the section appended
        with open(report, "w") as f:
            f.write("# Benchmarks\n")
        subprocess.run([sys.executable, REPORT, "--phase-shift", run, "--update", report], check=True,
                       capture_output=True)
        with open(report) as f:
            text = f.read()
        self.assertTrue(text.startswith("# Benchmarks\n\n<!-- bench:phase_shift:start -->"))


if __name__ == "__main__":
    unittest.main()
