#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Plots strata-demo's throughput and p99 latency against threads, per backend.

Runs the demo once per thread count with --json and draws one PNG with two
panels (requests/s, p99 latency) from those results, with gnuplot:

    python3 bench/demo_plot.py --demo build-release/examples/strata-demo --threads 1,2

writes docs/bench/demo_threads.png and, next to it, demo_threads.json (the
runs it was drawn from). Or plot runs made before, one --json file each:

    python3 bench/demo_plot.py --out plot.png run1.json run2.json
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile


def run_demo(demo, threads, extra):
    """Runs the demo at each thread count; returns the parsed --json results."""
    runs = []
    for t in threads:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            print(f"demo_plot: {demo} --threads {t} {' '.join(extra)}", file=sys.stderr)
            subprocess.run([demo, "--threads", str(t), "--quiet", "--json", out.name, *extra],
                           check=True, stdout=subprocess.DEVNULL)
            runs.append(json.load(open(out.name)))
    return runs


def series(runs):
    """Returns {backend name: [(threads, req/s, p99 us)]} over the runs, by thread count."""
    by_backend = {}
    for run in sorted(runs, key=lambda r: r["threads"]):
        for b in run["backends"]:
            if b.get("ok"):
                by_backend.setdefault(b["name"], []).append(
                    (run["threads"], b["requests_per_second"], b["latency_us"]["p99"]))
    return by_backend


def gnuplot_script(runs, out):
    data = series(runs)
    blocks = []
    plots_rps = []
    plots_p99 = []
    for i, (name, points) in enumerate(data.items()):
        rows = "\n".join(f"{t} {rps!r} {p99!r}" for t, rps, p99 in points)
        blocks.append(f"$d{i} << EOD\n{rows}\nEOD")
        title = name.replace('"', "'")
        plots_rps.append(f'$d{i} using 1:2 with linespoints lw 2 pt 7 title "{title}"')
        plots_p99.append(f'$d{i} using 1:3 with linespoints lw 2 pt 7 title "{title}"')
    threads = sorted({r["threads"] for r in runs})
    first = runs[0]
    loads = ", ".join(f"{r['load_average'][0]:.1f}" for r in sorted(runs, key=lambda r: r["threads"]))
    subtitle = (f"{first['workload']} workload, {first['requests']} requests per backend and round, "
                f"median of {first['rounds']} rounds; {first['hardware_threads']} hardware threads, "
                f"1-min load average at the start of each run: {loads}")
    return "\n".join(blocks) + f"""
set terminal pngcairo size 1100,520 font ",10"
set output "{out}"
set multiplot layout 1,2 title "strata-demo: throughput and p99 latency against threads\\n{subtitle}" noenhanced
set key below noenhanced
set grid
set xtics ({", ".join(str(t) for t in threads)})
set xrange [{threads[0] - 0.3}:{threads[-1] + 0.3}]
set xlabel "threads"
set ylabel "requests/s (higher is better)"
set yrange [0:*]
plot {", ".join(plots_rps)}
set ylabel "p99 latency, microseconds (lower is better)"
set logscale y
set yrange [*:*]
set key below
plot {", ".join(plots_p99)}
unset multiplot
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", help="the strata-demo executable to run")
    parser.add_argument("--threads", default="1,2", help="thread counts to run, comma-separated (default 1,2)")
    parser.add_argument("--out", default=os.path.join("docs", "bench", "demo_threads.png"), help="PNG to write")
    parser.add_argument("--demo-args", default="", help="more demo arguments, space-separated")
    parser.add_argument("json", nargs="*", help="--json files of earlier runs (instead of --demo)")
    args = parser.parse_args()
    if bool(args.demo) == bool(args.json):
        parser.error("give either --demo or --json files")
    if args.demo:
        runs = run_demo(args.demo, [int(t) for t in args.threads.split(",")], args.demo_args.split())
        with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
            json.dump(runs, f, indent=1)
    else:
        runs = [json.load(open(p)) for p in args.json]
    subprocess.run(["gnuplot"], input=gnuplot_script(runs, args.out), text=True, check=True)
    print(f"demo_plot: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
