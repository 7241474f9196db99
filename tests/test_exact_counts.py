"""Exact metric values and log lines for known workloads, published with blissdata's own API."""

from __future__ import annotations

import time

import numpy as np
import pytest
from blissdata.streams.default import Stream

from exporter.devtools.simulator import ScanSpec, Truth, publish_scan

from .builders import EVENT_TYPES, H5, events, new_scan
from .helpers import paused


def test_batched_sends_on_several_streams_are_counted_exactly(start_exporter, data_store):
    exporter = start_exporter()
    scan = new_scan(data_store, "s1", 26)
    epoch = scan.create_stream(Stream.make_definition("timer:epoch", "float64"))
    diode = scan.create_stream(Stream.make_definition("diode", "float64"))
    spectrum = scan.create_stream(Stream.make_definition("mca:spectrum", "uint32", shape=(16,)))
    scan.prepare()
    scan.start()
    epoch.send(1.0)                      # 1 event, 1 point
    epoch.send(np.arange(9.0))           # 1 event, 9 points (batched)
    for i in range(10):
        diode.send(float(i))             # 10 events, 10 points
    spectrum.send(np.zeros((4, 16), dtype=np.uint32))  # 1 event, 4 points
    spectrum.send(np.zeros(16, dtype=np.uint32))       # 1 event, 1 point
    scan.stop()
    scan.info["end_reason"] = "SUCCESS"
    scan.close()

    exporter.wait_value(1, "bliss_scans_ended_total", session="s1", scan_type="loopscan", end_reason="SUCCESS")
    assert events(exporter, "s1") == {
        "new_node": 4, "new_data": 14, "prepared_scan": 1, "start_scan": 1, "stop_scan": 1, "end_scan": 1,
    }
    assert exporter.value("bliss_scan_points_total", session="s1") == 25
    assert exporter.value("bliss_scan_duration_seconds_count", session="s1", scan_type="loopscan") == 1
    exporter.barrier(data_store)  # from here on, an over-count would show
    assert events(exporter, "s1") == {
        "new_node": 4, "new_data": 14, "prepared_scan": 1, "start_scan": 1, "stop_scan": 1, "end_scan": 1,
    }
    assert exporter.value("bliss_scan_points_total", session="s1") == 25
    assert exporter.value("bliss_scans_ended_total", session="s1", scan_type="loopscan", end_reason="SUCCESS") == 1
    assert exporter.value("bliss_scan_duration_seconds_count", session="s1", scan_type="loopscan") == 1

    (start,) = exporter.logs("scan_start", session="s1")
    assert start["session"] == "s1" and start["scan"] == "26_loopscan" and start["scan_type"] == "loopscan"
    assert start["uris"] == [f"{H5}::/26.1"]
    (end,) = exporter.logs("scan_end", session="s1")
    assert end["scan"] == "26_loopscan" and end["end_reason"] == "SUCCESS" and end["points"] == 25
    assert end["events"] == {"new_node": 4, "new_data": 14, "prepared_scan": 1, "start_scan": 1,
                             "stop_scan": 1, "end_scan": 1}
    assert end["uris"] == [f"{H5}::/26.1"]


def test_duration_uses_the_state_stream_server_timestamps(start_exporter, data_store, raw_redis):
    exporter = start_exporter()
    scan = new_scan(data_store, "s1", 3)
    scan.create_stream(Stream.make_definition("timer:epoch", "float64"))
    scan.prepare()
    time.sleep(0.3)  # preparation is not part of the duration
    scan.start()
    time.sleep(1.2)  # a duration that lands between the 1 s and 2 s buckets
    scan.stop()
    scan.close()
    exporter.wait_value(1, "bliss_scan_duration_seconds_count", session="s1", scan_type="loopscan")
    ids = [int(i.split(b"-")[0]) for i, _ in raw_redis.xrange(scan._model.state_stream.key())]
    expected = (ids[4] - ids[2]) / 1000  # CLOSED - STARTED
    assert exporter.value("bliss_scan_duration_seconds_sum", session="s1", scan_type="loopscan") == pytest.approx(expected, abs=1e-6)
    assert expected >= 1.2
    buckets = {dict(labels)["le"]: value for (name, labels), value in exporter.metrics().items()
               if name == "bliss_scan_duration_seconds_bucket"
               and {("session", "s1"), ("scan_type", "loopscan"), ("role", "scan")} <= labels}
    assert {"1.0", "2.0", "+Inf"} <= buckets.keys()
    # exactly the buckets at or above the duration hold the scan (1.2 s lands in le="2.0" unless the
    # machine stalled; either way the counts must follow the measured duration)
    assert buckets == {le: float(expected <= float(le)) for le in buckets}, (expected, buckets)
    assert buckets["1.0"] == 0
    (end,) = exporter.logs("scan_end")
    assert end["duration_seconds"] == pytest.approx(expected, abs=1e-3)


