"""Read-only access to a blissdata data store (Redis Stack): scan history, scan documents, streams.

Everything the watchers read goes through `DataStoreSource`; it never writes to Redis.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import structlog

from .scan import State

HISTORY_STREAM = "_SCAN_HISTORY_"
PROTOCOL_KEY = "_PROTOCOL_VERSION_"
SUPPORTED_PROTOCOL = 1
SEAL_ID = b"18446744073709551615-18446744073709551615"
SCAN_PREFIX = "esrf:scan:"
STREAM_PREFIX = "esrf:stream:"

#: Errors meaning "the data store is not reachable right now".
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)

log = structlog.get_logger("bliss_exporter.source")

#: Why a data stream's entry gave no points (`bliss_exporter_stream_errors_total{reason}`).
STREAM_ERROR_REASONS = ("bad_index", "bad_status", "bad_reference")

#: Error replies meaning "the data store cannot serve us now" (busy, loading, replica without master,
#: missing permission or authentication): the store is down for us, with that reason, until it passes.
UNAVAILABLE_CODES = frozenset(
    {"BUSY", "MASTERDOWN", "LOADING", "NOPERM", "WRONGPASS", "NOAUTH", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS"}
)

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
}


#: The Redis ACL rules the exporter needs, exactly: the read commands above, plus FT._LIST (a sign of
#: RediSearch) and CLIENT SETINFO (redis-py names itself). README shows them. Keys cannot be limited
#: to read access (`%R~*`): RedisJSON's JSON.GET declares no read-only key spec, so Redis denies it.
ACL_RULES = (
    "resetkeys", "~*", "resetchannels", "-@all",
    *(f"+{command}" for command in (*READ_COMMANDS, "ft._list", "client|setinfo")),
)


class ReasonError(RuntimeError):
    """An error whose message is the whole reason, as logged and shown by /readyz."""


class BeaconError(ReasonError):
    """Beacon could not tell the data Redis URL."""


class DataStoreError(ReasonError):
    """The data store answered, but is not a usable blissdata data store."""


class DataStoreUnavailable(ReasonError):
    """The data store answered with an error reply that means it cannot serve us now (see UNAVAILABLE_CODES)."""


def error_code(exc: BaseException) -> str | None:
    """The Redis error code of an error reply (`NOPERM`, `BUSY`...), None for other errors."""
    if not isinstance(exc, redis.RedisError):
        return None
    code = getattr(exc, "status_code", None)
    if code:
        return code
    word = str(exc).split(" ", 1)[0]
    return word if word.isupper() else None


def describe_error(exc: BaseException) -> str:
    """One line naming an error: the Redis error code and message, else the exception type and message."""
    code = error_code(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, ReasonError):
        return text
    if code:
        return text if text.startswith(code) else f"{code} {text}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error means the data store cannot serve us now (down, with this error as the reason)."""
    if isinstance(exc, (DataStoreError, DataStoreUnavailable, *CONNECTION_ERRORS)):
        return True
    return error_code(exc) in UNAVAILABLE_CODES


class ScanGone(Exception):
    """The scan was deleted (or is about to expire) and cannot be read."""


class ScanInvalid(Exception):
    """The scan exists but its JSON document does not validate."""


def normalize_redis_url(url: str) -> str:
    """Check a Redis URL and force RESP2 (blissdata 2.4 breaks on RESP3); raise ValueError if unusable.

    `unix:///path/redis.sock` (what Beacon answers to a client on its own host) keeps its `//`:
    urlunsplit would drop it with the empty host, and redis-py rejects `unix:/path`.
    """
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("scheme must be redis://, rediss:// or unix://")
        if parts.scheme != "unix":
            if not parts.hostname:
                raise ValueError("no host")
            try:
                parts.port
            except ValueError:
                raise ValueError("bad port") from None
        elif not parts.path or parts.path == "/":
            raise ValueError("no socket path")
        query = dict(parse_qsl(parts.query))
        db = parts.path.strip("/") if parts.scheme != "unix" else query.get("db", "0")
        if db and not db.isdigit():
            raise ValueError(f"bad database number {db!r}")
    except ValueError as exc:
        raise ValueError(f"invalid Redis URL {redact_url(url)!r}: {exc}") from None
    query.setdefault("protocol", "2")
    return _unsplit(parts._replace(query=urlencode(query)))


