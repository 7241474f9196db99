"""Read-only access to a blissdata data store (Redis Stack): scan history, scan documents, streams.

Everything the watchers read goes through `DataStoreSource`; it never writes to Redis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from .scan import State

HISTORY_STREAM = "_SCAN_HISTORY_"
PROTOCOL_KEY = "_PROTOCOL_VERSION_"
SUPPORTED_PROTOCOL = 1
SEAL_ID = b"18446744073709551615-18446744073709551615"
SCAN_PREFIX = "esrf:scan:"

#: Errors meaning "the data store is not reachable right now".
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class DataStoreError(RuntimeError):
    """The data store answered, but is not a usable blissdata data store."""


class ScanGone(Exception):
    """The scan was deleted (or is about to expire) and cannot be read."""


class ScanInvalid(Exception):
    """The scan exists but its JSON document does not validate."""


def normalize_redis_url(url: str) -> str:
    """Check a Redis URL and force RESP2 (blissdata 2.4 breaks on RESP3); raise ValueError if unusable."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"invalid Redis URL {url!r}: scheme must be redis://, rediss:// or unix://")
    if parts.scheme != "unix":
        if not parts.hostname:
            raise ValueError(f"invalid Redis URL {url!r}: no host")
        try:
            parts.port
        except ValueError:
            raise ValueError(f"invalid Redis URL {url!r}: bad port") from None
    elif not parts.path:
        raise ValueError(f"invalid Redis URL {url!r}: no socket path")
    query = dict(parse_qsl(parts.query))
    query.setdefault("protocol", "2")
    return urlunsplit(parts._replace(query=urlencode(query)))


def redact_url(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts._replace(query=""))


@dataclass
class ScanDocument:
    """The parts of a scan's JSON document the exporter uses."""

    key: str
    session: str
    name: str
    number: int | None
    info: dict
    state_key: str
    streams: dict[str, tuple[str, str]]  # name -> (redis key, kind: "numeric" | "lima")


@dataclass
class StreamStats:
    """What XINFO STREAM says of one data stream."""

    entries: int  # data entries ever added (seal excluded), immune to trimming
    points: int
    sealed: bool


def _stream_kind(info: dict | None, encoding: dict | None) -> str:
    info = info if isinstance(info, dict) else {}
    encoding = encoding if isinstance(encoding, dict) else {}
    plugin = info.get("plugin") or ("lima" if info.get("format") == "lima_v1" else None)
    if plugin in ("lima", "lima2") or (encoding.get("type") == "json" and "lima_info" in info):
        return "lima"
    return "numeric"


class DataStoreSource:
    """Reads a blissdata data store; one instance is shared by the watchers (redis-py pools connections)."""

    def __init__(self, url: str, socket_timeout: float = 10.0, single_connection: bool = False):
        """`single_connection`: for one greenlet's sequential reads (saves the pool's checkout per call)."""
        self.url = normalize_redis_url(url)
        self.redis = redis.Redis.from_url(
            self.url, socket_timeout=socket_timeout, socket_connect_timeout=3.0, health_check_interval=0,
            single_connection_client=single_connection,
        )
        self._json = self.redis.json()  # also registers the JSON reply parsers used by pipelines

    # -- health -----------------------------------------------------------------------------
    def check(self) -> None:
        """Raise a CONNECTION_ERRORS error or DataStoreError unless this is a usable blissdata store."""
        version = self.redis.get(PROTOCOL_KEY)
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
        try:
            self.redis.execute_command("FT._LIST")
        except redis.ResponseError as exc:
            if "unknown command" in str(exc).lower():
                raise DataStoreError("the RediSearch module is missing: not a Redis Stack server") from None
            # e.g. an ACL user without FT._LIST: nothing the exporter needs, the check is only advisory

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
        if isinstance(ttl, Exception) or (isinstance(doc, Exception) and not isinstance(doc, redis.ResponseError)):
            raise ttl if isinstance(ttl, Exception) else doc
        if ttl == -2 or (not deleted_ok and _deleted(ttl)):
            raise ScanGone(key)
        if isinstance(doc, redis.ResponseError):
            raise ScanInvalid(f"{key}: {doc}")
        if doc is None:
            raise ScanGone(key)
        return parse_scan_document(key, doc)

    def scan_streams(self, key: str) -> dict[str, tuple[str, str]]:
        """The data streams listed in a scan document (name -> (key, kind)); raise ScanGone/ScanInvalid."""
        try:
            found = self._json.get(key, "$.data_streams")
        except redis.ResponseError as exc:
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
            if not isinstance(reason, redis.ResponseError):
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

    def scans_alive(self, keys: list[str]) -> dict[str, bool]:
        """Which of these scans still exist and are not deleted."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.ttl(key)
        return {key: not _deleted(ttl) for key, ttl in zip(keys, pipe.execute())}

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
        lima_sealed = []
        for key, reply in zip(keys, replies):
            if isinstance(reply, Exception):
                if isinstance(reply, redis.ResponseError):
                    out[key] = None  # stream not created yet (no entry) or gone
                    continue
                raise reply
            stats = _stats_from_xinfo(reply, streams[key])
            out[key] = stats
            if stats.sealed and streams[key] == "lima":
                lima_sealed.append(key)
        # A sealed lima stream's last entry is the seal: frames are in the status entry before it.
        if lima_sealed:
            pipe = self.redis.pipeline(transaction=False)
            for key in lima_sealed:
                pipe.xrevrange(key, max="(" + SEAL_ID.decode(), count=1)
            for key, entries in zip(lima_sealed, pipe.execute()):
                out[key].points = _lima_points(entries[0][1]) if entries else 0
        return out


def _deleted(ttl: int) -> bool:
    """blissdata's rule: a scan key gone, or expiring within 10 s (delete_scan's TTL), is deleted."""
    return ttl == -2 or 0 <= ttl <= 10


def _stats_from_xinfo(reply: dict, kind: str) -> StreamStats:
    added = int(reply.get("entries-added", reply.get("length", 0)))
    last = reply.get("last-entry")
    last_id = reply.get("last-generated-id", b"0-0")
    sealed = last_id == SEAL_ID
    entries = added - 1 if sealed else added
    points = 0
    if last:
        entry_id, fields = last
        if entry_id == SEAL_ID:
            points = int(fields.get(b"id", 0))
        elif kind == "lima":
            points = _lima_points(fields)
        else:
            points = int(entry_id.split(b"-")[0]) + int(fields.get(b"len", 1))
    return StreamStats(entries=max(entries, 0), points=points, sealed=sealed)


def _lima_points(fields: dict) -> int:
    try:
        status = json.loads(fields[b"payload"])
        return int(status.get("last_index", -1)) + 1
    except (KeyError, ValueError, TypeError, AttributeError):
        return 0


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
        state_key = "esrf:stream:" + doc["state_stream"]["pk"]
        streams = parse_streams(key, doc.get("data_streams") or {})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ScanInvalid(f"{key}: {type(exc).__name__}: {exc}") from None
    if not isinstance(name, str) or not name:
        raise ScanInvalid(f"{key}: identity has no name")
    return ScanDocument(key, str(session), name, number, info, state_key, streams)


def parse_streams(key: str, models: object) -> dict[str, tuple[str, str]]:
    """Data stream models of a scan document -> {name: (redis key, kind)}; raise ScanInvalid."""
    try:
        return {
            name: ("esrf:stream:" + model["pk"], _stream_kind(model.get("info"), model.get("encoding")))
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
