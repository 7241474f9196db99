"""Faults and odd scans: Redis outages, exporter restarts, history gaps, deleted/invalid/odd scans."""

from __future__ import annotations

import time

import numpy as np
import pytest
from blissdata.streams.default import Stream

from exporter.devtools.redis_stack import RedisStackServer
from exporter.devtools.simulator import ScanSpec, publish_scan

from .builders import events, new_scan
from .helpers import paused, wait_until


@pytest.mark.parametrize("keep_data", [True, False], ids=["data-kept", "data-lost"])
def test_redis_killed_mid_scan_and_restarted(start_exporter, tmp_path, keep_data):
    from blissdata.redis_engine.store import DataStore

    extra = ["--appendonly", "yes", "--appendfsync", "always"] if keep_data else []
    server = RedisStackServer(extra_args=extra).start()
    try:
        server.init_blissdata()
        store = DataStore(server.url + "?protocol=2")
        exporter = start_exporter(url=server.url)
        scan = new_scan(store, "s1", 1)
        stream = scan.create_stream(Stream.make_definition("timer:epoch", "float64"))
        scan.prepare()
        scan.start()
        stream.send(np.arange(10.0))
        stream.join()
        # the publisher's sink threads would not survive the outage (they would hang this process)
        stream.event_stream._sink.stop()
        exporter.wait_value(1, "bliss_scan_events_total", session="s1", event_type="new_data")

        server.kill()
        wait_until(lambda: exporter.value("bliss_datastore_up") == 0, 10, what="datastore_up 0")
        assert exporter.get("/readyz").status_code == 503
        time.sleep(1.5)  # not a count check: time for several retries while it is down (logged once, below)
        server.start()
        if not keep_data:
            server.init_blissdata()
        wait_until(lambda: exporter.value("bliss_datastore_up") == 1, 15, what="datastore_up 1 again")

        if keep_data:
            # the publisher's stream sinks died with the connection: BLISS would reload the scan
            from blissdata.redis_engine.scan import Scan

            store = DataStore(server.url + "?protocol=2")
            scan = Scan._load_rw(store, scan.key)
            scan.info["end_reason"] = "FAILURE"
            scan.close()  # a reloaded scan can only be closed (blissdata refuses STOPPED)
            exporter.wait_value(1, "bliss_scan_events_total", session="s1", event_type="end_scan")
            assert events(exporter, "s1")["new_data"] == 1
            assert exporter.value("bliss_scan_points_total", session="s1") == 10
        else:
            store = DataStore(server.url + "?protocol=2")
            exporter.wait_value(1, "bliss_exporter_scans_lost_total", session="s1")
            (lost,) = exporter.logs("scan_lost")
            assert lost["scan"] == "1_loopscan" and lost["reason"] == "vanished"
            assert exporter.value("bliss_active_scans", session="s1", state="started") == 0

        truth = publish_scan(store, ScanSpec(session="s1", number=2, npoints=4, count_time=0))
        exporter.wait_value(1 + keep_data, "bliss_scan_events_total", session="s1", event_type="end_scan")
        base = {"new_data": 1, "new_node": 2, "prepared_scan": 1, "start_scan": 1}
        got = events(exporter, "s1")
        for event, n in truth.events.items():
            assert got[event] == n + base.get(event, 0) + (1 if keep_data and event == "end_scan" else 0), event
        downs, ups = exporter.logs("datastore_down"), exporter.logs("datastore_up")
        assert len(downs) == 1, downs  # once per transition, not per retry
        assert len(ups) == 2  # at start, and after the outage
        assert exporter.get("/readyz").status_code == 200
        assert exporter.proc.poll() is None and "Traceback" not in exporter.stdout() + exporter.stderr()
    finally:
        server.cleanup()


