"""Read-only access to a blissdata 2.x data store (Redis Stack): scan history, scan documents, streams.

Everything the watchers read goes through `DataStoreSource`; it never writes to Redis.
"""

from __future__ import annotations

from typing import Callable, Collection, Mapping, Sequence

import orjson
import redis

from ..model import State
from .base import Closing, Lifetime, NewScans, Reference, References, ScanStreams
from .batch import Command, Reply, run_batch
from .check import acl_rules, probe_commands
from .documents import (
    PROTOCOL_KEY,
    SCAN_PREFIX,
    ScanDocument,
    parse_reference,
    parse_scan_document,
    parse_streams,
)
from .errors import (
    DataStoreError,
    KeyReadError,
    ScanGone,
    ScanInvalid,
    is_unavailable,
    key_reply,
    raise_store_error,
    raises_store_errors,
)
from .redis_source import RedisSource
from .streams import (
    SEAL_ID,
    STATUS_KINDS,
    StreamKind,
    StreamStats,
    XInfo,
    id_tuple,
    parse_xinfo_stream,
    set_points,
    stats_from_xinfo,
)

HISTORY_STREAM = "_SCAN_HISTORY_"
SUPPORTED_PROTOCOL = 1

#: A position in the scan history: (entries ever added to it up to there, the last entry's id).
HistoryPosition = tuple[int, str]

#: Read-only commands the exporter uses, each with a harmless probe run by the start-up self-test.
#: README's ACL line grants exactly these (tests/test_security.py checks it).
READ_COMMANDS = {
    "get": ("GET", PROTOCOL_KEY),
    "xinfo|stream": ("XINFO", "STREAM", HISTORY_STREAM),
    "xread": ("XREAD", "COUNT", "1", "STREAMS", HISTORY_STREAM, "$"),
    "xrange": ("XRANGE", HISTORY_STREAM, "+", "+"),
    "xrevrange": ("XREVRANGE", HISTORY_STREAM, "-", "-"),
    "ttl": ("TTL", PROTOCOL_KEY),
    "type": ("TYPE", PROTOCOL_KEY),
    "exists": ("EXISTS", PROTOCOL_KEY),
    "scan": ("SCAN", "0", "MATCH", SCAN_PREFIX + "\\*", "COUNT", "1", "TYPE", "ReJSON-RL"),
    "json.get": ("JSON.GET", SCAN_PREFIX + "bliss-exporter-self-test"),
    "time": ("TIME",),
}


#: Commands the self-test runs only as a sign of the server: FT._LIST, that RediSearch is there.
SIGNS = {"ft._list": (("FT._LIST",), "the RediSearch module is missing: not a Redis Stack server")}

#: The Redis ACL rules the exporter needs, exactly: the read commands above, plus FT._LIST (a sign of
#: RediSearch) and CLIENT SETINFO (redis-py names itself). README shows them. Keys cannot be limited
#: to read access (`%R~*`): RedisJSON's JSON.GET declares no read-only key spec, so Redis denies it.
ACL_RULES = acl_rules((*READ_COMMANDS, *SIGNS, "client|setinfo"))


