"""A BLISS 1.x scan's two state streams: `_prepared` (PREPARED) and `_end` (CLOSED), no CREATED/STARTED/STOPPED.

Their entries have auto ids: an entry's id is the server time it was written (ms).
"""

from __future__ import annotations

from typing import Any

import redis

from ...model import State, stream_id_time
from ..base import Lifetime
from ..documents import ScanDocument
from ..errors import KeyReadError, raise_store_error
from .layout import text


def read_states(client: redis.Redis[bytes], cursors: dict[str, str], block_ms: int | None,
                ) -> dict[str, list[tuple[str, State | None]]]:
    """New entries of `_prepared` (PREPARED) and `_end` (CLOSED) streams; the cursor is the entry
    id (auto id: server ms). An entry whose `__EVENT__` does not match its stream gives None."""
    if not cursors:
        return {}
    try:
        raw: Any = client.xread(cursors, block=block_ms)
    except redis.ResponseError as exc:
        raise_store_error(exc)
        raise KeyReadError(exc) from exc  # a state stream that is not one (unreadable_state_streams tells which)
    out: dict[str, list[tuple[str, State | None]]] = {}
    for stream_key, entries in raw or ():
        stream_key = text(stream_key)
        state: State | None
        if stream_key.endswith("_prepared"):
            state, event = State.PREPARED, b"PREPARED_SCAN"
        elif stream_key.endswith("_end"):
            state, event = State.CLOSED, b"END_SCAN"
        else:
            state, event = None, None
        out[stream_key] = [(entry_id.decode(), state if fields.get(b"__EVENT__") == event else None)
                           for entry_id, fields in entries]
    return out


def read_lifetimes(client: redis.Redis[bytes], docs: list[ScanDocument], created: dict[str, str | None]) -> dict[str, Lifetime]:
    """Creation (`created`: each scan's NEW_NODE id in its container's list), PREPARED (`_prepared`'s entry)
    and CLOSED (`_end`'s entry) times, server time, one round trip; created None for a scan whose node is gone."""
    if not docs:
        return {}
    pipe = client.pipeline(transaction=False)
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
                                first_time(prepared), first_time(end))
    return out


def first_time(entries: object) -> float | None:
    """Server time of an XRANGE reply's first entry; None if there is none (or the reply is an error)."""
    return stream_id_time(entries[0][0]) if isinstance(entries, list) and entries else None
