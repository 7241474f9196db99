"""The session and scan watchers in process, over an in-memory data store (tests/memory_source.py) fed with
what a genuine BLISS 2.4.0 session wrote: counting, closing, sequence linking, adoption at start, gaps
and liveness, asserted on the real sinks (metrics of a fresh registry, log lines) as a user sees them.

The watchers are stepped by the test, one turn of each loop per `Watched.cycle()`, with a scrape after
it as Prometheus scrapes between them. The same behaviours are tested end to end, against Redis, in
test_exact_counts.py, test_sequences.py, test_faults.py, test_counter_semantics.py and test_hostile_store.py.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import structlog
from prometheus_client import CollectorRegistry

from exporter.app import Wiring
from exporter.model import EventType, State
from exporter.sinks.events import ScanEnded
from exporter.store import KeyReadError
from exporter.store.clock import StoreClock
from exporter.view import ExporterView
from exporter.watchers.session_watcher import SessionFilter

from .memory_source import MemorySource, reference_scan

SESSION = "demo_session"  # the reference scans' session
CT, LOOPSCAN, ASCAN = reference_scan("01_ct_SUCCESS"), reference_scan("01_loopscan_SUCCESS"), reference_scan("02_ascan_SUCCESS")
FAILURE, USER_ABORT = reference_scan("03_loopscan_FAILURE"), reference_scan("04_loopscan_USER_ABORT")
LOOPSCAN_20 = reference_scan("05_loopscan_SUCCESS")
SEQUENCE = reference_scan("05_sequence_sequence_SUCCESS")
CHILDREN = reference_scan("06_loopscan_child1_SUCCESS"), reference_scan("07_loopscan_child2_SUCCESS")


class Watched:
    """The exporter's watchers and sinks over a MemorySource, wired by app.Wiring as in the exporter, stepped by the test.

    Created when the exporter starts (its counters count from then on); `host_clock_behind`: how far the
    exporter host's clock is behind the data store's.
    """

    def __init__(self, source: MemorySource, sessions: list[str] | None = None, host_clock_behind: float = 0.0):
        def local_clock() -> float:
            return source.clock() - host_clock_behind

        self.store_clock = StoreClock(local_clock)
        self.store_clock.sync(source.server_time)
        self.registry = CollectorRegistry(auto_describe=True)
        self.events: list = []
        self.view = ExporterView(SimpleNamespace(ready=True, reason=""), datastore=lambda: "memory", clock=local_clock)
        wiring = Wiring(self.registry, self.view, taps=(self.events.append,))
        self.scans, self.sessions = wiring.watch(source, source, SessionFilter(sessions), self.store_clock, clock=local_clock)

    def cycle(self) -> None:
        """One turn of each watcher's loop (the first one starts the session watcher), then a scrape."""
        if self.sessions.position is None:
            self.sessions.start()
        else:
            self.sessions.step(None)
        self.scans.step(None)
        self.scans.poll_streams()
        list(self.registry.collect())

    def settle(self) -> None:
        """Cycles until one emits nothing new."""
        for _ in range(10):
            before = len(self.events)
            self.cycle()
            if len(self.events) == before:
                return
        raise AssertionError("the watchers keep emitting")

    # -- what a user sees ----------------------------------------------------------------------------
    def value(self, name: str, **labels) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def series(self, name: str, session: str = SESSION) -> dict[tuple, float]:
        """{label values but the session, sorted by label name: value} of one metric, zeros left out."""
        out = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name and sample.labels.get("session") == session and sample.value:
                    out[tuple(v for k, v in sorted(sample.labels.items()) if k != "session")] = sample.value
        return out

    def counted(self, session: str = SESSION) -> dict[str, float]:
        """bliss_scan_events_total of a session by event type, and its points."""
        out = {event.value: self.value("bliss_scan_events_total", session=session, event_type=event.value)
               for event in EventType}
        return {**out, "points": self.value("bliss_scan_points_total", session=session)}

    def ended(self, session: str = SESSION) -> dict[tuple[str, str, str], float]:
        """{(end_reason, role, scan_type): scans} of bliss_scans_ended_total, zeros left out."""
        return self.series("bliss_scans_ended_total", session)

    def active(self, session: str = SESSION) -> dict[tuple[str, str], float]:
        """{(role, state): scans} of bliss_active_scans, zeros left out."""
        return self.series("bliss_active_scans", session)

    def last_event(self, scan: str, session: str = SESSION) -> float | None:
        return self.value("bliss_scan_last_event_timestamp_seconds", session=session, scan=scan)


