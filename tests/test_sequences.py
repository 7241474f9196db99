"""Scan sequences (issue 9 §3): roles, parent/child links, stall of sequences, bounded labels and progress.

In-process checks of the metric sink first, then a real Redis Stack, the real exporter process and
sequences published exactly as BLISS 2.4 does (blissdata's ScanStream.make_definition("SUBSCANS")).
"""

from __future__ import annotations

import json
import time

import pytest
from blissdata.streams.default import Stream
from prometheus_client import CollectorRegistry

from exporter.devtools.simulator import (
    ScanSpec,
    SequenceSpec,
    close_sequence,
    open_sequence,
    publish_scan,
    reference,
    scan_info,
)
from exporter.model import ScanRecord, State, StreamCursor, record_from_document
from exporter.sinks.events import ScanDiscovered, ScanEnded
from exporter.sinks.metrics import ExporterMetrics
from exporter.store import ScanDocument
from exporter.web.status import StatusPage

from .builders import status_view
from .helpers import Page, parse_metrics, run_cli, wait_until


def doc(info: dict, name="loopscan", number=1, key="esrf:scan:K1") -> ScanDocument:
    return ScanDocument(key, "s1", name, number, info, ("esrf:stream:S1",), {})


def test_progress_needs_an_integer_npoints_above_zero_and_stays_in_0_1():
    for bad in (-5, 0, True, False, 2.5, "10", None):
        record = record_from_document(doc({"npoints": bad}), adopted=False)
        record.streams = {"a": StreamCursor("a", "x", "numeric", points=2)}
        assert record.npoints is None and record.progress is None, bad
    record = record_from_document(doc({"npoints": 4, "count_time": True}), adopted=False)
    assert record.count_time is None  # a bool is no count time either
    record.streams = {"a": StreamCursor("a", "x", "numeric", points=2)}
    assert record.progress == 0.5
    record.streams["a"].points = 9
    assert record.progress == 1.0


def test_end_reason_label_is_bounded_and_the_known_reasons_always_pass():
    registry = CollectorRegistry()
    metrics = ExporterMetrics(registry, status_view([]))
    for n in range(200):
        scan = ScanRecord(key=f"k{n}", session="s1", name="ct", number=n, scan_type="ct", uris=[],
                          state=State.CLOSED, end_reason=f"odd reason {n}")
        metrics(ScanDiscovered(scan))
        metrics(ScanEnded(scan))
    for reason in ("SUCCESS", "FAILURE", "USER_ABORT", "DELETION", None):
        scan = ScanRecord(key=reason or "none", session="s1", name="ct", number=1, scan_type="ct", uris=[],
                          state=State.CLOSED, end_reason=reason)
        metrics(ScanEnded(scan))
    samples = parse_metrics(_exposition(registry))
    reasons = {dict(k[1])["end_reason"]: v for k, v in samples.items()
               if k[0] == "bliss_scans_ended_total" and dict(k[1]).get("role", "scan") == "scan"}
    assert len(reasons) == 21  # 20 values (5 known + 15 others) and "other"
    for known in ("SUCCESS", "FAILURE", "USER_ABORT", "DELETION", "UNKNOWN"):
        assert reasons[known] == 1
    assert reasons["other"] == 200 - 15
    assert sum(reasons.values()) == 205


def _exposition(registry) -> str:
    """The second of two scrapes: new series show 0 in the first (exporter/sinks/first_scrape.py)."""
    from prometheus_client import generate_latest

    generate_latest(registry)
    return generate_latest(registry).decode()


# -------------------------------------------------------------------------------------------------
# helpers: a child scan kept open by the test, as BLISS publishes it


def open_child(data_store, session, number, group=None, index=None, npoints=10, count_time=0.01):
    """A loopscan created (with `group` / `index_in_sequence` from CREATED on), prepared, started: (scan, stream)."""
    spec = ScanSpec(session=session, number=number, npoints=npoints, count_time=count_time, group=group,
                    index_in_sequence=index)
    identity = {"name": spec.scan_type, "number": number, "data_policy": "None", "session": session}
    scan = data_store.create_scan(identity, info=scan_info(spec))
    stream = scan.create_stream(Stream.make_definition("timer:epoch", "float64"))
    scan.prepare()
    return scan, stream


