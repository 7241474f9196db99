"""One sample of what must stay bounded in the exporter: RSS, open files, connections, series in /metrics."""

from __future__ import annotations

from tests.helpers import parse_metrics

from ..procfs import established_tcp, open_files, rss_bytes, socket_inodes
from .counts import session_counts
from .processes import Child
from .scrape import Scraper

#: series that exist once per active scan (labels session, scan): none may survive its scan
PER_SCAN_METRICS = ("bliss_scan_last_event_timestamp_seconds", "bliss_scan_stall_threshold_seconds",
                    "bliss_scan_progress_ratio")


def resources(exporter: Child, scraper: Scraper, redis_port: int, session: str) -> dict:
    """One sample of the exporter's resources, and its counts of the session."""
    pid = exporter.pid
    links = open_files(pid)
    inodes = socket_inodes(links)
    redis_conns = http_conns = 0
    for local, remote in established_tcp(pid, inodes):
        if remote == redis_port:
            redis_conns += 1
        elif local == scraper.port:
            http_conns += 1
    rss = rss_bytes(pid)
    status, body = scraper.get()  # the benchmark's one keep-alive connection (counted above)
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    text = body.decode()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    samples = parse_metrics(text)
    return {
        "rss": rss, "fds": len(links), "sockets": len(inodes), "redis_conns": redis_conns,
        "http_conns": http_conns, "series": len(lines),
        "last_event_series": sum(1 for line in lines if line.startswith("bliss_scan_last_event_timestamp_seconds")),
        "per_scan_series": sum(1 for line in lines if line.startswith(PER_SCAN_METRICS)),
        "process_open_fds": samples.get(("process_open_fds", frozenset()), float("nan")),
        "counts": session_counts(samples, session),
    }
