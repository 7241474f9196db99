"""B. Memory and bounded resources: many short scans in steps; after each step the exporter's resources must stay flat."""

from __future__ import annotations

import json
import math
import time

from ..counts import add_truth, exact
from ..run import Bench

SESSION = "bench_bulk"


def run(bench: Bench) -> None:
    """Short scans published in steps of --soak-step; after each step (every scan ended) the
    exporter's RSS, fds, Redis connections and /metrics series are sampled: they must stay flat."""
    a = bench.a
    step = a.soak_step or (2500 if a.bulk_scans >= 10000 else max(1, math.ceil(a.bulk_scans / 4)))
    sizes = [step] * (a.bulk_scans // step) + ([a.bulk_scans % step] if a.bulk_scans % step else [])
    n_pub = max(1, a.bulk_publishers)
    pubs = [bench.start_publisher(f"bulk{i}", "steps", session=SESSION, concurrent=a.bulk_concurrent,
                                  streams=a.bulk_streams, events=1, points=1, first_number=1 + i * 1_000_000)
            for i in range(n_pub)]
    for p in pubs:
        p.expect("READY")
    time.sleep(1.0)
    samples = [dict(bench.resources(SESSION), ended=0)]
    bench.log(f"B: {a.bulk_scans} short scans ({a.bulk_streams} stream(s), 1 send each) in steps of {step}, "
              f"{n_pub} publishers; exporter RSS before {samples[0]['rss'] / 2**20:.1f} MiB")
    bench.profile_start("memory")
    truth: dict = {}
    pub_cpu = pub_wall = exp_cpu = exp_wall = 0.0
    done = 0
    for size in sizes:
        share = [size // n_pub + (1 if i < size % n_pub else 0) for i in range(n_pub)]
        cpu0 = {p.name: p.cpu() for p in pubs}
        exp0 = bench.exporter.cpu()
        t0 = time.monotonic()
        for p, n in zip(pubs, share):
            p.send(str(n))
        truth = {}
        for p in pubs:
            add_truth(truth, json.loads(p.expect("TRUTH", timeout=a.timeout)))  # cumulative
            pub_cpu += p.cpu() - cpu0[p.name]
        pub_wall += time.monotonic() - t0
        done += size
        bench.wait_ended(SESSION, done, a.timeout)
        exp_cpu += bench.exporter.cpu() - exp0
        exp_wall += time.monotonic() - t0
        time.sleep(0.5)
        s = dict(bench.resources(SESSION), ended=done)
        s["exact"] = exact(truth, s["counts"])
        samples.append(s)
        bench.log(f"B: {done} ended: RSS {s['rss'] / 2**20:.1f} MiB, {s['fds']} fds, "
                  f"{s['redis_conns']} Redis connections, {s['series']} series, "
                  f"{s['last_event_series']} last_event series, exact {s['exact']}")
    bench.profile_stop("memory")
    for p in pubs:
        p.finish()
    last = samples[-1]["counts"]
    bench.results["memory"] = {
        "scans": a.bulk_scans, "step": step, "rss_before": samples[0]["rss"], "rss_after": samples[-1]["rss"],
        "samples": samples, "publisher_cpu": pub_cpu, "publisher_wall": pub_wall, "exporter_cpu": exp_cpu,
        "exporter_wall": exp_wall,
        "truth": {"events": dict(truth["events"]), "points": truth["points"], "scans": truth["scans"]},
        "exporter": {"events": dict(last["events"]), "points": last["points"], "ended": last["ended"]},
    }
