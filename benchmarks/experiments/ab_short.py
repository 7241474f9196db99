"""A/B of short-scan levers: bench.py's short-scan phase, once per variant, interleaved, several rounds.

    python benchmarks/experiments/ab_short.py [--rounds 3] [--variants "none;logs;history,interval=0.2"]

Each run is `bench.py --skip throughput --skip memory --skip latency --no-baseline` with
`--exporter-command "python benchmarks/experiments/short_levers_exporter.py"` and LEVERS=<variant>
(see that file; "none" is the unchanged exporter through the same launcher). Each run measures the
exporter's CPU against the publisher's in that same run; the second pass gives round trips per
scan and end visibility. Prints one row per variant: exporter CPU ms per scan and % of the
publisher's (every run, then the mean; "ratio vs none" compares the means of that ratio, steadier
than CPU ms, which moves with the machine's load), round trips per scan, end visibility p99, counts exact.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = "none;logs;metrics;history;history,interval=0.2;close;logs,metrics,history,interval=0.2,close"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--variants", default=DEFAULT, help=f"';'-separated LEVERS values (default {DEFAULT!r})")
    p.add_argument("--workdir", default=None)
    p.add_argument("bench_args", nargs="*", help="extra bench.py arguments (after --)")
    a = p.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="ab-short-"))
    work.mkdir(parents=True, exist_ok=True)
    variants = [v.strip() for v in a.variants.split(";") if v.strip()]
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(a.rounds):
        for i, v in enumerate(variants):
            out = work / f"r{r}_v{i}.json"
            env = dict(os.environ, LEVERS="" if v == "none" else v)
            cmd = [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--skip", "throughput", "--skip", "memory",
                   "--skip", "latency", "--no-baseline", "--exporter-command",
                   "python benchmarks/experiments/short_levers_exporter.py", "--workdir", str(work / f"r{r}_v{i}"),
                   "--json", str(out), *a.bench_args]
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
            if not out.exists():
                print(f"# round {r} variant {v!r}: no result (see {work / f'r{r}_v{i}'})", flush=True)
                continue
            sh = json.loads(out.read_text())["short"]
            runs[v].append(sh)
            print(f"# round {r} {v or 'none'}: exporter {sh['exporter_cpu']:.2f} s, publisher "
                  f"{sh['publisher_cpu']:.2f} s", flush=True)
    print(f"\n{a.rounds} round(s), variants interleaved; work dir {work}\n")
    print("| variant (LEVERS) | exporter CPU ms/scan (runs) | mean | exporter/publisher (runs) | mean | ratio vs none "
          "| round trips/scan | end visible p99 ms | exact |")
    print("|---|---|---:|---|---:|---:|---:|---:|---|")
    base = None
    for v in variants:
        rs = runs[v]
        if not rs:
            continue
        ms = [x["exporter_cpu"] / x["scans"] * 1000 for x in rs]
        ratio = [x["exporter_cpu"] / x["publisher_cpu"] * 100 for x in rs]
        mean_ms = statistics.mean(ms)
        mean_ratio = statistics.mean(ratio)  # steadier than ms/scan: the machine's load moves both
        if v == "none":
            base = mean_ratio
        vs = f"{(mean_ratio - base) / base * 100:+.0f} %" if base and v != "none" else ""
        rt = [x.get("round_trips") for x in rs if x.get("round_trips")]
        trips = statistics.mean(sum(t["round_trips"].values()) / t["scans"] for t in rt) if rt else float("nan")
        p99 = max((t["visibility"]["p99"] or 0) for t in rt) * 1000 if rt else float("nan")
        exact = all(x["exporter"]["events"] == x["truth"]["events"] and x["exporter"]["points"] == x["truth"]["points"]
                    for x in rs) and all(t["exact"] for t in rt)
        print(f"| {v} | {' '.join(f'{m:.2f}' for m in ms)} | {mean_ms:.2f} | {' '.join(f'{x:.1f}' for x in ratio)} | "
              f"{statistics.mean(ratio):.1f} % | {vs} | {trips:.2f} | {p99:.0f} | {exact} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