def finish(scan, end_reason="SUCCESS"):
    if end_reason == "SUCCESS":
        scan.stop()
    scan.info["end_reason"] = end_reason
    scan.close()


def series(exporter, name, session):
    """{frozenset(labels without session): value} of one metric of one session."""
    return {frozenset((k, v) for k, v in key[1] if k != "session"): value
            for key, value in exporter.metrics().items()
            if key[0] == name and dict(key[1]).get("session") == session}


def nonzero(exporter, name, session):
    return {tuple(sorted(labels)): v for labels, v in series(exporter, name, session).items() if v}


def last_event(exporter, session, scan):
    return exporter.value("bliss_scan_last_event_timestamp_seconds", session=session, scan=scan)


# -------------------------------------------------------------------------------------------------
# end to end: real Redis Stack, real exporter process, sequences published like BLISS


def test_scan_sequence_roles_stall_failure_and_logs(start_exporter, data_store):
    exporter = start_exporter("--stall-threshold", "1")
    parent, subscans = open_sequence(data_store, SequenceSpec(session="s1", number=5, title="three_scans",
                                                              scan_count=3))
    exporter.wait_value(1, "bliss_active_scans", session="s1", state="started", role="sequence")
    assert exporter.value("bliss_scan_progress_ratio", session="s1", scan="5_sequence") == 0
    started_at = last_event(exporter, "s1", "5_sequence")

    # child 1 (index 0): a whole loopscan, its reference written when it is prepared
    truth1 = publish_scan(data_store, ScanSpec(session="s1", number=6, npoints=4, count_time=0, group=parent.key,
                                               index_in_sequence=0),
                          on_prepared=lambda scan: reference(subscans, scan))

    # child 2 (index 1): runs longer than the 1 s stall threshold while the parent emits nothing
    child, stream = open_child(data_store, "s1", 7, group=parent.key, index=1)
    reference(subscans, child)
    child.start()
    exporter.wait_value(1, "bliss_active_scans", session="s1", state="started", role="subscan")
    running = {(("role", "sequence"), ("state", "started")): 1, (("role", "subscan"), ("state", "started")): 1}
    wait_until(lambda: nonzero(exporter, "bliss_active_scans", "s1") == running,
               what="active: the started sequence and its started child, nothing else")
    wait_until(lambda: exporter.value("bliss_scan_progress_ratio", session="s1", scan="5_sequence")
               == pytest.approx(2 / 3), what="the sequence's progress: 2 children seen of 3")
    seen = started_at
    for i in range(5):
        stream.send(float(i))
        stream.join()
        # the child's data is the parent's activity too: the parent's last event follows the child's
        seen = wait_until(lambda: (p := last_event(exporter, "s1", "5_sequence")) is not None and p > seen
                          and p == last_event(exporter, "s1", "7_loopscan") and p, what="parent's last event advances")
        time.sleep(0.4)  # the child takes longer than the stall threshold in all (a lower bound, not a check)
    assert seen - started_at > 1.0, "the parent's last event moved only by its child's data, past the threshold"
    assert exporter.value("bliss_scan_stall_threshold_seconds", session="s1", scan="5_sequence") == 1
    rows = [r for r in Page(exporter.get("/").text).rows if "scan" in r["class"].split()]
    assert [(r["scan"], r["class"].split()[-1]) for r in rows] == [("5_sequence", "sequence"),
                                                                   ("7_loopscan", "subscan")]
    assert "2 / 3" in rows[0]["text"] and "in 5_sequence" in rows[1]["text"]
    finish(child)

    # child 3 (index 2) fails: the sequence ends FAILURE too
    truth3 = publish_scan(data_store, ScanSpec(session="s1", number=8, npoints=5, count_time=0, group=parent.key,
                                               index_in_sequence=2, end_reason="FAILURE", fail_after=2),
                          on_prepared=lambda scan: reference(subscans, scan))
    close_sequence(parent, subscans, "FAILURE")
    exporter.wait_value(1, "bliss_scans_ended_total", session="s1", scan_type="sequence", role="sequence",
                        end_reason="FAILURE")
    exporter.barrier(data_store)  # child 3 too (closed before its sequence, discovered on its own schedule)

    assert nonzero(exporter, "bliss_scans_ended_total", "s1") == {
        (("end_reason", "SUCCESS"), ("role", "subscan"), ("scan_type", "loopscan")): 2,
        (("end_reason", "FAILURE"), ("role", "subscan"), ("scan_type", "loopscan")): 1,
        (("end_reason", "FAILURE"), ("role", "sequence"), ("scan_type", "sequence")): 1,
    }
    ended = series(exporter, "bliss_scans_ended_total", "s1")
    # zero series, for the roles each kind can end with: loopscan (scan, subscan), sequence (sequence),
    # x every end reason
    assert len(ended) == (2 + 1) * 5
    assert not [labels for labels in ended if ("scan_type", "sequence") in labels and ("role", "sequence") not in labels]
    # the failure counted once where it happened (what BlissScanFailureRateHigh sums)
    assert sum(v for labels, v in ended.items()
               if ("role", "sequence") not in labels and ("end_reason", "SUCCESS") not in labels) == 1
    durations = nonzero(exporter, "bliss_scan_duration_seconds_count", "s1")
    assert durations == {(("role", "subscan"), ("scan_type", "loopscan")): 3,
                         (("role", "sequence"), ("scan_type", "sequence")): 1}
    assert len(series(exporter, "bliss_scan_duration_seconds_count", "s1")) == 2 + 1  # same roles as above
    active = series(exporter, "bliss_active_scans", "s1")
    assert len(active) == 4 * 3 and not any(active.values())  # every state x every role, all back to 0
    # references are entries (new_data), never points
    assert exporter.value("bliss_scan_points_total", session="s1") == truth1.points + 5 + truth3.points
    new_data = truth1.events["new_data"] + 5 + truth3.events["new_data"] + 3
    assert exporter.value("bliss_scan_events_total", session="s1", event_type="new_data") == new_data
    assert not [k for k in exporter.metrics() if k[0] == "bliss_scan_last_event_timestamp_seconds"]

    starts = {line["scan"]: line for line in exporter.logs("scan_start")}
    ends = {line["scan"]: line for line in exporter.logs("scan_end")}
    assert starts["5_sequence"]["role"] == "sequence" and "sequence" not in starts["5_sequence"]
    assert starts["5_sequence"]["scan_type"] == "sequence" and starts["5_sequence"]["title"] == "three_scans"
    for number, index in ((6, 0), (7, 1), (8, 2)):
        for line in (starts[f"{number}_loopscan"], ends[f"{number}_loopscan"]):
            assert line["role"] == "subscan" and line["sequence"] == "5_sequence", line
            assert line["index_in_sequence"] == index, line
    assert ends["8_loopscan"]["end_reason"] == "FAILURE"
    seq_end = ends["5_sequence"]
    assert seq_end["end_reason"] == "FAILURE" and seq_end["subscans"] == 3 and seq_end["scan_count"] == 3
    assert seq_end["points"] == 0 and seq_end["events"]["new_data"] == 3
    assert exporter.value("bliss_exporter_sequence_errors_total", reason="bad_group") == 0
    assert exporter.value("bliss_exporter_sequence_errors_total", reason="bad_reference") == 0


