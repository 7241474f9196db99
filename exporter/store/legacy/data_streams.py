"""The data streams of a BLISS 1.x scan: the `_data` streams of the channel / lima / node_ref_channel
nodes below it (device nodes are containers with their own `_children_list`; one node can be listed twice)."""

from __future__ import annotations

from typing import Any, Iterable

import redis

from ..base import ScanStreams
from ..errors import ScanGone, ScanInvalid, describe_error, key_reply, raise_store_error
from ..streams import StreamKind
from . import unpickler
from .layout import CHILDREN, DATA_NODE_KINDS, SCAN_TYPES, text


def read_scan_streams(client: redis.Redis[bytes], keys: list[str]) -> dict[str, ScanStreams | ScanGone | ScanInvalid]:
    """The data streams under several scans: their `_children_list` trees, level by level (one
    round trip per level: each new node's type and its own `_children_list` together).

    A scan whose node hash or `_children_list` is a key of another type is invalid (as a blissdata
    2.x document that is not JSON); a node under it whose keys are is read as a node whose keys are
    gone (as a 2.x data stream that is not a stream): the other nodes' streams are still known.
    """
    if not keys:
        return {}
    out: dict[str, ScanStreams | ScanGone | ScanInvalid] = {}
    # level 0: the scans themselves
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(key, "node_type", "version")
        pipe.xrange(key + CHILDREN)
    replies = pipe.execute(raise_on_error=False)
    nodes: dict[str, dict[str, bytes | None]] = {}  # scan -> {node under it: node_type}
    pending: list[tuple[str, str]] = []  # (scan, node) whose type and children are to read
    for i, key in enumerate(keys):
        node, entries = replies[2 * i], replies[2 * i + 1]
        for reply in (node, entries):
            raise_store_error(reply)
        unreadable = next((reply for reply in (node, entries) if isinstance(reply, Exception)), None)
        if unreadable is not None:
            out[key] = ScanInvalid(f"{key}: {describe_error(unreadable)}")
            continue
        node_type, _ = node
        if node_type is None:
            out[key] = ScanGone(key)
            continue
        if node_type not in SCAN_TYPES:
            out[key] = ScanInvalid(f"{key}: node_type {node_type!r} is not scan or scan_group")
            continue
        nodes[key] = {}
        pending.extend(_new_children(key, nodes[key], entries))
    saving: dict[str, object] = {}  # lima node -> its `_info` saving_mode (pickled)
    while pending:
        pipe = client.pipeline(transaction=False)
        for _, name in pending:
            pipe.hmget(name, "node_type", "version")
            pipe.xrange(name + CHILDREN)
            pipe.hget(name + "_info", "saving_mode")  # lima nodes only: set when the detector saves
        replies = [key_reply(reply) for reply in pipe.execute(raise_on_error=False)]
        level, pending = pending, []
        for i, (scan, name) in enumerate(level):
            node, entries, saving_mode = replies[3 * i], replies[3 * i + 1], replies[3 * i + 2]
            node_type = node[0] if node else None
            nodes[scan][name] = node_type
            if node_type == b"lima":
                saving[name] = saving_mode
            pending.extend(_new_children(scan, nodes[scan], entries))
    for scan, below in nodes.items():
        streams = {}
        for name, node_type in below.items():
            kind = DATA_NODE_KINDS.get(node_type) if node_type is not None else None
            if kind is not None:
                short = name[len(scan) + 1:] if name.startswith(scan + ":") else name
                streams[short] = (name + "_data", StreamKind(kind, scan=scan, stream=short,
                                                             saves=lima_saves(saving.get(name))))
        out[scan] = ScanStreams(streams, len(below))
    return {key: out[key] for key in keys}


def _new_children(scan: str, below: dict[str, bytes | None], entries: Iterable[tuple[bytes, dict[bytes, bytes]]] | None,
                  ) -> list[tuple[str, str]]:
    """(scan, node) of the nodes a `_children_list` reply lists that are not yet `below` the scan (added to it)."""
    new = []
    for _, fields in entries or ():
        name = fields.get(b"db_name")
        if name is None:
            continue
        child = text(name)
        if child not in below:
            below[child] = None
            new.append((scan, child))
    return new


def lima_saves(saving_mode: Any) -> bool:
    """BLISS 1.11.4 writes `saving_mode` (and the other saving_* fields) in a lima node's info only when
    the detector saves (`saving_mode != "NOSAVING"`, the test of blissdata's iter_image_references)."""
    if saving_mode is None:
        return False
    try:
        value = unpickler.loads(saving_mode)
    except unpickler.PickleRejected:
        return False
    return isinstance(value, str) and value != "NOSAVING"
