"""A new counter series is shown at 0 by one scrape before its first counts: increase() sees them.

In-process, on the exporter's own collectors, read as Prometheus reads them (the exposition text).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from exporter.model import EventType
from exporter.sinks.metrics import ScanCounts, ScanEnds

from .helpers import parse_metrics


def scrape(registry) -> dict:
    return parse_metrics(generate_latest(registry).decode())


def new_data(session: str):
    return ("bliss_scan_events_total", frozenset({"session": session, "event_type": "new_data"}.items()))


def test_the_first_scrape_of_a_new_session_shows_its_zero_the_next_ones_its_counts():
    registry, counts = CollectorRegistry(), ScanCounts()
    registry.register(counts)
    counts.add("x", {EventType.NEW_DATA: 30}, 300)  # a short scan of a new session ends before any scrape
    first = scrape(registry)
    assert first[new_data("x")] == 0
    assert first[("bliss_scan_points_total", frozenset({("session", "x")}))] == 0
    second = scrape(registry)
    assert second[new_data("x")] == 30 and second[("bliss_scan_points_total", frozenset({("session", "x")}))] == 300
    counts.add("x", {EventType.NEW_DATA: 5}, 0)  # a series already scraped: counted at once
    assert scrape(registry)[new_data("x")] == 35


def test_a_session_created_after_a_scrape_is_held_on_its_own():
    registry, counts = CollectorRegistry(), ScanCounts()
    registry.register(counts)
    counts.add("x", {EventType.NEW_DATA: 1}, 0)
    scrape(registry)
    counts.add("y", {EventType.NEW_DATA: 2}, 0)
    counts.add("x", {EventType.NEW_DATA: 1}, 0)
    now = scrape(registry)
    assert now[new_data("x")] == 2 and now[new_data("y")] == 0
    assert scrape(registry)[new_data("y")] == 2


def test_counts_are_added_at_once_only_the_first_exposition_shows_zero():
    registry, counts = CollectorRegistry(), ScanCounts()
    registry.register(counts)
    counts.add("x", {EventType.NEW_DATA: 3}, 0)
    counts.add("x", {EventType.NEW_DATA: 4}, 0)
    assert counts.events["x"][EventType.NEW_DATA] == 7  # nothing waits in memory
    assert scrape(registry)[new_data("x")] == 0  # however long after: its first scrape shows 0
    assert scrape(registry)[new_data("x")] == 7


def test_a_new_end_reason_or_scan_type_series_shows_its_zero_first():
    registry, ends = CollectorRegistry(), ScanEnds((1, 2))
    registry.register(ends)
    ends.add_series("s", "ct", "scan", ("SUCCESS",))
    scrape(registry)
    ends.add(("s", "ct", "scan", "SUCCESS"), 0.5)  # a series already shown: at once
    ends.add(("s", "ct", "scan", "weird"), 1.5)  # a new end_reason series: its zero first
    ends.add(("s", "ascan", "scan", "SUCCESS"), 1.5)  # a new scan type
    first = scrape(registry)

    def ended(scan_type, reason):
        labels = {"session": "s", "scan_type": scan_type, "role": "scan", "end_reason": reason}
        return ("bliss_scans_ended_total", frozenset(labels.items()))

    def count(scan_type, values):
        return values[("bliss_scan_duration_seconds_count",
                       frozenset({"session": "s", "scan_type": scan_type, "role": "scan"}.items()))]

    assert first[ended("ct", "SUCCESS")] == 1 and first[ended("ct", "weird")] == 0
    # the ct duration series was already shown: both ct durations count in it at once
    assert first[ended("ascan", "SUCCESS")] == 0 and count("ascan", first) == 0 and count("ct", first) == 2
    second = scrape(registry)
    assert second[ended("ct", "weird")] == 1 and second[ended("ascan", "SUCCESS")] == 1
    assert count("ascan", second) == 1 and count("ct", second) == 2
