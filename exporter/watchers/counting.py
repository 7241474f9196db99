"""Pure counting: what a scan's new state entries and stream stats add to its record and to the counts.

The scan watcher reads; these functions take what it read into the scan's record (its state, times,
stream cursors) and say what to count, split into what happened since the exporter started and what
an adopted scan's history holds (its own, never the cumulative counters'). No I/O, no events.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from ..model import STATE_EVENTS, EventType, ScanRecord, State, stream_id_time
from ..store.streams import StreamStats


def take_states(record: ScanRecord, state_key: str,
                entries: Iterable[tuple[str, State | None]]) -> tuple[dict[EventType, int], dict[EventType, int]]:
    """Apply state entries of one state stream, every one of them, in order: (events to count, events
    of an adopted scan's history). CLOSED is not counted here but kept pending (`pending_end`): its
    end_scan is counted with the scan's end, so a scrape never sees one without the other."""
    events: dict[EventType, int] = {}
    history: dict[EventType, int] = {}
    when: float | None = None
    for entry_id, state in entries:
        record.state_cursors[state_key] = entry_id
        if state is None:
            continue
        when = stream_id_time(entry_id)
        record.state = state
        if state is State.CREATED:
            record.created_at = when
        elif state is State.PREPARED:
            record.prepared_at = when
        elif state is State.STARTED:
            record.started_at = when
        elif state is State.CLOSED:
            record.closed_at = when
        event = STATE_EVENTS.get(state)
        if state is State.CLOSED:
            record.pending_end += 1
        elif event is not None:
            counts = events if record.counted_from is None or when >= record.counted_from else history
            counts[event] = counts.get(event, 0) + 1
    if when is not None:  # entries come in order: the last one is the latest activity
        record.touch(when)
    return events, history


def take_stats(record: ScanRecord, stats: Mapping[str, StreamStats | None],
               now: float) -> tuple[int, int, int, int, dict[str, list[int]] | None]:
    """Take a scan's new stream stats into its cursors: (new data entries, new points) since the
    exporter started, (entries, points) of an adopted scan's history (what its streams held at their
    first read), and its saving detectors' new frames ({detector: [acquired, saved]}, or None)."""
    new_entries = new_points = 0
    history_entries = history_points = 0
    frames: dict[str, list[int]] | None = None  # saving detectors' new frames (acquired, saved), counted like the data
    for cursor in record.streams.values():
        st = stats.get(cursor.key)
        if st is None:
            continue
        if st.entries < cursor.entries:
            # the stream was re-created (evicted or deleted, then written again): its count restarts
            # (one re-created and written past the old count between two polls is not told apart)
            cursor.entries = 0
        d_entries = st.entries - cursor.entries
        d_points = 0 if cursor.reference else max(0, st.points - cursor.points)
        cursor.entries += d_entries
        cursor.points += d_points
        cursor.sealed = st.sealed
        if cursor.detector is not None and st.saved is not None:
            d_saved = max(0, st.saved - (cursor.saved or 0))
            cursor.saved = max(st.saved, cursor.saved or 0)
            if (d_points or d_saved) and not cursor.history:
                frames = frames or {}
                counted = frames.setdefault(cursor.detector, [0, 0])
                counted[0] += d_points
                counted[1] += d_saved
        # an adopted scan's history is counted, but is not recent activity
        if (d_entries or d_points) and (cursor.observed or not record.adopted):
            record.touch(now)
        cursor.observed = True
        if cursor.history:
            cursor.history = False
            history_entries += d_entries
            history_points += d_points
        else:
            new_entries += d_entries
            new_points += d_points
    return new_entries, new_points, history_entries, history_points, frames
