"""The exporter on a BLISS 1.x data store (blissdata 0.3.1's genuine layout): auto-detected, exact, read-only.

The store is Debian's plain redis-server written by blissdata 0.3.1 itself (tests/legacy/publish.py);
the exporter runs as a real process, given the data Redis without a database (as Beacon gives it),
and must find the legacy store in database 1 by itself.
"""

from __future__ import annotations

from collections import Counter

from exporter.store.legacy import ACL_RULES

from . import legacy_fixtures
from .helpers import BeaconPeer, wait_until

legacy_redis = legacy_fixtures.legacy_redis
legacy_publish = legacy_fixtures.legacy_publish

SESSION = "demo_session"
READER_PASSWORD = "l3gacy-r34d"
WORKLOAD = {"scans": [
    {"type": "loopscan", "npoints": 20, "counters": ["diode1", "diode2"]},
    {"type": "loopscan", "npoints": 10, "counters": ["diode1"], "outcome": "FAILURE", "fail_after": 3},
    {"type": "loopscan", "npoints": 200, "counters": ["diode1"], "outcome": "USER_ABORT", "fail_after": 79},
    {"type": "loopscan", "npoints": 100, "counters": ["diode1"], "batch": 7},
    {"type": "ascan", "npoints": 12, "counters": ["diode1", "diode2"]},  # a controller node listed twice
    {"type": "ct", "npoints": 1, "counters": ["diode1"], "save": False, "title": "ct 0.01 1"},
    {"type": "loopscan", "npoints": 10, "counters": ["diode1"], "lima": ["lima_simulator"], "lima_batch": 3},
    {"sequence": "myseq", "children": [{"type": "loopscan", "npoints": 5, "counters": ["diode1"]},
                                       {"type": "loopscan", "npoints": 4, "counters": ["diode2"], "batch": 3}]},
]}


def expected_points(truth: dict) -> int:
    """Points as the exporter counts them: a sequence's references to its children are not points."""
    return sum(n for node, n in truth["channels"].items() if not node.endswith("GroupingMaster:scans"))


def events(exporter) -> dict:
    return {e: exporter.value("bliss_scan_events_total", session=SESSION, event_type=e)
            for e in ("new_node", "new_data", "prepared_scan", "start_scan", "stop_scan", "end_scan")}


def assert_exact(exporter, truths: list[dict], adopted: tuple[str, ...] = ()) -> None:
    """Counters and scan_end lines exact; the scans `adopted` (keys) had published everything but their end
    before the exporter started: only their end adds to the counters, their scan_end line has it all."""
    exporter.wait_value(len(truths), "bliss_scan_events_total", session=SESSION, event_type="end_scan", timeout=60)
    counted = [t for t in truths if t["key"] not in adopted]
    assert events(exporter) == {
        "new_node": sum(t["new_node"] for t in counted), "new_data": sum(t["new_data"] for t in counted),
        "prepared_scan": len(counted), "start_scan": 0, "stop_scan": 0, "end_scan": len(truths),
    }
    assert exporter.value("bliss_scan_points_total", session=SESSION) == sum(expected_points(t) for t in counted)
    ended = Counter()
    for (name, labels), value in exporter.metrics().items():
        labels = dict(labels)
        if name == "bliss_scans_ended_total" and labels["session"] == SESSION and value:
            ended[(labels["role"], labels["end_reason"])] += value
    roles = {"scan": "scan", "child": "subscan", "sequence": "sequence"}
    assert ended == Counter((roles[t["role"]], t["end_reason"]) for t in truths)
    ends = {e["scan"]: e for e in exporter.logs("scan_end")}
    for t in truths:
        end = ends[t["scan"]]
        assert (end["end_reason"], end["points"], end["events"]["new_data"]) == (
            t["end_reason"], expected_points(t), t["new_data"]), t["scan"]
        assert end["duration_seconds"] is not None and end["duration_seconds"] >= 0
    assert "Traceback" not in exporter.stdout() + exporter.stderr()


