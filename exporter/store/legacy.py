"""Read-only access to a BLISS 1.x data store (blissdata 0.x node layout, "legacy"), as a `Source`.

docs/legacy-model.md is the specification: everything here only reads (redis-py, RESP2, no Lua, no
synchronisation streams, commands in READ_COMMANDS), and counts exactly from server-side facts:

- the change log is the tree of container nodes' `_children_list` streams (session -> tmp ->
  scans, or the data policy's proposal/collection/dataset): one XREAD over all of them finds the
  new `scan` / `scan_group` nodes, whose NEW_NODE entry id is their creation time (server ms);
- a scan has two state streams, `{scan}_prepared` (PREPARED) and `{scan}_end` (CLOSED, with the
  pickled `__EXCEPTION__` str that gives the end reason), and no CREATED/STARTED/STOPPED;
- its data streams are the `_data` streams of the channel / lima / node_ref_channel nodes below it
  (device nodes are containers with their own `_children_list`; one node can be listed twice);
- `XINFO STREAM` gives new_data (`entries-added` minus the phantom `0-1` entry every stream is
  created with) and points (last entry id - 1 + `__NPOINTS__`; lima: `last_image_ready` + 1).

Every pickled value goes through `legacy_pickle.loads` (never `pickle.loads`).
"""

from __future__ import annotations

import dataclasses
import datetime
import fnmatch
import time
from dataclasses import dataclass, field
from typing import Callable, Collection, Iterable, Mapping

import redis

from ..bounded import BoundedDict
from ..model import State, stream_id_time
from . import legacy_pickle
from .base import REFERENCE_KIND, Closing, Lifetime, NewScans, ScanStreams
from .documents import PROTOCOL_KEY, ScanDocument
from .errors import (
    CONNECTION_ERRORS,
    DataStoreError,
    DataStoreUnavailable,
    KeyReadError,
    ScanGone,
    ScanInvalid,
    describe_error,
    error_code,
    is_unavailable,
    raise_store_error,
)
from .streams import StreamKind, StreamStats, StreamStatsReader, id_tuple, log, parse_xinfo_stream, unreadable_streams
from .urls import normalize_redis_url

CHILDREN = "_children_list"
SELF_TEST_KEY = "bliss-exporter-self-test"

#: Node types (`node_type` field of a node hash) whose `_children_list` lists scans or containers.
CONTAINER_TYPES = frozenset({b"container", b"proposal", b"dataset_collection", b"dataset"})
#: The ESRF data policy's proposal node (BLISS 1.11.4 ESRFScanSaving: <session>:<base path...>:<proposal>:
#: <collection>:<collection>_<dataset>:<scan>); its `name` is the proposal, the last part of its db_name.
PROPOSAL_TYPE = b"proposal"
SCAN_TYPES = frozenset({b"scan", b"scan_group"})

#: Stream kinds of legacy data streams (StreamKind names; REFERENCE_KIND for node_ref_channel).
LEGACY_KIND = "legacy"  # a `channel` node's `_data`: ids = first point index + 1, `__NPOINTS__` per entry
LEGACY_LIMA_KIND = "legacy_lima"  # a `lima` node's `_data`: LIMAIMAGESTATUS events, pickled `__STATUS__`
DATA_NODE_KINDS = {b"channel": LEGACY_KIND, b"lima": LEGACY_LIMA_KIND, b"node_ref_channel": REFERENCE_KIND}

#: `_end`'s `__EXCEPTION__` (str(exception type), pickled) -> end reason; "" is a success.
END_REASONS_BY_STATE = {"DONE": "SUCCESS", "USER_ABORTED": "USER_ABORT", "KILLED": "FAILURE"}

#: How often (s) sessions are looked for again by SCAN when they are not named exactly.
SESSION_PROBE_INTERVAL = 30.0
PAGE = 1000

#: Read-only commands LegacySource uses, each with a harmless probe run by `check()`.
READ_COMMANDS = {
    "exists": ("EXISTS", PROTOCOL_KEY),
    "type": ("TYPE", SELF_TEST_KEY),
    "hget": ("HGET", SELF_TEST_KEY, "node_type"),
    "hmget": ("HMGET", SELF_TEST_KEY, "node_type", "version"),
    "hgetall": ("HGETALL", SELF_TEST_KEY),
    "xrange": ("XRANGE", SELF_TEST_KEY + CHILDREN, "+", "+"),
    "xread": ("XREAD", "COUNT", "1", "STREAMS", SELF_TEST_KEY + CHILDREN, "0-0"),
    "xinfo|stream": ("XINFO", "STREAM", SELF_TEST_KEY + CHILDREN),
    "scan": ("SCAN", "0", "MATCH", SELF_TEST_KEY + CHILDREN, "COUNT", "1", "TYPE", "stream"),
    "time": ("TIME",),
}

