"""What the watchers need from a data store: one small protocol, one implementation per data model.

A data model (blissdata 2.x in `blissdata2.py`, BLISS 1.x in `legacy/`) turns its own Redis layout
into these few reads. Positions and cursors are opaque to the watchers: each model decides what
they hold (a stream id, several, a sequence number...). Every method only reads, and batches what
it can into one round trip: the watchers call each of them once per cycle for every scan concerned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Collection, Generic, Iterable, Mapping, Protocol, TypeVar

from ..model import State, stream_id_time
from .documents import ScanDocument
from .errors import ScanGone, ScanInvalid
from .streams import StreamKind, StreamStats

#: Where a reader is in the flow of new scans: each model's own type, opaque to the watchers.
Position = TypeVar("Position")
#: One reference of a sequence to a child: (entry id, child scan key or None, the problem if None).
Reference = tuple[str, str | None, str]
#: References read from a sequence's reference stream, and whether as many as asked were read (more may follow).
References = tuple[list[Reference], bool]


@dataclass
class NewScans(Generic[Position]):
    """Scans created after a position, in creation order, and the position after them."""

    keys: list[str]
    position: Position
    #: scans may have been missed before `keys` (the model's history was trimmed past the position):
    #: the session watcher then re-synchronises with `scans_created_after`
    gap: bool = False


@dataclass
class ScanStreams:
    """The data streams of a scan (known from PREPARED on) and how many nodes they make.

    `nodes` is what the published design counted as NEW_NODE events under the scan: one per stream
    for blissdata 2.x, one per distinct device or channel node for BLISS 1.x.
    """

    streams: dict[str, tuple[str, StreamKind]]  # name -> (stream key, kind)
    nodes: int


@dataclass
class Closing:
    """What a closed scan's end says: final stream stats, end reason, whether its document still exists."""

    stats: dict[str, StreamStats | None]
    end_reason: str | None
    exists: bool
    #: reference streams read in the same round trip ({stream key: read_references' reply}), if asked
    references: dict[str, References] = field(default_factory=dict)


@dataclass(slots=True)
class Lifetime:
    """When a scan was created, prepared and closed, in the data store's time (s); None: not (yet) found."""

    created: float | None
    prepared: float | None = None
    closed: float | None = None

    @classmethod
    def of_states(cls, entries: Iterable[tuple[str, State | None]]) -> Lifetime:
        """From a scan's first state entries ((id, state), oldest first): created at the first entry,
        prepared and closed at the first PREPARED and CLOSED."""
        life = cls(None)
        for entry_id, state in entries:
            if life.created is None:
                life.created = stream_id_time(entry_id)
            if state is State.PREPARED and life.prepared is None:
                life.prepared = stream_id_time(entry_id)
            elif state is State.CLOSED and life.closed is None:
                life.closed = stream_id_time(entry_id)
        return life


class Source(Protocol[Position]):
    """Read-only access to one data store, as the session and scan watchers use it.

    Every method raises only the store's own exceptions (store.errors), never its client library's:
    DataStoreUnavailable when the store cannot serve us now (unreachable, busy, denied...), and
    DataStoreReadError for any other error of the whole store. An error about one key (a key of
    another type, a document that does not validate...) is that key's: ScanGone or ScanInvalid in
    place of its result, None stats, no references, or what a method says it raises.
    """

    #: the data model's name, as `--data-model` spells it
    model: str

    def check(self) -> None:
        """Raise unless the store can be read as this model with every command the reader uses
        (DataStoreError: not a store of this model; DataStoreUnavailable: a command denied...)."""

    # -- discovery (session watcher) ---------------------------------------------------------------
    def anchor(self) -> Position:
        """The position of "now": scans created later come through `new_scans`."""

    def new_scans(self, position: Position, block_ms: int | None) -> NewScans[Position]:
        """Keys of scans created after `position`, waiting up to `block_ms` for one."""

    def scan_keys(self) -> list[str]:
        """Every scan in the store now (adoption at start, re-synchronisation after a gap)."""

    def created_since(self, started: float) -> tuple[list[str], bool]:
        """Keys the model's flow of new scans recorded since `started` (store time), gone scans included,
        and whether that record still reaches back to `started` (start-up: scans that vanished unread)."""

    def scans_created_after(self, position: Position, keys: list[str]) -> list[str]:
        """Those of `keys` created after `position`, oldest first."""

    def load_scans(self, keys: list[str], deleted_ok: bool = False) -> dict[str, ScanDocument | ScanGone | ScanInvalid]:
        """Documents of several scans in one round trip; each one, or why it cannot be watched (a scan
        being deleted counts as gone unless `deleted_ok`)."""

    def load_scan(self, key: str, deleted_ok: bool = False) -> ScanDocument:
        """One scan's document (a sequence parent named by a child); raise ScanGone or ScanInvalid."""

    def lifetimes(self, docs: list[ScanDocument]) -> dict[str, Lifetime]:
        """When each of these scans was created, prepared and closed (start-up), in one round trip."""

    def server_time(self) -> float:
        """The data store's clock now (Redis TIME), in seconds since the epoch."""

    # -- per scan (scan watcher) -------------------------------------------------------------------
    def read_states(self, cursors: dict[str, str], block_ms: int | None) -> dict[str, list[tuple[str, State | None]]]:
        """New entries of state streams ({state stream key: cursor}), waiting up to `block_ms`:
        {state stream key: [(cursor after the entry, state, or None if unreadable)]}. A cursor's
        leading `<ms>` is the Redis server time of the entry. Raises KeyReadError if one of the keys
        cannot be read as a stream (`unreadable_state_streams` tells which)."""

    def unreadable_state_streams(self, keys: list[str]) -> list[str]:
        """The state stream keys among these that exist but cannot be read as state streams."""

    def scan_streams(self, keys: list[str]) -> dict[str, ScanStreams | ScanGone | ScanInvalid]:
        """The data streams of several scans (from PREPARED on), in one round trip."""

    def stream_stats(self, streams: dict[str, StreamKind]) -> dict[str, StreamStats | None]:
        """Counters of many data streams in one round trip: {stream key: stats, or None if absent}."""

    def closing(self, scans: dict[str, dict[str, StreamKind]], reasons_known: Collection[str] = (),
                references: Mapping[str, str] = {}, count: int = 1000) -> dict[str, Closing]:
        """Final stats, end reason and existence of several closed scans ({scan key: its unsealed streams}).

        Hints a model may use to save reads: the end reason of those in `reasons_known` is known already
        (a model that does not read it again gives (None, True) for them); `references` ({reference stream
        key among them: since}) may be read as read_references(key, since, count) would, in the same round
        trip (Closing.references: those read; the others are read with read_references)."""

    def scans_alive(self, scans: dict[str, tuple[str, ...]]) -> dict[str, str | None]:
        """{scan key: None if alive, else why not} for {scan key: its state stream keys}."""

    # -- sequences -----------------------------------------------------------------------------------
    def read_references(self, stream_key: str, since: str, count: int = 1000) -> References:
        """Entries after `since` of a stream whose kind is REFERENCE_KIND (a sequence's references to its
        children): ([(entry id, child scan key or None, the problem if None)], whether `count` were read)."""


#: The stream kind of a sequence's references to its children (blissdata 2.x SUBSCANS,
#: BLISS 1.x `GroupingMaster:scans` node_ref_channel): entries, never points.
REFERENCE_KIND = "scan_sequence"