class DataStoreSource(RedisSource):
    """The blissdata 2.x data model (store.base.Source): reads a Redis Stack written by blissdata 2.x."""

    model = "blissdata2"

    def __init__(self, url: str, socket_timeout: float = 10.0, single_connection: bool = False,
                 on_stream_error: Callable[[str], None] | None = None):
        """As RedisSource's."""
        super().__init__(url, socket_timeout, single_connection, on_stream_error)
        self._json = self.redis.json()  # also registers the JSON reply parsers used by pipelines

    # -- health -----------------------------------------------------------------------------
    @raises_store_errors
    def check(self) -> None:
        """Raise unless this is a usable blissdata store that lets us run every command we use.

        One round trip: the protocol key, then a probe of each read command (READ_COMMANDS); a
        denied command names itself (DataStoreUnavailable), so does a key of the wrong type.
        """
        replies = probe_commands(self.redis, READ_COMMANDS, wrong_type=f"{HISTORY_STREAM} or {PROTOCOL_KEY}",
                                 unknown_means="not a Redis Stack server", signs=SIGNS)
        version = replies["get"]
        if version is None:
            raise DataStoreError("no blissdata protocol key (_PROTOCOL_VERSION_): not a blissdata data store")
        try:
            version = int(version)
        except ValueError:
            raise DataStoreError(f"unreadable blissdata protocol version {version!r}") from None
        if version != SUPPORTED_PROTOCOL:
            raise DataStoreError(
                f"blissdata protocol version {version} found, only {SUPPORTED_PROTOCOL} is supported"
            )

    # -- discovery ------------------------------------------------------------------------------
    # A position is (entries ever added to the scan history up to it, its last entry id). Entries
    # ever added minus entries left is how many were trimmed away, the oldest first: this is how a
    # reader knows the history was trimmed past its position (more than ~2048 scans missed).

    @raises_store_errors
    def anchor(self) -> HistoryPosition:
        """The position of the scan history's last entry ((0, "0-0") before the first scan)."""
        try:
            info = self.redis.xinfo_stream(HISTORY_STREAM)
        except redis.ResponseError as exc:
            _raise_unless_no_history(exc)
            info = None
        added, _, last = self._history_info(info)
        return added, last

    @staticmethod
    def _history_info(info: XInfo | None) -> tuple[int, int, str]:
        if info is None or isinstance(info, Exception):
            return 0, 0, "0-0"
        return int(info["entries-added"]), int(info["length"]), info["last-generated-id"].decode()

    @raises_store_errors
    def new_scans(self, position: HistoryPosition, block_ms: int | None, count: int = 256) -> NewScans[HistoryPosition]:
        """History entries after `position` and, in the same round trip, whether any were trimmed away."""
        sequence, since = position
        xread: Command = ("XREAD", "COUNT", count) + (("BLOCK", block_ms) if block_ms is not None else ()) + (
            "STREAMS", HISTORY_STREAM, since)
        raw, info = run_batch(self.redis, [xread, ("XINFO", "STREAM", HISTORY_STREAM)])
        for reply in (raw, info):
            _raise_unless_no_history(reply)
        entries = [(entry_id.decode(), _field(fields, b"key"))
                   for _, stream in (raw if not isinstance(raw, Exception) else None) or () for entry_id, fields in stream]
        added, length, last = self._history_info(None if isinstance(info, Exception) else parse_xinfo_stream(info))
        if not entries:
            return NewScans([], position)
        keys = [key.decode() for _, key in entries if key]
        if added - length > sequence or added < sequence:  # trimmed past our position (or recreated)
            return NewScans(keys, (added, last), gap=True)
        return NewScans(keys, (sequence + len(entries), entries[-1][0]))

    @raises_store_errors
    def created_since(self, started: float) -> tuple[list[str], bool]:
        """Keys of the scan history's entries since `started` (server time), and whether the history
        still reaches back to it (never trimmed, or it still holds an older entry: trimming takes the
        oldest first)."""
        since = f"{int(started * 1000)}-0"
        raw, older, info = run_batch(self.redis, [("XRANGE", HISTORY_STREAM, since, "+"),
                                                  ("XREVRANGE", HISTORY_STREAM, "(" + since, "-", "COUNT", 1),
                                                  ("XINFO", "STREAM", HISTORY_STREAM)])
        for reply in (raw, older, info):
            _raise_unless_no_history(reply)
        if isinstance(info, Exception):  # no history yet
            return [], True
        info = parse_xinfo_stream(info)
        complete = int(info["entries-added"]) == int(info["length"]) or bool(older)
        keys = [key.decode() for _, fields in raw if (key := _field(fields, b"key"))]
        return keys, complete

    @raises_store_errors
    def scan_keys(self) -> list[str]:
        """Every scan key in the data store (keyspace scan, read-only)."""
        return [key.decode() for key in self.redis.scan_iter(match=SCAN_PREFIX + "*", count=1000, _type="ReJSON-RL")]

    @raises_store_errors
    def scans_created_after(self, position: HistoryPosition, keys: list[str]) -> list[str]:
        """Those of `keys` whose state stream's first entry (creation, server time) is after `position`
        (a scan whose state stream cannot be read has no creation to tell, as in `lifetimes`)."""
        since = id_tuple(position[1])
        docs = [d for d in self.load_scans(keys).values() if isinstance(d, ScanDocument)]
        replies = run_batch(self.redis, [("XRANGE", doc.state_keys[0], "-", "+", "COUNT", 1) for doc in docs])
        created: list[tuple[tuple[int, int], str]] = []
        for doc, reply in zip(docs, replies):
            entries = key_reply(reply)
            if entries and id_tuple(entries[0][0].decode()) > since:
                created.append((id_tuple(entries[0][0].decode()), doc.key))
        return [key for _, key in sorted(created)]

    # -- scans ------------------------------------------------------------------------------------
    @raises_store_errors
    def load_scans(self, keys: list[str], deleted_ok: bool = False) -> dict[str, ScanDocument | ScanGone | ScanInvalid]:
        """Scan documents, checked, in one round trip: each one, or why it cannot be watched.

        A deleted scan (expiring within 10 s) counts as gone unless `deleted_ok`: its last
        document can still be read, e.g. for the end_reason of a scan deleted while watched.
        """
        wanted = [k for k in keys if k.startswith(SCAN_PREFIX)]
        commands: list[Command] = []
        for key in wanted:
            commands += (("TTL", key), ("JSON.GET", key))
        replies = iter(run_batch(self.redis, commands))
        out: dict[str, ScanDocument | ScanGone | ScanInvalid] = {
            k: ScanInvalid(f"not a scan key: {k!r}") for k in keys if not k.startswith(SCAN_PREFIX)}
        for key in wanted:
            ttl, doc = next(replies), next(replies)
            raise_store_error(ttl)  # a denied or busy read is the store's problem, not the scan's
            raise_store_error(doc)
            if ttl == -2 or (not deleted_ok and _deleted(ttl)) or doc is None:
                out[key] = ScanGone(key)
            elif isinstance(doc, redis.ResponseError):
                out[key] = ScanInvalid(f"{key}: {doc}")
            else:
                try:
                    out[key] = parse_scan_document(key, orjson.loads(doc))
                except orjson.JSONDecodeError as exc:
                    out[key] = ScanInvalid(f"{key}: not JSON: {exc}")
                except ScanInvalid as exc:
                    out[key] = exc
        return out

    @raises_store_errors
    def lifetimes(self, docs: list[ScanDocument]) -> dict[str, Lifetime]:
        """Creation (the state stream's first entry), PREPARED and CLOSED times, from the state
        streams' ids (server time), in one round trip; created None for a scan without state entry."""
        out: dict[str, Lifetime] = {}
        replies = run_batch(self.redis, [("XRANGE", doc.state_keys[0], "-", "+", "COUNT", 16) for doc in docs])
        for doc, reply in zip(docs, replies):
            entries = key_reply(reply)  # None if not a stream: the scan cannot be watched
            out[doc.key] = Lifetime.of_states((entry_id, _state(fields)) for entry_id, fields in entries or ())
        return out

    @raises_store_errors
    def scan_streams(self, keys: list[str]) -> dict[str, ScanStreams | ScanGone | ScanInvalid]:
        """The data streams listed in several scan documents, in one round trip (one node each)."""
        out: dict[str, ScanStreams | ScanGone | ScanInvalid] = {}
        for key, found in zip(keys, run_batch(self.redis, [("JSON.GET", key, "$.data_streams") for key in keys])):
            if isinstance(found, Exception):
                raise_store_error(found)
                out[key] = ScanInvalid(f"{key}: {found}")
                continue
            found = _json_reply(found)
            if not found:
                out[key] = ScanGone(key)
                continue
            try:
                streams = parse_streams(key, found[0])
            except ScanInvalid as exc:
                out[key] = exc
                continue
            out[key] = ScanStreams(streams, nodes=len(streams))
        return out

    @raises_store_errors
    def closing(self, scans: dict[str, dict[str, StreamKind]], reasons_known: Collection[str] = (),
                references: Mapping[str, str] = {}, count: int = 1000) -> dict[str, Closing]:
        """Final stream stats and end_reason of several closed scans, in one round trip.

        A scan whose document was read after it closed (its end_reason known) needs only its streams.
        `references` of its streams (a sequence's SUBSCANS: since) are read in the same round trip,
        after their XINFO, so they hold at least the entries it counted.
        """
        commands: list[Command] = []
        for key, streams in scans.items():
            commands += [("XINFO", "STREAM", stream_key) for stream_key in streams]
            if key not in reasons_known:
                commands.append(("JSON.GET", key, "$.info.end_reason"))
        wanted = {stream_key: since for streams in scans.values() for stream_key in streams
                  if (since := references.get(stream_key)) is not None}
        commands += [("XRANGE", stream_key, "(" + since, "+", "COUNT", count) for stream_key, since in wanted.items()]
        replies = iter(run_batch(self.redis, commands))
        all_keys: list[str] = []
        all_streams: dict[str, StreamKind] = {}
        all_replies: list[Reply] = []
        reasons: dict[str, Reply] = {}
        for key, streams in scans.items():
            for stream_key in streams:
                all_keys.append(stream_key)
                all_streams[stream_key] = streams[stream_key]
                all_replies.append(next(replies))
            reasons[key] = None if key in reasons_known else next(replies)
        read = {stream_key: self._references_reply(next(replies), count) for stream_key in wanted}
        stats = self._parse_stats(all_keys, all_streams, all_replies)
        out: dict[str, Closing] = {}
        for key, streams in scans.items():
            reason = reasons[key]
            mine = {k: stats[k] for k in streams}
            if key in reasons_known:
                out[key] = Closing(mine, None, True)
            elif isinstance(reason, Exception):
                raise_store_error(reason)
                out[key] = Closing(mine, None, True)
            elif (reason := _json_reply(reason)) is None:
                out[key] = Closing(mine, None, False)
            else:
                out[key] = Closing(mine, str(reason[0]) if reason and reason[0] else None, True)
            out[key].references = {k: read[k] for k in streams if k in read}
        return out

    @raises_store_errors
    def scans_alive(self, scans: dict[str, tuple[str, ...]]) -> dict[str, str | None]:
        """{scan key: None if alive, else why not} for {scan key: state stream keys}, in one round trip.

        A scan is dead when its document is gone or deleted, or when its state stream vanished
        (evicted under memory pressure, deleted): no CLOSED can ever come then.
        """
        commands: list[Command] = []
        for key, state_keys in scans.items():
            commands += (("TTL", key), ("EXISTS", *state_keys))
        replies = iter(run_batch(self.redis, commands))
        out: dict[str, str | None] = {}
        for key, state_keys in scans.items():
            ttl, existing = next(replies), next(replies)
            for reply in (ttl, existing):  # TTL and EXISTS fail only for the whole store
                if isinstance(reply, Exception):
                    raise reply
            out[key] = ("vanished" if _deleted(ttl) else None if existing == len(state_keys)
                        else "state stream vanished")
        return out

    # -- scan sequences ---------------------------------------------------------------------
    @raises_store_errors
    def read_references(self, stream_key: str, since: str, count: int = 1000) -> References:
        """SUBSCANS entries after `since`, seal excluded: ([(entry id, child scan key or None, problem)], more).

        Each entry is blissdata's JSON encoding of `{"key": <child scan key>, "scan_number": n}`;
        an entry that is not such JSON gives (id, None, what is wrong with it). `more`: `count` were read.
        """
        (raw,) = run_batch(self.redis, [("XRANGE", stream_key, "(" + since, "+", "COUNT", count)])
        return self._references_reply(raw, count)

    @staticmethod
    def _references_reply(raw: Reply, count: int) -> References:
        raw = key_reply(raw)
        if raw is None:  # not a stream: no references, as from a stream not there
            return [], False
        out: list[Reference] = []
        for entry_id, fields in raw:
            if entry_id != SEAL_ID:
                pairs = iter(fields)
                out.append((entry_id.decode(), *parse_reference(dict(zip(pairs, pairs)))))
        return out, len(raw) == count

    @raises_store_errors
    def read_states(self, cursors: dict[str, str], block_ms: int | None) -> dict[str, list[tuple[str, State | None]]]:
        """New state entries of several scans' state streams at once: {state key: [(id, state)]}."""
        if not cursors:
            return {}
        block: Command = ("BLOCK", block_ms) if block_ms is not None else ()
        xread: Command = ("XREAD", *block, "STREAMS", *cursors, *cursors.values())
        (raw,) = run_batch(self.redis, [xread])
        if isinstance(raw, Exception):
            raise_store_error(raw)
            raise KeyReadError(raw) from raw  # a state stream that is not one (unreadable_state_streams tells which)
        return {stream_key.decode(): [(entry_id.decode(), _state(fields)) for entry_id, fields in entries]
                for stream_key, entries in raw or ()}

    def _stats_of(self, reply: XInfo | list[Reply], kind: StreamKind) -> StreamStats:
        return stats_from_xinfo(reply, kind)

    def _parse_stats(self, keys: Sequence[str], streams: Mapping[str, StreamKind],
                     replies: Sequence[Reply]) -> dict[str, StreamStats | None]:
        out = self._decode_stats(keys, streams, replies)
        # A sealed status stream's last entry is the seal, whose `id` counts status entries, not
        # points: the points are in the status entry before it (read once, when the seal is seen).
        status_sealed = {k: st for k, st in out.items() if st is not None and st.sealed and streams[k] in STATUS_KINDS}
        if status_sealed:
            before_seal = "(" + SEAL_ID.decode()
            replies = run_batch(self.redis, [("XREVRANGE", key, before_seal, "-", "COUNT", 1) for key in status_sealed])
            for (key, stats), reply in zip(status_sealed.items(), replies):
                entries = key_reply(reply)  # None: replaced meanwhile by a key of another type
                if entries:
                    entry_id, fields = entries[0]
                    pairs = iter(fields)
                    set_points(stats, streams[key], entry_id, dict(zip(pairs, pairs)))
        self._report_errors(out, streams)
        return out


