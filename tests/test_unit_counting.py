"""The watchers' pure counting (watchers/counting.py), in process: state entries and stream stats taken
into a scan's record, and what they add to the counts, for new and adopted scans."""

from __future__ import annotations

from exporter.model import EventType, ScanRecord, State, StreamCursor
from exporter.store.streams import StreamStats
from exporter.watchers.counting import take_states, take_stats

T0 = 1764921600_000  # ms, a state stream id's time


def record(**kw) -> ScanRecord:
    return ScanRecord(key="esrf:scan:K", session="s", name="loopscan", number=1, scan_type="loopscan", uris=[], **kw)


def entries(*states: State, start_ms: int = T0) -> list[tuple[str, State | None]]:
    return [(f"{start_ms + 1000 * i}-0", state) for i, state in enumerate(states)]


def test_a_whole_scan_counts_each_state_once_and_keeps_its_end_pending():
    scan = record()
    events, history = take_states(scan, "st", entries(State.CREATED, State.PREPARED, State.STARTED,
                                                      State.STOPPED, State.CLOSED))
    assert events == {EventType.PREPARED_SCAN: 1, EventType.START_SCAN: 1, EventType.STOP_SCAN: 1} and history == {}
    assert scan.pending_end == 1 and scan.state is State.CLOSED  # end_scan: counted with the scan's end
    assert (scan.created_at, scan.prepared_at, scan.started_at, scan.closed_at) == (T0 / 1000, T0 / 1000 + 1,
                                                                                     T0 / 1000 + 2, T0 / 1000 + 4)
    assert scan.last_event_at == T0 / 1000 + 4 and scan.state_cursors == {"st": f"{T0 + 4000}-0"}


def test_an_adopted_scans_states_before_the_start_are_its_history_only():
    scan = record(counted_from=T0 / 1000 + 1.5, adopted=True)
    events, history = take_states(scan, "st", entries(State.CREATED, State.PREPARED, State.STARTED, State.STOPPED))
    assert history == {EventType.PREPARED_SCAN: 1} and events == {EventType.START_SCAN: 1, EventType.STOP_SCAN: 1}


def test_an_unreadable_state_entry_moves_the_cursor_and_counts_nothing():
    scan = record()
    assert take_states(scan, "st", [(f"{T0}-0", None)]) == ({}, {})
    assert scan.state_cursors == {"st": f"{T0}-0"} and scan.last_event_at is None


def test_stream_stats_count_new_entries_and_points_history_apart_and_restart_when_recreated():
    scan = record()
    scan.streams = {"a": StreamCursor("a", "ctr", "numeric"), "b": StreamCursor("b", "old", "numeric", history=True)}
    stats = {"a": StreamStats(entries=3, points=30, sealed=False), "b": StreamStats(entries=2, points=5, sealed=False)}
    assert take_stats(scan, stats, now=100.0) == (3, 30, 2, 5, None)
    assert scan.last_event_at == 100.0 and not scan.streams["b"].history
    stats = {"a": StreamStats(entries=1, points=40, sealed=True)}  # fewer entries: re-created
    assert take_stats(scan, stats, now=101.0) == (1, 10, 0, 0, None)
    assert scan.streams["a"].sealed and scan.streams["a"].entries == 1


def test_a_saving_detectors_new_frames_acquired_and_saved():
    scan = record()
    scan.streams = {"d": StreamCursor("d", "eiger1:image", "lima", detector="eiger1")}
    assert take_stats(scan, {"d": StreamStats(entries=2, points=10, sealed=False, saved=4)}, now=1.0) == (
        2, 10, 0, 0, {"eiger1": [10, 4]})
    assert take_stats(scan, {"d": StreamStats(entries=3, points=10, sealed=False, saved=9)}, now=2.0) == (
        1, 0, 0, 0, {"eiger1": [0, 5]})
