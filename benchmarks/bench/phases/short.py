"""S. Short scans at full rate: CPU per scan against publisher and baseline; then round trips and end visibility."""

from __future__ import annotations

import json
import threading
import time

from tests.helpers import wait_until

from ...procfs import cpu_seconds
from ..counts import exact, session_counts
from ..processes import Child, baseline_result, command, module
from ..run import Bench
from ..scrape import Scraper, ended_count
from ..stats import percentile

SESSION = "bench_short"
#: the session of the second, instrumented exporter (--session filtered)
ROUND_TRIPS_SESSION = "bench_short_rt"


def total_scans(a) -> int:
    """Scans of the workload: the plain ones, and each sequence with its children."""
    return a.short_scans + a.short_sequences * (1 + a.short_children)


def start_publisher(bench: Bench, name: str, session: str) -> Child:
    a = bench.a
    return bench.start_publisher(name, "short", session=session, scans=a.short_scans, concurrent=a.short_concurrent,
                                 streams=a.short_streams, events=a.short_events, points=1,
                                 sequences=a.short_sequences, children=a.short_children)


def run(bench: Bench) -> None:
    a = bench.a
    total = total_scans(a)
    baseline = None if a.no_baseline else bench.start_baseline("baseline_short", total)
    pub = start_publisher(bench, "short", SESSION)
    pub.expect("READY")
    bench.log(f"S: {a.short_scans} scans x {a.short_streams} channels x {a.short_events} points "
              f"({a.short_concurrent} at a time) + {a.short_sequences} sequences x {a.short_children} "
              f"children = {total} scans")
    bench.profile_start("short")
    pub0, exp0 = pub.cpu(), bench.exporter.cpu()
    base0 = baseline.cpu() if baseline else 0.0
    redis0 = cpu_seconds(bench.redis_pid)
    t0 = time.monotonic()
    pub.send()
    truth = json.loads(pub.expect("TRUTH", timeout=a.timeout))
    pub_cpu = pub.cpu() - pub0
    pub_wall = time.monotonic() - t0
    pub.finish()
    # wait on the one counter (a full scrape costs the exporter ~1-5 ms, not part of the work), then count
    wait_until(lambda: ended_count(bench.scraper, SESSION) >= total, a.timeout, 0.1, f"{total} scans of {SESSION} ended")
    exp_cpu = bench.exporter.cpu() - exp0
    exp_wall = time.monotonic() - t0
    bench.profile_stop("short")
    exp = bench.wait_ended(SESSION, total, a.timeout)
    base, base_cpu, base_wall = baseline_result(baseline, base0, t0, a.timeout)
    redis_cpu = cpu_seconds(bench.redis_pid) - redis0
    bench.log(f"S: publisher {pub_cpu:.2f} s CPU ({pub_wall:.1f} s wall), exporter {exp_cpu:.2f} s, "
              f"baseline {base_cpu if base_cpu is None else round(base_cpu, 2)} s")
    bench.results["short"] = {
        "scans": total, "truth": {"events": truth["events"], "points": truth["points"], "scans": truth["scans"]},
        "publisher_cpu": pub_cpu, "publisher_wall": pub_wall, "exporter_cpu": exp_cpu, "exporter_wall": exp_wall,
        "exporter": {"events": dict(exp["events"]), "points": exp["points"], "ended": exp["ended"]},
        "baseline_cpu": base_cpu, "baseline_wall": base_wall, "baseline": base, "redis_cpu": redis_cpu,
    }
    if not a.no_round_trips:
        bench.results["short"]["round_trips"] = round_trips(bench)


def round_trips(bench: Bench) -> dict | None:
    """The short workload again, watched by a second exporter that counts its own round trips.

    Method: benchmarks/experiments/count_round_trips.py wraps redis-py's send_packed_command
    (one call per command sent alone, one per pipeline: exactly one per round trip) and counts
    the commands each one carries, by the exporter function that sent it. Its instrumentation
    costs CPU, so it runs in a second exporter (--session bench_short_rt) whose CPU is not
    measured; the counts are its totals from just before the workload to the end of it, divided
    by the scans. The same pass measures end visibility: the second exporter's
    bliss_scans_ended_total is scraped every --scrape-interval; the k-th scan to close is
    matched with the first scrape showing k ended scans (first closed, first shown).
    With --exporter-command, that command runs the second exporter too, with ROUND_TRIPS_FILE
    set: it must count (as benchmarks/experiments/count_round_trips.py does).
    """
    a = bench.a
    session = ROUND_TRIPS_SESSION
    total = total_scans(a)
    rt_file = bench.workdir / "round_trips.json"
    if a.exporter_command:  # it must count its round trips when ROUND_TRIPS_FILE is set
        launcher = command(a.exporter_command)
    else:
        launcher = module("benchmarks.experiments.count_round_trips")
    counter, scraper = bench.start_exporter("exporter_rt", launcher, ["--session", session],
                                            env={"ROUND_TRIPS_FILE": str(rt_file)})

    def snapshot() -> dict:
        mark = time.time()
        wait_until(lambda: rt_file.exists() and rt_file.stat().st_mtime > mark + 0.01, 10, 0.05,
                   "a fresh round-trip count")
        return json.loads(rt_file.read_text())

    try:
        snapshot()
    except AssertionError:  # wait_until timed out: an --exporter-command that does not count
        counter.stop()
        bench.log("S: the second exporter writes no round-trip counts: second pass skipped")
        return None
    pub = start_publisher(bench, "short_rt", session)
    pub.expect("READY")
    time.sleep(1.0)
    before = snapshot()
    timeline: list[tuple[float, int]] = []
    stop = threading.Event()
    poll = Scraper(scraper.port, fresh=True)

    def scrape() -> None:
        while not stop.is_set():
            n = ended_count(poll, session)
            timeline.append((time.time(), n))
            if n >= total:
                return
            stop.wait(a.scrape_interval)

    thread = threading.Thread(target=scrape, daemon=True)
    thread.start()
    pub.send()
    truth = json.loads(pub.expect("TRUTH", timeout=a.timeout))
    pub.finish()
    thread.join(a.timeout)
    stop.set()
    counts = session_counts(scraper.samples(), session)
    after = snapshot()
    counter.stop()
    closes = sorted(truth["closes"])
    delays = []
    for k, closed in enumerate(closes, 1):
        seen = next((t for t, n in timeline if n >= k), None)
        if seen is not None:
            delays.append(max(0.0, seen - closed))
    diff = {kind: {f: after[kind].get(f, 0) - before[kind].get(f, 0) for f in after[kind]}
            for kind in ("round_trips", "commands")}
    return {
        "scans": total, "round_trips": diff["round_trips"], "commands": diff["commands"],
        "exact": exact({"events": truth["events"], "points": truth["points"]}, counts),
        "visibility": {"scans": len(delays), "missing": len(closes) - len(delays),
                       "p50": percentile(delays, 50) if delays else None,
                       "p99": percentile(delays, 99) if delays else None,
                       "max": max(delays) if delays else None},
    }