def test_old_style_children_without_group_are_linked_by_the_references(start_exporter, data_store):
    exporter = start_exporter()
    # a scan that ran and closed before being added to the sequence (Sequence.add of a finished scan)
    finished = []
    done = publish_scan(data_store, ScanSpec(session="s1", number=4, npoints=3, count_time=0),
                        on_prepared=finished.append)
    parent, subscans = open_sequence(data_store, SequenceSpec(session="s1", number=5, scan_count=2))
    child, stream = open_child(data_store, "s1", 6)  # no group: already running when added
    child.start()
    stream.send(1.0)
    exporter.wait_value(1, "bliss_active_scans", session="s1", state="started", role="scan")
    exporter.wait_value(1, "bliss_scans_ended_total", session="s1", scan_type="loopscan", role="scan",
                        end_reason="SUCCESS")
    reference(subscans, child)
    exporter.wait_value(1, "bliss_active_scans", session="s1", state="started", role="subscan")
    assert exporter.value("bliss_active_scans", session="s1", state="started", role="scan") == 0
    # the reference links them: the child's data keeps the parent fresh from now on
    before = last_event(exporter, "s1", "5_sequence")
    stream.send(2.0)
    wait_until(lambda: (p := last_event(exporter, "s1", "5_sequence")) > before
               and p == last_event(exporter, "s1", "6_loopscan"), what="the parent's last event follows the child")
    reference(subscans, finished[0])  # the finished scan, added late
    finish(child)
    close_sequence(parent, subscans)
    exporter.wait_value(1, "bliss_scans_ended_total", session="s1", scan_type="sequence", role="sequence",
                        end_reason="SUCCESS")
    assert nonzero(exporter, "bliss_scans_ended_total", "s1") == {
        (("end_reason", "SUCCESS"), ("role", "scan"), ("scan_type", "loopscan")): 1,  # ended before it was added
        (("end_reason", "SUCCESS"), ("role", "subscan"), ("scan_type", "loopscan")): 1,
        (("end_reason", "SUCCESS"), ("role", "sequence"), ("scan_type", "sequence")): 1,
    }
    assert exporter.value("bliss_scan_points_total", session="s1") == done.points + 2
    starts = {line["scan"]: line for line in exporter.logs("scan_start")}
    ends = {line["scan"]: line for line in exporter.logs("scan_end")}
    assert starts["6_loopscan"]["role"] == "scan" and "sequence" not in starts["6_loopscan"]
    assert ends["6_loopscan"]["role"] == "subscan" and ends["6_loopscan"]["sequence"] == "5_sequence"
    assert ends["6_loopscan"]["index_in_sequence"] is None
    assert ends["5_sequence"]["subscans"] == 2 and ends["5_sequence"]["scan_count"] == 2


