"""Legacy (BLISS 1.x) benchmark: the exporter and the published watcher on blissdata 0.3.1, same workload.

    .venv/bin/python -m benchmarks.bench_legacy [--scans 20] [--counters 4] [--points 500] [--batch 1]
                                                [--point-delay 0] [--sequences 2]

from the repository root. Starts a plain redis-server (tests/legacy_fixtures.LegacyRedis), the exporter
(`--data-model auto`, given the data Redis without a database, as Beacon gives it) and
benchmarks/seed_watcher_legacy.py (in .venv-legacy, waiting for READY), then tests/legacy/publish.py
with the workload, and prints the publisher's truth next to what each counted, and the three
processes' CPU (/proc for the exporter, getrusage for the others) measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from benchmarks.procfs import cpu_seconds
from tests.helpers import ExporterProcess, wait_until
from tests.legacy_fixtures import LEGACY_PYTHON, ROOT, LegacyPublisher, LegacyRedis


def workload(a) -> dict:
    scan = {"type": "loopscan", "npoints": a.points, "counters": a.counters, "batch": a.batch,
            "point_delay": a.point_delay}
    scans = [dict(scan) for _ in range(a.scans)]
    for _ in range(a.sequences):
        scans.append({"sequence": "seq", "children": [dict(scan, npoints=max(1, a.points // 10))] * 2})
    return {"session": "bench_session", "scans": scans}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scans", type=int, default=20)
    p.add_argument("--counters", type=int, default=4, help="diodes per scan (one shared controller name)")
    p.add_argument("--points", type=int, default=500)
    p.add_argument("--batch", type=int, default=1, help="points per XADD")
    p.add_argument("--point-delay", type=float, default=0.0)
    p.add_argument("--sequences", type=int, default=2, help="sequences of 2 child scans each")
    a = p.parse_args(argv)
    tmp = Path("/tmp") / "bench-legacy"
    tmp.mkdir(exist_ok=True)
    server = LegacyRedis(workdir=tmp).start()
    spec = {"redis_url": server.url, **workload(a)}
    # a session node first, so that the exporter detects the model at once (it would retry until then);
    # this scan ends before anyone watches: counted by neither
    LegacyPublisher({"redis_url": server.url, "session": "bench_session",
                     "scans": [{"type": "ct", "npoints": 1, "counters": ["diode1"]}]}, tmp).finish()
    n_ended = a.scans + 3 * a.sequences
    watcher = subprocess.Popen([str(LEGACY_PYTHON), "-m", "benchmarks.seed_watcher_legacy",
                                "--redis-url", server.url, "--session", "bench_session", "--scans", str(n_ended),
                                "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    exporter = ExporterProcess(["--redis-url", f"redis://127.0.0.1:{server.port}", "--session", "bench_session",
                                "--poll-interval", "0.5"], tmp)
    try:
        exporter.wait_ready()
        assert watcher.stdout.readline().strip() == "READY", watcher.stderr.read()
        exporter_cpu0 = cpu_seconds(exporter.proc.pid)
        pub = LegacyPublisher(spec, tmp).finish(deadline_s=3600)
        out, err = watcher.communicate(timeout=600)
        seed = json.loads(out.strip().splitlines()[-1])
        wait_until(lambda: exporter.value("bliss_scan_events_total", session="bench_session",
                                          event_type="end_scan") == len(pub.truths), 600, 0.2, "exporter ended")
        exporter_cpu = cpu_seconds(exporter.proc.pid) - exporter_cpu0
        counted = {e: exporter.value("bliss_scan_events_total", session="bench_session", event_type=e)
                   for e in ("prepared_scan", "end_scan", "new_node", "new_data")}
        counted["points"] = exporter.value("bliss_scan_points_total", session="bench_session")
    finally:
        exporter.stop()
        if watcher.poll() is None:
            watcher.kill()
        server.stop()
    truth = pub.done["totals"]
    watched = [t for t in pub.truths if t["role"] != "sequence"]
    exact_seed_view = {"new_node": sum(t["new_node"] - 1 for t in watched),
                       "new_data": sum(t["new_data"] for t in watched),
                       "points": sum(t["points"] for t in watched)}
    references = sum(n for t in pub.truths for node, n in t["channels"].items() if node.endswith("GroupingMaster:scans"))
    rows = [("scans ended (truth / exporter / seed END_SCAN seen)", len(pub.truths), counted["end_scan"],
             seed["ended"])]
    for k in ("prepared_scan", "end_scan", "new_node", "new_data", "points"):
        got = seed["points"] if k == "points" else seed["events"].get(k, 0)
        want = truth[k] - references if k == "points" else truth[k]  # references are not points
        rows.append((f"{k} (truth / exporter / seed)", want, int(counted[k]), got))
    rows.append(("  of which the scans the seed design watches", json.dumps(exact_seed_view), "", ""))
    pub_cpu = pub.done["cpu"]["user"] + pub.done["cpu"]["system"]
    seed_cpu = seed["cpu"]["user"] + seed["cpu"]["system"]
    rows.append(("CPU s publisher / exporter / seed watcher", round(pub_cpu, 3), round(exporter_cpu, 3),
                 round(seed_cpu, 3)))
    rows.append(("exporter CPU: % of publisher, fraction of seed", f"{100 * exporter_cpu / pub_cpu:.2f} %",
                 f"1/{seed_cpu / exporter_cpu:.1f}" if exporter_cpu else "-", ""))
    rows.append(("seed watcher broken", json.dumps(seed["broken"]), "", ""))
    for label, x, y, z in rows:
        print(f"{label:52} {x!s:>14} {y!s:>14} {z!s:>14}")
    exact = all(int(counted[k]) == (truth[k] - references if k == "points" else truth[k])
                for k in ("prepared_scan", "end_scan", "new_node", "new_data", "points"))
    print(f"exporter counts exact: {exact}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