def _unsplit(parts) -> str:
    """urlunsplit that keeps `scheme://` even without a host (unix sockets)."""
    text = urlunsplit(parts)
    if parts.scheme == "unix" and not parts.netloc:
        text = "unix://" + text[len("unix:"):]
    return text


def redact_url(url: str) -> str:
    """The URL without its password (its query only keeps `db`), for logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if password:
        netloc = parts.netloc.replace(f":{password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k == "db"]  # never a password, nor protocol noise
    return _unsplit(parts._replace(query=urlencode(query)))


@dataclass
class ScanDocument:
    """The parts of a scan's JSON document the exporter uses."""

    key: str
    session: str
    name: str
    number: int | None
    info: dict
    state_key: str
    streams: dict[str, tuple[str, StreamKind]]  # name -> (redis key, kind)


class StreamKind(str):
    """How a data stream's entries give points: the kind's name, plus what decoding it needs.

    The name (the string itself) is one of:
    - ``numeric``: a default stream (no plugin, numeric or JSON encoding; also ``hdf5_fallback``):
      an entry is a batch, points = last entry's index + ``len`` (the seal's ``id`` once sealed);
    - ``lima``: a JSON status per entry, points = its ``last_index`` + 1;
    - ``lima2``: a numeric (uint32) status per entry, the number of frames available so far;
    - ``mosca``: a JSON status per entry, points = its ``last_read_index`` + 1;
    - ``scan_sequence``: a JSON reference to a child scan per entry, no points;
    - ``unknown``: a plugin the exporter does not know, no points.
    A str subclass, so that plain strings (``"numeric"``) still work where a kind is expected.
    """

    dtype: str | None
    plugin: str | None
    scan: str
    stream: str

    def __new__(cls, name: str, *, dtype: str | None = None, plugin: str | None = None,
                scan: str = "", stream: str = ""):
        self = super().__new__(cls, name)
        self.dtype = dtype  # numeric encoding's dtype_str (lima2's status)
        self.plugin = plugin  # as the stream's info names it
        self.scan = scan  # for log lines: the scan key and the stream's name in it
        self.stream = stream
        return self


#: Kinds whose entries are statuses: once sealed, points are in the entry before the seal, whose
#: `id` only counts the status entries.
STATUS_KINDS = ("lima", "lima2", "mosca")


@dataclass
class StreamStats:
    """What XINFO STREAM says of one data stream."""

    entries: int  # data entries ever added (seal excluded), immune to trimming
    points: int  # 0 when unknown: counted points never go down, so theirs stay as they were
    sealed: bool
    error: tuple[str, str] | None = None  # (reason, detail) when the last entry gave no points