#: The Redis ACL rules LegacySource needs, exactly: READ_COMMANDS and SELECT (BLISS 1.x writes in
#: database 1: redis-py selects it on connecting). Not CLIENT SETINFO: Redis 7.0 (BLISS 1.x's data
#: Redis) does not know it, and ACL SETUSER would refuse the rule; redis-py ignores its refusal.
ACL_RULES = (
    "resetkeys", "~*", "resetchannels", "-@all",
    *(f"+{command}" for command in (*READ_COMMANDS, "select")),
)


class LegacyScanDocument(ScanDocument):
    """A ScanDocument with both state streams of a legacy scan.

    `state_key` is the `_prepared` stream (the only one ScanDocument has today); `state_keys` is
    (`_prepared`, `_end`). Built through the fields ScanDocument has, so that it keeps working when
    ScanDocument trades `state_key` for `state_keys`.
    """

    def __init__(self, key: str, session: str, name: str, number: int | None, info: dict,
                 state_keys: tuple[str, ...], streams: dict):
        values = {"key": key, "session": session, "name": name, "number": number, "info": info,
                  "state_key": state_keys[0], "state_keys": tuple(state_keys), "streams": streams}
        names = {f.name for f in dataclasses.fields(ScanDocument)}
        super().__init__(**{k: v for k, v in values.items() if k in names})
        self.state_key = state_keys[0]
        self.state_keys = tuple(state_keys)
        #: the scan's NEW_NODE id in its container's list (server ms: its creation time), when the
        #: source found the scan itself (new_scans, scan_keys); None otherwise (see creation_ids)
        self.created_id: str | None = None


@dataclass(frozen=True)
class LegacyPosition:
    """Where discovery is: the last id read of each followed container's `_children_list`."""

    cursors: dict[str, str] = field(default_factory=dict)  # children_list key -> last id read
    probed_at: float = 0.0  # time.monotonic() of the last look for sessions


def state_keys_of(scan_key: str) -> tuple[str, str]:
    return f"{scan_key}_prepared", f"{scan_key}_end"


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _plain(value, depth: int = 0):
    """A value of scan.info as blissdata 2.x's JSON would give it: numpy scalars and arrays as Python
    numbers and lists (`valid_count` wants an int, not a numpy.int64), datetimes as ISO strings,
    tuples and sets as lists, dict keys as strings."""
    if depth > 20:
        return str(value)
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode(errors="replace")
    tolist = getattr(value, "tolist", None)  # numpy scalars (a Python value) and arrays (lists)
    if tolist is not None:
        try:
            return _plain(tolist(), depth + 1)
        except (TypeError, ValueError):
            pass
    return str(value)  # a type, a timedelta...: its name


def end_reason_of(exception) -> str | None:
    """End reason from `_end`'s unpickled `__EXCEPTION__` (a str); None if it is not a str."""
    if not isinstance(exception, str):
        return None
    if exception == "":
        return "SUCCESS"
    if "ScanAbort" in exception:
        return "USER_ABORT"
    return "FAILURE"


def _is_legacy_node(fields) -> bool:
    """HMGET node_type version of a session: a `container` of node API version v1.x."""
    if not fields or fields[0] is None or fields[1] is None:
        return False
    return fields[0] == b"container" and fields[1].startswith(b"v1.")


def find_sessions(client: redis.Redis, patterns: Iterable[str] = ()) -> list[str]:
    """Session nodes of a legacy store (as blissdata's `sessions_list()`: `X_children_list` streams
    whose X has no `:`, and whose node hash is a v1.x container), filtered by glob patterns."""
    candidates = []
    for key in client.scan_iter(match="*" + CHILDREN, count=1000, _type="stream"):
        name = _text(key)[: -len(CHILDREN)]
        if name and ":" not in name and (not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)):
            candidates.append(name)
    if not candidates:
        return []
    pipe = client.pipeline(transaction=False)
    for name in candidates:
        pipe.hmget(name, "node_type", "version")
    return sorted(n for n, fields in zip(candidates, pipe.execute()) if _is_legacy_node(fields))


def is_legacy(client: redis.Redis, sessions: Iterable[str] = ()) -> bool:
    """Whether this Redis database holds a legacy store: no blissdata 2.x protocol key, and a
    session node (named ones first, else found by SCAN) with `node_type` container, version v1.x."""
    if client.exists(PROTOCOL_KEY):
        return False
    names = [s for s in sessions if not any(c in s for c in "*?[")]
    if names:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hmget(name, "node_type", "version")
        if any(_is_legacy_node(fields) for fields in pipe.execute()):
            return True
    return bool(find_sessions(client, sessions))


