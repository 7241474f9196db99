"""What the exporter knows about one scan: identity, labels derived from scan.info, counts so far."""

from __future__ import annotations

import enum
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from typing_extensions import TypeIs

    from .store.documents import ScanDocument
    from .store.streams import StreamKind


#: Unix time of a Redis stream id "<ms>-<seq>" (state stream ids are Redis server time).
def stream_id_time(entry_id: str | bytes) -> float:
    if isinstance(entry_id, bytes):
        entry_id = entry_id.decode()
    return int(entry_id.split("-", 1)[0]) / 1000.0


class EventType(str, enum.Enum):
    """The scan event types of the published watcher design, as exported in `event_type`."""

    NEW_NODE = "new_node"
    NEW_DATA = "new_data"
    PREPARED_SCAN = "prepared_scan"
    START_SCAN = "start_scan"
    STOP_SCAN = "stop_scan"
    END_SCAN = "end_scan"


class State(enum.IntEnum):
    """blissdata's ScanState values, as written in the state stream."""

    CREATED = 0
    PREPARED = 1
    STARTED = 2
    STOPPED = 3
    CLOSED = 4


#: State stream entry -> event counted for it (CREATED is counted as new_node at discovery).
STATE_EVENTS = {
    State.PREPARED: EventType.PREPARED_SCAN,
    State.STARTED: EventType.START_SCAN,
    State.STOPPED: EventType.STOP_SCAN,
    State.CLOSED: EventType.END_SCAN,
}

ACTIVE_STATES = (State.CREATED, State.PREPARED, State.STARTED, State.STOPPED)

#: `role` label: a plain scan, a scan sequence (scan.info is_scan_sequence) or a child of a sequence.
ROLE_SCAN, ROLE_SEQUENCE, ROLE_SUBSCAN = "scan", "sequence", "subscan"
ROLES = (ROLE_SCAN, ROLE_SEQUENCE, ROLE_SUBSCAN)

#: Progress samples kept per active scan for its recent point rate (ETA).
RATE_SAMPLES = 8

_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]+")


def scan_label(number: int | None, name: str) -> str:
    """`<number>_<name>` as BLISS prints it (`26_loopscan`); just the name without a number."""
    return f"{number}_{name}" if number is not None else name


def scan_uris(info: Mapping[str, object]) -> list[str]:
    """`filename::/<scan_nb>.<i>` for each top master of the acquisition chain; none without filename."""
    filename = info.get("filename")
    scan_nb = info.get("scan_nb")
    if not filename or scan_nb is None:
        return []
    chain = info.get("acquisition_chain") or {}
    masters = len(chain) if isinstance(chain, dict) else 0
    return [f"{filename}::/{scan_nb}.{i}" for i in range(1, max(masters, 1) + 1)]


def valid_count(value: object) -> TypeIs[int]:
    """An integer count above 0 (`npoints`, `scan_count`): not a bool, float, string or negative number."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def clean_label_value(value: object, limit: int = 64) -> str:
    """A short label value without control characters or oddities."""
    text = _LABEL_UNSAFE.sub("_", str(value)).strip("_")
    return text[:limit] or "unknown"


@dataclass(slots=True)
class StreamCursor:
    """The exporter's view of one data stream: what was already counted."""

    key: str
    name: str
    kind: StreamKind  # how points are read ("numeric", "lima", "lima2", "mosca", ...)
    entries: int = 0  # data entries counted (seal excluded)
    points: int = 0
    sealed: bool = False
    observed: bool = False  # stats read at least once
    reference: bool = False  # a sequence's SUBSCANS stream (scan_sequence plugin): entries, never points
    references_read: int = 0  # entries counted when its references were last read
    history: bool = False  # an adopted scan's stream: what its first read finds predates the exporter
    detector: str | None = None  # a detector that saves (its statuses count saved frames): its device name
    saved: int | None = None  # its frames saved, per its last status (None: none read yet)


