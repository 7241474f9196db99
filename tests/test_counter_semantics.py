"""Counters count what happened since the exporter started (issue 17), as Prometheus adds them up.

- a scan created after the start is counted in full, even if it closed before the exporter could
  first read its store (Redis not up yet, access denied, history trimmed), whatever the host clock says;
- a scan created before the start adds only what happens after it (its history is its own: scan_end);
- every session and scan type of the store has its series at 0 from the start;
- an exporter restarted mid-scan: Prometheus' increase() over the restart is never above the truth.
"""

from __future__ import annotations

import glob
import os
import signal
import socket
import threading
import time

import numpy as np
import pytest
import redis
import requests
from blissdata.streams.default import Stream

from exporter.devtools.redis_stack import RedisStackServer, free_port
from exporter.devtools.simulator import ScanSpec, Truth, publish_scan
from exporter.store import ACL_RULES, HISTORY_STREAM

from . import legacy_fixtures
from .builders import EVENT_TYPES, events, new_scan, watcher_errors
from .helpers import paused, wait_until
from .prometheus import increase_of_raw_samples, needs_prometheus

legacy_redis = legacy_fixtures.legacy_redis
legacy_publish = legacy_fixtures.legacy_publish

PASSWORD = "c0unt3r-pw"
FAKETIME = next(iter(sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))), "libfaketime.so.1")