def test_bad_group_and_bad_reference_are_counted_logged_once_and_survived(start_exporter, data_store, raw_redis):
    exporter = start_exporter()
    plain = []
    publish_scan(data_store, ScanSpec(session="s1", number=1, npoints=2, count_time=0), on_prepared=plain.append)
    plain_key = plain[0].key
    # a group naming a missing scan, then one naming a scan that is not a sequence: plain scans
    for number, group in ((2, "esrf:scan:01M8S0000000000000000MISSING"), (3, plain_key)):
        publish_scan(data_store, ScanSpec(session="s1", number=number, npoints=2, count_time=0, group=group))
    # a sequence whose SUBSCANS stream holds a good reference, a JSON entry without key, and a non-JSON entry
    parent, subscans = open_sequence(data_store, SequenceSpec(session="s1", number=4, scan_count=1))
    publish_scan(data_store, ScanSpec(session="s1", number=5, npoints=2, count_time=0, group=parent.key,
                                      index_in_sequence=0), on_prepared=lambda scan: reference(subscans, scan))
    subscans.send({"scan_number": 6})
    subscans.send({"key": parent.key, "scan_number": 4})  # itself
    subscans.join()
    raw_redis.xadd(subscans.key, {"payload": b"{not json"}, id="3-1")
    close_sequence(parent, subscans)
    exporter.wait_value(1, "bliss_scans_ended_total", session="s1", scan_type="sequence", role="sequence",
                        end_reason="SUCCESS")
    # barrier: a later scan ended, so anything counted twice would show
    publish_scan(data_store, ScanSpec(session="s1", number=7, scan_type="ct", npoints=1, count_time=0))
    exporter.wait_value(1, "bliss_scans_ended_total", session="s1", scan_type="ct", end_reason="SUCCESS")

    assert exporter.value("bliss_exporter_sequence_errors_total", reason="bad_group") == 2
    assert exporter.value("bliss_exporter_sequence_errors_total", reason="bad_reference") == 3
    assert nonzero(exporter, "bliss_scans_ended_total", "s1") == {
        (("end_reason", "SUCCESS"), ("role", "scan"), ("scan_type", "loopscan")): 3,
        (("end_reason", "SUCCESS"), ("role", "subscan"), ("scan_type", "loopscan")): 1,
        (("end_reason", "SUCCESS"), ("role", "sequence"), ("scan_type", "sequence")): 1,
        (("end_reason", "SUCCESS"), ("role", "scan"), ("scan_type", "ct")): 1,
    }
    errors = exporter.logs("sequence_error")
    assert [(e["scan"], e["reason"]) for e in errors] == [
        ("2_loopscan", "bad_group"), ("3_loopscan", "bad_group"), ("4_sequence", "bad_reference"),
        ("4_sequence", "bad_reference"), ("4_sequence", "bad_reference")]
    assert "no such scan" in errors[0]["detail"] and "1_loopscan, not a scan sequence" in errors[1]["detail"]
    assert "no scan key" in errors[2]["detail"] and "this sequence or one of its parents" in errors[3]["detail"]
    assert "SUBSCANS entry 3-1: payload is not JSON" in errors[4]["detail"]
    assert exporter.logs("watcher_error") == []
    ends = {line["scan"]: line for line in exporter.logs("scan_end")}
    assert ends["2_loopscan"]["role"] == "scan" and "sequence" not in ends["2_loopscan"]
    assert ends["4_sequence"]["subscans"] == 1
    assert exporter.value("bliss_scan_points_total", session="s1") == 2 * 4 * 4 + 1 * 4  # no point from references