def counts(new_node=0, new_data=0, prepared_scan=0, start_scan=0, stop_scan=0, end_scan=0, points=0) -> dict:
    return dict(new_node=new_node, new_data=new_data, prepared_scan=prepared_scan, start_scan=start_scan,
                stop_scan=stop_scan, end_scan=end_scan, points=points)


@pytest.fixture(autouse=True)
def logs():
    """The log lines written (structlog's captured event dicts), with `lines(event)` to pick some."""
    with structlog.testing.capture_logs() as captured:
        yield SimpleNamespace(all=captured, lines=lambda event: [line for line in captured if line["event"] == event])


@pytest.fixture
def source() -> MemorySource:
    return MemorySource()


@pytest.fixture
def watched(source) -> Watched:
    """An exporter started before anything was published, its first cycle done."""
    watched = Watched(source)
    watched.cycle()
    return watched


# -- counting -----------------------------------------------------------------------------------------
def test_genuine_scans_count_what_bliss_wrote_exactly(source, watched, logs):
    for scan in (CT, LOOPSCAN, ASCAN, LOOPSCAN_20):
        source.create_scan(scan).run()
        source.clock.advance(1)
    watched.settle()
    # ct: 4 channels x 1 point, loopscan: 3 x 10, ascan: 5 x 6, loopscan: 3 x 20; one node per scan and channel
    assert watched.counted() == counts(new_node=5 + 4 + 6 + 4, new_data=4 + 30 + 30 + 60, prepared_scan=4,
                                       start_scan=4, stop_scan=4, end_scan=4, points=124)
    assert watched.ended() == {("SUCCESS", "scan", "ct"): 1, ("SUCCESS", "scan", "loopscan"): 2,
                               ("SUCCESS", "scan", "ascan"): 1}
    ends = {line["scan"]: line for line in logs.lines("scan_end")}
    assert {scan: line["points"] for scan, line in ends.items()} == {"1_ct": 4, "1_loopscan": 30, "2_ascan": 30,
                                                                      "5_loopscan": 60}
    assert ends["2_ascan"]["events"] == {"new_node": 6, "new_data": 30, "prepared_scan": 1, "start_scan": 1,
                                         "stop_scan": 1, "end_scan": 1}
    assert not watched.scans.active


def test_a_scan_followed_state_by_state(source, watched):
    scan = source.create_scan(LOOPSCAN)
    created = source.clock()
    watched.cycle()
    assert watched.active() == {("scan", "created"): 1}
    assert watched.counted() == counts(new_node=1)
    source.clock.advance(0.5)
    scan.prepare()
    watched.cycle()
    assert watched.counted() == counts(new_node=4, prepared_scan=1)  # its 3 channels, known from PREPARED
    started = source.clock.advance(0.5)
    scan.start()
    watched.cycle()
    assert watched.active() == {("scan", "started"): 1}
    assert watched.last_event("1_loopscan") == started  # STARTED's entry id: the store's time
    source.clock.advance(1.0)
    scan.send("timer:elapsed_time", 4)
    scan.send("timer:epoch", 4)
    watched.cycle()
    assert watched.counted() == counts(new_node=4, new_data=8, prepared_scan=1, start_scan=1, points=8)
    assert watched.value("bliss_scan_progress_ratio", session=SESSION, scan="1_loopscan") == 0.4  # 4 of npoints 10
    assert watched.last_event("1_loopscan") == source.clock()  # data: when the poll saw it
    source.clock.advance(1.0)
    scan.send("timer:elapsed_time", 6)
    scan.send("timer:epoch", 6)
    scan.send("simulation_diode_sampling_controller:diode", 10)
    scan.stop()
    closed = source.clock.advance(0.25)
    scan.close()
    watched.cycle()
    assert watched.counted() == counts(new_node=4, new_data=30, prepared_scan=1, start_scan=1, stop_scan=1,
                                       end_scan=1, points=30)
    assert watched.active() == {}
    assert watched.value("bliss_scan_duration_seconds_sum", session=SESSION, scan_type="loopscan", role="scan") \
        == closed - started
    assert watched.value("bliss_session_scanning_seconds_total", session=SESSION, proposal="") == closed - created
    watched.settle()
    assert watched.counted()["end_scan"] == 1