def test_exporter_killed_mid_scan_and_restarted_counts_each_event_once(start_exporter, data_store):
    """Changed on purpose (issue 17): the restarted exporter used to count the adopted scan's whole
    history again. Its counters now count what happens after its start (the scan_end line has it all);
    the real-Prometheus increase() over such a restart is in test_counter_semantics.py."""
    first = start_exporter()
    scan = new_scan(data_store, "s1", 1)
    stream = scan.create_stream(Stream.make_definition("timer:epoch", "float64"))
    scan.prepare()
    scan.start()
    for _ in range(7):
        stream.send(1.0)
    stream.join()
    first.wait_value(7, "bliss_scan_events_total", session="s1", event_type="new_data")
    first.proc.kill()
    first.proc.wait()
    for _ in range(3):
        stream.send(np.arange(3.0))
    stream.join()
    second = start_exporter()
    scan.stop()
    scan.close()
    second.wait_value(1, "bliss_scan_events_total", session="s1", event_type="end_scan")
    second.barrier(data_store)  # the values below are final: an over-count would show
    assert events(second, "s1") == {"new_node": 0, "new_data": 0, "prepared_scan": 0, "start_scan": 0,
                                    "stop_scan": 1, "end_scan": 1}
    assert second.value("bliss_scan_points_total", session="s1") == 0
    (end,) = second.logs("scan_end", session="s1")
    assert end["points"] == 16 and end["events"] == {"new_node": 2, "new_data": 10, "prepared_scan": 1,
                                                     "start_scan": 1, "stop_scan": 1, "end_scan": 1}


def test_history_trimmed_past_position_is_resynchronised(start_exporter, data_store, raw_redis):
    exporter = start_exporter()
    publish_scan(data_store, ScanSpec(session="s1", number=1, npoints=2, count_time=0))
    exporter.wait_value(1, "bliss_scan_events_total", session="s1", event_type="end_scan")
    with paused(exporter):
        for number in range(2, 8):
            publish_scan(data_store, ScanSpec(session="s1", number=number, npoints=2, count_time=0))
        raw_redis.xtrim("_SCAN_HISTORY_", maxlen=1, approximate=False)  # as if > 2048 scans went by
    exporter.wait_value(7, "bliss_scan_events_total", session="s1", event_type="end_scan")
    exporter.barrier(data_store)  # from here on, a scan counted twice (history and resync) would show
    assert exporter.value("bliss_scan_events_total", session="s1", event_type="end_scan") == 7
    assert exporter.value("bliss_scan_events_total", session="s1", event_type="new_node") == 7 * 5
    (gap,) = exporter.logs("history_gap")
    assert gap["level"] == "warning"
    assert [e["scan"] for e in exporter.logs("scan_end", session="s1")] == [f"{n}_loopscan" for n in range(1, 8)]


def test_scan_deleted_while_watched_and_before_read(start_exporter, data_store):
    exporter = start_exporter()
    scan = new_scan(data_store, "s1", 1)
    stream = scan.create_stream(Stream.make_definition("timer:epoch", "float64"))
    scan.prepare()
    scan.start()
    stream.send(1.0)
    stream.join()
    exporter.wait_value(1, "bliss_active_scans", session="s1", state="started")
    data_store.delete_scan(scan.key, force=True)  # closes it with end_reason DELETION, 10 s TTL
    exporter.wait_value(1, "bliss_scans_ended_total", session="s1", scan_type="loopscan", end_reason="DELETION")
    assert events(exporter, "s1")["new_data"] == 1

    with paused(exporter):
        gone = new_scan(data_store, "s1", 2)
        gone.close()
        data_store.delete_scan(gone.key)
    exporter.wait_value(1, "bliss_exporter_scans_skipped_total", reason="vanished")
    (skip,) = exporter.logs("scan_skipped")
    assert skip["key"] == gone.key and skip["reason"] == "vanished"


def test_invalid_scan_document_is_skipped_and_counted(start_exporter, data_store, raw_redis):
    exporter = start_exporter()
    raw_redis.json().set("esrf:scan:01BADBADBADBADBADBADBADBAD", "$", {"id": {"number": 3}, "info": "x"})
    raw_redis.xadd("_SCAN_HISTORY_", {"key": "esrf:scan:01BADBADBADBADBADBADBADBAD"})
    raw_redis.xadd("_SCAN_HISTORY_", {"key": "not-a-scan-key"})
    publish_scan(data_store, ScanSpec(session="s1", number=4, npoints=3, count_time=0))
    exporter.wait_value(1, "bliss_scan_events_total", session="s1", event_type="end_scan")
    assert exporter.value("bliss_exporter_scans_skipped_total", reason="invalid") == 2
    skipped = exporter.logs("scan_skipped")
    assert [s["reason"] for s in skipped] == ["invalid", "invalid"]
    assert all(v == 0 for k, v in exporter.metrics().items() if k[0] == "bliss_exporter_watcher_errors_total")