class LegacySource(StreamStatsReader):
    """Reads a BLISS 1.x data store (database 1 of the data Redis); never writes."""

    model = "legacy"

    def __init__(self, url: str, socket_timeout: float = 10.0, single_connection: bool = False,
                 on_stream_error: Callable[[str], None] | None = None, sessions: Iterable[str] = ()):
        """`sessions`: glob patterns of the sessions to follow (default: every session).

        `single_connection` and `on_stream_error` as DataStoreSource's.
        """
        self.url = normalize_redis_url(url)
        self.on_stream_error = on_stream_error
        self.sessions = tuple(sessions or ())
        self._streams_in_error = BoundedDict(10000)
        self._created = BoundedDict(10000)  # scan key -> NEW_NODE id
        self._gone: dict[str, str] = {}  # listed nodes without a hash, found by the last walk
        self._proposals: set[str] = set()  # db_names of proposal nodes met while following containers
        self.redis = redis.Redis.from_url(
            self.url, socket_timeout=socket_timeout, socket_connect_timeout=3.0, health_check_interval=0,
            single_connection_client=single_connection, protocol=2,
        )
        self.redis.set_response_callback("XINFO STREAM", parse_xinfo_stream)

    # -- health -----------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise unless this is a legacy store we can read with every command we use (one round trip
        for the probes; a denied command names itself: DataStoreUnavailable)."""
        pipe = self.redis.pipeline(transaction=False)
        for probe in READ_COMMANDS.values():
            pipe.execute_command(*probe)
        replies = pipe.execute(raise_on_error=False)
        for command, reply in zip(READ_COMMANDS, replies):
            if not isinstance(reply, Exception):
                continue
            if isinstance(reply, CONNECTION_ERRORS):
                raise reply
            text = str(reply).lower()
            if error_code(reply) == "NOPERM":
                raise DataStoreUnavailable(f"{command.upper()} failed: {describe_error(reply)}")
            if "unknown command" in text:
                raise DataStoreError(f"{command.upper()} is an unknown command: {describe_error(reply)}")
            if command == "xinfo|stream" and "no such key" in text:
                continue
            if error_code(reply) == "WRONGTYPE":
                raise DataStoreError(f"{SELF_TEST_KEY} has the wrong type: {describe_error(reply)}")
            if is_unavailable(reply):
                raise DataStoreUnavailable(f"{command.upper()} failed: {describe_error(reply)}")
            raise reply
        if replies[0]:
            raise DataStoreError(f"{PROTOCOL_KEY} exists: a blissdata 2.x data store, not a BLISS 1.x one")
        try:
            legacy = is_legacy(self.redis, self.sessions)
        except redis.ResponseError as exc:
            if error_code(exc) == "NOPERM":
                raise DataStoreUnavailable(describe_error(exc)) from None
            raise
        if not legacy:
            db = int(self.redis.connection_pool.connection_kwargs.get("db") or 0)
            hint = " (BLISS 1.x writes in database 1 of the data Redis: the URL must end with /1)" if db != 1 else ""
            raise DataStoreError(f"no BLISS 1.x session node (node_type container, version v1.x) in database {db}{hint}")

    # -- discovery --------------------------------------------------------------------------------
    def _session_names(self) -> list[str]:
        """Sessions to follow: the exact names among `sessions`, plus those found by SCAN."""
        exact = [s for s in self.sessions if not any(c in s for c in "*?[")]
        found = find_sessions(self.redis, self.sessions) if len(exact) != len(self.sessions) or not exact else []
        return sorted(set(exact) | set(found))

    def _xrange_all(self, keys: list[str], since: dict[str, str] | None = None) -> dict[str, list]:
        """Every entry of several streams after `since` (exclusive; default all), pipelined by pages."""
        out: dict[str, list] = {k: [] for k in keys}
        cursors = {k: (since or {}).get(k, "0-0") for k in keys}
        todo = list(keys)
        while todo:
            pipe = self.redis.pipeline(transaction=False)
            for key in todo:
                pipe.xrange(key, min="(" + cursors[key], count=PAGE)
            more = []
            for key, entries in zip(todo, pipe.execute()):
                out[key].extend(entries)
                if entries:
                    cursors[key] = entries[-1][0].decode()
                if len(entries) == PAGE:
                    more.append(key)
            todo = more
        return out

    def _node_types(self, db_names: list[str]) -> dict[str, bytes | None]:
        if not db_names:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for name in db_names:
            pipe.hmget(name, "node_type", "version")
        out = {}
        for name, (node_type, version) in zip(db_names, pipe.execute()):
            out[name] = node_type if version is not None and version.startswith(b"v1.") else None
        return out

    def _walk(self, containers: list[str]) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """The container tree under these container nodes, whole: ({children_list key: last id},
        [(NEW_NODE id, scan key)] in creation order)."""
        cursors: dict[str, str] = {}
        scans: dict[str, str] = {}
        level = list(dict.fromkeys(containers))
        seen = set(level)
        while level:
            keys = [c + CHILDREN for c in level]
            entries = self._xrange_all(keys)
            children: dict[str, str] = {}
            for key in keys:
                cursors[key] = entries[key][-1][0].decode() if entries[key] else "0-0"
                for entry_id, fields in entries[key]:
                    name = fields.get(b"db_name")
                    if name is not None and _text(name) not in seen:
                        children.setdefault(_text(name), entry_id.decode())
            seen.update(children)
            types = self._node_types(list(children))
            level = []
            for name, node_type in types.items():
                if node_type in CONTAINER_TYPES:
                    level.append(name)
                    if node_type == PROPOSAL_TYPE:
                        self._proposals.add(name)
                elif node_type in SCAN_TYPES:
                    scans[name] = children[name]
                    self._remember_creation(name, children[name])
                elif node_type is None:
                    self._gone[name] = children[name]
        return cursors, sorted(((i, k) for k, i in scans.items()), key=lambda s: id_tuple(s[0]))

    def created_since(self, started: float) -> tuple[list[str], bool]:
        """Scans listed in the followed containers since `started` (server time), gone ones included (a
        listed node whose hash is gone: a scan evicted or expired before it could be read), and True:
        `_children_list` streams are never trimmed, they expire whole with their container."""
        self._gone: dict[str, str] = {}
        _, scans = self._walk(self._session_names())
        listed = [(i, k) for i, k in scans] + [(i, k) for k, i in self._gone.items()]
        return [k for i, k in sorted(listed, key=lambda s: id_tuple(s[0])) if stream_id_time(i) >= started], True

    def anchor(self) -> LegacyPosition:
        """Now: the last id of every container's `_children_list` under the followed sessions."""
        sessions = self._session_names()
        cursors, _ = self._walk(sessions)
        return LegacyPosition(cursors, time.monotonic() if cursors else 0.0)  # none yet: look again at once

    def scan_keys(self) -> list[str]:
        """Every scan / scan_group node under the followed sessions now, oldest first."""
        _, scans = self._walk(self._session_names())
        return [key for _, key in scans]

    def new_scans(self, position: LegacyPosition, block_ms: int | None) -> NewScans:
        """Scans created after `position`: one XREAD over every followed `_children_list` (new
        containers are followed from their first entry, and read at once)."""
        cursors = dict(position.cursors)
        probed_at = position.probed_at
        # sessions named exactly are followed from the anchor on; others are looked for by SCAN
        # every SESSION_PROBE_INTERVAL (every second while there is none: an empty store)
        if time.monotonic() - probed_at >= (SESSION_PROBE_INTERVAL if cursors else 1.0):
            probed_at = time.monotonic()
            sessions = {session + CHILDREN for session in self._session_names()}
            for key in sessions:
                cursors.setdefault(key, "0-0")  # a session new since the anchor
            self._forget_expired(cursors, sessions)
        found: dict[str, str] = {}
        read = dict(cursors)
        if not read:  # no session yet: wait as a blocking read would have
            time.sleep(block_ms / 1000 if block_ms else 0)
        block = block_ms
        seen: set[str] = set()
        while read:
            raw = self.redis.xread(read, block=block, count=PAGE)
            block = None
            children: dict[str, str] = {}
            full = []
            for stream_key, entries in raw or ():
                stream_key = _text(stream_key)
                if entries:
                    cursors[stream_key] = entries[-1][0].decode()
                if len(entries) == PAGE:
                    full.append(stream_key)
                for entry_id, fields in entries:
                    name = fields.get(b"db_name")
                    if name is not None and _text(name) not in seen:
                        children.setdefault(_text(name), entry_id.decode())
            seen.update(children)
            read = {k: cursors[k] for k in full}
            for name, node_type in self._node_types(list(children)).items():
                if node_type == PROPOSAL_TYPE:
                    self._proposals.add(name)
                if node_type in CONTAINER_TYPES and name + CHILDREN not in cursors:
                    cursors[name + CHILDREN] = "0-0"
                    read[name + CHILDREN] = "0-0"
                elif node_type in SCAN_TYPES:
                    found.setdefault(name, children[name])
                    self._remember_creation(name, children[name])
        keys = [k for k, _ in sorted(found.items(), key=lambda kv: id_tuple(kv[1]))]
        return NewScans(keys, LegacyPosition(cursors, probed_at), gap=False)

    def _forget_expired(self, cursors: dict[str, str], keep: set[str]) -> None:
        """Stop following containers that expired, node and `_children_list` both gone (a day after
        their last scan: datasets of the data policy come and go, and XREAD's cost grows with its
        keys). Only lists already read from (a container just listed may not have its list yet);
        a container created again is listed again by its parent (`create_node`), and followed again."""
        candidates = [k for k, c in cursors.items() if c != "0-0" and k not in keep]
        if not candidates:
            return
        pipe = self.redis.pipeline(transaction=False)
        for key in candidates:
            pipe.exists(key, key[: -len(CHILDREN)])
        for key, exists in zip(candidates, pipe.execute()):
            if not exists:
                del cursors[key]

    def scans_created_after(self, position: LegacyPosition, keys: list[str]) -> list[str]:
        """Those of `keys` listed in their container's `_children_list` after the position's id
        for it (all of a container the position did not follow), oldest first."""
        parents = {}
        for key in keys:
            parents.setdefault(key.rpartition(":")[0] + CHILDREN, set()).add(key)
        since = {p: position.cursors.get(p, "0-0") for p in parents}
        created: dict[str, str] = {}
        for parent, entries in self._xrange_all(list(parents), since).items():
            for entry_id, fields in entries:
                name = _text(fields.get(b"db_name", b""))
                if name in parents[parent]:
                    created.setdefault(name, entry_id.decode())
        return [k for k, _ in sorted(created.items(), key=lambda kv: id_tuple(kv[1]))]

    def _remember_creation(self, key: str, entry_id: str) -> None:
        self._created[key] = entry_id

    def creation_ids(self, keys: list[str]) -> dict[str, str | None]:
        """The NEW_NODE id (server ms: creation time) of each scan in its container's list; None if
        not found. Legacy scans have no CREATED state entry: this is where their creation time is
        (remembered from discovery, else read from the container's list)."""
        parents = {}
        for key in keys:
            if key in self._created:
                continue
            parents.setdefault(key.rpartition(":")[0] + CHILDREN, set()).add(key)
        out: dict[str, str | None] = {key: self._created.get(key) for key in keys}
        for parent, entries in self._xrange_all(list(parents)).items():
            for entry_id, fields in entries:
                name = _text(fields.get(b"db_name", b""))
                if name in parents[parent] and out.get(name) is None:
                    out[name] = entry_id.decode()
        return out

    # -- scan documents ---------------------------------------------------------------------------
    def load_scans(self, keys: list[str], deleted_ok: bool = False) -> dict[str, ScanDocument | ScanGone | ScanInvalid]:
        """Node hash and `_info` of several scans, one round trip; each a document or why not
        (`deleted_ok`: legacy scans are never "deleted", only expired or evicted: it changes nothing)."""
        if not keys:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
            pipe.hgetall(key + "_info")
        replies = pipe.execute(raise_on_error=False)
        out: dict[str, ScanDocument | ScanGone | ScanInvalid] = {}
        for i, key in enumerate(keys):
            node, info = replies[2 * i], replies[2 * i + 1]
            raise_store_error(node)
            raise_store_error(info)
            try:
                out[key] = self._document(key, node, info)
            except (ScanGone, ScanInvalid) as exc:
                out[key] = exc
        return out

    def load_scan(self, key: str, deleted_ok: bool = False) -> ScanDocument:
        """One scan's document; raise ScanGone or ScanInvalid (`deleted_ok`: legacy scans are never
        "deleted", only expired or evicted, so it changes nothing)."""
        result = self.load_scans([key], deleted_ok)[key]
        if isinstance(result, Exception):
            raise result
        return result

    def _document(self, key: str, node, raw_info) -> LegacyScanDocument:
        if isinstance(node, Exception):
            raise ScanInvalid(f"{key}: {describe_error(node)}")
        if not node:
            raise ScanGone(key)
        node_type = node.get(b"node_type")
        version = node.get(b"version") or b""
        if node_type not in SCAN_TYPES:
            raise ScanInvalid(f"{key}: node_type {node_type!r} is not scan or scan_group")
        if not version.startswith(b"v1."):
            raise ScanInvalid(f"{key}: node version {version!r} is not v1.x")
        if isinstance(raw_info, Exception):
            raise ScanInvalid(f"{key}_info: {describe_error(raw_info)}")
        info = {}
        for name, value in (raw_info or {}).items():
            try:
                info[_text(name)] = _plain(legacy_pickle.loads(value))
            except legacy_pickle.PickleRejected as exc:
                raise ScanInvalid(f"{key}_info {_text(name)}: pickle rejected: {exc}") from None
        if node_type == b"scan_group" or info.get("is-scan-sequence") is True:
            info["is_scan_sequence"] = True  # BLISS 1.x spells it is-scan-sequence
        node_name = _text(node.get(b"name") or key.rpartition(":")[2])
        scan_nb = info.get("scan_nb")
        number, name = None, node_name
        if isinstance(scan_nb, int) and not isinstance(scan_nb, bool):
            prefix = f"{scan_nb}_"
            if node_name.startswith(prefix) and len(node_name) > len(prefix):
                number, name = scan_nb, node_name[len(prefix):]  # "12_loopscan"; a shadow "_1_ct" stays whole
        session = info.get("session_name")
        if not isinstance(session, str) or not session:
            session = key.partition(":")[0]
        doc = LegacyScanDocument(key, session, name, number, info, state_keys_of(key), {})
        doc.created_id = self._created.get(key)
        doc.created_at = stream_id_time(doc.created_id) if doc.created_id else None
        doc.proposal = self.proposal_of(key)
        return doc

    def proposal_of(self, key: str) -> str:
        """The proposal a scan node is under (the nearest proposal node among its ancestors), "" if none."""
        parts = key.split(":")
        for end in range(len(parts) - 1, 0, -1):
            if ":".join(parts[:end]) in self._proposals:
                return parts[end - 1]
        return ""

    def lifetimes(self, docs: list[ScanDocument]) -> dict[str, Lifetime]:
        """Creation (the scan's NEW_NODE id in its container's list), PREPARED (`_prepared`'s entry)
        and CLOSED (`_end`'s entry) times, server time; created None for a scan whose node is gone."""
        if not docs:
            return {}
        created = self.creation_ids([doc.key for doc in docs])
        pipe = self.redis.pipeline(transaction=False)
        for doc in docs:
            pipe.exists(doc.key)
            pipe.xrange(doc.key + "_prepared", count=1)
            pipe.xrange(doc.key + "_end", count=1)
        replies = pipe.execute(raise_on_error=False)
        for reply in replies:
            raise_store_error(reply)
        out = {}
        for i, doc in enumerate(docs):
            exists, prepared, end = replies[3 * i: 3 * i + 3]
            created_id = created.get(doc.key)
            out[doc.key] = Lifetime(stream_id_time(created_id) if exists == 1 and created_id else None,
                                    _first_time(prepared), _first_time(end))
        return out

    def server_time(self) -> float:
        """Redis TIME, in seconds."""
        seconds, microseconds = self.redis.time()
        return seconds + microseconds / 1e6

    # -- states -----------------------------------------------------------------------------------
    def read_states(self, cursors: dict[str, str], block_ms: int | None) -> dict[str, list[tuple[str, State | None]]]:
        """New entries of `_prepared` (PREPARED) and `_end` (CLOSED) streams; the cursor is the entry
        id (auto id: server ms). An entry whose `__EVENT__` does not match its stream gives None."""
        if not cursors:
            return {}
        try:
            raw = self.redis.xread(cursors, block=block_ms)
        except redis.ResponseError as exc:
            raise_store_error(exc)
            raise KeyReadError(exc) from None  # a state stream that is not one (unreadable_state_streams tells which)
        out: dict[str, list[tuple[str, State | None]]] = {}
        for stream_key, entries in raw or ():
            stream_key = _text(stream_key)
            if stream_key.endswith("_prepared"):
                state, event = State.PREPARED, b"PREPARED_SCAN"
            elif stream_key.endswith("_end"):
                state, event = State.CLOSED, b"END_SCAN"
            else:
                state, event = None, None
            out[stream_key] = [(entry_id.decode(), state if fields.get(b"__EVENT__") == event else None)
                               for entry_id, fields in entries]
        return out

    def unreadable_state_streams(self, keys: list[str]) -> list[str]:
        """The keys among these that exist but are not streams (a blocking XREAD on them fails)."""
        return unreadable_streams(self.redis, keys)

    # -- data streams -----------------------------------------------------------------------------
    def scan_streams(self, keys: list[str]) -> dict[str, ScanStreams | ScanGone | ScanInvalid]:
        """The data streams under several scans: their `_children_list` trees, level by level (one
        round trip per level: each new node's type and its own `_children_list` together)."""
        if not keys:
            return {}
        out: dict[str, ScanStreams | ScanGone | ScanInvalid] = {}
        # level 0: the scans themselves
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, "node_type", "version")
            pipe.xrange(key + CHILDREN)
        replies = pipe.execute()
        nodes: dict[str, dict[str, bytes | None]] = {}  # scan -> {node under it: node_type}
        pending: list[tuple[str, str]] = []  # (scan, node) whose type and children are to read
        for i, key in enumerate(keys):
            (node_type, _), entries = replies[2 * i], replies[2 * i + 1]
            if node_type is None:
                out[key] = ScanGone(key)
                continue
            if node_type not in SCAN_TYPES:
                out[key] = ScanInvalid(f"{key}: node_type {node_type!r} is not scan or scan_group")
                continue
            nodes[key] = {}
            pending.extend(self._new_children(key, nodes[key], entries))
        saving: dict[str, object] = {}  # lima node -> its `_info` saving_mode (pickled)
        while pending:
            pipe = self.redis.pipeline(transaction=False)
            for _, name in pending:
                pipe.hmget(name, "node_type", "version")
                pipe.xrange(name + CHILDREN)
                pipe.hget(name + "_info", "saving_mode")  # lima nodes only: set when the detector saves
            replies = pipe.execute()
            level, pending = pending, []
            for i, (scan, name) in enumerate(level):
                (node_type, _), entries, saving_mode = replies[3 * i], replies[3 * i + 1], replies[3 * i + 2]
                nodes[scan][name] = node_type
                if node_type == b"lima":
                    saving[name] = saving_mode
                pending.extend(self._new_children(scan, nodes[scan], entries))
        for scan, below in nodes.items():
            streams = {}
            for name, node_type in below.items():
                kind = DATA_NODE_KINDS.get(node_type)
                if kind is not None:
                    short = name[len(scan) + 1:] if name.startswith(scan + ":") else name
                    streams[short] = (name + "_data", StreamKind(kind, scan=scan, stream=short,
                                                                 saves=_lima_saves(saving.get(name))))
            out[scan] = ScanStreams(streams, len(below))
        return {key: out[key] for key in keys}

    @staticmethod
    def _new_children(scan: str, below: dict, entries) -> list[tuple[str, str]]:
        new = []
        for _, fields in entries or ():
            name = fields.get(b"db_name")
            if name is None:
                continue
            name = _text(name)
            if name not in below:
                below[name] = None
                new.append((scan, name))
        return new

    def _stats_of(self, reply: dict | list, kind) -> StreamStats:
        return legacy_stats(parse_xinfo_stream(reply) if isinstance(reply, list) else reply, kind)

    def closing(self, scans: dict[str, dict[str, StreamKind]], reasons_known: Collection[str] = (),
                references: Mapping[str, str] = {}, count: int = 1000) -> dict[str, Closing]:
        """Final stats, end reason and existence of closed scans, in one round trip.

        The end reason is `_end`'s `__EXCEPTION__` (written atomically with END_SCAN); the `_info`
        `state` (written ~2 ms later) is used when the exception is missing or unreadable, and a
        disagreement is logged.
        """
        if not scans:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        order = []
        for scan, streams in scans.items():
            for key in streams:
                pipe.xinfo_stream(key)
            pipe.xrange(scan + "_end", count=1)  # its one END_SCAN entry
            pipe.hget(scan + "_info", "state")
            pipe.exists(scan)
            order.append((scan, list(streams)))
        replies = pipe.execute(raise_on_error=False)
        for reply in replies:
            raise_store_error(reply)
        out = {}
        i = 0
        for scan, keys in order:
            stats = self._parse_stats(keys, scans[scan], replies[i:i + len(keys)])
            i += len(keys)
            end, state, exists = replies[i:i + 3]
            i += 3
            out[scan] = Closing(stats, self._end_reason(scan, end, state), bool(exists) and not isinstance(exists, Exception))
        return out

    def _end_reason(self, scan: str, end, state) -> str | None:
        from_exception = from_state = None
        if isinstance(end, list) and end:
            raw = end[0][1].get(b"__EXCEPTION__")
            if raw is not None:
                try:
                    from_exception = end_reason_of(legacy_pickle.loads(raw))
                except legacy_pickle.PickleRejected as exc:
                    log.warning("end_reason_unreadable", key=scan, detail=f"__EXCEPTION__: {exc}")
        if isinstance(state, bytes):
            try:
                from_state = END_REASONS_BY_STATE.get(legacy_pickle.loads(state))
            except (legacy_pickle.PickleRejected, TypeError):
                from_state = None
        if from_exception and from_state and from_exception != from_state:
            log.info("end_reason_disagrees", key=scan, exception=from_exception, state=from_state)
        return from_exception or from_state

    def scans_alive(self, scans: dict[str, tuple[str, ...]]) -> dict[str, str | None]:
        """{scan key: None if alive, else why not} for {scan key: its state stream keys}.

        Keys can be evicted one by one (`allkeys-lru`): a missing `_end` of a running scan comes
        back with the END_SCAN XADD, so it is not a death. Dead: the node and every state stream
        gone ("vanished"), or a node whose `_info` state is final while its `_end` is gone (the
        END_SCAN entry was lost: "state stream vanished").
        """
        if not scans:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for scan, state_keys in scans.items():
            pipe.exists(scan)
            pipe.hget(scan + "_info", "state")
            for key in state_keys:
                pipe.exists(key)
        replies = iter(pipe.execute())
        out = {}
        for scan, state_keys in scans.items():
            node, state = next(replies), next(replies)
            present = {key: bool(next(replies)) for key in state_keys}
            end_key = scan + "_end"
            if not node and not any(present.values()):
                out[scan] = "vanished"
            elif node and end_key in present and not present[end_key] and _final_state(state):
                out[scan] = "state stream vanished"
            else:
                out[scan] = None
        return out

    # -- sequences --------------------------------------------------------------------------------
    def read_references(self, stream_key: str, since: str, count: int = 1000):
        """`GroupingMaster:scans` (node_ref_channel) entries after `since`: ([(entry id, child scan
        key or None, problem)], whether `count` were read). `__DATA__` is the pickled db_name."""
        raw = self.redis.xrange(stream_key, min="(" + since, count=count)
        out = []
        for entry_id, fields in raw:
            entry_id = entry_id.decode()
            data = fields.get(b"__DATA__")
            if data is None:
                out.append((entry_id, None, "no __DATA__ field"))
                continue
            try:
                value = legacy_pickle.loads(data)
            except legacy_pickle.PickleRejected as exc:
                out.append((entry_id, None, f"__DATA__: {exc}"))
                continue
            value = _plain(value)
            values = value if isinstance(value, list) else [value]  # a batch: an array of db_names
            for child in values:
                if isinstance(child, str) and child and ":" in child:
                    out.append((entry_id, child, ""))
                else:
                    out.append((entry_id, None, f"__DATA__ is not a scan db_name: {str(child)[:200]!r}"))
        return out, len(raw) == count


