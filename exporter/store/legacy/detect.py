"""Whether a Redis database holds a BLISS 1.x store, and its session nodes."""

from __future__ import annotations

import fnmatch
from typing import Iterable, Sequence

import redis

from ..documents import PROTOCOL_KEY
from ..errors import raise_store_error
from .layout import CHILDREN, is_v1, text


def is_pattern(session: str) -> bool:
    """Whether a `--session` value is a glob pattern rather than a session's exact name."""
    return any(c in session for c in "*?[")


def _is_legacy_node(fields: Sequence[bytes | None] | Exception | None) -> bool:
    """HMGET node_type version of a session: a `container` of node API version v1.x (not a key of another
    type: an error reply); an error of the whole store is raised."""
    raise_store_error(fields)
    if not fields or isinstance(fields, Exception) or fields[0] is None:
        return False
    return fields[0] == b"container" and is_v1(fields[1])


def find_sessions(client: redis.Redis[bytes], patterns: Iterable[str] = ()) -> list[str]:
    """Session nodes of a legacy store (as blissdata's `sessions_list()`: `X_children_list` streams
    whose X has no `:`, and whose node hash is a v1.x container), filtered by glob patterns."""
    patterns = tuple(patterns)
    candidates = []
    for key in client.scan_iter(match="*" + CHILDREN, count=1000, _type="stream"):
        name = text(key)[: -len(CHILDREN)]
        if name and ":" not in name and (not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)):
            candidates.append(name)
    if not candidates:
        return []
    pipe = client.pipeline(transaction=False)
    for name in candidates:
        pipe.hmget(name, "node_type", "version")
    return sorted(n for n, fields in zip(candidates, pipe.execute(raise_on_error=False)) if _is_legacy_node(fields))


def is_legacy(client: redis.Redis[bytes], sessions: Iterable[str] = ()) -> bool:
    """Whether this Redis database holds a legacy store: no blissdata 2.x protocol key, and a
    session node (named ones first, else found by SCAN) with `node_type` container, version v1.x."""
    if client.exists(PROTOCOL_KEY):
        return False
    sessions = tuple(sessions)
    names = [s for s in sessions if not is_pattern(s)]
    if names:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hmget(name, "node_type", "version")
        if any([_is_legacy_node(fields) for fields in pipe.execute(raise_on_error=False)]):  # each reply checked
            return True
    return bool(find_sessions(client, sessions))