def test_sequence_and_child_adopted_at_start_are_linked(start_exporter, data_store):
    parent, subscans = open_sequence(data_store, SequenceSpec(session="s1", number=5))
    child, stream = open_child(data_store, "s1", 6, group=parent.key, index=0)
    reference(subscans, child)
    child.start()
    stream.send(1.0)
    stream.join()
    exporter = start_exporter()  # adopts both, in whatever order the keyspace gives them
    exporter.wait_value(1, "bliss_active_scans", session="s1", state="started", role="subscan")
    assert exporter.value("bliss_active_scans", session="s1", state="started", role="sequence") == 1
    before = last_event(exporter, "s1", "5_sequence")
    stream.send(2.0)
    wait_until(lambda: (p := last_event(exporter, "s1", "5_sequence")) > before
               and p == last_event(exporter, "s1", "6_loopscan"), what="the parent's last event follows the child")
    finish(child)
    close_sequence(parent, subscans)
    exporter.wait_value(1, "bliss_scans_ended_total", session="s1", scan_type="sequence", role="sequence",
                        end_reason="SUCCESS")
    assert exporter.value("bliss_scans_ended_total", session="s1", scan_type="loopscan", role="subscan",
                          end_reason="SUCCESS") == 1
    assert exporter.logs("sequence_error") == []
    (start,) = [line for line in exporter.logs("scan_start") if line["scan"] == "6_loopscan"]
    assert start["sequence"] == "5_sequence" and start["adopted"] is True