def test_failed_scan_closes_without_stopped(start_exporter, data_store):
    exporter = start_exporter()
    scan = new_scan(data_store, "s1", 4)
    stream = scan.create_stream(Stream.make_definition("timer:epoch", "float64"))
    scan.prepare()
    scan.start()
    for i in range(3):
        stream.send(float(i))
    scan.info["end_reason"] = "FAILURE"
    scan.close()  # BLISS closes failed scans without STOPPED
    exporter.wait_value(1, "bliss_scans_ended_total", session="s1", scan_type="loopscan", end_reason="FAILURE")
    exporter.barrier(data_store)  # the values below are final: an over-count would show
    assert events(exporter, "s1") == {
        "new_node": 2, "new_data": 3, "prepared_scan": 1, "start_scan": 1, "stop_scan": 0, "end_scan": 1,
    }
    assert exporter.value("bliss_scans_ended_total", session="s1", scan_type="loopscan", end_reason="SUCCESS") == 0
    (end,) = exporter.logs("scan_end", session="s1")
    assert end["end_reason"] == "FAILURE" and end["events"]["stop_scan"] == 0


def test_scan_without_filename_has_no_uri_and_two_masters_have_two(start_exporter, data_store):
    exporter = start_exporter()
    for number, filename, masters in ((1, None, ("timer",)), (2, H5, ("axis", "timer"))):
        scan = new_scan(data_store, "s1", number, name="amesh", filename=filename, masters=masters)
        scan.prepare()
        scan.start()
        scan.stop()
        scan.close()
    exporter.wait_value(2, "bliss_scan_events_total", session="s1", event_type="end_scan")
    starts = {e["scan"]: e["uris"] for e in exporter.logs("scan_start")}
    assert starts == {"1_amesh": [], "2_amesh": [f"{H5}::/2.1", f"{H5}::/2.2"]}
    # a scan that never reported an end_reason is still counted, as UNKNOWN
    assert exporter.value("bliss_scans_ended_total", session="s1", scan_type="amesh", end_reason="UNKNOWN") == 2


def test_session_filter_keeps_other_sessions_out(start_exporter, data_store):
    exporter = start_exporter("--session", "id00_*")
    publish_scan(data_store, ScanSpec(session="id00_main", number=1, npoints=5, count_time=0))
    publish_scan(data_store, ScanSpec(session="other", number=1, npoints=7, count_time=0))
    publish_scan(data_store, ScanSpec(session="id00_align", number=2, npoints=3, count_time=0))
    exporter.wait_value(1, "bliss_scan_events_total", session="id00_align", event_type="end_scan")
    exporter.wait_value(1, "bliss_scan_events_total", session="id00_main", event_type="end_scan")
    sessions = {dict(k[1]).get("session") for k in exporter.metrics() if dict(k[1]).get("session")}
    assert sessions == {"id00_main", "id00_align"}
    assert [e["session"] for e in exporter.logs("scan_start")] == ["id00_main", "id00_align"]
    (start,) = exporter.logs("exporter_start")
    assert start["session_filter"] == "id00_*"


def test_scan_active_at_start_adds_only_what_happens_after_the_start(start_exporter, data_store):
    """Changed on purpose (issue 17): an adopted scan used to be counted with its whole history, which
    a restart mid-scan counted twice in increase(). Its history is still its own (scan_end line)."""
    old = new_scan(data_store, "s1", 1)
    old.prepare()
    old.start()
    old.stop()
    old.close()  # closed before: belongs to the past

    scan = new_scan(data_store, "s1", 2)
    stream = scan.create_stream(Stream.make_definition("timer:epoch", "float64"))
    scan.prepare()
    scan.start()
    stream.send(np.arange(5.0))
    stream.send(np.arange(5.0))
    stream.join()

    exporter = start_exporter()
    exporter.wait_value(1, "bliss_active_scans", session="s1", state="started")
    # the session's series exist at 0 from the start: increase() sees its first counts after a restart
    assert events(exporter, "s1") == dict.fromkeys(EVENT_TYPES, 0)
    assert exporter.value("bliss_scans_ended_total", session="s1", scan_type="loopscan", end_reason="SUCCESS") == 0
    stream.send(1.0)
    stream.join()
    exporter.wait_value(1, "bliss_scan_events_total", session="s1", event_type="new_data")
    scan.stop()
    scan.info["end_reason"] = "SUCCESS"
    scan.close()
    exporter.wait_value(1, "bliss_scan_events_total", session="s1", event_type="end_scan")
    exporter.barrier(data_store)  # the values below are final: an over-count would show
    assert events(exporter, "s1") == {
        "new_node": 0, "new_data": 1, "prepared_scan": 0, "start_scan": 0, "stop_scan": 1, "end_scan": 1,
    }
    assert exporter.value("bliss_scan_points_total", session="s1") == 1
    assert exporter.value("bliss_scans_ended_total", session="s1", scan_type="loopscan", end_reason="SUCCESS") == 1
    (start,) = exporter.logs("scan_start", session="s1")
    assert start["scan"] == "2_loopscan" and start["adopted"] is True
    (end,) = exporter.logs("scan_end", session="s1")  # its own whole history
    assert end["points"] == 11 and end["events"] == {
        "new_node": 2, "new_data": 3, "prepared_scan": 1, "start_scan": 1, "stop_scan": 1, "end_scan": 1,
    }