def test_a_data_stream_recreated_mid_scan_counts_its_new_entries(source, watched):
    scan = source.create_scan(LOOPSCAN)
    scan.prepare()
    scan.start()
    for _ in range(3):
        scan.send("timer:epoch", 1, points=4)
    watched.cycle()
    assert watched.counted()["new_data"] == 3
    source.delete_key(scan.stream_keys["timer:epoch"])  # evicted, then written again: one entry, id 12-1
    source.write(scan.stream_keys["timer:epoch"], 1, points=13)
    watched.cycle()
    assert (watched.counted()["new_data"], watched.counted()["points"]) == (4, 13)


def test_session_filter_keeps_other_sessions_out(source, logs):
    watched = Watched(source, sessions=["id00_*"])
    watched.cycle()
    for number, session in enumerate(("id00_main", "other", "id00_align"), start=1):
        source.create_scan(LOOPSCAN.like(session=session, number=number)).run()
    watched.settle()
    assert [(line["session"], line["scan"]) for line in logs.lines("scan_start")] == [
        ("id00_main", "1_loopscan"), ("id00_align", "3_loopscan")]
    assert watched.counted("id00_align")["end_scan"] == 1
    assert watched.value("bliss_scan_events_total", session="other", event_type="end_scan") is None


# -- closing ------------------------------------------------------------------------------------------
def test_failed_and_aborted_scans_close_without_stopped_and_their_end_reason_comes_at_closed(source, watched, logs):
    scans = [source.create_scan(scan) for scan in (LOOPSCAN, FAILURE, USER_ABORT)]
    for scan in scans:
        scan.prepare()
        scan.start()
        scan.send_recorded()
    watched.cycle()
    assert {record.end_reason for record in watched.scans.active.values()} == {None}
    assert watched.ended() == {}
    for scan in scans:
        source.clock.advance(1)
        scan.finish()
    watched.settle()
    assert watched.ended() == {("SUCCESS", "scan", "loopscan"): 1, ("FAILURE", "scan", "loopscan"): 1,
                               ("USER_ABORT", "scan", "loopscan"): 1}
    assert [event.scan.end_reason for event in watched.events if isinstance(event, ScanEnded)] == [
        "SUCCESS", "FAILURE", "USER_ABORT"]
    # FAILURE: 4 channels, 14 points (a counter raised on its 4th read); USER_ABORT: 3 channels, 239 points
    assert watched.counted() == counts(new_node=4 + 5 + 4, new_data=30 + 14 + 239, prepared_scan=3, start_scan=3,
                                       stop_scan=1, end_scan=3, points=30 + 14 + 239)
    ends = {line["scan"]: line for line in logs.lines("scan_end")}
    assert ends["3_loopscan"]["end_reason"] == "FAILURE" and ends["3_loopscan"]["points"] == 14
    assert ends["3_loopscan"]["events"] == {"new_node": 5, "new_data": 14, "prepared_scan": 1, "start_scan": 1,
                                            "stop_scan": 0, "end_scan": 1}
    assert ends["4_loopscan"]["end_reason"] == "USER_ABORT" and ends["4_loopscan"]["events"]["stop_scan"] == 0
    assert ends["4_loopscan"]["points"] == 239


def test_no_end_reason_is_unknown_deleted_is_deletion_and_created_straight_to_closed_counts(source, watched, logs):
    ct = source.create_scan(CT)
    watched.cycle()
    ct.close("FAILURE")  # CREATED -> CLOSED
    watched.cycle()
    assert watched.counted() == counts(new_node=1, end_scan=1)
    assert watched.value("bliss_scan_duration_seconds_count", session=SESSION, scan_type="ct", role="scan") == 1

    silent = source.create_scan(LOOPSCAN.like(number=2))
    silent.prepare()
    silent.start()
    silent.stop()
    silent.close_without_reason()
    deleted = source.create_scan(LOOPSCAN.like(number=3))
    deleted.prepare()
    deleted.start()
    deleted.send("timer:epoch")
    watched.cycle()
    deleted.delete(force=True)  # closed with end_reason DELETION, then expiring
    watched.settle()
    undocumented = source.create_scan(LOOPSCAN.like(number=4))
    watched.cycle()
    undocumented.close("SUCCESS")
    source.delete_key(undocumented.key)  # its document gone when its end is read: only a deletion does that
    watched.settle()
    assert watched.ended() == {("FAILURE", "scan", "ct"): 1, ("UNKNOWN", "scan", "loopscan"): 1,
                               ("DELETION", "scan", "loopscan"): 2}
    assert watched.counted()["new_data"] == 1
    assert [line["end_reason"] for line in logs.lines("scan_end")] == ["FAILURE", "UNKNOWN", "DELETION", "DELETION"]