def test_simulate_sequences_truth_equals_the_exporter_counts(start_exporter, redis_server):
    exporter = start_exporter()
    result = run_cli(["simulate", "--redis-url", redis_server.url, "--session", "sim_seq", "--scans", "8",
                      "--interval", "0", "--speed", "0", "--seed", "3", "--sequences", "--failure-rate", "0.2",
                      "--abort-rate", "0.1", "--log-format", "json"], timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    done = next(line for line in lines if line["event"] == "simulation_done")
    sequences = [line for line in lines if line["event"] == "scan_published" and line.get("role") == "sequence"]
    assert sequences, "seed 3 publishes at least one sequence"
    wait_until(lambda: exporter.value("bliss_scan_events_total", session="sim_seq", event_type="end_scan")
               == done["events"]["end_scan"], 30, what="every simulated scan ended")
    m = exporter.metrics()
    for event, n in done["events"].items():
        assert exporter.value("bliss_scan_events_total", session="sim_seq", event_type=event) == n, event
    assert exporter.value("bliss_scan_points_total", session="sim_seq") == done["points"]
    by_role = {}
    for (name, labels), v in m.items():
        if name == "bliss_scans_ended_total":
            by_role[dict(labels)["role"]] = by_role.get(dict(labels)["role"], 0) + v
    assert by_role["sequence"] == len(sequences)
    assert by_role["subscan"] == sum(line["subscans"] for line in sequences)
    assert sum(by_role.values()) == done["scans"]


# -------------------------------------------------------------------------------------------------
# status page: children under their parent


def test_status_page_shows_children_under_their_sequence():
    now = 1_000_000.0
    parent = ScanRecord(key="p", session="s1", name="sequence", number=5, scan_type="sequence", uris=[],
                        role="sequence", scan_count=3, state=State.STARTED, last_event_at=now - 0.5)
    parent.subscans = {"c1", "c2"}
    other = ScanRecord(key="o", session="s1", name="ct", number=9, scan_type="ct", uris=[], state=State.STARTED,
                       last_event_at=now - 0.1)
    child = ScanRecord(key="c2", session="s1", name="loopscan", number=7, scan_type="loopscan", uris=[], npoints=10,
                       state=State.STARTED, last_event_at=now - 0.5, role="subscan", sequence="5_sequence",
                       index_in_sequence=1, parent=parent)
    child.streams = {"a": StreamCursor("a", "timer:epoch", "numeric", points=4)}
    parent.running = {"c2": child}
    view = status_view([child, other, parent], threshold=10.0, clock=lambda: now)
    ended = ScanRecord(key="c1", session="s1", name="loopscan", number=6, scan_type="loopscan", uris=[],
                       role="subscan", sequence="5_sequence", end_reason="SUCCESS", started_at=now - 5,
                       closed_at=now - 2)
    view(ScanEnded(ended))
    status = StatusPage(view, clock=lambda: now)
    page = Page(status("/metrics"))
    active = [r for r in page.rows if "scan" in r["class"].split()]
    assert [r["scan"] for r in active] == ["5_sequence", "7_loopscan", "9_ct"]
    seq_row, child_row = active[0], active[1]
    assert "sequence" in seq_row["class"].split() and "2 / 3 subscans" in " ".join(seq_row["text"].split())
    assert "subscan" in child_row["class"].split() and "in 5_sequence" in child_row["text"]
    assert "4 / 10" in child_row["text"]
    ended_row = page.row("6_loopscan", "ended")
    assert "in 5_sequence" in ended_row["text"]


def test_closing_reads_a_sequences_references_in_the_same_round_trip_and_says_when_there_are_more(
        data_store, redis_server):
    from exporter.store.blissdata2 import DataStoreSource

    parent, subscans = open_sequence(data_store, SequenceSpec(session="s1", number=5, scan_count=3))
    children = [open_child(data_store, "s1", 6 + i, group=parent.key)[0] for i in range(3)]
    for child in children:
        reference(subscans, child)
    subscans.send("not a reference")  # BLISS never writes this: reported, not linked
    close_sequence(parent, subscans)
    source = DataStoreSource(redis_server.url, single_connection=True)
    streams = {subscans.key: "scan_sequence"}
    end = source.closing({parent.key: streams}, references={subscans.key: "0-0"}, count=2)[parent.key]
    refs, more = end.references[subscans.key]
    assert [key for _, key, _ in refs] == [children[0].key, children[1].key] and more
    assert end.end_reason == "SUCCESS" and end.stats[subscans.key].entries == 4 and end.stats[subscans.key].sealed
    rest, more = source.read_references(subscans.key, refs[-1][0], 2)
    assert [(key, problem[:23]) for _, key, problem in rest] == [(children[2].key, ""), (None, "payload has no scan key")]
    assert more  # two read: maybe more (the seal is not an entry)
    assert source.read_references(subscans.key, rest[-1][0], 2) == ([], False)
    # without references asked for, none are read
    assert source.closing({parent.key: streams})[parent.key].references == {}


def test_the_genuine_bliss_subscans_stream_reads_the_same_through_the_closing_batch(redis_server, raw_redis):
    """The SUBSCANS stream a real BLISS 2.4.0 sequence wrote (tests/data), replayed with its exact ids."""
    from pathlib import Path

    from exporter.store.blissdata2 import DataStoreSource

    reference_dir = Path(__file__).parent / "data" / "bliss-2.4.0-scans"
    parent = json.loads((reference_dir / "05_sequence_sequence_SUCCESS.json").read_text())
    children = [json.loads((reference_dir / name).read_text())["key"]
                for name in ("06_loopscan_child1_SUCCESS.json", "07_loopscan_child2_SUCCESS.json")]
    subscans = parent["streams"]["SUBSCANS"]
    for entry_id, fields in subscans["raw_entries"]:
        raw_redis.xadd(subscans["key"], fields, id=entry_id)
    source = DataStoreSource(redis_server.url, single_connection=True)
    end = source.closing({parent["key"]: {subscans["key"]: "scan_sequence"}}, reasons_known={parent["key"]},
                         references={subscans["key"]: "0-0"})[parent["key"]]
    assert end.references[subscans["key"]] == ([("0-1", children[0], ""), ("1-1", children[1], "")], False)
    stats = end.stats[subscans["key"]]
    assert (stats.entries, stats.sealed) == (subscans["xinfo_entries_added"] - 1, True)
    assert source.read_references(subscans["key"], "0-0", 1000) == end.references[subscans["key"]]