class StreamDecodeError(ValueError):
    """A data stream entry does not decode as its kind says it should."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


#: Plugins whose streams the exporter reads points from; others are "unknown".
_PLUGIN_KINDS = {
    "lima": "lima",
    "lima2": "lima2",
    "mosca": "mosca",
    "scan_sequence": "scan_sequence",
    "hdf5_fallback": "numeric",  # blissdata's own: a default numeric stream backed by a file
}
#: blissdata's mapping of legacy (pre-plugin) JSON stream formats, as in Scan._wrap_event_stream.
_LEGACY_FORMATS = {"lima_v1": "lima", "lima_v2": "lima2", "subscan": "scan_sequence"}
_unknown_plugins_logged: set[str] = set()


def _stream_kind(info: dict | None, encoding: dict | None, scan: str = "", stream: str = "") -> StreamKind:
    info = info if isinstance(info, dict) else {}
    encoding = encoding if isinstance(encoding, dict) else {}
    plugin = info.get("plugin") or None
    if plugin is None:
        fmt = info.get("format")
        if fmt == "lima_v1" or (encoding.get("type") == "json" and "lima_info" in info):
            plugin = "lima"
        elif encoding.get("type") == "json":
            plugin = _LEGACY_FORMATS.get(fmt)
    if plugin is None:
        return StreamKind("numeric", scan=scan, stream=stream)
    plugin = str(plugin)
    name = _PLUGIN_KINDS.get(plugin)
    if name is None:
        if plugin not in _unknown_plugins_logged:
            _unknown_plugins_logged.add(plugin)
            log.warning("unknown_stream_plugin", plugin=plugin, stream=stream, key=scan,
                        detail="its entries count as new_data, without points")
        return StreamKind("unknown", plugin=plugin, scan=scan, stream=stream)
    if name == "lima2" and encoding.get("type") != "numeric":
        # blissdata maps the legacy JSON format lima_v2 to the lima2 plugin: read it as a lima status
        name = "lima"
    dtype = encoding.get("dtype_str") if name == "lima2" else None
    return StreamKind(name, dtype=str(dtype) if dtype is not None else None, plugin=plugin, scan=scan, stream=stream)


class DataStoreSource:
    """Reads a blissdata data store; one instance is shared by the watchers (redis-py pools connections)."""

    def __init__(self, url: str, socket_timeout: float = 10.0, single_connection: bool = False,
                 on_stream_error: Callable[[str], None] | None = None):
        """`single_connection`: for one greenlet's sequential reads (saves the pool's checkout per call).

        `on_stream_error(reason)`: called once per data stream whose entries stop giving points
        (reasons in STREAM_ERROR_REASONS), when it is also logged (`stream_error`).
        """
        self.url = normalize_redis_url(url)
        self.on_stream_error = on_stream_error
        self._streams_in_error: OrderedDict[str, bool] = OrderedDict()  # reported once each, bounded
        self.redis = redis.Redis.from_url(
            self.url, socket_timeout=socket_timeout, socket_connect_timeout=3.0, health_check_interval=0,
            single_connection_client=single_connection,
        )
        self._json = self.redis.json()  # also registers the JSON reply parsers used by pipelines

    # -- health -----------------------------------------------------------------------------
    def check(self) -> None:
        """Raise unless this is a usable blissdata store that lets us run every command we use.

        One round trip: the protocol key, then a probe of each read command (READ_COMMANDS); a
        denied command names itself (DataStoreUnavailable), so does a key of the wrong type.
        """
        pipe = self.redis.pipeline(transaction=False)
        pipe.execute_command("FT._LIST")
        for probe in READ_COMMANDS.values():
            pipe.execute_command(*probe)
        replies = pipe.execute(raise_on_error=False)
        for command, reply in zip(["ft._list", *READ_COMMANDS], replies):
            if not isinstance(reply, Exception):
                continue
            if isinstance(reply, CONNECTION_ERRORS):
                raise reply
            text = str(reply).lower()
            if command == "ft._list":  # not needed to read, only a sign that RediSearch is there
                if "unknown command" in text:
                    raise DataStoreError("the RediSearch module is missing: not a Redis Stack server")
                continue
            if "unknown command" in text:
                raise DataStoreError(f"{command.upper()} is an unknown command: not a Redis Stack server")
            if error_code(reply) == "WRONGTYPE":
                raise DataStoreError(f"{HISTORY_STREAM} or {PROTOCOL_KEY} has the wrong type: {describe_error(reply)}")
            if error_code(reply) == "ERR" and command in ("xinfo|stream",) and "no such key" in text:
                continue  # no scan history yet
            if error_code(reply) == "NOPERM":
                raise DataStoreUnavailable(f"{command.upper()} failed: {describe_error(reply)}")
            raise reply
        version = replies[1]
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

    # -- scan history -----------------------------------------------------------------------
    def history_info(self) -> tuple[int, int, str]:
        """(entries ever added, entries left, last id) of the scan history; (0, 0, "0-0") if absent.

        Entries ever added minus entries left is how many were trimmed away, the oldest first:
        this is how a reader knows the history was trimmed past its position.
        """
        try:
            info = self.redis.xinfo_stream(HISTORY_STREAM)
        except redis.ResponseError:  # no history stream (yet)
            return 0, 0, "0-0"
        return int(info["entries-added"]), int(info["length"]), info["last-generated-id"].decode()

    def read_history(self, since: str, block_ms: int | None, count: int = 256) -> list[tuple[str, str]]:
        """Scan-history entries after `since`: [(entry id, scan key)], waiting up to block_ms."""
        raw = self.redis.xread({HISTORY_STREAM: since}, block=block_ms, count=count)
        out = []
        for _, entries in raw or ():
            for entry_id, fields in entries:
                key = fields.get(b"key")
                if key:
                    out.append((entry_id.decode(), key.decode()))
        return out

    def list_scan_keys(self) -> list[str]:
        """Every scan key in the data store (keyspace scan, read-only)."""
        keys = []
        for key in self.redis.scan_iter(match=SCAN_PREFIX + "*", count=1000, _type="ReJSON-RL"):
            keys.append(key.decode())
        return keys

    # -- one scan -----------------------------------------------------------------------------
    def load_scan(self, key: str, deleted_ok: bool = False) -> ScanDocument:
        """Read and check a scan's JSON document; raise ScanGone or ScanInvalid.

        A deleted scan (expiring within 10 s) counts as gone unless `deleted_ok`: its last
        document can still be read, e.g. for the end_reason of a scan deleted while watched.
        """
        if not key.startswith(SCAN_PREFIX):
            raise ScanInvalid(f"not a scan key: {key!r}")
        pipe = self.redis.pipeline(transaction=False)  # one round trip: expiry and document
        pipe.ttl(key)
        pipe.execute_command("JSON.GET", key)
        ttl, doc = pipe.execute(raise_on_error=False)
        for reply in (ttl, doc):  # a denied or busy read is the store's problem, not the scan's
            if isinstance(reply, Exception) and (is_unavailable(reply) or not isinstance(reply, redis.ResponseError)):
                raise reply
        if ttl == -2 or (not deleted_ok and _deleted(ttl)):
            raise ScanGone(key)
        if isinstance(doc, redis.ResponseError):
            raise ScanInvalid(f"{key}: {doc}")
        if doc is None:
            raise ScanGone(key)
        return parse_scan_document(key, doc)

    def scan_streams(self, key: str) -> dict[str, tuple[str, StreamKind]]:
        """The data streams listed in a scan document (name -> (key, kind)); raise ScanGone/ScanInvalid."""
        try:
            found = self._json.get(key, "$.data_streams")
        except redis.ResponseError as exc:
            if is_unavailable(exc):
                raise
            raise ScanInvalid(f"{key}: {exc}") from None
        if not found:
            raise ScanGone(key)
        return parse_streams(key, found[0])

    def closing_snapshot(self, key: str, streams: dict[str, str]):
        """Final stream stats and end_reason of a closed scan, in one round trip.

        Returns (stats by stream key, end_reason or None, whether the document still exists).
        """
        pipe = self.redis.pipeline(transaction=False)
        keys = list(streams)
        for stream_key in keys:
            pipe.xinfo_stream(stream_key)
        pipe.execute_command("JSON.GET", key, "$.info.end_reason")
        replies = pipe.execute(raise_on_error=False)
        stats = self._parse_stats(keys, streams, replies[:-1])
        reason = replies[-1]
        if isinstance(reason, Exception):
            if is_unavailable(reason) or not isinstance(reason, redis.ResponseError):
                raise reason
            return stats, None, True
        if reason is None:
            return stats, None, False
        return stats, (str(reason[0]) if reason and reason[0] else None), True

    def last_state(self, state_key: str) -> State | None:
        """The current state of a scan (last entry of its state stream), None if unreadable."""
        entries = self.redis.xrevrange(state_key, count=1)
        if not entries:
            return None
        try:
            return State(int(entries[0][1][b"state"]))
        except (KeyError, ValueError):
            return None

    def creation_id(self, state_key: str) -> str | None:
        """Id (server time) of the first entry of a scan's state stream."""
        entries = self.redis.xrange(state_key, count=1)
        return entries[0][0].decode() if entries else None

    def scans_alive(self, state_keys: dict[str, str]) -> dict[str, str | None]:
        """{scan key: None if alive, else why not} for {scan key: state stream key}, in one round trip.

        A scan is dead when its document is gone or deleted, or when its state stream vanished
        (evicted under memory pressure, deleted): no CLOSED can ever come then.
        """
        pipe = self.redis.pipeline(transaction=False)
        for key, state_key in state_keys.items():
            pipe.ttl(key)
            pipe.exists(state_key)
        replies = iter(pipe.execute())
        out = {}
        for key in state_keys:
            ttl, state_exists = next(replies), next(replies)
            out[key] = "vanished" if _deleted(ttl) else None if state_exists else "state stream vanished"
        return out

    # -- scan sequences ---------------------------------------------------------------------
    def reference_streams(self, key: str) -> list[str]:
        """Keys of a scan's `scan_sequence` plugin streams (a sequence's SUBSCANS); [] if none or gone."""
        try:
            found = self._json.get(key, "$.data_streams")
        except redis.ResponseError:
            return []
        return scan_sequence_streams(found[0] if found else {})

    def read_references(self, stream_key: str, since: str, count: int = 1000):
        """SUBSCANS entries after `since`, seal excluded: ([(entry id, child scan key or None, problem)], more).

        Each entry is blissdata's JSON encoding of `{"key": <child scan key>, "scan_number": n}`;
        an entry that is not such JSON gives (id, None, what is wrong with it). `more`: `count` were read.
        """
        raw = self.redis.xrange(stream_key, min="(" + since, count=count)
        out = [(entry_id.decode(), *parse_reference(fields)) for entry_id, fields in raw if entry_id != SEAL_ID]
        return out, len(raw) == count

    def unreadable_state_streams(self, keys: list[str]) -> list[str]:
        """The keys among these that exist but are not streams (a blocking XREAD on them fails)."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        return [k for k, t in zip(keys, pipe.execute()) if t not in (b"stream", b"none")]

    def read_states(self, cursors: dict[str, str], block_ms: int | None) -> dict[str, list[tuple[str, State]]]:
        """New state entries of several scans' state streams at once: {state key: [(id, state)]}."""
        if not cursors:
            return {}
        raw = self.redis.xread(cursors, block=block_ms)
        out: dict[str, list[tuple[str, State]]] = {}
        for stream_key, entries in raw or ():
            parsed = []
            for entry_id, fields in entries:
                try:
                    state = State(int(fields[b"state"]))
                except (KeyError, ValueError):
                    state = None
                parsed.append((entry_id.decode(), state))
            out[stream_key.decode()] = parsed
        return out

    def stream_stats(self, streams: dict[str, str]) -> dict[str, StreamStats | None]:
        """XINFO STREAM of many data streams in one round trip: {key: stats, or None if absent}."""
        if not streams:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        keys = list(streams)
        for key in keys:
            pipe.xinfo_stream(key)
        return self._parse_stats(keys, streams, pipe.execute(raise_on_error=False))

    def _parse_stats(self, keys, streams, replies) -> dict[str, StreamStats | None]:
        out: dict[str, StreamStats | None] = {}
        status_sealed = []
        for key, reply in zip(keys, replies):
            if isinstance(reply, Exception):
                if isinstance(reply, redis.ResponseError) and not is_unavailable(reply):
                    out[key] = None  # stream not created yet (no entry) or gone
                    continue
                raise reply
            stats = _stats_from_xinfo(reply, streams[key])
            out[key] = stats
            if stats.sealed and streams[key] in STATUS_KINDS:
                status_sealed.append(key)
        # A sealed status stream's last entry is the seal, whose `id` counts status entries, not
        # points: the points are in the status entry before it (read once, when the seal is seen).
        if status_sealed:
            pipe = self.redis.pipeline(transaction=False)
            for key in status_sealed:
                pipe.xrevrange(key, max="(" + SEAL_ID.decode(), count=1)
            for key, entries in zip(status_sealed, pipe.execute()):
                if entries:
                    _set_points(out[key], streams[key], *entries[0])
        for key, stats in out.items():
            if stats is not None and stats.error is not None:
                self._stream_error(key, streams[key], *stats.error)
        return out

    def _stream_error(self, key: str, kind, reason: str, detail: str) -> None:
        """Log and count a stream's undecodable entries once per stream (not once per poll)."""
        if key in self._streams_in_error:
            return
        self._streams_in_error[key] = True
        while len(self._streams_in_error) > 10000:
            self._streams_in_error.popitem(last=False)
        log.warning("stream_error", reason=reason, detail=detail, stream=getattr(kind, "stream", ""),
                    stream_key=key, kind=str(kind), key=getattr(kind, "scan", ""))
        if self.on_stream_error is not None:
            self.on_stream_error(reason)


