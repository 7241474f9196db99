"""A. Throughput: data-heavy scans published at full rate; CPU of each process over exactly that work, counts exact."""

from __future__ import annotations

import json
import time

from tests.helpers import wait_until

from ...procfs import cpu_seconds
from ..counts import add_truth
from ..processes import baseline_result
from ..run import Bench
from ..scrape import ended_count

SESSION = "bench_throughput"


def run(bench: Bench) -> None:
    a = bench.a
    n_pub = max(1, a.publishers)
    per_pub = [a.scans // n_pub + (1 if i < a.scans % n_pub else 0) for i in range(n_pub)]
    baseline = None if a.no_baseline else bench.start_baseline("baseline", a.scans)
    pubs = [bench.start_publisher(f"publisher{i}", "workload", session=SESSION, scans=n, concurrent=a.concurrent,
                                  streams=a.streams, events=a.events, points=a.points, first_number=1 + i * 1_000_000)
            for i, n in enumerate(per_pub) if n]
    for p in pubs:
        p.expect("READY")
    bench.log(f"A: {a.scans} scans x {a.streams} streams x {a.events} sends x {a.points} points, "
              f"{a.concurrent} concurrent per publisher, {len(pubs)} publisher(s)")
    bench.profile_start("throughput")
    cpu0 = {p.name: p.cpu() for p in pubs}
    exp0 = bench.exporter.cpu()
    base0 = baseline.cpu() if baseline else 0.0
    redis0 = cpu_seconds(bench.redis_pid)
    t0 = time.monotonic()
    for p in pubs:
        p.send()
    truth: dict = {}
    pub_cpu = 0.0
    pub_wall = 0.0
    for p in pubs:
        part = json.loads(p.expect("TRUTH", timeout=a.timeout))
        pub_cpu += p.cpu() - cpu0[p.name]
        pub_wall = max(pub_wall, time.monotonic() - t0)
        add_truth(truth, part)
        p.finish()
    bench.log(f"A: publishers done in {pub_wall:.1f} s wall, {pub_cpu:.2f} s CPU")
    # as in S: wait on the one counter (a full scrape costs the exporter ~1-5 ms, not part of the work)
    wait_until(lambda: ended_count(bench.scraper, SESSION) >= a.scans, a.timeout, 0.1, f"{a.scans} scans of {SESSION} ended")
    exp_cpu = bench.exporter.cpu() - exp0
    exp_wall = time.monotonic() - t0
    bench.profile_stop("throughput")
    exp = bench.wait_ended(SESSION, a.scans, a.timeout)
    base, base_cpu, base_wall = baseline_result(baseline, base0, t0, a.timeout)
    redis_cpu = cpu_seconds(bench.redis_pid) - redis0
    bench.results["throughput"] = {
        "truth": {"events": dict(truth["events"]), "points": truth["points"], "scans": truth["scans"]},
        "publisher_cpu": pub_cpu, "publisher_wall": pub_wall,
        "exporter_cpu": exp_cpu, "exporter_wall": exp_wall,
        "exporter": {"events": dict(exp["events"]), "points": exp["points"], "ended": exp["ended"]},
        "baseline_cpu": base_cpu, "baseline_wall": base_wall,
        "baseline": base, "redis_cpu": redis_cpu,
    }
