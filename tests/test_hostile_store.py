"""A data store that answers with errors: health tells the truth, supervisors never die, nothing is lost.

Error replies that mean "the store cannot serve us now" (BUSY, MASTERDOWN, NOPERM...) mark the data
store down with that reason; once the cause is gone the watchers resume where they were, exactly.
"""

from __future__ import annotations

import threading

import numpy as np
import redis
from blissdata.streams.default import Stream

from exporter.devtools.simulator import ScanSpec, publish_scan
from exporter.store import ACL_RULES, DataStoreSource, StreamKind
from exporter.store.base import REFERENCE_KIND

from .builders import events, new_scan
from .helpers import wait_until

PASSWORD = "h0stile-pw"


def reader_url(redis_server) -> str:
    port = int(redis_server.url.rsplit(":", 1)[1])
    return f"redis://reader:{PASSWORD}@127.0.0.1:{port}"


def set_reader(raw_redis, *extra) -> None:
    raw_redis.execute_command("ACL", "SETUSER", "reader", "reset", "on", f">{PASSWORD}", *ACL_RULES, *extra)


def wait_down(exporter, reason: str) -> None:
    """/readyz 503 and datastore_up 0, both naming the reason."""
    def down():
        r = exporter.get("/readyz")
        return r.status_code == 503 and reason in r.text and exporter.value("bliss_datastore_up") == 0
    wait_until(down, 20, what=f"data store down with {reason!r} (readyz: {exporter.get('/readyz').text!r})")


def open_scan(data_store, session: str, number: int):
    scan = new_scan(data_store, session, number)
    stream = scan.create_stream(Stream.make_definition("timer:epoch", "float64"))
    scan.prepare()
    scan.start()
    stream.send(np.arange(4.0))
    stream.join()
    return scan, stream


def close_scan(scan, stream) -> None:
    stream.send(np.arange(2.0))
    scan.stop()
    scan.info["end_reason"] = "SUCCESS"
    scan.close()


def assert_healthy_and_quiet(exporter) -> None:
    assert exporter.get("/readyz").status_code == 200
    assert exporter.value("bliss_datastore_up") == 1
    output = exporter.stdout() + exporter.stderr()
    assert "Traceback" not in output, output[-3000:]


def test_busy_script_marks_the_store_down_and_the_watchers_resume(start_exporter, data_store, raw_redis,
                                                                   redis_server):
    raw_redis.config_set("busy-reply-threshold", 300)
    exporter = start_exporter()
    scan, stream = open_scan(data_store, "busy", 1)
    exporter.wait_value(1, "bliss_scan_events_total", session="busy", event_type="new_data")

    blocker = redis.Redis.from_url(redis_server.url + "?protocol=2")
    runner = threading.Thread(target=lambda: _run_forever_script(blocker), daemon=True)
    runner.start()
    wait_down(exporter, "BUSY")
    (down,) = exporter.logs("datastore_down")
    assert down["error"].startswith("BUSY"), down
    wait_until(lambda: exporter.get("/readyz").status_code == 503, what="still down")
    raw_redis.script_kill()
    runner.join(10)

    close_scan(scan, stream)
    truth = publish_scan(data_store, ScanSpec(session="busy", number=2, npoints=5, count_time=0))
    exporter.wait_value(2, "bliss_scans_ended_total", session="busy", scan_type="loopscan", end_reason="SUCCESS")
    assert events(exporter, "busy") == {
        "new_node": 2 + truth.events["new_node"], "new_data": 2 + truth.events["new_data"],
        "prepared_scan": 2, "start_scan": 2, "stop_scan": 2, "end_scan": 2,
    }
    assert exporter.value("bliss_active_scans", session="busy", state="started") == 0
    assert_healthy_and_quiet(exporter)


def _run_forever_script(client) -> None:
    try:
        client.eval("while true do end", 0)
    except redis.RedisError:
        pass  # killed by SCRIPT KILL


def test_replica_without_its_master_is_down_with_masterdown(start_exporter, data_store, raw_redis, refused_port):
    exporter = start_exporter()
    truth = publish_scan(data_store, ScanSpec(session="rep", number=1, npoints=3, count_time=0))
    exporter.wait_value(1, "bliss_scan_events_total", session="rep", event_type="end_scan")
    raw_redis.config_set("replica-serve-stale-data", "no")
    raw_redis.execute_command("REPLICAOF", "127.0.0.1", refused_port)  # a master that is not there
    try:
        wait_down(exporter, "MASTERDOWN")
    finally:
        raw_redis.execute_command("REPLICAOF", "NO", "ONE")
    exporter.wait_ready(timeout=20)
    truth.add(publish_scan(data_store, ScanSpec(session="rep", number=2, npoints=3, count_time=0)))
    exporter.wait_value(2, "bliss_scan_events_total", session="rep", event_type="end_scan")
    assert exporter.value("bliss_scan_points_total", session="rep") == truth.points
    assert_healthy_and_quiet(exporter)


def test_a_denied_read_command_is_named_and_not_ready(start_exporter, redis_server, raw_redis, data_store):
    set_reader(raw_redis, "-xread")
    exporter = start_exporter(url=reader_url(redis_server), ready=False)
    exporter.wait_ready("/healthz")
    wait_down(exporter, "XREAD failed: NOPERM")
    (down,) = exporter.logs("datastore_down")
    assert "XREAD failed: NOPERM" in down["error"]
    set_reader(raw_redis)
    exporter.wait_ready(timeout=20)
    publish_scan(data_store, ScanSpec(session="perm", number=1, npoints=3, count_time=0))
    exporter.wait_value(1, "bliss_scan_events_total", session="perm", event_type="end_scan")
    assert_healthy_and_quiet(exporter)