def _deleted(ttl: int) -> bool:
    """blissdata's rule: a scan key gone, or expiring within 10 s (delete_scan's TTL), is deleted."""
    return ttl == -2 or 0 <= ttl <= 10


def _stats_from_xinfo(reply: dict, kind: str) -> StreamStats:
    added = int(reply.get("entries-added", reply.get("length", 0)))
    last = reply.get("last-entry")
    last_id = reply.get("last-generated-id", b"0-0")
    sealed = last_id == SEAL_ID
    entries = added - 1 if sealed else added
    stats = StreamStats(entries=max(entries, 0), points=0, sealed=sealed)
    if last:
        entry_id, fields = last
        if entry_id != SEAL_ID or kind == "numeric":
            _set_points(stats, kind, entry_id, fields)
        # sealed status kinds: read from the entry before the seal (DataStoreSource._parse_stats)
    return stats


def _set_points(stats: StreamStats, kind: str, entry_id: bytes, fields: dict) -> None:
    try:
        if entry_id == SEAL_ID:
            # the seal's `id` is the stream's length (last index + len): points, for a default stream
            stats.points = _int(fields.get(b"id"), "bad_index", "seal id")
        else:
            stats.points = _entry_points(kind, entry_id, fields)
    except StreamDecodeError as exc:
        stats.points = 0  # no new points: the counted ones stay as they were
        stats.error = (exc.reason, exc.detail)


