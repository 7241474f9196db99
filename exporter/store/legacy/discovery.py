"""Finding the scans of a BLISS 1.x store in its tree of container nodes, as they are created.

The change log is the tree of container nodes' `_children_list` streams (session -> tmp -> scans, or
the data policy's proposal/collection/dataset): one XREAD over all of them finds the new `scan` /
`scan_group` nodes, whose NEW_NODE entry id is their creation time (server ms).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis

from ...bounded import BoundedDict
from ...model import stream_id_time
from ..base import NewScans
from ..errors import key_reply, raise_store_error
from ..streams import id_tuple, unreadable_streams
from .detect import find_sessions, is_pattern
from .documents import LegacyScanDocument
from .layout import CHILDREN, CONTAINER_TYPES, PROPOSAL_TYPE, SCAN_TYPES, is_v1, text

#: How often (s) sessions are looked for again by SCAN when they are not named exactly.
SESSION_PROBE_INTERVAL = 30.0
#: Entries read per stream and command (XRANGE, XREAD) while walking the tree.
PAGE = 1000

#: The node type discovery gives a listed node whose hash is a key of another type: a scan (an invalid one).
UNREADABLE_NODE = b"scan"

#: A stream entry as redis-py gives it: (id, {field: value}).
Entry = tuple[bytes, dict[bytes, bytes]]


@dataclass(frozen=True)
class LegacyPosition:
    """Where discovery is: the last id read of each followed container's `_children_list`."""

    cursors: dict[str, str] = field(default_factory=dict)  # children_list key -> last id read
    probed_at: float = 0.0  # time.monotonic() of the last look for sessions