def test_trimmed_streams_are_still_counted_exactly(start_exporter, data_store, raw_redis):
    exporter = start_exporter()
    scan = new_scan(data_store, "s1", 5)
    stream = scan.create_stream(Stream.make_definition("timer:epoch", "float64"))
    scan.prepare()
    scan.start()
    for i in range(50):
        stream.send(float(i))
    stream.join()
    raw_redis.xtrim(stream.key, maxlen=2, approximate=False)  # what blissdata's memory tracker does
    for i in range(50):
        stream.send(np.arange(2.0))
    stream.join()
    raw_redis.xtrim(stream.key, maxlen=1, approximate=False)
    assert raw_redis.xlen(stream.key) == 1
    scan.stop()
    scan.close()
    exporter.wait_value(1, "bliss_scan_events_total", session="s1", event_type="end_scan")
    exporter.barrier(data_store)  # the values below are final: an over-count would show
    assert exporter.value("bliss_scan_events_total", session="s1", event_type="new_data") == 100
    assert exporter.value("bliss_scan_points_total", session="s1") == 150


def test_lima_frames_and_fast_publisher(start_exporter, data_store):
    exporter = start_exporter("--poll-interval", "0.5")
    truth = publish_scan(data_store, ScanSpec(session="s1", number=7, npoints=2000, count_time=0, point_delay=0,
                                              lima=True, mca=True, batch=1))
    exporter.wait_value(1, "bliss_scan_events_total", session="s1", event_type="end_scan")
    exporter.barrier(data_store)  # the values below are final: an over-count would show
    for event, n in truth.events.items():
        assert exporter.value("bliss_scan_events_total", session="s1", event_type=event) == n, event
    assert truth.events["new_data"] == 2000 * 6  # 4 scalar channels, 1 MCA, 1 lima
    assert exporter.value("bliss_scan_points_total", session="s1") == truth.points == 2000 * 6


def test_active_scan_gauges_follow_the_states(start_exporter, data_store):
    exporter = start_exporter()
    scan = new_scan(data_store, "s1", 8)
    exporter.wait_value(1, "bliss_active_scans", session="s1", state="created")
    for state in ("prepared", "started", "stopped"):
        assert exporter.value("bliss_active_scans", session="s1", state=state) == 0
    scan.prepare()
    started = time.time()
    scan.start()
    exporter.wait_value(1, "bliss_active_scans", session="s1", state="started")
    last = exporter.value("bliss_scan_last_event_timestamp_seconds", session="s1", scan="8_loopscan")
    assert started - 0.01 <= last <= time.time()  # STARTED's time (the server's, to the millisecond)
    assert exporter.value("bliss_scan_stall_threshold_seconds", session="s1", scan="8_loopscan") == 600
    scan.stop()
    scan.close()
    exporter.wait_value(1, "bliss_scan_events_total", session="s1", event_type="end_scan")
    m = exporter.metrics()
    assert not [k for k in m if k[0] == "bliss_scan_last_event_timestamp_seconds"]
    assert {dict(k[1])["state"]: v for k, v in m.items() if k[0] == "bliss_active_scans"} == {
        "created": 0, "prepared": 0, "started": 0, "stopped": 0}


def test_barrier_ends_after_every_scan_closed_before_it(start_exporter, data_store):
    """ExporterProcess.barrier's contract: no wait on the test's own values, the barrier alone."""
    exporter = start_exporter()
    truth = Truth()
    with paused(exporter):  # all of it, then the barrier, is there to read when the exporter resumes
        for number in range(1, 4):
            truth.add(publish_scan(data_store, ScanSpec(session="s1", number=number, npoints=5, count_time=0,
                                                        batch=number, mca=number == 2)))
    end = exporter.barrier(data_store)
    assert end["session"] == "barrier" and end["scan"].endswith("_barrier")
    assert events(exporter, "s1") == {e: truth.events[e] for e in EVENT_TYPES}
    assert exporter.value("bliss_scan_points_total", session="s1") == truth.points
    assert [e["scan"] for e in exporter.logs("scan_end", session="s1")] == ["1_loopscan", "2_loopscan", "3_loopscan"]
    assert exporter.value("bliss_scans_ended_total", session="barrier", scan_type="barrier", end_reason="SUCCESS") == 1