# -- sequences ----------------------------------------------------------------------------------------
def test_the_genuine_sequence_links_its_children_and_ends_with_them(source, watched, logs):
    parent = source.create_scan(SEQUENCE)
    parent.prepare()
    parent.start()
    watched.cycle()
    assert watched.active() == {("sequence", "started"): 1}
    children = []
    for reference in CHILDREN:  # BLISS's ScanSequence: each child names it in `group`, referenced once prepared
        source.clock.advance(1)
        child = source.create_scan(reference)
        child.prepare()
        parent.reference(child)
        child.start()
        watched.cycle()
        assert watched.active() == {("sequence", "started"): 1, ("subscan", "started"): 1}
        record = watched.scans.active[child.key]
        assert (record.role, record.sequence, record.parent.key) == ("subscan", "5_sequence", parent.key)
        source.clock.advance(1)
        child.send_recorded()
        watched.cycle()
        label = f"{child.number}_loopscan"
        assert watched.last_event("5_sequence") == watched.last_event(label) == source.clock()  # its child's data
        child.finish()
        watched.cycle()
        children.append(child)
    # what the double wrote is what BLISS wrote: the same SUBSCANS payloads
    subscans = parent.stream_keys["SUBSCANS"]
    assert [fields[b"payload"] for _, fields in source.entries[subscans]] == SEQUENCE.references
    parent.stop()
    parent.close()
    watched.settle()
    assert watched.ended() == {("SUCCESS", "subscan", "loopscan"): 2, ("SUCCESS", "sequence", "sequence"): 1}
    # references are entries (new_data), never points; 3 channels x 5 points per child
    assert watched.counted() == counts(new_node=2 + 4 + 4, new_data=2 + 15 + 15, prepared_scan=3, start_scan=3,
                                       stop_scan=3, end_scan=3, points=30)
    ends = {line["scan"]: line for line in logs.lines("scan_end")}
    assert ends["5_sequence"]["role"] == "sequence" and ends["5_sequence"]["subscans"] == 2
    assert ends["5_sequence"]["points"] == 0 and ends["5_sequence"]["events"]["new_data"] == 2
    for child in children:
        line = ends[f"{child.number}_loopscan"]
        assert (line["role"], line["sequence"], line["points"]) == ("subscan", "5_sequence", 15)
    assert watched.value("bliss_exporter_sequence_errors_total", reason="bad_group") == 0
    assert watched.value("bliss_exporter_sequence_errors_total", reason="bad_reference") == 0


def test_children_without_group_are_linked_by_the_references_even_before_they_are_watched(source, watched, logs):
    done = source.create_scan(LOOPSCAN.like(number=4)).run()  # ended before it was added to the sequence
    watched.cycle()
    parent = source.create_scan(SEQUENCE.like(number=5))
    parent.prepare()
    parent.start()
    running = source.create_scan(CHILDREN[0].like(number=6, group=None))  # already running when added
    running.prepare()
    running.start()
    watched.cycle()
    assert watched.active() == {("sequence", "started"): 1, ("scan", "started"): 1}
    parent.reference(running)
    later = CHILDREN[1].like(number=7, group=None)
    parent.reference(later.key)  # referenced before it is created: claimed until it is watched
    watched.cycle()
    assert watched.active() == {("sequence", "started"): 1, ("subscan", "started"): 1}
    source.clock.advance(1)
    running.send("timer:epoch")
    watched.cycle()
    assert watched.last_event("5_sequence") == watched.last_event("6_loopscan") == source.clock()  # linked
    later = source.create_scan(later)
    watched.cycle()
    assert watched.scans.active[later.key].sequence == "5_sequence"
    parent.reference(done)
    for child in (running, later):
        child.send_recorded()
        child.finish()
    parent.stop()
    parent.close()
    watched.settle()
    assert watched.ended() == {("SUCCESS", "scan", "loopscan"): 1, ("SUCCESS", "subscan", "loopscan"): 2,
                               ("SUCCESS", "sequence", "sequence"): 1}
    starts = {line["scan"]: line for line in logs.lines("scan_start")}
    ends = {line["scan"]: line for line in logs.lines("scan_end")}
    assert starts["6_loopscan"]["role"] == "scan" and ends["6_loopscan"]["role"] == "subscan"
    assert starts["7_loopscan"]["role"] == "subscan" and starts["7_loopscan"]["sequence"] == "5_sequence"
    assert ends["5_sequence"]["subscans"] == 3
    assert logs.lines("sequence_error") == []