@dataclass(slots=True)
class ScanRecord:
    """One watched scan and everything counted for it so far."""

    key: str
    session: str
    name: str
    number: int | None
    scan_type: str
    uris: list[str]
    npoints: int | None = None
    count_time: float | None = None
    title: str = ""
    proposal: str = ""  # the data policy's proposal ("" without one)
    adopted: bool = False
    #: an adopted scan (created before the exporter started): the store time from which its events
    #: add to the cumulative counters; None for other scans
    counted_from: float | None = None
    watched_at: float | None = None  # when the exporter first read it (store time)
    state_keys: tuple[str, ...] = ()
    state: State = State.CREATED
    state_cursors: dict[str, str] = field(default_factory=dict)  # state stream key -> data model's cursor
    created_at: float | None = None
    prepared_at: float | None = None
    started_at: float | None = None
    closed_at: float | None = None
    last_event_at: float | None = None
    end_reason: str | None = None  # scan.info end_reason, written when the scan closes
    streams: dict[str, StreamCursor] = field(default_factory=dict)
    streams_known: bool = False
    nodes_counted: int = 0  # nodes under the scan counted as new_node (streams for blissdata 2.x)
    counts: Counter[EventType] = field(default_factory=Counter)
    pending_end: int = 0  # CLOSED entries read, counted as end_scan when the scan's end is emitted
    # -- scan sequences ---------------------------------------------------------------------
    role: str = ROLE_SCAN
    group: str | None = None  # scan.info `group`: the parent sequence's key, as the child claims it
    parent: "ScanRecord | None" = field(default=None, repr=False, compare=False)  # the watched parent sequence
    sequence: str | None = None  # the parent's label (`5_sequence`) once the scan is known to be a child
    index_in_sequence: int | None = None
    retry_nb: int | None = None
    scan_count: int | None = None  # sequences: sequence_info.scan_count, the children expected
    subscans: set[str] = field(default_factory=set)  # sequences: keys of the children seen (group or reference)
    #: sequences: watched children not yet closed
    running: dict[str, ScanRecord] = field(default_factory=dict, repr=False, compare=False)
    references: dict[str, str] | None = None  # sequences: SUBSCANS stream key -> last entry id read (None: not looked up)
    # -- point rate (ETA) ----------------------------------------------------------------------
    #: (local time, done) when `done` last grew, the last few: the scan's recent point rate
    saving_detectors: int = 0  # its data streams of detectors that save
    progress_samples: deque[tuple[float, int]] | None = field(default=None, repr=False, compare=False)  # made when an ETA is asked

    @property
    def label(self) -> str:
        return scan_label(self.number, self.name)

    @property
    def points(self) -> int:
        return sum(s.points for s in self.streams.values())

    def detectors(self) -> dict[str, tuple[int, int]]:
        """{detector: (frames acquired, frames saved)} of its saving detectors whose saved count is known."""
        out: dict[str, tuple[int, int]] = {}
        if not self.saving_detectors:
            return out
        for cursor in self.streams.values():
            if cursor.detector is not None and cursor.saved is not None:
                acquired, saved = out.get(cursor.detector, (0, 0))
                out[cursor.detector] = (max(acquired, cursor.points), max(saved, cursor.saved))
        return out

    @property
    def done(self) -> int:
        """How far the scan is: points of its fullest data stream (references aside); children seen for a sequence."""
        if self.role == ROLE_SEQUENCE:
            return len(self.subscans)
        return max((s.points for s in self.streams.values() if not s.reference), default=0)

    @property
    def progress(self) -> float | None:
        """`done` over npoints (over `sequence_info.scan_count` for a sequence), in [0, 1]; None if unknown."""
        expected = self.scan_count if self.role == ROLE_SEQUENCE else self.npoints
        if not valid_count(expected) or (self.role != ROLE_SEQUENCE and not self.streams):
            return None
        return max(0.0, min(1.0, self.done / expected))

    @property
    def duration(self) -> float | None:
        """STARTED (or creation, if never started) to CLOSED, in Redis server time."""
        begin = self.started_at if self.started_at is not None else self.created_at
        if begin is None or self.closed_at is None:
            return None
        return max(0.0, self.closed_at - begin)

    def cumulative(self, when: float | None) -> bool:
        """Whether an event at `when` (store time) adds to the cumulative counters: it happened since
        the exporter started (an adopted scan's earlier history was counted by the process before)."""
        return self.counted_from is None or (when is not None and when >= self.counted_from)

    def note_progress(self, now: float) -> deque[tuple[float, int]]:
        """Remember when `done` grew (the recent point rate of the ETA); the samples kept."""
        done = self.done
        samples = self.progress_samples
        if samples is None:
            samples = self.progress_samples = deque(maxlen=RATE_SAMPLES)
        if not samples or done > samples[-1][1]:
            samples.append((now, done))
        return samples

    def eta(self, now: float) -> float | None:
        """Seconds until `npoints` at the recent point rate (from the oldest of the last few progress
        samples to now, so a stalled scan's ETA grows); None until that rate is known.

        Progress is sampled when an ETA is asked for (each scrape, each status page): nothing is added
        to the watchers' per-scan path.
        """
        if not valid_count(self.npoints) or self.role == ROLE_SEQUENCE:
            return None
        samples = self.note_progress(now)
        if len(samples) < 2:
            return None
        first_time, first_done = samples[0]
        _, done = samples[-1]
        if done <= first_done or now <= first_time:
            return None
        rate = (done - first_done) / (now - first_time)
        return max(0.0, (self.npoints - done) / rate)

    def touch(self, when: float) -> None:
        """Activity at `when`; a child's activity is its parent sequence's too."""
        if self.last_event_at is None or when > self.last_event_at:
            self.last_event_at = when
        if self.parent is not None:
            self.parent.touch(when)

    def stall_threshold(self, default: float, factor: float) -> float:
        """Idle time after which the scan counts as stalled: never less than `factor` point times.

        A sequence waits for its running children: its threshold is at least each of theirs.
        """
        per_point = (self.count_time or 0.0) * factor
        own = max(default, per_point)
        for child in list(self.running.values()):
            own = max(own, child.stall_threshold(default, factor))
        return own