def _entry_points(kind: str, entry_id: bytes, fields: dict) -> int:
    """Points a stream holds up to one (non-seal) entry of it, per the stream's kind."""
    if kind == "numeric":
        index, _, seq = entry_id.partition(b"-")
        if seq != b"1":  # blissdata writes every data entry as "<first point index>-1"
            raise StreamDecodeError("bad_index", f"entry id {entry_id!r} is not <point index>-1")
        length = _int(fields.get(b"len", b"1"), "bad_index", "len")
        if length < 1:
            raise StreamDecodeError("bad_index", f"len {length} < 1")
        return int(index) + length
    if kind == "lima":
        status = _json_payload(fields, "bad_status")
        if not isinstance(status, dict):
            raise StreamDecodeError("bad_status", "lima status is not a JSON object")
        # blissdata's LimaClient.update(last_index=-1, ...): absent means no frame yet
        return _int(status.get("last_index", -1), "bad_status", "lima last_index", minimum=-1) + 1
    if kind == "lima2":
        return _lima2_frames(getattr(kind, "dtype", None), fields)
    if kind == "mosca":
        status = _json_payload(fields, "bad_status")
        if not isinstance(status, dict) or "last_read_index" not in status:
            raise StreamDecodeError("bad_status", "mosca status has no last_read_index")
        return _int(status["last_read_index"], "bad_status", "mosca last_read_index", minimum=-1) + 1
    if kind == "scan_sequence":
        ref = _json_payload(fields, "bad_reference")
        if not isinstance(ref, dict) or not isinstance(ref.get("key"), str) or not ref["key"]:
            raise StreamDecodeError("bad_reference", "subscan reference has no scan key")
        return 0
    return 0  # unknown plugin: entries only