def test_legacy_store_found_in_database_1_counted_exactly_from_the_url_and_through_beacon(
    legacy_redis, legacy_publish, start_exporter
):
    base = f"redis://127.0.0.1:{legacy_redis.port}"  # no database: as a Beacon answer
    peer = BeaconPeer("127.0.0.1", legacy_redis.port)
    try:
        first = legacy_publish({"scans": [{"type": "ct", "npoints": 1, "counters": ["diode1"]}]})  # a session node
        exporters = {
            "url": start_exporter(url=base),
            "beacon": start_exporter(url=False, env={"BEACON_HOST": f"127.0.0.1:{peer.port}"}),
        }
        for how, exporter in exporters.items():
            (model,) = exporter.logs("data_model")
            assert (model["model"], model["datastore"]) == ("legacy", base + "?db=1"), how
        run = legacy_publish(WORKLOAD)
        truths = [t for t in run.truths if t["key"] not in {u["key"] for u in first.truths}]
        for exporter in exporters.values():
            assert_exact(exporter, truths)
            assert exporter.value("bliss_datastore_up") == 1
            seq_end = [e for e in exporter.logs("scan_end") if e["role"] == "subscan"]
            assert {e["sequence"] for e in seq_end} == {t["scan"] for t in truths if t["role"] == "sequence"}
    finally:
        peer.close()


def test_legacy_exporter_reads_with_a_read_only_user_and_adopts_a_running_scan_from_the_start_on(
    legacy_redis, legacy_publish, start_exporter
):
    admin = legacy_redis.client(db=0)
    admin.execute_command("ACL", "SETUSER", "reader", "on", f">{READER_PASSWORD}", *ACL_RULES)
    held = legacy_publish({"scans": [{"type": "loopscan", "npoints": 6, "counters": ["diode1"], "wait": "go"}]},
                          wait=False)
    held.wait_for("waiting")
    exporter = start_exporter(
        "--data-model", "legacy", url=f"redis://reader:{READER_PASSWORD}@127.0.0.1:{legacy_redis.port}")
    exporter.wait_value(1, "bliss_active_scans", session=SESSION, state="prepared")
    (start,) = exporter.logs("scan_start")
    assert start["adopted"] is True
    held.release()
    held.finish()
    admin.execute_command("ACL", "LOG", "RESET")
    run = legacy_publish({"scans": [{"type": "loopscan", "npoints": 8, "counters": ["diode1", "diode2"]}]})
    assert_exact(exporter, [*held.truths, *run.truths], adopted=(held.truths[0]["key"],))
    denied = [(e[b"reason"], e[b"object"]) for e in _acl_log(admin) if e[b"username"] == b"reader"]
    assert denied == []  # the exporter never tried a command outside its ACL
    wait_until(lambda: exporter.get("/readyz").status_code == 200, what="ready")