_STATES = {str(int(state)).encode(): state for state in State}


def _state(fields: Sequence[bytes]) -> State | None:
    """The state of a raw state stream entry ([field, value, ...]); None if it has none."""
    # blissdata writes {"state": value} alone
    value = fields[1] if len(fields) == 2 and fields[0] == b"state" else _field(fields, b"state")
    if value is None:
        return None
    state = _STATES.get(value)
    if state is None:
        try:
            state = State(int(value))
        except ValueError:
            return None
    return state


def _field(fields: Sequence[bytes], name: bytes) -> bytes | None:
    """A field's value in a raw stream entry ([field, value, ...]), None if absent."""
    for i in range(0, len(fields) - 1, 2):
        if fields[i] == name:
            return fields[i + 1]
    return None


def _json_reply(found: Reply) -> Reply:
    """A JSON.GET reply, decoded."""
    return orjson.loads(found) if isinstance(found, (bytes, str)) else found


def _raise_unless_no_history(reply: Reply) -> None:
    """Raise a reply about the scan history that is an error, unless it says there is no history yet
    (XINFO STREAM of a history not created yet): any other (wrong type...) is the whole store's."""
    if not isinstance(reply, Exception):
        return
    if is_unavailable(reply) or not (isinstance(reply, redis.ResponseError) and "no such key" in str(reply).lower()):
        raise reply


def _deleted(ttl: int) -> bool:
    """blissdata's rule: a scan key gone, or expiring within 10 s (delete_scan's TTL), is deleted."""
    return ttl == -2 or 0 <= ttl <= 10