def _int(value, reason: str, what: str, minimum: int = 0) -> int:
    """An integer field or JSON value (not a bool, not a float), at least `minimum`."""
    if isinstance(value, bytes):  # a Redis field (JSON strings are not integers)
        try:
            value = int(value)
        except ValueError:
            raise StreamDecodeError(reason, f"{what} {value!r} is not an integer") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise StreamDecodeError(reason, f"{what} {value!r} is not an integer")
    if value < minimum:
        raise StreamDecodeError(reason, f"{what} {value} < {minimum}")
    return value


def _json_payload(fields: dict, reason: str):
    payload = fields.get(b"payload")
    if payload is None:
        raise StreamDecodeError(reason, "entry has no payload")
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StreamDecodeError(reason, f"payload is not JSON: {exc}") from None


def _lima2_frames(dtype: str | None, fields: dict) -> int:
    """blissdata-lima2's status: NumericStreamEncoder(np.uint32) of the frames available so far.

    The payload is the batch's raw bytes (`ndarray.tobytes()`, point shape ()), `len` values when
    the field is there; the last value is the current count.
    """
    import numpy as np  # only streams of this kind need it

    payload = fields.get(b"payload")
    if payload is None:
        raise StreamDecodeError("bad_status", "lima2 status has no payload")
    length = _int(fields.get(b"len", b"1"), "bad_status", "lima2 status len", minimum=1)
    try:
        values = np.frombuffer(payload, dtype=np.dtype(dtype or "<u4"))
    except (TypeError, ValueError) as exc:
        raise StreamDecodeError("bad_status", f"lima2 status payload does not decode as {dtype}: {exc}") from None
    if values.shape != (length,) or values.dtype.kind not in "iu":
        raise StreamDecodeError(
            "bad_status", f"lima2 status payload holds {values.size} {values.dtype} values, not {length} integers"
        )
    return _int(int(values[-1]), "bad_status", "lima2 frames")