def test_json_get_denied_while_running_retries_the_scan_instead_of_skipping_it(
    start_exporter, redis_server, raw_redis, data_store
):
    set_reader(raw_redis)
    exporter = start_exporter(url=reader_url(redis_server))
    set_reader(raw_redis, "-json.get")
    truth = publish_scan(data_store, ScanSpec(session="perm", number=1, npoints=4, count_time=0))
    wait_down(exporter, "JSON.GET")
    assert exporter.value("bliss_exporter_scans_skipped_total", reason="invalid") == 0
    set_reader(raw_redis)
    exporter.wait_value(1, "bliss_scan_events_total", session="perm", event_type="end_scan")
    assert events(exporter, "perm") == {e: truth.events[e] for e in events(exporter, "perm")}
    assert exporter.value("bliss_exporter_scans_skipped_total", reason="invalid") == 0
    assert exporter.value("bliss_exporter_scans_skipped_total", reason="vanished") == 0
    assert_healthy_and_quiet(exporter)


def test_scan_history_of_the_wrong_type_is_not_ready(start_exporter, raw_redis, data_store):
    raw_redis.delete("_SCAN_HISTORY_")
    raw_redis.set("_SCAN_HISTORY_", "not a stream")
    exporter = start_exporter(ready=False)
    exporter.wait_ready("/healthz")
    wait_down(exporter, "wrong type")
    (down,) = exporter.logs("datastore_down")
    assert down["error"].startswith("_SCAN_HISTORY_ or _PROTOCOL_VERSION_ has the wrong type: WRONGTYPE"), down
    raw_redis.delete("_SCAN_HISTORY_")
    exporter.wait_ready(timeout=20)
    publish_scan(data_store, ScanSpec(session="typed", number=1, npoints=3, count_time=0))
    exporter.wait_value(1, "bliss_scan_events_total", session="typed", event_type="end_scan")
    assert_healthy_and_quiet(exporter)


def test_scan_whose_state_stream_vanished_is_lost_not_active_forever(start_exporter, data_store, raw_redis):
    exporter = start_exporter()
    scan, stream = open_scan(data_store, "evicted", 1)
    exporter.wait_value(1, "bliss_active_scans", session="evicted", state="started")
    state_key = "esrf:stream:" + raw_redis.json().get(scan.key, "$.state_stream.pk")[0]
    raw_redis.delete(state_key)  # as eviction under maxmemory allkeys-lru would
    exporter.wait_value(1, "bliss_exporter_scans_lost_total", session="evicted")
    (lost,) = exporter.logs("scan_lost")
    assert lost["scan"] == "1_loopscan" and lost["reason"] == "state stream vanished"
    assert exporter.value("bliss_active_scans", session="evicted", state="started") == 0
    stream.seal()
    assert_healthy_and_quiet(exporter)


def test_a_data_stream_recreated_mid_scan_counts_its_new_entries(start_exporter, data_store, raw_redis):
    """Evicted (or deleted) and written again, a stream's entries-added restarts below what was counted."""
    exporter = start_exporter()
    scan, stream = open_scan(data_store, "recreated", 1)  # one send of 4 points
    stream.send(np.arange(4.0))
    stream.send(np.arange(4.0))
    stream.join()
    exporter.wait_value(3, "bliss_scan_events_total", session="recreated", event_type="new_data")
    raw_redis.delete(stream.key)  # as eviction under maxmemory allkeys-lru would
    raw_redis.xadd(stream.key, {"payload": np.float64(1.0).tobytes()}, id="12-1")  # written again: one send
    exporter.wait_value(4, "bliss_scan_events_total", session="recreated", event_type="new_data")
    assert exporter.value("bliss_scan_points_total", session="recreated") == 13
    stream.seal()
    assert_healthy_and_quiet(exporter)


def test_a_key_of_the_wrong_type_is_its_scans_problem_not_the_stores(data_store, raw_redis, redis_server):
    """A history resync, a closing and a sequence's references read past a key that is not a stream: that
    key reads as one without entries (as `lifetimes` and `stream_stats` read it), never as a store error."""
    source = DataStoreSource(redis_server.url)
    position = source.anchor()
    first, _ = open_scan(data_store, "typed", 1)
    second, _ = open_scan(data_store, "typed", 2)
    state_key = "esrf:stream:" + raw_redis.json().get(first.key, "$.state_stream.pk")[0]
    raw_redis.delete(state_key)
    raw_redis.set(state_key, "not a stream")
    assert source.scans_created_after(position, [first.key, second.key]) == [second.key]
    assert source.lifetimes([source.load_scan(first.key)])[first.key].created is None
    subscans = "esrf:stream:typed-subscans"
    raw_redis.set(subscans, "not a stream")
    assert source.read_references(subscans, "0-0") == ([], False)
    closing = source.closing({second.key: {subscans: StreamKind(REFERENCE_KIND)}}, references={subscans: "0-0"})
    assert closing[second.key].stats == {subscans: None} and closing[second.key].references == {subscans: ([], False)}
