"""Scan watcher: follows the state stream and the data streams of every watched scan until it closes.

The published design ran one greenlet per scan walking every event. Here one greenlet multiplexes
the reads of all active scans: a single blocking XREAD over every state stream, and one pipelined
XINFO STREAM per poll over every data stream. XINFO's `entries-added` counts the data events exactly
(whatever was coalesced or trimmed) without reading the data itself, so the cost grows with the
number of scans and streams, not with points or bytes.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

from gevent.event import Event

from ..bounded import BoundedDict
from ..model import (
    ROLE_SEQUENCE,
    EventType,
    ScanRecord,
    State,
    record_from_document,
    set_streams,
)
from ..sinks.events import ScanCounted, ScanDiscovered, ScanEnded, ScanLost, SequenceError, Sink
from ..store import KeyReadError, ScanDocument
from ..store.base import References, ScanStreams, Source
from ..store.clock import StoreClock
from ..store.streams import StreamKind, StreamStats
from .counting import take_states, take_stats
from .sequences import SequenceLinks


class ScanWatcher:
    """Counts the events of every watched scan; emits them to the sink; forgets scans once closed."""

    def __init__(
        self,
        source: Source[Any],  # its positions are the session watcher's
        emit: Sink,
        poll_interval: float = 0.5,
        liveness_interval: float = 5.0,
        min_read_interval: float = 0.6,
        clock: Callable[[], float] = time.time,
        store_clock: StoreClock | None = None,
    ):
        self.source = source
        self.store_clock = store_clock or StoreClock(clock)
        self.emit = emit
        self.poll_interval = poll_interval
        self.liveness_interval = liveness_interval
        self.min_read_interval = min_read_interval
        self.clock = clock
        self.active: dict[str, ScanRecord] = {}
        self._by_state_key: dict[str, ScanRecord] = {}
        # recently ended keys, to ignore duplicates: far more than the history holds (~2048)
        self._ended: BoundedDict[str, bool] = BoundedDict(10000)
        self._wakeup = Event()
        self._last_liveness = 0.0
        #: store time up to which every state change of the watched scans is applied (the start of the
        #: last state read done): scanning time is advanced up to there, never past what is known
        self.read_until = float("-inf")
        self.sequences = SequenceLinks(source, emit, self.active, self.is_known)

    # -- fed by the session watcher -----------------------------------------------------------
    def is_known(self, key: str) -> bool:
        return key in self.active or key in self._ended

    def watch(self, doc: ScanDocument, counted_from: float | None = None) -> ScanRecord | None:
        """Start watching a scan (once); counts its discovery as a new_node event.

        `counted_from` (store time) adopts a scan created before the exporter started: its whole
        history is its own (log lines, progress), but only what happens from `counted_from` on, or
        after this first read, adds to the cumulative counters (the process before counted the rest).
        """
        if self.is_known(doc.key):
            return None
        adopted = counted_from is not None
        record = record_from_document(doc, adopted)
        record.watched_at = self.store_clock.now()
        if adopted:
            record.counted_from = counted_from
            for cursor in record.streams.values():
                cursor.history = True
            # its streams' nodes count if it was PREPARED since the start: learnt again once its states are read
            record.streams_known = False
        link_error = self.sequences.find_parent(record)  # may read the data store: before the scan is counted
        self.active[record.key] = record
        for key in record.state_keys:
            self._by_state_key[key] = record
        if record.role == ROLE_SEQUENCE:
            self.sequences.adopt_children(record)  # children adopted before their parent
        self.emit(ScanDiscovered(record))
        if link_error:
            self.emit(SequenceError(record, "bad_group", link_error))
        # the scan itself, plus its data streams when the document already lists them (PREPARED or later)
        if adopted:
            self._count(record, {EventType.NEW_NODE: 1}, 0, cumulative=False)  # created before the start
        else:
            record.nodes_counted = len(record.streams)
            self._count(record, {EventType.NEW_NODE: 1 + record.nodes_counted}, 0)
        self._wakeup.set()
        return record

    # -- the greenlet -------------------------------------------------------------------------
    def run(self) -> None:
        """Watch forever; raises on data store errors (the supervisor restarts it)."""
        next_poll = 0.0
        while True:
            if not self.active:
                self._wakeup.clear()
                self._wakeup.wait(self.poll_interval)
                continue
            now = time.monotonic()
            block_ms = max(1, int((next_poll - now) * 1000)) if next_poll > now else None
            started = now
            self._wakeup.clear()  # scans watched from now on cut the rest below short
            self.step(block_ms)
            if time.monotonic() >= next_poll:
                self.poll_streams()
                next_poll = time.monotonic() + self.poll_interval
            if time.monotonic() - self._last_liveness >= self.liveness_interval:
                self.check_liveness()
                self._last_liveness = time.monotonic()
            # a burst of state changes then arrives in one reply instead of one read each; new scans
            # handed over by the session watcher are read at once (one cycle per batch of them). Its
            # history reads come every 0.5 s while busy, a little sooner than this wait ends: cycles
            # then keep in step with them, one per batch of new scans (docs/benchmarks.md)
            rest = self.min_read_interval - (time.monotonic() - started)
            if rest > 0:
                self._wakeup.wait(rest)

    def step(self, block_ms: int | None) -> None:
        """Read new state entries (waiting up to block_ms), count them, finish what they imply."""
        self._finish_pending()
        cursors = {key: cursor for r in self.active.values() for key, cursor in r.state_cursors.items()}
        sent = self.store_clock.now()
        try:
            batches = self.source.read_states(cursors, block_ms)
        except KeyReadError:
            # one bad state stream (e.g. not a stream) fails the whole multiplexed read:
            # drop the scans whose state stream is unreadable, then let the supervisor retry
            for key in self.source.unreadable_state_streams(list(cursors)):
                record = self._by_state_key.get(key)
                if record is not None:
                    self._forget(record)
                    self.emit(ScanLost(record, "invalid state stream"))
            raise
        for state_key, entries in batches.items():
            record = self._by_state_key.get(state_key)
            if record is not None:
                self._apply_states(record, state_key, entries)
        self._finish_pending()
        self.read_until = sent

    def _finish_pending(self) -> None:
        """Learn the streams of newly PREPARED scans and close CLOSED ones.

        Kept apart from counting so that a data store error here (the supervisor restarts the
        watcher) leaves the work pending instead of lost.
        """
        records = list(self.active.values())
        learning = [r for r in records if r.state >= State.PREPARED and not r.streams_known]
        if learning:
            self._learn_streams(learning)
        for record in records:
            if record.role == ROLE_SEQUENCE and record.references is None and record.streams_known:
                self.sequences.find_references(record)
        closing = [r for r in records if r.state is State.CLOSED]
        if closing:
            self._close(closing)

    def _apply_states(self, record: ScanRecord, state_key: str, entries: list[tuple[str, State | None]]) -> None:
        """Count state entries, every one of them, in order (an adopted scan's older ones as its own only)."""
        events, history = take_states(record, state_key, entries)
        if events:
            self._count(record, events, 0)
        if history:
            self._count(record, history, 0, cumulative=False)

    def _learn_streams(self, records: list[ScanRecord]) -> None:
        """Data streams are known from PREPARED on: one new_node per node under the scan (one read for all)."""
        found = self.source.scan_streams([r.key for r in records])
        for record in records:
            result = found.get(record.key)
            record.streams_known = True  # a gone or invalid scan has nothing more to learn
            if not isinstance(result, ScanStreams):
                continue
            known = set(record.streams)
            set_streams(record, result.streams)
            prepared, watched = record.prepared_at, record.watched_at
            if record.adopted and (prepared is None or (watched is not None and prepared < watched)):
                for key in record.streams.keys() - known:  # written before the exporter first read the scan
                    record.streams[key].history = True
            added = result.nodes - record.nodes_counted
            if added > 0:
                record.nodes_counted = result.nodes
                self._count(record, {EventType.NEW_NODE: added}, 0, cumulative=record.cumulative(record.prepared_at))

    @staticmethod
    def _unsealed(records: list[ScanRecord]) -> dict[str, StreamKind]:
        return {c.key: c.kind for r in records for c in r.streams.values() if not c.sealed}

    def poll_streams(self) -> None:
        """Count new data entries and points of the data streams of every watched scan."""
        records = list(self.active.values())
        wanted = self._unsealed(records)
        if wanted:
            self._apply_stats(records, self.source.stream_stats(wanted))
        self.sequences.read_references(records)

    def _apply_stats(self, records: list[ScanRecord], stats: Mapping[str, StreamStats | None]) -> None:
        for record in records:
            new_entries, new_points = self._new_data(record, stats)
            if new_entries or new_points:
                events = {EventType.NEW_DATA: new_entries} if new_entries else {}
                self._count(record, events, new_points)

    def _new_data(self, record: ScanRecord, stats: Mapping[str, StreamStats | None]) -> tuple[int, int]:
        """Take a scan's new stream stats into its cursors: (new data entries, new points) since the
        exporter started (what an adopted scan's streams held at their first read is its own only)."""
        new_entries, new_points, history_entries, history_points, frames = take_stats(record, stats, self.clock())
        if history_entries or history_points:
            self._count(record, {EventType.NEW_DATA: history_entries} if history_entries else {}, history_points,
                        cumulative=False)
        if frames:
            self.emit(ScanCounted(record, {}, 0, frames))
        return new_entries, new_points

    def _close(self, records: list[ScanRecord]) -> None:
        """Final counts and end of closed scans (streams are sealed before CLOSED), one read for all."""
        references = {key: since for r in records if r.references for key, since in r.references.items()}
        ends = self.source.closing({r.key: self._unsealed([r]) for r in records},
                                   reasons_known={r.key for r in records if r.end_reason},
                                   references=references, count=self.sequences.batch)
        last_data: dict[str, tuple[int, int]] = {}
        read: dict[str, References] = {}
        for record in records:
            last_data[record.key] = self._new_data(record, ends[record.key].stats)
            read.update(ends[record.key].references)
        self.sequences.read_references(records, read)
        for record in records:
            end = ends[record.key]
            # only a deletion makes a closed scan's document disappear
            record.end_reason = "DELETION" if not end.exists else end.end_reason or record.end_reason or "UNKNOWN"
            self._forget(record)
            new_entries, new_points = last_data[record.key]
            events: dict[EventType, int] = {}
            if record.cumulative(record.closed_at):
                events[EventType.END_SCAN] = record.pending_end
            else:  # closed before the exporter started (an adopted scan's history)
                self._count(record, {EventType.END_SCAN: record.pending_end}, 0, cumulative=False)
            if new_entries:
                events[EventType.NEW_DATA] = new_entries
            self._count(record, events, new_points)  # its last data and its end: one update
            record.pending_end = 0
            self.emit(ScanEnded(record))

    def check_liveness(self) -> None:
        """Drop watched scans whose document or state stream vanished without a CLOSED state."""
        if not self.active:
            return
        dead = self.source.scans_alive({key: r.state_keys for key, r in self.active.items()})
        for key, reason in dead.items():
            record = self.active.get(key)
            if record is not None and reason is not None:
                self._forget(record)
                self.emit(ScanLost(record, reason))

    def _forget(self, record: ScanRecord) -> None:
        self.sequences.forget(record)
        self.active.pop(record.key, None)
        for key in record.state_keys:
            self._by_state_key.pop(key, None)
        self._ended[record.key] = True

    def _count(self, record: ScanRecord, events: dict[EventType, int], points: int, cumulative: bool = True) -> None:
        """Events and points of a scan: its own counts; the cumulative counters' too, unless they happened
        before the exporter started (an adopted scan's history: `cumulative` False)."""
        counts = record.counts
        for event, n in events.items():
            counts[event] = counts.get(event, 0) + n
        if cumulative:
            self.emit(ScanCounted(record, events, points))
