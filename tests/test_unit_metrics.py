"""sinks.metrics: the scrape-time collectors give the text prometheus_client's own metrics would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from exporter.sinks.metrics import ScanEnds


def test_scan_ends_expose_what_a_counter_and_a_histogram_would():
    ends_registry, reference = CollectorRegistry(), CollectorRegistry()
    ends = ScanEnds((1, 2, 5))
    ends_registry.register(ends)
    duration = Histogram("bliss_scan_duration_seconds",
                         "Scan duration from STARTED (or creation) to CLOSED, observed when the scan closes.",
                         ["session", "scan_type", "role"], buckets=(1, 2, 5), registry=reference)
    ended = Counter("bliss_scans_ended", "Closed scans, by end_reason and role (scan, sequence, subscan).",
                    ["session", "scan_type", "role", "end_reason"], registry=reference)
    ends.add_series("s", "ct", "scan", ("SUCCESS", "FAILURE"))
    ended.labels("s", "ct", "scan", "SUCCESS")
    ended.labels("s", "ct", "scan", "FAILURE")
    duration.labels("s", "ct", "scan")
    # on a bucket's bound, between bounds, past the last one; a scan without duration
    for labels, seconds in [(("s", "ct", "scan", "SUCCESS"), 1.0), (("s", "ct", "scan", "SUCCESS"), 0.5),
                            (("s", "ct", "scan", "SUCCESS"), 1.5), (("s", "ct", "scan", "FAILURE"), 5.0),
                            (("s", "ct", "scan", "FAILURE"), 7.25), (("s", "ascan", "subscan", "other"), 2.0),
                            (("s", "ct", "scan", "UNKNOWN"), None)]:
        ends.add(labels, seconds)
        ended.labels(*labels).inc()
        if seconds is not None:
            duration.labels(*labels[:3]).observe(seconds)
    generate_latest(ends_registry)  # new series are shown at 0 by one scrape first (test_first_scrape.py)
    text = generate_latest(ends_registry).decode()
    assert text == _without_created(generate_latest(reference).decode())  # the exporter disables *_created
    assert 'bliss_scan_duration_seconds_bucket{le="1.0",role="scan",scan_type="ct",session="s"} 2.0' in text
    assert 'bliss_scans_ended_total{end_reason="FAILURE",role="scan",scan_type="ct",session="s"} 2.0' in text


def _without_created(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if "_created" not in line) + "\n"