def test_bad_group_and_bad_references_are_counted_and_logged_once(source, watched, logs):
    plain = source.create_scan(LOOPSCAN.like(number=1)).run()
    for number, group in ((2, "esrf:scan:01M8S0000000000000000MISSING"), (3, plain.key)):
        source.create_scan(LOOPSCAN.like(number=number, group=group)).run()
    parent = source.create_scan(SEQUENCE.like(number=4))
    parent.prepare()
    parent.start()
    child = source.create_scan(CHILDREN[0].like(number=5, group=parent.key))
    child.prepare()
    parent.reference(child)
    child.start()
    child.send_recorded()
    child.finish()
    parent.add_reference({b"payload": json.dumps({"scan_number": 6}).encode()})
    parent.reference(parent.key)  # itself
    parent.add_reference({b"payload": b"{not json"})
    parent.stop()
    parent.close()
    watched.settle()
    assert watched.value("bliss_exporter_sequence_errors_total", reason="bad_group") == 2
    assert watched.value("bliss_exporter_sequence_errors_total", reason="bad_reference") == 3
    assert watched.ended() == {("SUCCESS", "scan", "loopscan"): 3, ("SUCCESS", "subscan", "loopscan"): 1,
                               ("SUCCESS", "sequence", "sequence"): 1}
    errors = logs.lines("sequence_error")
    assert [(e["scan"], e["reason"]) for e in errors] == [
        ("2_loopscan", "bad_group"), ("3_loopscan", "bad_group"), ("4_sequence", "bad_reference"),
        ("4_sequence", "bad_reference"), ("4_sequence", "bad_reference")]
    assert "no such scan" in errors[0]["detail"] and "1_loopscan, not a scan sequence" in errors[1]["detail"]
    assert "no scan key" in errors[2]["detail"] and "this sequence or one of its parents" in errors[3]["detail"]
    assert "SUBSCANS entry 3-1: payload is not JSON" in errors[4]["detail"]
    assert {line["scan"]: line["subscans"] for line in logs.lines("scan_end") if line["role"] == "sequence"} == {
        "4_sequence": 1}


@pytest.mark.parametrize("child_first", [False, True], ids=["parent-key-first", "child-key-first"])
def test_a_sequence_and_its_child_adopted_at_start_are_linked_in_either_order(source, logs, child_first):
    parent_key, child_key = ("01MEMB", "01MEMA") if child_first else ("01MEMA", "01MEMB")
    parent = source.create_scan(SEQUENCE.like(pk=parent_key + "0" * 20))
    parent.prepare()
    parent.start()
    child = source.create_scan(CHILDREN[0].like(pk=child_key + "0" * 20, group=parent.key))  # not referenced yet
    source.clock.advance(1)
    watched = Watched(source)  # adopts both, in the order of their keys
    watched.cycle()
    assert watched.active() == {("sequence", "started"): 1, ("subscan", "created"): 1}
    assert watched.scans.active[child.key].parent is watched.scans.active[parent.key]
    child.prepare()
    parent.reference(child)
    child.start()
    child.send("timer:epoch")
    watched.cycle()
    source.clock.advance(1)
    child.send("timer:epoch")
    watched.cycle()
    assert watched.last_event("5_sequence") == watched.last_event("6_loopscan") == source.clock()
    child.stop()
    child.close()
    parent.stop()
    parent.close()
    watched.settle()
    assert watched.ended() == {("SUCCESS", "subscan", "loopscan"): 1, ("SUCCESS", "sequence", "sequence"): 1}
    (start,) = [line for line in logs.lines("scan_start") if line["scan"] == "6_loopscan"]
    assert start["sequence"] == "5_sequence" and start["adopted"] is True
    assert logs.lines("sequence_error") == []


# -- adoption at start -------------------------------------------------------------------------------
def test_a_scan_active_at_start_adds_only_what_happens_after_the_start(source, logs):
    old = source.create_scan(LOOPSCAN.like(number=1))
    old.prepare()
    old.start()
    old.stop()
    old.close()  # closed before: belongs to the past
    scan = source.create_scan(LOOPSCAN.like(number=2))
    scan.prepare()
    scan.start()
    scan.send("timer:epoch", 2, points=10)
    source.clock.advance(1)
    watched = Watched(source)
    watched.cycle()
    assert watched.active() == {("scan", "started"): 1}
    # the session's series exist at 0 from the start: increase() sees its first counts after a restart
    assert watched.counted() == counts()
    assert watched.value("bliss_scans_ended_total", session=SESSION, scan_type="loopscan", role="scan",
                         end_reason="SUCCESS") == 0
    scan.send("timer:epoch")
    watched.cycle()
    assert watched.counted() == counts(new_data=1, points=1)
    source.clock.advance(1)
    scan.stop()
    scan.close("SUCCESS")
    watched.settle()
    assert watched.counted() == counts(new_data=1, stop_scan=1, end_scan=1, points=1)
    assert watched.ended() == {("SUCCESS", "scan", "loopscan"): 1}
    (start,) = logs.lines("scan_start")
    assert start["scan"] == "2_loopscan" and start["adopted"] is True
    (end,) = logs.lines("scan_end")  # its own whole history
    assert end["points"] == 11 and end["events"] == {"new_node": 4, "new_data": 3, "prepared_scan": 1,
                                                     "start_scan": 1, "stop_scan": 1, "end_scan": 1}
    # scanning time: from the exporter's start only (the process before counted the rest)
    assert watched.value("bliss_session_scanning_seconds_total", session=SESSION, proposal="") == 1