class Discovery:
    """The container tree under the followed sessions: new scans, scans created since, each scan's
    creation id (its NEW_NODE entry) and proposal, remembered as they are met."""

    def __init__(self, client: redis.Redis[bytes], sessions: tuple[str, ...]):
        """`sessions`: glob patterns of the sessions to follow (empty: every session)."""
        self.redis = client
        self.sessions = sessions
        self._created: BoundedDict[str, str] = BoundedDict(10000)  # scan key -> NEW_NODE id
        self._gone: dict[str, str] = {}  # listed nodes without a hash, found by the last walk
        self._proposals: set[str] = set()  # db_names of proposal nodes met while following containers

    def session_names(self) -> list[str]:
        """Sessions to follow: the exact names among `sessions`, plus those found by SCAN."""
        exact = [s for s in self.sessions if not is_pattern(s)]
        found = find_sessions(self.redis, self.sessions) if len(exact) != len(self.sessions) or not exact else []
        return sorted(set(exact) | set(found))

    def anchor(self) -> LegacyPosition:
        """Now: the last id of every container's `_children_list` under the followed sessions."""
        sessions = self.session_names()
        cursors, _ = self._walk(sessions)
        return LegacyPosition(cursors, time.monotonic() if cursors else 0.0)  # none yet: look again at once

    def scan_keys(self) -> list[str]:
        """Every scan / scan_group node under the followed sessions now, oldest first."""
        _, scans = self._walk(self.session_names())
        return [key for _, key in scans]

    def created_since(self, started: float) -> tuple[list[str], bool]:
        """Scans listed in the followed containers since `started` (server time), gone ones included (a
        listed node whose hash is gone: a scan evicted or expired before it could be read), and True:
        `_children_list` streams are never trimmed, they expire whole with their container."""
        self._gone = {}
        _, scans = self._walk(self.session_names())
        listed = [(i, k) for i, k in scans] + [(i, k) for k, i in self._gone.items()]
        return [k for i, k in sorted(listed, key=lambda s: id_tuple(s[0])) if stream_id_time(i) >= started], True

    def new_scans(self, position: LegacyPosition, block_ms: int | None) -> NewScans[LegacyPosition]:
        """Scans created after `position`: one XREAD over every followed `_children_list` (new
        containers are followed from their first entry, and read at once)."""
        cursors = dict(position.cursors)
        probed_at = position.probed_at
        # sessions named exactly are followed from the anchor on; others are looked for by SCAN
        # every SESSION_PROBE_INTERVAL (every second while there is none: an empty store)
        if time.monotonic() - probed_at >= (SESSION_PROBE_INTERVAL if cursors else 1.0):
            probed_at = time.monotonic()
            sessions = {session + CHILDREN for session in self.session_names()}
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
            try:
                raw: Any = self.redis.xread(read, block=block, count=PAGE)
            except redis.ResponseError as exc:
                raise_store_error(exc)
                if not self._forget_unreadable(cursors, read):
                    raise
                continue
            block = None
            children: dict[str, str] = {}
            full = []
            for stream_key, entries in raw or ():
                stream_key = text(stream_key)
                if entries:
                    cursors[stream_key] = entries[-1][0].decode()
                if len(entries) == PAGE:
                    full.append(stream_key)
                for entry_id, fields in entries:
                    name = fields.get(b"db_name")
                    if name is not None and text(name) not in seen:
                        children.setdefault(text(name), entry_id.decode())
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
                    self._created[name] = children[name]
        keys = [k for k, _ in sorted(found.items(), key=lambda kv: id_tuple(kv[1]))]
        return NewScans(keys, LegacyPosition(cursors, probed_at), gap=False)

    def scans_created_after(self, position: LegacyPosition, keys: list[str]) -> list[str]:
        """Those of `keys` listed in their container's `_children_list` after the position's id
        for it (all of a container the position did not follow), oldest first."""
        parents: dict[str, set[str]] = {}
        for key in keys:
            parents.setdefault(key.rpartition(":")[0] + CHILDREN, set()).add(key)
        since = {p: position.cursors.get(p, "0-0") for p in parents}
        created: dict[str, str] = {}
        for parent, entries in self._xrange_all(list(parents), since).items():
            for entry_id, fields in entries:
                name = text(fields.get(b"db_name", b""))
                if name in parents[parent]:
                    created.setdefault(name, entry_id.decode())
        return [k for k, _ in sorted(created.items(), key=lambda kv: id_tuple(kv[1]))]

    def creation_ids(self, keys: list[str]) -> dict[str, str | None]:
        """The NEW_NODE id (server ms: creation time) of each scan in its container's list; None if
        not found. Legacy scans have no CREATED state entry: this is where their creation time is
        (remembered from discovery, else read from the container's list)."""
        parents: dict[str, set[str]] = {}
        for key in keys:
            if key in self._created:
                continue
            parents.setdefault(key.rpartition(":")[0] + CHILDREN, set()).add(key)
        out: dict[str, str | None] = {key: self._created.get(key) for key in keys}
        for parent, entries in self._xrange_all(list(parents)).items():
            for entry_id, fields in entries:
                name = text(fields.get(b"db_name", b""))
                if name in parents[parent] and out.get(name) is None:
                    out[name] = entry_id.decode()
        return out

    def proposal_of(self, key: str) -> str:
        """The proposal a scan node is under (the nearest proposal node among its ancestors), "" if none."""
        parts = key.split(":")
        for end in range(len(parts) - 1, 0, -1):
            if ":".join(parts[:end]) in self._proposals:
                return parts[end - 1]
        return ""

    def place(self, doc: LegacyScanDocument) -> None:
        """Give a scan's document what discovery knows of it: its creation (NEW_NODE id) and proposal."""
        doc.created_id = self._created.get(doc.key)
        doc.created_at = stream_id_time(doc.created_id) if doc.created_id else None
        doc.proposal = self.proposal_of(doc.key)

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
                    db_name = fields.get(b"db_name")
                    if db_name is not None and text(db_name) not in seen:
                        children.setdefault(text(db_name), entry_id.decode())
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
                    self._created[name] = children[name]
                elif node_type is None:
                    self._gone[name] = children[name]
        return cursors, sorted(((i, k) for k, i in scans.items()), key=lambda s: id_tuple(s[0]))

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

    def _forget_unreadable(self, cursors: dict[str, str], read: dict[str, str]) -> bool:
        """Stop following the `_children_list` keys among `read` that are keys of another type (one fails
        the whole XREAD): they list no children. Whether there were any."""
        unreadable = unreadable_streams(self.redis, list(read))
        for key in unreadable:
            cursors.pop(key, None)
            read.pop(key, None)
        return bool(unreadable)

    def _xrange_all(self, keys: list[str], since: dict[str, str] | None = None) -> dict[str, list[Entry]]:
        """Every entry of several streams after `since` (exclusive; default all), pipelined by pages."""
        out: dict[str, list[Entry]] = {k: [] for k in keys}
        cursors = {k: (since or {}).get(k, "0-0") for k in keys}
        todo = list(keys)
        while todo:
            pipe = self.redis.pipeline(transaction=False)
            for key in todo:
                pipe.xrange(key, min="(" + cursors[key], count=PAGE)
            more = []
            for key, reply in zip(todo, pipe.execute(raise_on_error=False)):
                entries = key_reply(reply) or []  # a key of another type lists no children
                out[key].extend(entries)
                if entries:
                    cursors[key] = entries[-1][0].decode()
                if len(entries) == PAGE:
                    more.append(key)
            todo = more
        return out

    def _node_types(self, db_names: list[str]) -> dict[str, bytes | None]:
        """Each node's `node_type`; None for a node whose hash is gone (or not of node API v1.x).

        A listed node whose hash is a key of another type is taken for a scan: reading its document
        then tells it is invalid, as for a blissdata 2.x history entry naming a key that is not a scan.
        """
        if not db_names:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for name in db_names:
            pipe.hmget(name, "node_type", "version")
        out: dict[str, bytes | None] = {}
        for name, reply in zip(db_names, pipe.execute(raise_on_error=False)):
            raise_store_error(reply)
            if isinstance(reply, Exception):
                out[name] = UNREADABLE_NODE
            else:
                node_type, version = reply
                out[name] = node_type if is_v1(version) else None
        return out
