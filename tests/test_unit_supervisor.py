"""Supervision in-process: a part that keeps failing makes /readyz fail with its last error, never dies."""

from __future__ import annotations

import time

import gevent
import redis
from prometheus_client import CollectorRegistry, Counter
from redis._parsers.base import BaseParser

from exporter.health import Health
from exporter.parts import Part
from exporter.supervisor import Backoff, Supervisor


def until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        gevent.sleep(0.02)


def make(healthy_after: float = 0.3):
    registry = CollectorRegistry()
    health = Health(registry)
    health.up("redis://bliss-data:6380")
    errors = Counter("bliss_exporter_watcher_errors", "failures", ["watcher"], registry=registry)
    supervisor = Supervisor(health, errors, lambda: "redis://bliss-data:6380", wait_until_usable=lambda: None,
                            healthy_after=healthy_after)
    return health, errors, supervisor, registry


def test_a_part_failing_twice_in_a_row_makes_readiness_fail_until_it_runs_healthy():
    health, errors, supervisor, registry = make()
    calls = []

    def part():
        calls.append(time.monotonic())
        if len(calls) <= 3:
            raise KeyError("boom")  # a bug, not the data store
        gevent.sleep(60)

    greenlet = gevent.spawn(supervisor.run, Part.SCAN_WATCHER, part)
    try:
        until(lambda: len(calls) >= 1 and registry.get_sample_value(
            "bliss_exporter_watcher_errors_total", {"watcher": "scan_watcher"}) == 1)
        assert health.ready, "one failure is not yet 'keeps failing'"
        until(lambda: len(calls) >= 2 and registry.get_sample_value(
            "bliss_exporter_watcher_errors_total", {"watcher": "scan_watcher"}) == 2)
        assert not health.ready and health.reason == "scan_watcher keeps failing: KeyError: 'boom'"
        assert registry.get_sample_value("bliss_datastore_up") == 1  # the store itself is fine
        until(lambda: health.ready, timeout=10)  # the 4th run lasts: healthy again
        assert len(calls) == 4 and not greenlet.dead
        assert registry.get_sample_value("bliss_exporter_watcher_errors_total", {"watcher": "scan_watcher"}) == 3
        gaps = [b - a for a, b in zip(calls, calls[1:])]
        # waits of at least 0.2, 0.4 and 0.8 s (a busy machine may add to a wait, never take from it;
        # 10 ms of slack for the event loop's cached clock)
        assert all(gap >= wait - 0.01 for gap, wait in zip(gaps, [0.2, 0.4, 0.8])), ("retries back off", gaps)
    finally:
        greenlet.kill()


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_healthy_run():
    backoff = Backoff(first=0.2, cap=5.0)
    assert [backoff.next() for _ in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    backoff.reset()
    assert backoff.next() == 0.2


def test_an_error_reply_meaning_unavailable_marks_the_store_down_with_its_reason():
    health, errors, supervisor, registry = make()
    busy = redis.ResponseError("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.")
    failures = []

    def part():
        failures.append(1)
        if len(failures) == 1:
            raise busy
        gevent.sleep(60)

    greenlet = gevent.spawn(supervisor.run, Part.SESSION_WATCHER, part)
    try:
        until(lambda: registry.get_sample_value("bliss_datastore_up") == 0)
        assert health.reason.startswith("BUSY Redis is busy running a script")
        assert not greenlet.dead
    finally:
        greenlet.kill()


def test_start_up_returns_what_it_made_once_it_succeeds():
    health, errors, supervisor, registry = make()
    attempts = []

    def connect():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionRefusedError(111, "Connection refused")
        return "watchers"

    assert supervisor.run(Part.STARTUP, connect, once=True) == "watchers"
    assert registry.get_sample_value("bliss_exporter_watcher_errors_total", {"watcher": "startup"}) == 2


def test_a_watcher_stopped_by_a_busy_store_marks_it_down_but_has_not_failed():
    """BUSY (or LOADING, a refused connection...) inside a batch is the data store down, once per outage:
    no watcher_error, nothing counted against the watcher, ready again as soon as the store is."""
    health, errors, supervisor, registry = make()
    busy = BaseParser().parse_error("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.")
    redis.client.Pipeline.annotate_exception(None, busy, 3, ("EXISTS", "esrf:scan:x"))
    calls = []

    def part():
        calls.append(1)
        if len(calls) <= 3:
            raise busy
        gevent.sleep(60)

    greenlet = gevent.spawn(supervisor.run, Part.SCAN_WATCHER, part)
    try:
        until(lambda: len(calls) >= 4)
        assert registry.get_sample_value("bliss_exporter_watcher_errors_total", {"watcher": "scan_watcher"}) is None
        assert not health.ready and health.reason.startswith("BUSY Redis is busy")
        health.up("redis://bliss-data:6380")  # the self-test passes again
        assert health.ready and health.reason == ""
    finally:
        greenlet.kill()
