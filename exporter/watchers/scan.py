"""Scan watcher: follows the state stream and the data streams of every watched scan until it closes.

The published design ran one greenlet per scan walking every event. Here one greenlet multiplexes
the reads of all active scans: a single blocking XREAD over every state stream, and one pipelined
XINFO STREAM per poll over every data stream. XINFO's `entries-added` counts the data events exactly
(whatever was coalesced or trimmed) without reading the data itself, so the cost grows with the
number of scans and streams, not with points or bytes.
"""

from __future__ import annotations

import collections
import time
from collections import Counter

import gevent
from gevent.event import Event
from redis import ResponseError

from ..events import EventSink
from ..scan import STATE_EVENTS, EventType, ScanRecord, State, StreamCursor, scan_uris, stream_id_time, valid_count
from ..source import DataStoreSource, ScanDocument, ScanGone, ScanInvalid


def record_from_document(doc: ScanDocument, adopted: bool) -> ScanRecord:
    """A fresh ScanRecord from a scan document."""
    info = doc.info
    count_time = info.get("count_time")
    npoints = info.get("npoints")
    scan_type = info.get("type") or doc.name
    record = ScanRecord(
        key=doc.key,
        session=doc.session,
        name=doc.name,
        number=doc.number,
        scan_type=str(scan_type),
        uris=scan_uris(info),
        npoints=npoints if valid_count(npoints) else None,
        count_time=float(count_time) if isinstance(count_time, (int, float)) and not isinstance(count_time, bool) else None,
        title=str(info.get("title") or ""),
        adopted=adopted,
        state_key=doc.state_key,
    )
    _set_streams(record, doc.streams)
    record.streams_known = bool(doc.streams)
    return record


def _set_streams(record: ScanRecord, streams: dict[str, tuple[str, str]]) -> None:
    for name, (key, kind) in streams.items():
        record.streams.setdefault(key, StreamCursor(key=key, name=name, kind=kind))