def parse_scan_document(key: str, doc: object) -> ScanDocument:
    """Validate the scan document's shape (what blissdata's ScanModel requires); raise ScanInvalid."""
    try:
        if not isinstance(doc, dict):
            raise TypeError("document is not an object")
        identity = doc["id"]
        name = identity["name"]
        number = identity.get("number")
        number = int(number) if number is not None else None
        info = doc.get("info")
        if not isinstance(info, dict):
            raise TypeError("info is not an object")
        session = identity.get("session") or info.get("session_name") or ""
        state_key = STREAM_PREFIX + doc["state_stream"]["pk"]
        streams = parse_streams(key, doc.get("data_streams") or {})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ScanInvalid(f"{key}: {type(exc).__name__}: {exc}") from None
    if not isinstance(name, str) or not name:
        raise ScanInvalid(f"{key}: identity has no name")
    return ScanDocument(key, str(session), name, number, info, state_key, streams)


def parse_streams(key: str, models: object) -> dict[str, tuple[str, StreamKind]]:
    """Data stream models of a scan document -> {name: (redis key, kind)}; raise ScanInvalid."""
    try:
        return {
            name: (STREAM_PREFIX + model["pk"], _stream_kind(model.get("info"), model.get("encoding"), key, name))
            for name, model in dict(models).items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ScanInvalid(f"{key}: data_streams: {type(exc).__name__}: {exc}") from None


def scan_sequence_streams(models: object) -> list[str]:
    """Redis keys of the data stream models whose info names blissdata's `scan_sequence` plugin."""
    keys = []
    for model in (models.values() if isinstance(models, dict) else ()):
        info = model.get("info") if isinstance(model, dict) else None
        if isinstance(info, dict) and info.get("plugin") == "scan_sequence" and model.get("pk"):
            keys.append("esrf:stream:" + str(model["pk"]))
    return keys


def parse_reference(fields: dict) -> tuple[str | None, str]:
    """(child scan key, "") of one SUBSCANS entry, or (None, the problem)."""
    payload = fields.get(b"payload")
    if payload is None:
        return None, "no payload field"
    try:
        ref = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"payload is not JSON: {exc}"
    key = ref.get("key") if isinstance(ref, dict) else None
    if not isinstance(key, str) or not key.startswith(SCAN_PREFIX):
        return None, f"payload has no scan key: {payload[:200]!r}"
    return key, ""