def test_keys_of_another_type_cost_their_scan_only_and_the_watchers_never_stop(
    legacy_redis, legacy_publish, start_exporter
):
    """A string where BLISS writes a node hash, as blissdata 2.x's store answers a key of the wrong type: a
    scan node that is not a hash is skipped as invalid (counted, logged once), a node under a running scan
    that is not a hash takes only its own stream out of the count; no watcher fails, the rest counts exactly."""
    legacy_publish({"scans": [{"type": "ct", "npoints": 1, "counters": ["diode1"]}]})  # a session node
    held = legacy_publish({"scans": [{"type": "loopscan", "npoints": 6, "counters": ["diode1", "diode2"],
                                      "wait": "go"}]}, wait=False)
    key = held.wait_for("waiting")["key"]
    admin = legacy_redis.client()
    diode2 = f"{key}:timer:simulation_diode_sampling_controller:diode2"
    admin.delete(diode2)
    admin.set(diode2, "not a node hash")
    exporter = start_exporter(url=f"redis://127.0.0.1:{legacy_redis.port}")
    exporter.wait_value(1, "bliss_active_scans", session=SESSION, state="prepared")  # adopted, its streams read
    broken = f"{SESSION}:tmp:scans:99_broken"
    admin.set(broken, "not a node hash")
    admin.xadd(f"{SESSION}:tmp:scans_children_list", {"__EVENT__": "NEW_NODE", "db_name": broken})
    exporter.wait_value(1, "bliss_exporter_scans_skipped_total", reason="invalid")
    (skipped,) = exporter.logs("scan_skipped")
    assert (skipped["key"], skipped["reason"]) == (broken, "invalid") and "WRONGTYPE" in skipped["detail"], skipped
    held.release()
    held.finish()
    run = legacy_publish({"scans": [{"type": "loopscan", "npoints": 8, "counters": ["diode1", "diode2"]},
                                    {"type": "ascan", "npoints": 5, "counters": ["diode1"], "lima": ["lima_simulator"]}]})
    counted = dict(held.truths[0])  # all but diode2's stream, which the exporter could not find
    counted["channels"] = {node: n for node, n in counted["channels"].items() if node != diode2}
    counted["new_data"] -= counted["xadds"][diode2]
    assert_exact(exporter, [counted, *run.truths], adopted=(key,))
    assert exporter.logs("watcher_error") == [] and exporter.logs("scan_lost") == []
    assert exporter.value("bliss_exporter_scans_skipped_total", reason="invalid") == 1
    assert exporter.get("/readyz").status_code == 200 and exporter.value("bliss_datastore_up") == 1


def _acl_log(client) -> list[dict]:
    raw = client.execute_command("ACL", "LOG")
    return [dict(zip(entry[::2], entry[1::2])) for entry in raw]


def test_a_data_redis_restarted_for_the_other_generation_is_detected_again(
    start_exporter, redis_server, data_store, raw_redis, tmp_path
):
    from exporter.devtools.simulator import ScanSpec, publish_scan

    exporter = start_exporter()  # auto, on a blissdata 2.x Redis Stack
    truth = publish_scan(data_store, ScanSpec(session="bl2", number=1, npoints=3, count_time=0))
    exporter.wait_value(1, "bliss_scan_events_total", session="bl2", event_type="end_scan")
    assert [m["model"] for m in exporter.logs("data_model")] == ["blissdata2"]
    raw_redis.flushall()  # the beamline goes back to BLISS 1.x on the same data Redis
    port = int(redis_server.url.rsplit(":", 1)[1])
    # in a session of its own: the switch may be detected while it runs (then it is watched) or after
    run = legacy_fixtures.LegacyPublisher(
        {"redis_url": f"redis://127.0.0.1:{port}/1", "session": "bl1_at_switch",
         "scans": [{"type": "loopscan", "npoints": 4, "counters": ["diode1"]}]}, tmp_path).finish()
    wait_until(lambda: [m["model"] for m in exporter.logs("data_model")] == ["blissdata2", "legacy"], 30,
               what="the legacy model detected after the change")
    (changed,) = exporter.logs("data_model_changed")
    assert (changed["previous"], changed["model"]) == ("blissdata2", "legacy")
    exporter.wait_ready(timeout=30)
    more = legacy_fixtures.LegacyPublisher(
        {"redis_url": f"redis://127.0.0.1:{port}/1", "session": SESSION,
         "scans": [{"type": "ascan", "npoints": 5, "counters": ["diode1", "diode2"]}]}, tmp_path).finish()
    assert_exact(exporter, more.truths)  # scans after the switch, exactly
    assert exporter.value("bliss_scan_points_total", session="bl2") == truth.points
    assert run.truths  # published while the exporter still read the old model


def test_readme_gives_exactly_the_legacy_acl_the_suite_uses():
    from .helpers import ROOT

    line = "ACL SETUSER bliss-exporter on >PASSWORD " + " ".join(ACL_RULES)
    assert line in (ROOT / "README.md").read_text().splitlines()
