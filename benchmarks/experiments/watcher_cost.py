"""Micro-experiment: the watchers' CPU per short scan, in this process, with no waiting and no other load.

    python -m benchmarks.experiments.watcher_cost [--scans 400] [--rounds 5] [--batch 40]

Publishes --scans closed short scans (3 float64 channels x 10 points, one point per send, as phase S
of benchmarks.bench) into a private Redis Stack, then, --rounds times, has a fresh exporter (exporter.app's
own wiring, connected as at start-up, log lines to /dev/null) discover them from the scan history
--batch at a time and follow each to its end: SessionWatcher.step then ScanWatcher.step, both
non-blocking. Prints the CPU per scan (median of the rounds) and checks the counts are exact. What
it measures is the per-scan path of phase S without its time-proportional part (wake-ups, polls,
self-tests): the figure to watch while changing that path.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # as exporter.cli.main does

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import numpy as np  # noqa: E402

from exporter import runtime  # noqa: E402
from exporter.app import Exporter  # noqa: E402
from exporter.config import load_config  # noqa: E402
from exporter.devtools.redis_stack import RedisStackServer  # noqa: E402
from exporter.devtools.simulator import open_data_store  # noqa: E402
from exporter.sinks import logs  # noqa: E402


def publish(url: str, scans: int) -> None:
    from blissdata.streams.default import Stream

    store = open_data_store(url)
    for n in range(1, scans + 1):
        identity = {"name": "loopscan", "number": n, "data_policy": "None", "session": "cost"}
        info = {"type": "loopscan", "title": "loopscan 10 0", "npoints": 10, "count_time": 0.0, "scan_nb": n,
                "session_name": "cost", "save": False}
        scan = store.create_scan(identity, info=info)
        streams = [scan.create_stream(Stream.make_definition(f"bench:ctr{i}", "float64")) for i in range(3)]
        scan.prepare()
        scan.start()
        for e in range(10):
            for stream in streams:
                stream.send(np.float64(e))
        for stream in streams:
            stream.join()
        scan.stop()
        scan.info["end_reason"] = "SUCCESS"
        scan.close()


def one_round(url: str, scans: int, batch: int) -> float:
    # the exporter's own wiring (registry, view, metrics, sink chain, sources, watchers), connected
    # as at start-up; its watchers are then stepped here instead of by their greenlets
    exporter = Exporter(load_config(["--redis-url", url]))
    session = exporter._connect()
    scan_watcher, metrics = exporter.wiring.scan_watcher, exporter.wiring.metrics
    session.position = (0, "0-0")
    started = time.process_time()
    seen = 0
    while seen < scans:
        found = session.source.new_scans(session.position, None, count=batch)
        session.discover(found.keys)
        session.position = found.position
        if not seen:  # a scrape shows the new series at 0 (counts after it apply at once, as in a live exporter)
            list(metrics.registry.collect())
        seen += len(found.keys)
        while scan_watcher.active:
            scan_watcher.step(None)
    cpu = time.process_time() - started
    list(metrics.ends.collect())  # any series new since the first scrape: its zero, then its counts
    ended = [s for family in metrics.ends.collect() if family.name == "bliss_scans_ended" for s in family.samples]
    total = sum(s.value for s in ended if s.name.endswith("_total"))
    if total != scans:
        raise SystemExit(f"counts not exact: {total} scans ended of {scans}")
    return cpu / scans


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scans", type=int, default=400)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=40, help="history entries per session watcher step")
    a = p.parse_args()
    logs.configure("json", "info", stream=open(os.devnull, "w"))
    with RedisStackServer() as server:
        server.init_blissdata()
        publish(server.url, a.scans)
        runtime.freeze_startup_objects()  # as the exporter does once started
        # in a greenlet, as the exporter's watchers run (its log lines are flushed when it waits)
        costs = [gevent.spawn(one_round, server.url, a.scans, a.batch).get() for _ in range(a.rounds)]
    print(f"watchers' CPU per short scan: median {statistics.median(costs) * 1e6:.0f} us, min {min(costs) * 1e6:.0f} us "
          f"(rounds: {', '.join(f'{c * 1e6:.0f}' for c in costs)}), {a.scans} scans, {a.batch} per history read")
    return 0


if __name__ == "__main__":
    sys.exit(main())
