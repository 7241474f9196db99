"""Micro-experiment: the exporter's CPU per second when nothing happens, and with scans open but quiet.

    python -m benchmarks.experiments.idle_cost [--seconds 10] [--scans 4] [--streams 8]

The time-proportional part of the exporter's cost (polls, blocking reads timing out, health checks):
what phase A's data-heavy figure is made of when the publisher's own cost per second is fixed.
Measures the real exporter (`python -m exporter`), CPU from /proc, over --seconds: (1) no scan at
all, (2) --scans scans held open (CREATED, PREPARED, STARTED, one send per stream, then quiet) with
--streams streams each, as phase A keeps 4 scans x 8 streams open.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks.bench.cli import parse_args
from benchmarks.bench.run import Bench
from tests.helpers import wait_until


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--scans", type=int, default=4)
    p.add_argument("--streams", type=int, default=8)
    p.add_argument("--exporter-command", help="as benchmarks.bench's: another exporter launcher")
    a = p.parse_args()
    bench = Bench(parse_args(["--no-baseline"] + (["--exporter-command", a.exporter_command] if a.exporter_command else [])))
    try:
        bench.start()
        time.sleep(2.0)
        c0 = bench.exporter.cpu()
        time.sleep(a.seconds)
        idle = (bench.exporter.cpu() - c0) / a.seconds
        hold = bench.start_publisher("hold", "hold", session="idle", scans=a.scans, streams=a.streams, events=1, points=1)
        hold.expect("READY")
        wait_until(lambda: bench.counts("idle")["active"] == a.scans, 30, 0.2, "scans seen")
        time.sleep(2.0)
        c0 = bench.exporter.cpu()
        time.sleep(a.seconds)
        held = (bench.exporter.cpu() - c0) / a.seconds
    finally:
        bench.stop()
    print(f"exporter CPU, ms per second of wall time (over {a.seconds:.0f} s each):\n")
    print("| exporter state | CPU ms/s |")
    print("|---|---:|")
    print(f"| no scan | {idle * 1000:.1f} |")
    print(f"| {a.scans} scans x {a.streams} streams open, quiet | {held * 1000:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