def _lima_saves(saving_mode) -> bool:
    """BLISS 1.11.4 writes `saving_mode` (and the other saving_* fields) in a lima node's info only when
    the detector saves (`saving_mode != "NOSAVING"`, the test of blissdata's iter_image_references)."""
    if saving_mode is None:
        return False
    try:
        value = legacy_pickle.loads(saving_mode)
    except legacy_pickle.PickleRejected:
        return False
    return isinstance(value, str) and value != "NOSAVING"


def _first_time(entries) -> float | None:
    """Server time of an XRANGE reply's first entry; None if there is none (or the reply is an error)."""
    return stream_id_time(entries[0][0]) if isinstance(entries, list) and entries else None


def _final_state(state) -> bool:
    if not isinstance(state, bytes):
        return False
    try:
        return legacy_pickle.loads(state) in END_REASONS_BY_STATE
    except (legacy_pickle.PickleRejected, TypeError):
        return False


def legacy_stats(reply: dict, kind: str) -> StreamStats:
    """Counters of a legacy data stream from its XINFO STREAM.

    entries: `entries-added` minus the phantom `0-1` entry the creation script adds and deletes
    (a stream written again after its key vanished has none: `max-deleted-entry-id` 0-0).
    points: channels and node_ref channels, last entry id - 1 + its `__NPOINTS__`; lima, the last
    status's `last_image_ready` + 1. No seal in this model.
    """
    added = int(reply.get("entries-added", reply.get("length", 0)))
    max_deleted = reply.get("max-deleted-entry-id", b"0-1")
    phantom = 0 if max_deleted in (b"0-0", "0-0") else 1
    stats = StreamStats(entries=max(added - phantom, 0), points=0, sealed=False)
    last = reply.get("last-entry")
    if last:
        entry_id, fields = last
        try:
            stats.points = _legacy_points(kind, entry_id, fields)
            if kind == LEGACY_LIMA_KIND and getattr(kind, "saves", False):
                stats.saved = _legacy_saved(fields)
        except _Bad as exc:
            stats.error = (exc.reason, exc.detail)
    return stats