class ScanWatcher:
    """Counts the events of every watched scan; emits them to the sink; forgets scans once closed."""

    def __init__(
        self,
        source: DataStoreSource,
        sink: EventSink,
        poll_interval: float = 0.5,
        liveness_interval: float = 5.0,
        min_read_interval: float = 0.2,
        clock=time.time,
    ):
        self.source = source
        self.sink = sink
        self.poll_interval = poll_interval
        self.liveness_interval = liveness_interval
        self.min_read_interval = min_read_interval
        self.clock = clock
        self.active: dict[str, ScanRecord] = {}
        self._by_state_key: dict[str, ScanRecord] = {}
        self._ended = collections.OrderedDict()  # recently ended keys, to ignore duplicates
        self._ended_limit = 10000  # far more than the history holds (~2048): enough to drop duplicates
        self._wakeup = Event()
        self._last_liveness = 0.0

    # -- fed by the session watcher -----------------------------------------------------------
    def is_known(self, key: str) -> bool:
        return key in self.active or key in self._ended

    def watch(self, doc: ScanDocument, adopted: bool = False) -> ScanRecord | None:
        """Start watching a scan (once); counts its discovery as a new_node event."""
        if self.is_known(doc.key):
            return None
        record = record_from_document(doc, adopted)
        self.active[record.key] = record
        self._by_state_key[record.state_key] = record
        self.sink.scan_discovered(record)
        # the scan itself, plus its data streams when the document already lists them (PREPARED or later)
        self._count(record, Counter({EventType.NEW_NODE: 1 + len(record.streams)}), 0)
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
            self.step(block_ms)
            if time.monotonic() >= next_poll:
                self.poll_streams()
                next_poll = time.monotonic() + self.poll_interval
            if time.monotonic() - self._last_liveness >= self.liveness_interval:
                self.check_liveness()
                self._last_liveness = time.monotonic()
            # a burst of state changes then arrives in one reply instead of one read each
            rest = self.min_read_interval - (time.monotonic() - started)
            if rest > 0:
                gevent.sleep(rest)

    def step(self, block_ms: int | None) -> None:
        """Read new state entries (waiting up to block_ms), count them, finish what they imply."""
        self._finish_pending()
        cursors = {r.state_key: r.state_cursor for r in self.active.values()}
        try:
            batches = self.source.read_states(cursors, block_ms)
        except ResponseError:
            # one bad state stream (e.g. not a stream) fails the whole multiplexed read:
            # drop the scans whose state stream is unreadable, then let the supervisor retry
            for key in self.source.unreadable_state_streams(list(cursors)):
                record = self._by_state_key.get(key)
                if record is not None:
                    self._forget(record)
                    self.sink.scan_lost(record, "invalid state stream")
            raise
        for state_key, entries in batches.items():
            record = self._by_state_key.get(state_key)
            if record is not None:
                self._apply_states(record, entries)
        self._finish_pending()

    def _finish_pending(self) -> None:
        """Learn the streams of newly PREPARED scans and close CLOSED ones.

        Kept apart from counting so that a data store error here (the supervisor restarts the
        watcher) leaves the work pending instead of lost.
        """
        for record in list(self.active.values()):
            if record.state >= State.PREPARED and not record.streams_known:
                self._learn_streams(record)
            if record.state is State.CLOSED:
                self._close(record)

    def _apply_states(self, record: ScanRecord, entries) -> None:
        """Count state entries, every one of them, in order."""
        events = Counter()
        for entry_id, state in entries:
            record.state_cursor = entry_id
            if state is None:
                continue
            when = stream_id_time(entry_id)
            record.touch(when)
            record.state = state
            if state is State.CREATED:
                record.created_at = when
            elif state is State.STARTED:
                record.started_at = when
            elif state is State.CLOSED:
                record.closed_at = when
            event = STATE_EVENTS.get(state)
            if state is State.CLOSED:
                # counted by _close, together with the scan's end: a scrape never sees one without the other
                record.pending_end += 1
            elif event is not None:
                events[event] += 1
        if events:
            self._count(record, events, 0)

    def _learn_streams(self, record: ScanRecord) -> None:
        """Data streams are in the scan document from PREPARED on: one new_node each."""
        try:
            streams = self.source.scan_streams(record.key)
        except (ScanGone, ScanInvalid):
            record.streams_known = True  # nothing more to learn
            return
        before = len(record.streams)
        _set_streams(record, streams)
        record.streams_known = True
        added = len(record.streams) - before
        if added:
            self._count(record, Counter({EventType.NEW_NODE: added}), 0)

    @staticmethod
    def _unsealed(records: list[ScanRecord]) -> dict[str, str]:
        return {c.key: c.kind for r in records for c in r.streams.values() if not c.sealed}

    def poll_streams(self) -> None:
        """Count new data entries and points of the data streams of every watched scan."""
        records = list(self.active.values())
        wanted = self._unsealed(records)
        if wanted:
            self._apply_stats(records, self.source.stream_stats(wanted))

    def _apply_stats(self, records: list[ScanRecord], stats: dict) -> None:
        now = self.clock()
        for record in records:
            new_entries = new_points = 0
            for cursor in record.streams.values():
                st = stats.get(cursor.key)
                if st is None:
                    continue
                d_entries = max(0, st.entries - cursor.entries)
                d_points = max(0, st.points - cursor.points)
                cursor.entries += d_entries
                cursor.points += d_points
                cursor.sealed = st.sealed
                # an adopted scan's history is counted, but is not recent activity
                if (d_entries or d_points) and (cursor.observed or not record.adopted):
                    record.touch(now)
                cursor.observed = True
                new_entries += d_entries
                new_points += d_points
            if new_entries or new_points:
                events = Counter({EventType.NEW_DATA: new_entries}) if new_entries else Counter()
                self._count(record, events, new_points)

    def _close(self, record: ScanRecord) -> None:
        # streams are sealed before CLOSED: these counts are final
        stats, reason, exists = self.source.closing_snapshot(record.key, self._unsealed([record]))
        self._apply_stats([record], stats)
        if not exists:
            reason = "DELETION"  # only a deletion makes a closed scan's document disappear
        record.end_reason = reason or "UNKNOWN"
        self._forget(record)
        self._count(record, Counter({EventType.END_SCAN: record.pending_end}), 0)
        record.pending_end = 0
        self.sink.scan_ended(record)

    def check_liveness(self) -> None:
        """Drop watched scans whose keys vanished without a CLOSED state (e.g. data store flushed)."""
        if not self.active:
            return
        alive = self.source.scans_alive(list(self.active))
        for key, is_alive in alive.items():
            record = self.active.get(key)
            if record is not None and not is_alive:
                self._forget(record)
                self.sink.scan_lost(record, "vanished")

    def _forget(self, record: ScanRecord) -> None:
        self.active.pop(record.key, None)
        self._by_state_key.pop(record.state_key, None)
        self._ended[record.key] = True
        while len(self._ended) > self._ended_limit:
            self._ended.popitem(last=False)

    def _count(self, record: ScanRecord, events: Counter, points: int) -> None:
        record.counts.update(events)
        self.sink.scan_counted(record, events, points)

    def spawn(self) -> gevent.Greenlet:
        return gevent.spawn(self.run)
