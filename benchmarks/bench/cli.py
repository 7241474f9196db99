"""The benchmark's command line: its flags and defaults, the phases run in order, the report, the exit status."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import benchmarks.bench

from .phases import PHASES
from .report import report
from .run import Bench


def parse_args(argv=None):
    """The flags, with the defaults --quick and --soak change."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=benchmarks.bench.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("A. throughput workload")
    g.add_argument("--scans", type=int, default=None, help="scans published (default 40, 20 with --quick)")
    g.add_argument("--concurrent", type=int, default=4, help="scans open at once per publisher (default 4)")
    g.add_argument("--streams", type=int, default=8, help="data streams per scan (default 8)")
    g.add_argument("--events", type=int, default=1000, help="send() per stream (default 1000)")
    g.add_argument("--points", type=int, default=10, help="points per send (default 10)")
    g.add_argument("--publishers", type=int, default=1, help="publisher processes (default 1)")
    g.add_argument("--no-baseline", action="store_true", help="do not run the seed watcher port")
    g.add_argument("--baseline-read-timeout", type=float, default=0.5,
                   help="seconds the baseline's cursor reads wait (default 0.5, the exporter's poll interval)")
    g = p.add_argument_group("S. short scans")
    g.add_argument("--short-scans", type=int, default=None, help="plain short scans (default 1500, 100 with --quick)")
    g.add_argument("--short-streams", type=int, default=3, help="channels per short scan (default 3)")
    g.add_argument("--short-events", type=int, default=10, help="points per channel, one per send (default 10)")
    g.add_argument("--short-concurrent", type=int, default=2, help="scans published at once (default 2)")
    g.add_argument("--short-sequences", type=int, default=None,
                   help="scan sequences mixed in (default 60, 5 with --quick)")
    g.add_argument("--short-children", type=int, default=4, help="child scans per sequence (default 4)")
    g.add_argument("--no-round-trips", action="store_true",
                   help="S: skip the second pass (round trips per scan, end visibility under load)")
    g = p.add_argument_group("B. memory and bounded resources (soak)")
    g.add_argument("--bulk-scans", type=int, default=None, help="short scans (default 10000, 1000 with --quick)")
    g.add_argument("--soak-step", type=int, default=None,
                   help="scans between two resource samples (default 2500; a quarter of --bulk-scans below 10000)")
    g.add_argument("--soak", type=int, metavar="N",
                   help="only phase B, with N short scans (same as --bulk-scans N --skip throughput --skip short --skip latency)")
    g.add_argument("--bulk-publishers", type=int, default=2, help="publisher processes (default 2)")
    g.add_argument("--bulk-concurrent", type=int, default=4, help="scans open at once per publisher (default 4)")
    g.add_argument("--bulk-streams", type=int, default=1, help="streams per short scan (default 1)")
    g = p.add_argument_group("C/D. latency")
    g.add_argument("--active-scans", type=int, default=100, help="scans held open (default 100)")
    g.add_argument("--active-streams", type=int, default=3, help="streams per held scan (default 3)")
    g.add_argument("--latency-requests", type=int, default=200, help="scrapes timed (default 200)")
    g.add_argument("--delay-scans", type=int, default=50, help="scans whose end visibility is timed (default 50)")
    g.add_argument("--scrape-interval", type=float, default=0.02, help="seconds between scrapes (default 0.02)")
    g.add_argument("--delay-jitter", type=float, default=0.6,
                   help="D: random pause (uniform, 0 to this many seconds) before each timed close (default 0.6: "
                   "more than the exporter's poll interval + read gap)")
    g.add_argument("--seed", type=int, default=1, help="seed of the D pauses (default 1)")
    g.add_argument("--spaced-gap", type=float, default=0.1,
                   help="seconds between two requests of the 'spaced' latency mode (default 0.1)")
    p.add_argument("--quick", action="store_true", help="smaller run: 1000 bulk scans, 20 throughput scans "
                   "(explicit --scans/--bulk-scans win)")
    p.add_argument("--exporter-arg", action="append", default=[], metavar="ARG",
                   help="extra exporter argument (repeatable), e.g. --exporter-arg=--poll-interval=0.2")
    p.add_argument("--exporter-command", metavar="CMD",
                   help="command run instead of `python -m exporter` (it gets the exporter's flags), "
                   "to compare a modified exporter on the same workload")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for any phase (default 300)")
    p.add_argument("--workdir", help="where logs go (default: a new temporary directory, kept)")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--profile", metavar="FILE",
                   help="run the exporter under cProfile (CPU time): one profile per phase, FILE.<phase>.prof "
                   "(pstats); the exporter's CPU figures then include the profiler's overhead")
    p.add_argument("--py-spy", metavar="PREFIX",
                   help="attach `py-spy record --gil` to the exporter during each phase: PREFIX.<phase>.txt (raw "
                   "collapsed stacks; summarise with `python -m benchmarks.spy_summary`); py-spy "
                   "pauses the exporter at each sample, so its CPU figures are a little higher")
    p.add_argument("--skip", action="append", default=[], choices=tuple(PHASES),
                   help="skip a phase (repeatable)")
    a = p.parse_args(argv)
    if a.soak is not None:
        a.bulk_scans = a.soak
        a.skip = sorted(set(a.skip) | {"throughput", "short", "latency"})
    if a.bulk_scans is None:
        a.bulk_scans = 1000 if a.quick else 10000
    if a.scans is None:
        a.scans = 20 if a.quick else 40
    if a.short_scans is None:
        a.short_scans = 100 if a.quick else 1500
    if a.short_sequences is None:
        a.short_sequences = 5 if a.quick else 60
    return a


def main(argv=None) -> int:
    """Run the phases not skipped, print the report; 0 when every target passed, else 1."""
    args = parse_args(argv)
    bench = Bench(args)
    cpu_start = time.process_time()
    t_start = time.monotonic()
    try:
        bench.start()
        for name, run in PHASES.items():
            if name not in args.skip:
                run(bench)
        bench.exporter_health()
    finally:
        bench.stop()
    bench.results["run"] = {"wall": time.monotonic() - t_start, "bench_cpu": time.process_time() - cpu_start}
    print()
    ok = report(bench.results, args)
    print(f"\n(run: {bench.results['run']['wall']:.0f} s wall; logs in {bench.workdir})")
    if args.json:
        Path(args.json).write_text(json.dumps(bench.results, indent=2, default=str))
    return 0 if ok else 1