def test_an_exporter_restarted_mid_scan_counts_each_event_once(source, logs):
    first = Watched(source)
    first.cycle()
    scan = source.create_scan(LOOPSCAN)
    scan.prepare()
    scan.start()
    scan.send("timer:epoch", 7)
    first.cycle()
    assert first.counted()["new_data"] == 7
    scan.send("timer:epoch", 3, points=9)  # while no exporter runs
    source.clock.advance(1)
    second = Watched(source)
    second.cycle()
    scan.stop()
    scan.close()
    second.settle()
    assert second.counted() == counts(stop_scan=1, end_scan=1)
    (end,) = logs.lines("scan_end")
    assert end["points"] == 16 and end["events"] == {"new_node": 4, "new_data": 10, "prepared_scan": 1,
                                                     "start_scan": 1, "stop_scan": 1, "end_scan": 1}


def test_a_scan_created_before_the_start_but_prepared_after_counts_from_its_preparation(source):
    scan = source.create_scan(LOOPSCAN)
    source.clock.advance(1)
    watched = Watched(source)
    watched.cycle()
    assert watched.active() == {("scan", "created"): 1} and watched.counted() == counts()
    source.clock.advance(1)
    scan.run()
    watched.settle()
    # its creation is the process before's; its channels' nodes and all the rest are since the start
    assert watched.counted() == counts(new_node=3, new_data=30, prepared_scan=1, start_scan=1, stop_scan=1,
                                       end_scan=1, points=30)


@pytest.mark.parametrize("host_clock_behind", [0.0, 3600.0, -3600.0])
def test_scans_of_the_wait_for_the_store_are_counted_in_full_whatever_the_host_clock(source, host_clock_behind):
    ended_before = source.create_scan(LOOPSCAN.like(number=1)).run()
    source.clock.advance(1)
    watched = Watched(source, host_clock_behind=host_clock_behind)  # started; its store not read yet
    source.create_scan(LOOPSCAN.like(number=2)).run()  # created at the very start (the same millisecond)
    source.clock.advance(1)
    watched.cycle()  # its first read of the store
    watched.settle()
    assert watched.counted() == counts(new_node=4, new_data=30, prepared_scan=1, start_scan=1, stop_scan=1,
                                       end_scan=1, points=30)
    assert watched.ended() == {("SUCCESS", "scan", "loopscan"): 1}
    assert not watched.scans.is_known(ended_before.key)


# -- gaps ---------------------------------------------------------------------------------------------
def test_history_trimmed_past_the_position_is_resynchronised_without_counting_twice(source, watched, logs):
    source.create_scan(LOOPSCAN.like(number=1)).run()
    watched.settle()
    for number in range(2, 8):
        source.clock.advance(0.1)
        source.create_scan(LOOPSCAN.like(number=number)).run()
    source.trim_history(1)  # as if more than 2048 scans went by
    watched.settle()
    assert watched.counted() == counts(new_node=7 * 4, new_data=7 * 30, prepared_scan=7, start_scan=7, stop_scan=7,
                                       end_scan=7, points=7 * 30)
    (gap,) = logs.lines("history_gap")
    assert gap["log_level"] == "warning"
    (resync,) = logs.lines("history_resync")
    assert resync["scans_found"] == 6  # the last one, still in the history too, is not watched twice
    assert [line["scan"] for line in logs.lines("scan_end")] == [f"{n}_loopscan" for n in range(1, 8)]