def skewed_clock(seconds: int) -> dict:
    """Environment giving the exporter process a host clock `seconds` off Redis TIME (libfaketime)."""
    if not seconds:
        return {}
    if not os.path.exists(FAKETIME):
        pytest.fail("libfaketime is not installed (scripts/bootstrap.sh --test installs Debian's faketime)")
    return {"LD_PRELOAD": FAKETIME, "FAKETIME": f"{seconds:+d}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def open_scan(data_store, session: str, number: int, sends: int):
    """A running scan with `sends` data entries of 2 points each."""
    scan = new_scan(data_store, session, number)
    stream = scan.create_stream(Stream.make_definition("timer:epoch", "float64"))
    scan.prepare()
    scan.start()
    for _ in range(sends):
        stream.send(np.arange(2.0))
    stream.join()
    return scan, stream


def finish(scan, stream, sends: int) -> None:
    for _ in range(sends):
        stream.send(np.arange(2.0))
    stream.join()
    scan.stop()
    scan.info["end_reason"] = "SUCCESS"
    scan.close()


@pytest.mark.parametrize("skew", [0, 30, -30], ids=["host-clock-right", "host-clock-30s-ahead", "host-clock-30s-behind"])
def test_scans_of_the_wait_for_the_store_are_counted_in_full_whatever_the_host_clock(
        skew, start_exporter, redis_server, data_store, raw_redis):
    """Before: A ended, B running. The exporter starts, but may not read yet (its user does not exist):
    C and D are published and end meanwhile, and the history is trimmed away. Then it may read.

    With a host clock 30 s ahead, C and D would look older than the start (never counted); 30 s
    behind, A would look newer (counted though its exporter's predecessor did). The offset to Redis
    TIME, measured at the first connection, makes all three the same.
    """
    port = int(redis_server.url.rsplit(":", 1)[1])
    a = publish_scan(data_store, ScanSpec(session="s1", number=1, npoints=4, count_time=0))
    b, b_stream = open_scan(data_store, "s1", 2, sends=3)
    exporter = start_exporter(url=f"redis://reader:{PASSWORD}@127.0.0.1:{port}", ready=False, env=skewed_clock(skew))
    exporter.wait_ready("/healthz")
    wait_until(lambda: exporter.value("bliss_exporter_watcher_errors_total", watcher="startup") >= 1,
               what="start-up refused (no such user yet)")
    truth = Truth()
    for number in (3, 4):  # two short scans at once, ended before the exporter can read
        truth.add(publish_scan(data_store, ScanSpec(session="s1", number=number, npoints=5, count_time=0,
                                                    scan_type="ascan" if number == 4 else "loopscan")))
    raw_redis.xtrim(HISTORY_STREAM, maxlen=0, approximate=False)  # the history no longer reaches back
    gone = publish_scan(data_store, ScanSpec(session="s1", number=5, npoints=2, count_time=0))
    data_store.delete_scan(raw_redis.xrevrange(HISTORY_STREAM, count=1)[0][1][b"key"].decode(), force=True)
    raw_redis.execute_command("ACL", "SETUSER", "reader", "on", f">{PASSWORD}", *ACL_RULES)
    exporter.wait_ready()
    exporter.wait_value(1, "bliss_scans_ended_total", session="s1", scan_type="ascan", end_reason="SUCCESS")
    exporter.wait_value(1, "bliss_active_scans", session="s1", state="started")  # B, adopted
    finish(b, b_stream, sends=2)
    exporter.wait_value(2, "bliss_scans_ended_total", session="s1", scan_type="loopscan", end_reason="SUCCESS")
    exporter.barrier(data_store)  # the values below are final: an over-count would show

    # C and D in full; B only from the start on (2 sends, its stop and end); A not at all
    expected = {e: truth.events[e] for e in EVENT_TYPES}
    expected.update(new_data=expected["new_data"] + 2, stop_scan=expected["stop_scan"] + 1,
                    end_scan=expected["end_scan"] + 1)
    assert events(exporter, "s1") == expected
    assert exporter.value("bliss_scan_points_total", session="s1") == truth.points + 4
    starts = {e["scan"]: e["adopted"] for e in exporter.logs("scan_start", session="s1")}
    assert starts == {"2_loopscan": True, "3_loopscan": False, "4_ascan": False}
    ends = {e["scan"]: e for e in exporter.logs("scan_end", session="s1")}
    assert set(ends) == {"2_loopscan", "3_loopscan", "4_ascan"}
    assert ends["2_loopscan"]["points"] == 10 and ends["2_loopscan"]["events"]["new_data"] == 5  # its whole history
    assert a.scans == gone.scans == 1 and "1_loopscan" not in starts and "5_loopscan" not in starts
    # created since the start, deleted before the first read: skipped as vanished (counted, logged)
    assert exporter.value("bliss_exporter_scans_skipped_total", reason="vanished") == 1
    (skipped,) = exporter.logs("scan_skipped")
    assert skipped["reason"] == "vanished" and "before it could read it" in skipped["detail"]
    (gap,) = exporter.logs("history_gap")  # the trimmed history may have held more: said once
    assert gap["position"] == "exporter start"
    errors = watcher_errors(exporter.metrics())
    assert errors["startup"] >= 1 and (errors["session_watcher"], errors["scan_watcher"], errors["health"]) == (0, 0, 0)


def test_exporter_started_before_redis_counts_two_short_scans_published_as_it_comes_up(start_exporter):
    held = socket.socket()  # bound, never listening: refused, and no other process takes the port meanwhile
    held.bind(("127.0.0.1", 0))
    port = held.getsockname()[1]
    exporter = start_exporter(url=f"redis://127.0.0.1:{port}", ready=False)
    exporter.wait_ready("/healthz")
    server = None
    try:
        wait_until(lambda: exporter.value("bliss_exporter_watcher_errors_total", watcher="startup") >= 2,
                   what="start-up refused (no Redis yet)")
        held.close()
        server = RedisStackServer(port=port).start()
        server.init_blissdata()
        from blissdata.redis_engine.store import DataStore

        store = DataStore(server.url + "?protocol=2")
        truth = Truth()
        with paused(exporter):  # whatever its back-off: both scans end before it reads again
            for number in (1, 2):
                truth.add(publish_scan(store, ScanSpec(session="early", number=number, npoints=6, count_time=0)))
        exporter.wait_ready()
        exporter.wait_value(2, "bliss_scans_ended_total", session="early", scan_type="loopscan", end_reason="SUCCESS")
        exporter.barrier(store)
        assert events(exporter, "early") == {e: truth.events[e] for e in EVENT_TYPES}
        assert exporter.value("bliss_scan_points_total", session="early") == truth.points
        assert [e["scan"] for e in exporter.logs("scan_end", session="early")] == ["1_loopscan", "2_loopscan"]
    finally:
        held.close()
        if server is not None:
            server.cleanup()


def test_bliss_1_session_set_up_after_the_exporter_started_is_counted_from_its_first_scan(
        legacy_redis, legacy_publish, start_exporter):
    """As a new user would: the exporter started first on an empty BLISS 1.x data Redis (no session node:
    "not a blissdata data store (yet?)", retried with back-off); then the session is set up and a
    loopscan and a ct run at once, published by blissdata 0.3.1. Every one of them is counted."""
    exporter = start_exporter(url=f"redis://127.0.0.1:{legacy_redis.port}", ready=False)
    exporter.wait_ready("/healthz")
    wait_until(lambda: exporter.value("bliss_exporter_watcher_errors_total", watcher="startup") >= 1,
               what="no data store yet")
    with paused(exporter):  # whatever its back-off: these scans end before it reads again
        run = legacy_publish({"scans": [{"type": "loopscan", "npoints": 30, "counters": ["diode1", "diode2"]},
                                        {"type": "ct", "npoints": 1, "counters": ["diode1"]},
                                        {"type": "ascan", "npoints": 3, "counters": ["diode1"]}]})
        *truths, evicted = run.truths
        legacy_redis.client().delete(evicted["key"])  # its node evicted before the first read
    exporter.wait_value(len(truths), "bliss_scan_events_total", session="demo_session", event_type="end_scan",
                        timeout=60)
    exporter.metrics_text()  # a new session's first counts show from the scrape after its zero series
    assert {e: exporter.value("bliss_scan_events_total", session="demo_session", event_type=e)
            for e in EVENT_TYPES} == {
        "new_node": sum(t["new_node"] for t in truths), "new_data": sum(t["new_data"] for t in truths),
        "prepared_scan": len(truths), "start_scan": 0, "stop_scan": 0, "end_scan": len(truths)}
    assert exporter.value("bliss_scan_points_total", session="demo_session") == sum(
        n for t in truths for n in t["channels"].values())
    assert sorted(e["scan"] for e in exporter.logs("scan_end")) == sorted(t["scan"] for t in truths)
    assert exporter.value("bliss_exporter_scans_skipped_total", reason="vanished") == 1
    (skipped,) = exporter.logs("scan_skipped")
    assert skipped["key"] == evicted["key"] and skipped["reason"] == "vanished"


def test_ended_scans_of_the_store_are_not_counted_but_have_their_zero_series_from_the_start(
        start_exporter, data_store):
    publish_scan(data_store, ScanSpec(session="old", number=1, npoints=3, count_time=0))
    publish_scan(data_store, ScanSpec(session="old", number=2, scan_type="ascan", npoints=3, count_time=0))
    exporter = start_exporter()
    # at start, before any scan of theirs is seen: increase() will see the next one's counts
    wait_until(lambda: events(exporter, "old") == dict.fromkeys(EVENT_TYPES, 0), what="the zero series of 'old'")
    assert exporter.value("bliss_scan_points_total", session="old") == 0
    for scan_type in ("loopscan", "ascan"):
        for reason in ("SUCCESS", "FAILURE", "USER_ABORT"):
            assert exporter.value("bliss_scans_ended_total", session="old", scan_type=scan_type, end_reason=reason) == 0
        assert exporter.value("bliss_scan_duration_seconds_count", session="old", scan_type=scan_type) == 0
    assert exporter.value("bliss_active_scans", session="old", state="started") == 0
    truth = publish_scan(data_store, ScanSpec(session="old", number=3, npoints=3, count_time=0))
    exporter.wait_value(1, "bliss_scans_ended_total", session="old", scan_type="loopscan", end_reason="SUCCESS")
    exporter.barrier(data_store)
    assert events(exporter, "old") == {e: truth.events[e] for e in EVENT_TYPES}
    assert [e["scan"] for e in exporter.logs("scan_start", session="old")] == ["3_loopscan"]


def test_busy_windows_while_scans_run_are_outages_not_watcher_errors(start_exporter, data_store, raw_redis,
                                                                     redis_server):
    """A Lua script keeps Redis BUSY three times while scans run: each window is the data store down
    (one datastore_down line each), never a watcher_error; counts stay exact and /readyz is 200 again
    within one self-test period (5 s) of the last window."""
    raw_redis.config_set("busy-reply-threshold", 100)
    exporter = start_exporter()
    readyz_texts = []
    stop = threading.Event()

    def watch_readyz():
        while not stop.is_set():
            try:
                readyz_texts.append(exporter.get("/readyz").text)
            except requests.RequestException:
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_readyz, daemon=True)
    watcher.start()
    truth = Truth()
    running, running_stream = open_scan(data_store, "busy", 100, sends=1)
    blocker = redis.Redis.from_url(redis_server.url + "?protocol=2")
    try:
        for window in range(3):
            truth.add(publish_scan(data_store, ScanSpec(session="busy", number=window + 1, npoints=4, count_time=0)))
            running_stream.send(np.arange(2.0))
            running_stream.join()
            script = threading.Thread(target=_busy_script, args=(blocker,), daemon=True)
            script.start()
            wait_until(lambda: "BUSY" in (readyz_texts[-1] if readyz_texts else ""), what=f"BUSY window {window}")
            time.sleep(0.5)
            raw_redis.script_kill()
            script.join(10)
            ended = time.monotonic()
            wait_until(lambda: readyz_texts[-1] == "ready\n", what=f"ready after window {window}")
            back = time.monotonic() - ended
        finish(running, running_stream, sends=1)
        exporter.wait_value(4, "bliss_scans_ended_total", session="busy", scan_type="loopscan", end_reason="SUCCESS")
        exporter.barrier(data_store)
    finally:
        stop.set()
        watcher.join(5)
    running_truth = {"new_node": 2, "new_data": 1 + 3 + 1, "prepared_scan": 1, "start_scan": 1, "stop_scan": 1,
                     "end_scan": 1}
    assert events(exporter, "busy") == {e: truth.events[e] + running_truth[e] for e in EVENT_TYPES}
    assert watcher_errors(exporter.metrics()) == {"startup": 0, "session_watcher": 0, "scan_watcher": 0, "health": 0}
    assert exporter.logs("watcher_error") == []
    downs = exporter.logs("datastore_down")
    assert len(downs) == 3 and all(d["error"].startswith("BUSY") for d in downs), downs  # one per window
    assert not [t for t in readyz_texts if "keeps failing" in t]
    assert back < 5 + 2, f"/readyz 200 only {back:.1f} s after the last BUSY window"  # one self-test period
    assert "Traceback" not in exporter.stdout() + exporter.stderr()