def test_created_straight_to_closed_and_missing_plugin_stream(start_exporter, data_store, raw_redis):
    exporter = start_exporter()
    scan = new_scan(data_store, "s1", 1, name="ct")
    scan.info["end_reason"] = "FAILURE"
    scan.close()  # CREATED -> CLOSED
    exporter.wait_value(1, "bliss_scan_events_total", session="s1", event_type="end_scan")
    assert events(exporter, "s1") == {"new_node": 1, "new_data": 0, "prepared_scan": 0, "start_scan": 0,
                                      "stop_scan": 0, "end_scan": 1}
    assert exporter.value("bliss_scan_duration_seconds_count", session="s1", scan_type="ct") == 1

    # a stream written by a plugin this side does not have installed
    with paused(exporter):
        scan = new_scan(data_store, "s1", 2)
        stream = scan.create_stream(Stream.make_definition("xpcs:frames", "float64"))
        scan.prepare()
        raw_redis.json().set(scan.key, '$.data_streams["xpcs:frames"].info.plugin', "not_installed_plugin")
        scan.start()
        stream.send(np.arange(4.0))
        stream.send(1.0)
        scan.stop()
        scan.close()
    exporter.wait_value(2, "bliss_scan_events_total", session="s1", event_type="end_scan")
    assert exporter.value("bliss_scan_events_total", session="s1", event_type="new_data") == 2
    assert exporter.value("bliss_scan_points_total", session="s1") == 5
    assert exporter.proc.poll() is None


@pytest.mark.parametrize("case", ["no-protocol-key", "wrong-protocol", "no-redisearch"])
def test_data_store_that_is_not_blissdata_is_reported_and_retried(start_exporter, case):
    import redis

    server = RedisStackServer(modules=case != "no-redisearch").start()
    try:
        client = redis.Redis.from_url(server.url)
        expected = {
            "no-protocol-key": "no blissdata protocol key",
            "wrong-protocol": "blissdata protocol version 2 found, only 1 is supported",
            "no-redisearch": "the RediSearch module is missing",
        }[case]
        if case == "wrong-protocol":
            client.set("_PROTOCOL_VERSION_", 2)
        if case == "no-redisearch":
            client.set("_PROTOCOL_VERSION_", 1)
        exporter = start_exporter(url=server.url, ready=False)
        exporter.wait_ready("/healthz")
        wait_until(lambda: expected in exporter.get("/readyz").text, what="readyz reason")
        assert exporter.get("/readyz").status_code == 503
        assert exporter.value("bliss_datastore_up") == 0
        time.sleep(1.0)  # not a count check: time for several retries, so that "logged once" means something
        (down,) = exporter.logs("datastore_down")
        assert expected in down["error"]
        if case != "no-redisearch":  # the data store gets fixed: the exporter notices by itself
            client.flushall()
            server.init_blissdata()
            wait_until(lambda: exporter.get("/readyz").status_code == 200, 15, what="ready after fix")
            assert exporter.value("bliss_datastore_up") == 1
        assert "Traceback" not in exporter.stdout() + exporter.stderr()
    finally:
        server.cleanup()


def test_poisoned_scan_is_dropped_and_the_watcher_restarted(start_exporter, data_store, raw_redis):
    exporter = start_exporter()
    good = new_scan(data_store, "s1", 1)
    exporter.wait_value(1, "bliss_active_scans", session="s1", state="created")
    with paused(exporter):
        bad = new_scan(data_store, "s1", 2)
        state_key = "esrf:stream:" + raw_redis.json().get(bad.key, "$.state_stream.pk")[0]
        raw_redis.delete(state_key)
        raw_redis.set(state_key, "not a stream")  # every XREAD naming it fails
    exporter.wait_value(1, "bliss_exporter_scans_lost_total", session="s1")
    (lost,) = exporter.logs("scan_lost")
    assert lost["scan"] == "2_loopscan" and lost["reason"] == "invalid state stream"
    assert exporter.value("bliss_exporter_watcher_errors_total", watcher="scan_watcher") >= 1
    errors = exporter.logs("watcher_error")
    assert errors and errors[0]["watcher"] == "scan_watcher" and "WRONGTYPE" in errors[0]["error"]
    good.prepare()
    good.start()
    good.stop()
    good.close()  # the restarted watcher goes on
    exporter.wait_value(1, "bliss_scan_events_total", session="s1", event_type="end_scan")
    assert exporter.value("bliss_datastore_up") == 1
