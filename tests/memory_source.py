"""An in-memory data store for the watchers' unit tests: `store.base.Source` over scans held in memory.

`MemorySource` reads as the blissdata 2.x store (`store.blissdata2.DataStoreSource`) reads a Redis
Stack: the same scan documents (RedisJSON, parsed by `store.documents`), state entries whose ids are
the store's clock, stream counters as XINFO STREAM gives them (`StreamStats`), SUBSCANS references
decoded as the real store decodes them, and blissdata's rules for deleted (expiring) and gone scans.
The test publishes as BLISS does (`MemoryScan`: create, prepare, start, send, stop, close), scripts the
clock (`ScriptedClock`) and breaks things (trimmed history, expired or malformed scans, evicted or
non-stream state streams). Nothing blocks: a read's `block_ms` returns at once.

The scans come from what a genuine BLISS 2.4.0 session wrote (`reference_scan`, tests/data/bliss-2.4.0-scans):
its documents and its channels' data entries and points, so expected counts are real BLISS data.
"""

from __future__ import annotations

import copy
import functools
import json
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Collection, Concatenate, Mapping, ParamSpec, TypeVar

from exporter.model import State
from exporter.store.base import REFERENCE_KIND, Closing, Lifetime, NewScans, ScanStreams, Source
from exporter.store.documents import SCAN_PREFIX, STREAM_PREFIX, ScanDocument, parse_reference, parse_scan_document, parse_streams
from exporter.store.errors import KeyReadError, ScanGone, ScanInvalid
from exporter.store.streams import StreamKind, StreamStats, id_tuple

REFERENCE = Path(__file__).parent / "data" / "bliss-2.4.0-scans"
#: 2026-12-01T07:03:20Z, the day the reference scans ran (the store's clock starts there)
T0 = 1796108600.0
#: Info fields BLISS writes into a scan's document when it ends.
END_FIELDS = ("end_reason", "end_time")


class ScriptedClock:
    """The data store's clock (Redis TIME): it moves only when the test says so."""

    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move it on; the new time."""
        self.now += seconds
        return self.now


@dataclass
class ReferenceScan:
    """A scan as a genuine BLISS 2.4.0 session wrote it: its document (as read after it closed), the data
    entries and points of each channel, and the payloads of its SUBSCANS entries (a sequence)."""

    key: str
    document: dict[str, Any]
    data: dict[str, tuple[int, int]]  # channel -> (data entries, points)
    references: list[bytes] = field(default_factory=list)

    @property
    def end_reason(self) -> str | None:
        end_reason: str | None = self.document["info"].get("end_reason")
        return end_reason

    def like(self, session: str | None = None, number: int | None = None, pk: str | None = None, **info: object) -> ReferenceScan:
        """Another scan of the same shape: new keys (scan, state and data streams; `pk`: the scan's, to order
        scan keys), maybe another session, number or info (`group=None` removes a field)."""
        document = copy.deepcopy(self.document)
        document["pk"] = pk or _pk()
        document["id"]["pk"] = _pk()
        document["state_stream"]["pk"] = _pk()
        for model in document["data_streams"].values():
            model["pk"] = _pk()
        if session is not None:
            document["id"]["session"] = document["info"]["session_name"] = session
        if number is not None:
            document["id"]["number"] = document["info"]["scan_nb"] = number
            document["info"]["name"] = f"{number}_{document['id']['name']}"
        for name, value in info.items():
            if value is None:
                document["info"].pop(name, None)
            else:
                document["info"][name] = value
        return ReferenceScan(SCAN_PREFIX + document["pk"], document, dict(self.data))


def reference_scan(name: str) -> ReferenceScan:
    """One of the reference scans, by its dump's name (`03_loopscan_FAILURE`)."""
    dump = json.loads((REFERENCE / f"{name}.json").read_text())
    data = {channel: (stream["xinfo_entries_added"] - 1, stream["len"])  # the seal is not a data entry
            for channel, stream in dump["streams"].items() if "len" in stream}
    references = [entry[1]["payload"].encode() for channel, stream in dump["streams"].items()
                  for entry in stream.get("raw_entries", ()) if "payload" in entry[1]]
    return ReferenceScan(dump["key"], dump["redis_json"], data, references)


Args = ParamSpec("Args")
Result = TypeVar("Result")