def _legacy_saved(fields: dict) -> int:
    """A saving lima detector's frames saved: its status's `last_image_saved` + 1."""
    status = legacy_pickle.loads(fields[b"__STATUS__"])  # read (and checked) by _legacy_points already
    last = _plain(status.get("last_image_saved", -1)) if isinstance(status, dict) else None
    if isinstance(last, float) and last.is_integer():
        last = int(last)
    if isinstance(last, bool) or not isinstance(last, int) or last < -1:
        raise _Bad("bad_status", f"lima last_image_saved {last!r} is not an integer >= -1")
    return last + 1


class _Bad(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _legacy_points(kind: str, entry_id, fields: dict) -> int:
    entry_id = _text(entry_id)
    ms, _, seq = entry_id.partition("-")
    if kind == LEGACY_LIMA_KIND:
        raw = fields.get(b"__STATUS__")
        if raw is None:
            raise _Bad("bad_status", "lima status event has no __STATUS__")
        try:
            status = legacy_pickle.loads(raw)
        except legacy_pickle.PickleRejected as exc:
            raise _Bad("bad_status", f"__STATUS__: {exc}") from None
        last = _plain(status.get("last_image_ready")) if isinstance(status, dict) else None
        if isinstance(last, float) and last.is_integer():  # not what lima writes, but a number all the same
            last = int(last)
        if isinstance(last, bool) or not isinstance(last, int) or last < -1:
            raise _Bad("bad_status", f"lima last_image_ready {last!r} is not an integer >= -1")
        return last + 1
    if kind in (LEGACY_KIND, REFERENCE_KIND):
        reason = "bad_reference" if kind == REFERENCE_KIND else "bad_index"
        if not ms.isdigit() or seq != "0" or int(ms) < 1:
            raise _Bad(reason, f"entry id {entry_id!r} is not <first point index + 1>-0")
        npoints = fields.get(b"__NPOINTS__")
        try:
            n = int(npoints)
        except (TypeError, ValueError):
            raise _Bad(reason, f"__NPOINTS__ {npoints!r} is not an integer") from None
        if n < 1:
            raise _Bad(reason, f"__NPOINTS__ {n} < 1")
        return int(ms) - 1 + n
    return 0