def test_scans_gone_before_they_are_read_and_invalid_ones_are_skipped_and_counted(source, watched, logs):
    gone = source.create_scan(LOOPSCAN.like(number=2))
    gone.close()
    gone.delete()
    watched.cycle()
    assert watched.value("bliss_exporter_scans_skipped_total", reason="vanished") == 1
    (skip,) = logs.lines("scan_skipped")
    assert (skip["key"], skip["reason"]) == (gone.key, "vanished")
    bad = "esrf:scan:01BADBADBADBADBADBADBADBAD"
    source.documents[bad] = {"id": {"number": 3}, "info": "x"}
    source.add_history(bad)
    source.add_history("not-a-scan-key")
    source.create_scan(LOOPSCAN.like(number=4)).run()
    watched.settle()
    assert watched.value("bliss_exporter_scans_skipped_total", reason="invalid") == 2
    assert [line["reason"] for line in logs.lines("scan_skipped")] == ["vanished", "invalid", "invalid"]
    assert watched.counted()["end_scan"] == 1


def test_at_start_scans_gone_since_the_start_are_vanished_and_a_history_trimmed_past_it_is_a_gap(source, logs):
    for number in (1, 2):
        source.create_scan(LOOPSCAN.like(number=number)).run()
    source.clock.advance(1)
    watched = Watched(source)
    source.clock.advance(1)
    deleted = source.create_scan(LOOPSCAN.like(number=3)).run()
    deleted.delete()  # expiring
    expired = source.create_scan(LOOPSCAN.like(number=4)).run()
    expired.expire()  # gone
    source.trim_history(2)  # nothing from before the start is left in it
    watched.cycle()
    assert watched.value("bliss_exporter_scans_skipped_total", reason="vanished") == 2
    assert {line["key"] for line in logs.lines("scan_skipped")} == {deleted.key, expired.key}
    (gap,) = logs.lines("history_gap")
    assert gap["position"] == "exporter start" and gap["log_level"] == "warning"
    assert watched.counted() == counts()


def test_a_scan_that_vanishes_between_its_document_read_and_its_state_read_is_lost(source, watched, logs):
    scan = source.create_scan(LOOPSCAN)
    source.after("load_scans", scan.expire)  # the session watcher reads its document, then it is gone
    watched.cycle()
    assert watched.active() == {("scan", "created"): 1} and logs.lines("scan_start")
    watched.scans.check_liveness()
    (lost,) = logs.lines("scan_lost")
    assert (lost["scan"], lost["reason"]) == ("1_loopscan", "vanished")
    assert watched.value("bliss_exporter_scans_lost_total", session=SESSION) == 1
    assert watched.counted() == counts(new_node=1) and watched.active() == {}


def test_an_adopted_scans_data_written_before_its_first_read_is_its_history_only(source):
    scan = source.create_scan(LOOPSCAN)
    source.clock.advance(1)
    watched = Watched(source)

    def prepared_and_sending_as_the_exporter_reads_it():
        scan.prepare()
        scan.start()
        scan.send("timer:epoch", 5)
        source.clock.advance(1)

    source.after("load_scans", prepared_and_sending_as_the_exporter_reads_it)  # its document: still no streams
    watched.cycle()
    assert watched.counted() == counts(new_node=3, prepared_scan=1, start_scan=1)  # since the start
    scan.send("timer:epoch")
    watched.cycle()
    assert watched.counted() == counts(new_node=3, new_data=1, prepared_scan=1, start_scan=1, points=1)
    assert watched.scans.active[scan.key].points == 6  # its own


# -- liveness -----------------------------------------------------------------------------------------
def test_scans_whose_keys_vanished_without_closing_are_lost_the_others_kept(source, watched, logs):
    evicted, expired, undocumented, alive = (source.create_scan(LOOPSCAN.like(number=n)) for n in (1, 2, 3, 4))
    for scan in (evicted, expired, alive):
        scan.prepare()
        scan.start()
        scan.send("timer:epoch")
    watched.cycle()
    source.delete_key(evicted.state_key)  # as eviction under maxmemory allkeys-lru would
    expired.expire()
    undocumented.prepare()
    source.delete_key(undocumented.key)  # its document gone before its streams are learnt
    watched.cycle()
    watched.scans.check_liveness()
    assert {line["scan"]: line["reason"] for line in logs.lines("scan_lost")} == {
        "1_loopscan": "state stream vanished", "2_loopscan": "vanished", "3_loopscan": "vanished"}
    assert watched.value("bliss_exporter_scans_lost_total", session=SESSION) == 3
    assert watched.active() == {("scan", "started"): 1}
    assert watched.counted()["new_node"] == 3 * 4 + 1  # the undocumented scan's streams were never learnt
    alive.finish()
    watched.settle()
    assert watched.ended() == {("SUCCESS", "scan", "loopscan"): 1}