def scan_type_of(doc: ScanDocument) -> str:
    """`scan_type`: scan.info `type`, else the scan's name (a sequence has no type)."""
    return str(doc.info.get("type") or doc.name)


def record_from_document(doc: ScanDocument, adopted: bool) -> ScanRecord:
    """A fresh ScanRecord from a scan document (store.documents.ScanDocument, any data model)."""
    info = doc.info
    count_time = info.get("count_time")
    npoints = info.get("npoints")
    scan_type = scan_type_of(doc)
    record = ScanRecord(
        key=doc.key,
        session=doc.session,
        name=doc.name,
        number=doc.number,
        scan_type=str(scan_type),
        uris=scan_uris(info),
        npoints=npoints if valid_count(npoints) else None,
        count_time=float(count_time) if _is_number(count_time) else None,
        title=str(info.get("title") or ""),
        proposal=doc.proposal,
        adopted=adopted,
        state_keys=tuple(doc.state_keys),
        state_cursors={key: "0-0" for key in doc.state_keys},
    )
    if doc.created_at is not None:  # a model without a CREATED state entry (BLISS 1.x)
        record.created_at = doc.created_at
    set_streams(record, doc.streams)
    record.streams_known = bool(doc.streams)
    end_reason = info.get("end_reason")  # the document was read after the scan closed
    record.end_reason = str(end_reason) if end_reason else None
    _set_sequence_info(record, info)
    return record


def _is_number(value: object) -> TypeIs[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _index(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _set_sequence_info(record: ScanRecord, info: Mapping[str, object]) -> None:
    """What scan.info says of sequences (BLISS 2.4: ScanSequence, Sequence, ScanInfo.set_scan_index)."""
    if info.get("is_scan_sequence") is True:
        record.role = ROLE_SEQUENCE
        sequence_info = info.get("sequence_info")
        scan_count = sequence_info.get("scan_count") if isinstance(sequence_info, dict) else None
        record.scan_count = scan_count if valid_count(scan_count) else None
    group = info.get("group")
    record.group = None if group is None or group == "" else str(group)
    record.index_in_sequence = _index(info.get("index_in_sequence"))
    record.retry_nb = _index(info.get("retry_nb"))


def set_streams(record: ScanRecord, streams: Mapping[str, tuple[str, StreamKind]]) -> None:
    known = record.streams
    for name, (key, kind) in streams.items():
        if key not in known:
            cursor = known[key] = StreamCursor(key, name, kind)
            if getattr(kind, "saves", False):
                cursor.detector = detector_name(name)
                record.saving_detectors += 1


def detector_name(stream: str) -> str:
    """The device of a detector stream (`det1` for `det1:image`, `lima_simulator` for
    `timer:lima_simulator:image`)."""
    parts = stream.split(":")
    return parts[-2] if len(parts) >= 2 else parts[0]