def _busy_script(client) -> None:
    try:
        client.eval("while true do end", 0)
    except redis.RedisError:
        pass  # killed by SCRIPT KILL


@needs_prometheus
def test_restart_mid_scan_never_counts_twice_in_prometheus_increase(start_exporter, start_prometheus, data_store):
    """Three scans end, a fourth runs; the exporter is killed, data arrives while none runs, another
    exporter starts on the same address. Prometheus (1 s scrapes, the exporters' only scraper) adds up
    the raw samples with resets: never above the truth, short by at most the events published while no
    exporter ran."""
    port = free_port()
    start_exporter(port=port)  # only Prometheus reads its /metrics: its first scrape of a series shows 0
    prom = start_prometheus([f"127.0.0.1:{port}"], [])

    def scraped(expr: str, expected: float, what: str) -> None:
        def equal():
            result = prom.query(expr)
            return bool(result) and float(result[0]["value"][1]) == expected
        wait_until(equal, 30, 0.2, f"Prometheus scraped {what}: {expr} == {expected}")

    scraped("up", 1, "the first exporter")
    truth = Truth()
    for number in (1, 2, 3):
        truth.add(publish_scan(data_store, ScanSpec(session="r", number=number, npoints=30, count_time=0)))
    running, stream = open_scan(data_store, "r", 4, sends=9)
    truth.events.update({"new_node": 2, "prepared_scan": 1, "start_scan": 1, "new_data": 9})
    scraped('sum(bliss_scan_events_total{session="r"})', sum(truth.events.values()), "the first exporter's totals")
    first = [p for p in start_exporter.processes if p.port == port][0]
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    gap = 5  # data entries published while no exporter runs
    for _ in range(gap):
        stream.send(np.arange(2.0))
    stream.join()
    truth.events["new_data"] += gap
    second = start_exporter(port=port)
    scraped('bliss_active_scans{session="r",state="started",role="scan"}', 1, "the running scan adopted")
    finish(running, stream, sends=4)
    truth.events.update({"new_data": 4, "stop_scan": 1, "end_scan": 1})
    truth.add(publish_scan(data_store, ScanSpec(session="r", number=5, npoints=30, count_time=0)))
    scraped('bliss_scan_events_total{session="r",event_type="end_scan"}', 2, "the second exporter's ends")
    final = sum(events(second, "r").values())
    scraped('sum(bliss_scan_events_total{session="r"})', final, "the second exporter's totals")

    raw = prom.api("query", query='bliss_scan_events_total{session="r"}[10m]')["result"]
    added = sum(increase_of_raw_samples([(t, float(v)) for t, v in series["values"]]) for series in raw)
    published = sum(truth.events.values())
    assert published - gap <= added <= published, (added, published, gap)
    assert added == published - gap  # here exactly: every event but the gap's was read by an exporter
    assert sum(truth.events.values()) - final > gap  # the first process's counts are not in the second's