def test_a_state_stream_that_is_no_stream_loses_its_scan_and_the_watcher_goes_on(source, watched, logs):
    good = source.create_scan(LOOPSCAN.like(number=1))
    watched.cycle()
    bad = source.create_scan(LOOPSCAN.like(number=2))
    source.replace_with_string(bad.state_key)  # every read naming it fails
    watched.sessions.step(None)
    with pytest.raises(KeyReadError):
        watched.scans.step(None)  # the supervisor restarts the watcher
    (lost,) = logs.lines("scan_lost")
    assert (lost["scan"], lost["reason"]) == ("2_loopscan", "invalid state stream")
    good.run()
    watched.settle()
    assert watched.ended() == {("SUCCESS", "scan", "loopscan"): 1}


def test_the_double_reads_the_genuine_subscans_stream_as_the_real_store_does(source):
    """As test_sequences.py's test of the genuine SUBSCANS stream through DataStoreSource.closing."""
    parent = source.create_scan(SEQUENCE)
    parent.prepare()
    for payload in SEQUENCE.references:
        parent.add_reference({b"payload": payload})
    parent.close()
    subscans = parent.stream_keys["SUBSCANS"]
    end = source.closing({parent.key: {subscans: "scan_sequence"}}, reasons_known={parent.key},
                         references={subscans: "0-0"})[parent.key]
    assert end.references[subscans] == ([("0-1", CHILDREN[0].key, ""), ("1-1", CHILDREN[1].key, "")], False)
    stats = end.stats[subscans]
    assert (stats.entries, stats.points, stats.sealed) == (2, 0, True)
    assert source.read_references(subscans, "0-0", 1000) == end.references[subscans]
    assert source.read_references(subscans, "0-1", 2) == ([("1-1", CHILDREN[1].key, "")], True)  # two read: maybe more
    assert source.read_references(subscans, "1-1", 2) == ([], False)
    assert source.closing({parent.key: {subscans: "scan_sequence"}})[parent.key].references == {}


def test_the_double_never_waits_and_ids_its_entries_in_the_store_clock(source):
    scan = source.create_scan(LOOPSCAN)
    source.clock.advance(0.25)
    scan.prepare()
    scan.start()  # the same millisecond: the next sequence number
    ms = int(source.clock() * 1000)
    read = source.read_states({scan.state_key: f"{ms}-0"}, block_ms=60_000)
    assert read == {scan.state_key: [(f"{ms}-1", State.STARTED)]}
    assert source.read_states({scan.state_key: f"{ms}-1"}, block_ms=60_000) == {}
    assert source.new_scans(source.anchor(), block_ms=60_000).keys == []


def test_a_sequence_referencing_its_own_parent_is_a_bad_reference_never_a_cycle(source, watched, logs):
    """An inner sequence (group: the outer one) whose SUBSCANS names the outer one: linking it would make a cycle."""
    outer = source.create_scan(SEQUENCE.like(number=1))
    outer.prepare()
    outer.start()
    inner = source.create_scan(SEQUENCE.like(number=2, group=outer.key))
    inner.prepare()
    outer.reference(inner)
    inner.start()
    watched.cycle()
    assert watched.scans.active[inner.key].parent.key == outer.key
    inner.reference(outer)  # its parent, as a child
    source.clock.advance(1)
    watched.cycle()
    assert watched.last_event("1_sequence") == watched.last_event("2_sequence") == source.clock()
    for sequence in (inner, outer):
        sequence.stop()
        sequence.close()
    watched.settle()
    assert watched.value("bliss_exporter_sequence_errors_total", reason="bad_reference") == 1
    assert watched.value("bliss_exporter_sequence_errors_total", reason="bad_group") == 0
    (error,) = logs.lines("sequence_error")
    assert (error["scan"], error["reason"]) == ("2_sequence", "bad_reference")
    assert error["detail"] == f"SUBSCANS entry 0-1: {outer.key} is this sequence or one of its parents"
    assert watched.ended() == {("SUCCESS", "sequence", "sequence"): 2}
    assert watched.counted() == counts(new_node=2 + 2, new_data=1 + 1, prepared_scan=2, start_scan=2, stop_scan=2, end_scan=2)
    ends = {line["scan"]: line for line in logs.lines("scan_end")}
    assert (ends["1_sequence"]["subscans"], ends["2_sequence"]["subscans"]) == (1, 0)
    assert ends["2_sequence"]["sequence"] == "1_sequence"