def _read(method: Callable[Concatenate[MemorySource, Args], Result]) -> Callable[Concatenate[MemorySource, Args], Result]:
    """A read of the Source: what the test set to happen right after it (`MemorySource.after`) happens when
    it returns to the watcher (not when another read uses it)."""
    def read(self: MemorySource, /, *args: Args.args, **kwargs: Args.kwargs) -> Result:
        self.reading += 1
        try:
            result = method(self, *args, **kwargs)
        finally:
            self.reading -= 1
        if not self.reading:
            for action in self.pending.pop(method.__name__, ()):
                action()
        return result
    functools.update_wrapper(read, method)
    return read


def _pk() -> str:
    """A fresh primary key (blissdata: a ULID)."""
    return "01MEM" + uuid.uuid4().hex[:21].upper()


class MemorySource:
    """store.base.Source over scans held in memory, as the blissdata 2.x store reads them from Redis."""

    #: the data model it stands in for
    model = "blissdata2"

    def __init__(self, clock: ScriptedClock | None = None):
        self.clock = clock or ScriptedClock()
        self.documents: dict[str, object] = {}  # scan key -> its JSON document (any JSON value, if malformed)
        self.deleted: set[str] = set()  # keys expiring within 10 s (blissdata's delete_scan): deleted
        self.states: dict[str, list[tuple[str, State | None]]] = {}  # state stream -> entries (None: no state field)
        self.streams: dict[str, StreamStats] = {}  # data stream -> its XINFO counters (absent until written)
        self.entries: dict[str, list[tuple[str, dict[bytes, bytes]]]] = {}  # reference stream -> its entries' fields
        self.not_streams: set[str] = set()  # keys that exist as something else than a stream
        self.history: list[tuple[str, str]] = []  # the scan history: (entry id, scan key)
        self.history_added = 0  # entries ever added to it
        self.history_last_id = "0-0"
        self.check_error: Exception | None = None  # what `check` raises, if anything
        self.pending: dict[str, list[Callable[[], None]]] = {}  # read name -> what happens right after it
        self.reading = 0  # reads in progress (one read may use another)
        self._last_ids: dict[str, tuple[int, int]] = {}

    def after(self, read: str, action: Callable[[], None]) -> None:
        """Make `action` happen in the store right after the next `read` (a scan changing or vanishing
        between two of the watchers' reads)."""
        self.pending.setdefault(read, []).append(action)

    # -- store.base.Source ------------------------------------------------------------------------
    @_read
    def check(self) -> None:
        """Raise `check_error`, if the test set one."""
        if self.check_error is not None:
            raise self.check_error

    @_read
    def anchor(self) -> tuple[int, str]:
        """The position of the scan history's last entry ((0, "0-0") before the first scan)."""
        return self.history_added, self.history_last_id

    @_read
    def new_scans(self, position: tuple[int, str], block_ms: int | None, count: int = 256) -> NewScans[tuple[int, str]]:
        """History entries after `position`; a gap if the history was trimmed past it."""
        sequence, since = position
        entries = [(entry_id, key) for entry_id, key in self.history if id_tuple(entry_id) > id_tuple(since)][:count]
        if not entries:
            return NewScans([], position)
        keys = [key for _, key in entries]
        if self.history_added - len(self.history) > sequence or self.history_added < sequence:
            return NewScans(keys, (self.history_added, self.history_last_id), gap=True)
        return NewScans(keys, (sequence + len(entries), entries[-1][0]))

    @_read
    def scan_keys(self) -> list[str]:
        """Every scan document, deleted ones (still expiring) included."""
        return list(self.documents)

    @_read
    def created_since(self, started: float) -> tuple[list[str], bool]:
        """History entries since `started`, and whether the history still reaches back to it."""
        since = (int(started * 1000), 0)
        keys = [key for entry_id, key in self.history if id_tuple(entry_id) >= since]
        older = any(id_tuple(entry_id) < since for entry_id, _ in self.history)
        return keys, self.history_added == len(self.history) or older

    @_read
    def scans_created_after(self, position: tuple[int, str], keys: list[str]) -> list[str]:
        """Those of `keys` whose first state entry is after `position`, oldest first."""
        since = id_tuple(position[1])
        created = []
        for doc in self.load_scans(keys).values():
            if not isinstance(doc, ScanDocument):
                continue
            entries = self.states.get(doc.state_keys[0])
            if entries and id_tuple(entries[0][0]) > since:
                created.append((id_tuple(entries[0][0]), doc.key))
        return [key for _, key in sorted(created)]

    @_read
    def load_scans(self, keys: list[str], deleted_ok: bool = False) -> dict[str, ScanDocument | ScanGone | ScanInvalid]:
        """Documents, parsed as the real store parses them (each read is a fresh copy)."""
        out: dict[str, ScanDocument | ScanGone | ScanInvalid] = {
            key: ScanInvalid(f"not a scan key: {key!r}") for key in keys if not key.startswith(SCAN_PREFIX)}
        for key in keys:
            if not key.startswith(SCAN_PREFIX):
                continue
            if key not in self.documents or (not deleted_ok and key in self.deleted):
                out[key] = ScanGone(key)
                continue
            try:
                out[key] = parse_scan_document(key, copy.deepcopy(self.documents[key]))
            except ScanInvalid as exc:
                out[key] = exc
        return out

    @_read
    def load_scan(self, key: str, deleted_ok: bool = False) -> ScanDocument:
        """One scan's document; raise ScanGone or ScanInvalid."""
        found = self.load_scans([key], deleted_ok)[key]
        if isinstance(found, Exception):
            raise found
        return found

    @_read
    def lifetimes(self, docs: list[ScanDocument]) -> dict[str, Lifetime]:
        """Creation, PREPARED and CLOSED times from the first 16 state entries, as the real store reads them."""
        return {doc.key: Lifetime.of_states(self.states.get(doc.state_keys[0], [])[:16]) for doc in docs}

    @_read
    def server_time(self) -> float:
        """The scripted clock."""
        return self.clock()

    @_read
    def read_states(self, cursors: dict[str, str], block_ms: int | None) -> dict[str, list[tuple[str, State | None]]]:
        """New state entries after each cursor, at once (nothing to wait for: `block_ms` is not slept)."""
        if not cursors:
            return {}
        if self.not_streams.intersection(cursors):
            raise KeyReadError(ValueError("WRONGTYPE Operation against a key holding the wrong kind of value"))
        out = {}
        for key, cursor in cursors.items():
            since = id_tuple(cursor)
            new = [(entry_id, state) for entry_id, state in self.states.get(key, ()) if id_tuple(entry_id) > since]
            if new:
                out[key] = new
        return out

    @_read
    def unreadable_state_streams(self, keys: list[str]) -> list[str]:
        """Those written again as something else than a stream."""
        return [key for key in keys if key in self.not_streams]

    @_read
    def scan_streams(self, keys: list[str]) -> dict[str, ScanStreams | ScanGone | ScanInvalid]:
        """The data streams listed in the documents (one node each); gone if the document has none."""
        out: dict[str, ScanStreams | ScanGone | ScanInvalid] = {}
        for key in keys:
            document = self.documents.get(key)
            if not isinstance(document, dict) or "data_streams" not in document:
                out[key] = ScanGone(key)
                continue
            try:
                streams = parse_streams(key, copy.deepcopy(document["data_streams"]))
            except ScanInvalid as exc:
                out[key] = exc
                continue
            out[key] = ScanStreams(streams, nodes=len(streams))
        return out

    @_read
    def stream_stats(self, streams: dict[str, StreamKind]) -> dict[str, StreamStats | None]:
        """A copy of each stream's counters; None for one not written yet (or gone)."""
        return {key: replace(self.streams[key]) if key in self.streams else None for key in streams}

    @_read
    def closing(self, scans: dict[str, dict[str, StreamKind]], reasons_known: Collection[str] = (),
                references: Mapping[str, str] = {}, count: int = 1000) -> dict[str, Closing]:
        """Final stats and end reason (None, True if known), references read as read_references would."""
        out = {}
        for key, streams in scans.items():
            stats = self.stream_stats(streams)
            document = self.documents.get(key)
            if key in reasons_known:
                end = Closing(stats, None, True)
            elif key not in self.documents:
                end = Closing(stats, None, False)
            else:
                info = document.get("info") if isinstance(document, dict) else None
                reason = info.get("end_reason") if isinstance(info, dict) else None
                end = Closing(stats, str(reason) if reason else None, True)
            end.references = {stream_key: self.read_references(stream_key, references[stream_key], count)
                              for stream_key in streams if stream_key in references}
            out[key] = end
        return out

    @_read
    def scans_alive(self, scans: dict[str, tuple[str, ...]]) -> dict[str, str | None]:
        """Dead if the document is gone or deleted, or if a state stream vanished."""
        out: dict[str, str | None] = {}
        for key, state_keys in scans.items():
            if key not in self.documents or key in self.deleted:
                out[key] = "vanished"
            elif all(k in self.states or k in self.not_streams for k in state_keys):
                out[key] = None
            else:
                out[key] = "state stream vanished"
        return out

    @_read
    def read_references(self, stream_key: str, since: str, count: int = 1000) -> tuple[list[tuple[str, str | None, str]], bool]:
        """Entries after `since`, seal excluded, each decoded as the real store decodes it; `more`: `count` were read."""
        after = [(entry_id, fields) for entry_id, fields in self.entries.get(stream_key, ())
                 if id_tuple(entry_id) > id_tuple(since)]
        stats = self.streams.get(stream_key)
        read = after[:count]
        more = len(after) + (stats is not None and stats.sealed) >= count
        return [(entry_id, *parse_reference(fields)) for entry_id, fields in read], more

    # -- what the publisher (and the test) does ---------------------------------------------------------
    def create_scan(self, scan: ReferenceScan) -> MemoryScan:
        """Publish a scan as blissdata's create_scan does: its document without streams or end, CREATED, history."""
        return MemoryScan(self, scan)

    def add_state(self, state_key: str, state: State | None) -> str:
        """One state entry (None: an entry without a readable state); its id is the store's clock now."""
        entry_id = self._next_id(state_key)
        self.states.setdefault(state_key, []).append((entry_id, state))
        return entry_id

    def add_history(self, scan_key: str) -> str:
        """One scan history entry naming `scan_key`."""
        entry_id = self.history_last_id = self._next_id("_SCAN_HISTORY_")
        self.history.append((entry_id, scan_key))
        self.history_added += 1
        return entry_id

    def trim_history(self, maxlen: int) -> None:
        """Keep the last `maxlen` history entries (as blissdata's ~2048 cap does)."""
        del self.history[:max(0, len(self.history) - maxlen)]

    def write(self, stream_key: str, entries: int = 1, points: int | None = None, saved: int | None = None) -> None:
        """Data entries added to a stream, with `points` more points (one per entry unless told)."""
        stats = self.streams.setdefault(stream_key, StreamStats(entries=0, points=0, sealed=False))
        stats.entries += entries
        stats.points += entries if points is None else points
        if saved is not None:
            stats.saved = saved

    def add_reference(self, stream_key: str, fields: dict[bytes, bytes]) -> str:
        """One SUBSCANS entry (`{b"payload": ...}`), with blissdata's id `<index>-1`."""
        entries = self.entries.setdefault(stream_key, [])
        entry_id = f"{len(entries)}-1"
        entries.append((entry_id, fields))
        self.write(stream_key, points=0)
        return entry_id

    def seal(self, stream_key: str) -> None:
        """The seal entry (blissdata writes it on every stream at close; it creates a stream never written)."""
        self.streams.setdefault(stream_key, StreamStats(entries=0, points=0, sealed=False)).sealed = True

    def delete_key(self, key: str) -> None:
        """A key deleted or evicted (document, state stream or data stream)."""
        self.documents.pop(key, None)
        self.deleted.discard(key)
        self.states.pop(key, None)
        self.streams.pop(key, None)
        self.entries.pop(key, None)
        self.not_streams.discard(key)
        self._last_ids.pop(key, None)

    def replace_with_string(self, key: str) -> None:
        """A key written again as a string: it exists, but is no stream (every XREAD naming it fails)."""
        self.delete_key(key)
        self.not_streams.add(key)

    def _next_id(self, stream_key: str) -> str:
        """The next id of a stream, as Redis gives it: the clock's ms, the sequence if the clock did not move."""
        ms = int(self.clock() * 1000)
        last = self._last_ids.get(stream_key)
        entry = (ms, 0) if last is None or ms > last[0] else (last[0], last[1] + 1)
        self._last_ids[stream_key] = entry
        return f"{entry[0]}-{entry[1]}"


