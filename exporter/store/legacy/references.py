"""A BLISS 1.x sequence's references to its children: the `GroupingMaster:scans` node_ref_channel."""

from __future__ import annotations

import redis

from ..base import Reference, References
from ..errors import raise_store_error
from . import unpickler


def read_references(client: redis.Redis[bytes], stream_key: str, since: str, count: int = 1000) -> References:
    """`GroupingMaster:scans` (node_ref_channel) entries after `since`: ([(entry id, child scan
    key or None, problem)], whether `count` were read). `__DATA__` is the pickled db_name."""
    try:
        raw = client.xrange(stream_key, min="(" + since, count=count)
    except redis.ResponseError as exc:
        raise_store_error(exc)
        return [], False  # not a stream: no references, as from a stream not there
    out: list[Reference] = []
    for raw_id, fields in raw:
        entry_id = raw_id.decode()
        data = fields.get(b"__DATA__")
        if data is None:
            out.append((entry_id, None, "no __DATA__ field"))
            continue
        try:
            value = unpickler.loads(data)
        except unpickler.PickleRejected as exc:
            out.append((entry_id, None, f"__DATA__: {exc}"))
            continue
        value = unpickler.plain(value)
        values = value if isinstance(value, list) else [value]  # a batch: an array of db_names
        for child in values:
            if isinstance(child, str) and child and ":" in child:
                out.append((entry_id, child, ""))
            else:
                out.append((entry_id, None, f"__DATA__ is not a scan db_name: {str(child)[:200]!r}"))
    return out, len(raw) == count
