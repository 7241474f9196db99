"""Benchmark: the exporter against the published watcher design, on the same workload.

    .venv/bin/python -m benchmarks.bench                # full run (10,000 short scans), ~3-5 min
    .venv/bin/python -m benchmarks.bench --quick        # 1,000 short scans, smaller workload
    .venv/bin/python -m benchmarks.bench --soak 30000   # only the memory/resources soak

from the repository root (every process it starts is a module run from there). One run starts a
private Redis Stack (127.0.0.1, free port), the exporter as a real process (`python -m exporter ...`)
and the baseline `benchmarks/seed_watcher.py`, then:

  A. throughput: publisher process(es) write --scans scans through blissdata as fast as they can;
     CPU seconds of publisher, exporter, baseline (and Redis) over exactly that work, the counts of
     each event type of exporter and baseline against the publisher's truth;
  S. short scans: --short-scans scans of --short-streams channels x --short-events points (one point
     per send, --short-concurrent at a time) and --short-sequences scan sequences of
     --short-children children each, at full rate; CPU of exporter, publisher and baseline over
     exactly that work, the counts against the truth; then the same workload again for a second
     exporter (instrumented: benchmarks/experiments/count_round_trips.py, --session filtered) that
     gives its Redis round trips and commands per scan, and the delay until each scan's end shows
     in its /metrics (scraped every --scrape-interval);
  B. memory and bounded resources: --bulk-scans short scans published quickly (several publisher
     processes) in steps of --soak-step; after each step, once every scan ended: exporter RSS, open
     fds, TCP connections to Redis, series in /metrics, per-scan series (must be 0), exact counts;
  C. /metrics latency: --active-scans scans held open (created, prepared, started) after the bulk
     scans ended; p50/p99 over --latency-requests sequential scrapes, in three client modes:
     keep-alive back to back, keep-alive --spaced-gap apart, a new connection per request;
  D. end visibility (the active scans still open): --delay-scans open scans closed one at a time,
     then as many short scans (created and closed at once), each after a random pause of up to
     --delay-jitter (not phase-locked to the exporter's loop); /metrics scraped every
     --scrape-interval (new connection each time) until bliss_scans_ended_total grows; p50/p99 of
     the time from scan.close() returning to the scrape that shows it.

CPU time is read from /proc/<pid>/stat (utime + stime, all threads) at the same instants for every
process (the publishers wait on stdin so that their CPU is read when their work is done).
"""