class MemoryScan:
    """A scan published into a MemorySource as blissdata's Scan publishes it (BLISS's scan life cycle)."""

    def __init__(self, source: MemorySource, scan: ReferenceScan):
        self.source = source
        self.scan = scan
        self.key = scan.key
        document = scan.document
        self.state_key = STREAM_PREFIX + document["state_stream"]["pk"]
        self.stream_keys = {name: STREAM_PREFIX + model["pk"] for name, model in document["data_streams"].items()}
        created = copy.deepcopy(document)
        created["data_streams"] = {}  # declared from PREPARED on
        for name in END_FIELDS:
            created["info"].pop(name, None)
        source.documents[self.key] = created
        self.add_state(State.CREATED)
        source.add_history(self.key)

    @property
    def number(self) -> int:
        number: int = self.scan.document["id"]["number"]
        return number

    @property
    def document(self) -> dict[str, Any]:
        """Its document in the store now (a dict: as published, not made malformed)."""
        document = self.source.documents[self.key]
        assert isinstance(document, dict)
        return document

    @property
    def state(self) -> State | None:
        entries = self.source.states.get(self.state_key)
        return entries[-1][1] if entries else None

    def add_state(self, state: State | None) -> str:
        return self.source.add_state(self.state_key, state)

    def prepare(self) -> None:
        """Its data streams are declared, then PREPARED."""
        self.document["data_streams"] = copy.deepcopy(self.scan.document["data_streams"])
        self.add_state(State.PREPARED)

    def start(self) -> None:
        self.add_state(State.STARTED)

    def send(self, channel: str, entries: int = 1, points: int | None = None, saved: int | None = None) -> None:
        """Data entries on one channel (one point each unless told)."""
        self.source.write(self.stream_keys[channel], entries, points, saved)

    def send_recorded(self) -> None:
        """Every data entry and point the genuine scan wrote on its channels."""
        for channel, (entries, points) in self.scan.data.items():
            self.send(channel, entries, points)

    def reference(self, child: MemoryScan | str) -> str:
        """A sequence's SUBSCANS entry naming a child, as BLISS's ScanSequence writes it."""
        key, number = (child.key, child.number) if isinstance(child, MemoryScan) else (child, None)
        payload = json.dumps({"key": key, "scan_number": number}).encode()
        return self.add_reference({b"payload": payload})

    def add_reference(self, fields: dict[bytes, bytes]) -> str:
        """Any entry on its SUBSCANS stream (a malformed one too)."""
        (stream_key,) = [self.stream_keys[name] for name, (_, kind) in
                         parse_streams(self.key, self.scan.document["data_streams"]).items() if kind == REFERENCE_KIND]
        return self.source.add_reference(stream_key, fields)

    def stop(self) -> None:
        self.add_state(State.STOPPED)

    def close(self, end_reason: str | None = None) -> None:
        """Its end written into its info (the genuine scan's end_reason unless told), its streams sealed, CLOSED."""
        info = self.document["info"]
        info["end_reason"] = end_reason or self.scan.end_reason
        info["end_time"] = self.scan.document["info"].get("end_time")
        self.close_without_reason()

    def close_without_reason(self) -> None:
        """Its streams sealed, then CLOSED, with no end_reason written (as a publisher that never writes one)."""
        for stream_key in self.stream_keys.values() if self.document.get("data_streams") else ():
            self.source.seal(stream_key)
        self.add_state(State.CLOSED)

    def run(self) -> MemoryScan:
        """The genuine scan's whole life: prepared, started, its data, STOPPED (only if it succeeded), closed."""
        self.prepare()
        self.start()
        self.send_recorded()
        self.finish()
        return self

    def finish(self) -> None:
        """As BLISS ends it: STOPPED only for a scan that succeeded (a failed or aborted one closes without)."""
        if self.scan.end_reason == "SUCCESS":
            self.stop()
        self.close()

    def delete(self, force: bool = False) -> None:
        """blissdata's delete_scan: closed first with end_reason DELETION (`force`), then its keys expire in 10 s."""
        if self.state is not State.CLOSED:
            if not force:
                raise RuntimeError(f"Scan {self.key} is not terminated, use force=True to delete anyway.")
            self.close("DELETION")
        self.source.deleted.add(self.key)

    def expire(self) -> None:
        """Its keys gone (the deletion's TTL passed, or evicted): document, state stream, data streams."""
        for key in (self.key, self.state_key, *self.stream_keys.values()):
            self.source.delete_key(key)


if TYPE_CHECKING:  # mypy checks the double against the protocol the watchers use, signature by signature
    _: Source[tuple[int, str]] = MemorySource()
