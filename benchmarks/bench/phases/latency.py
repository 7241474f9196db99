"""C. /metrics latency with scans held open, in three client modes; D. the delay until a scan's end shows in /metrics."""

from __future__ import annotations

import json
import random
import time

from tests.helpers import wait_until

from ...procfs import rss_bytes
from ..run import Bench
from ..scrape import Scraper, ended_count
from ..stats import percentile

HELD_SESSION = "bench_active"
DELAY_SESSION = "bench_delay"
#: C's client modes: keep-alive back to back, keep-alive --spaced-gap apart, a new connection per request
CLIENT_MODES = ("keepalive", "spaced", "newconn")


def run(bench: Bench) -> None:
    a = bench.a
    hold = bench.start_publisher("hold", "hold", session=HELD_SESSION, scans=a.active_scans, streams=a.active_streams,
                                 events=1, points=1)
    hold.expect("READY", timeout=a.timeout)
    wait_until(lambda: (c := bench.counts(HELD_SESSION))["active"] == a.active_scans
               and c["events"]["new_data"] == a.active_scans * a.active_streams,
               a.timeout, 0.2, f"{a.active_scans} active scans in the exporter")
    time.sleep(1.0)
    active_sample = bench.resources(HELD_SESSION)  # the per-scan series exist while their scans do
    bench.log(f"C: {a.active_scans} scans open ({a.active_streams} streams each); "
              f"{a.latency_requests} GET /metrics per client mode")
    bench.profile_start("latency")
    modes = {mode: scrape_latency(bench, mode) for mode in CLIENT_MODES}
    bench.profile_stop("latency")
    bench.results["latency"] = {"requests": a.latency_requests, "active_scans": a.active_scans,
                                "modes": modes, "rss": rss_bytes(bench.exporter.pid),
                                "per_scan_series": active_sample["per_scan_series"],
                                "series": active_sample["series"]}

    delay_truth, delays = end_visibility(bench)
    hold.send()
    held_truth = json.loads(hold.expect("TRUTH", timeout=a.timeout))
    hold.finish()
    held = bench.wait_ended(HELD_SESSION, a.active_scans, a.timeout)
    dl = bench.wait_ended(DELAY_SESSION, 2 * a.delay_scans, a.timeout)
    bench.results["delay"] = {
        kind: {"scans": len(v), "p50": percentile(v, 50), "p99": percentile(v, 99), "max": max(v)}
        for kind, v in delays.items()}
    bench.results["side_checks"] = {
        HELD_SESSION: {"truth": held_truth, "exporter": {"events": dict(held["events"]), "points": held["points"]}},
        DELAY_SESSION: {"truth": delay_truth, "exporter": {"events": dict(dl["events"]), "points": dl["points"]}},
    }


def scrape_latency(bench: Bench, mode: str) -> dict:
    """--latency-requests sequential GET /metrics in one client mode: their latency, body size, exporter CPU."""
    a = bench.a
    lat = []
    size = 0
    exp0 = bench.exporter.cpu()
    scraper = Scraper(bench.scraper.port, fresh=mode == "newconn")
    for _ in range(a.latency_requests):
        t = time.perf_counter()
        status, body = scraper.get()
        lat.append(time.perf_counter() - t)
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        size = len(body)
        if mode == "spaced":
            time.sleep(a.spaced_gap)
    scraper.conn.close()
    return {"p50": percentile(lat, 50), "p99": percentile(lat, 99), "max": max(lat),
            "cpu_per_scrape": (bench.exporter.cpu() - exp0) / a.latency_requests, "body_bytes": size}


def end_visibility(bench: Bench) -> tuple[dict, dict[str, list[float]]]:
    """D: open scans closed one at a time, then short scans; the publisher's truth and each kind's delays
    from scan.close() returning to the first scrape showing that scan ended."""
    a = bench.a
    delay = bench.start_publisher("delay", "delay", session=DELAY_SESSION, scans=a.delay_scans, streams=2, events=5,
                                  points=1)
    delay.expect("READY", timeout=a.timeout)
    wait_until(lambda: bench.counts(DELAY_SESSION)["active"] == a.delay_scans, a.timeout, 0.2,
               f"{a.delay_scans} open scans of {DELAY_SESSION}")
    time.sleep(1.0)
    bench.log(f"D: {a.delay_scans} open scans closed one at a time, then {a.delay_scans} short scans; "
              f"/metrics every {a.scrape_interval * 1000:.0f} ms")
    # a new connection per scrape: on a keep-alive connection each answer waits ~40 ms for the
    # delayed ACK (Nagle, see C), which would be measured here instead of the exporter
    poll = Scraper(bench.scraper.port, fresh=True)

    def ended() -> int:
        return ended_count(poll, DELAY_SESSION)

    delays: dict[str, list[float]] = {"close": [], "short": []}
    # a random pause before each close: sent right after the previous end showed, the next scan
    # would always meet the scan watcher at the same point of its loop (phase-locked), which
    # measures that point instead of the delay a scan closing at any moment gets
    rng = random.Random(a.seed)
    for kind in ("close", "short"):
        for _ in range(a.delay_scans):
            before = ended()
            time.sleep(rng.uniform(0, a.delay_jitter))
            delay.send(kind)
            deadline = time.monotonic() + 30
            while True:
                if ended() > before:
                    seen = time.time()
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("scan end not visible in /metrics within 30 s")
                time.sleep(a.scrape_interval)
            closed = float(delay.expect("CLOSED"))
            delays[kind].append(max(0.0, seen - closed))
    delay.send("done")
    truth = json.loads(delay.expect("TRUTH"))
    delay.finish()
    return truth, delays
