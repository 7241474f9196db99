"""Scan documents of BLISS 1.x: a scan node's hash and its pickled `_info`, as a ScanDocument."""

from __future__ import annotations

from typing import Any

import redis

from ..documents import ScanDocument
from ..errors import ScanGone, ScanInvalid, describe_error, raise_store_error
from . import unpickler
from .layout import SCAN_TYPES, is_v1, state_keys_of, text


class LegacyScanDocument(ScanDocument):
    """A ScanDocument with both state streams of a legacy scan (`_prepared`, `_end`); `state_key` is the first."""

    def __init__(self, key: str, session: str, name: str, number: int | None, info: dict[str, Any],
                 state_keys: tuple[str, ...], streams: dict[str, Any]):
        super().__init__(key, session, name, number, info, tuple(state_keys), streams)
        self.state_key = self.state_keys[0]
        #: the scan's NEW_NODE id in its container's list (server ms: its creation time), when the
        #: source found the scan itself (new_scans, scan_keys); None otherwise (see creation_ids)
        self.created_id: str | None = None


def read_documents(client: redis.Redis[bytes], keys: list[str]) -> dict[str, LegacyScanDocument | ScanGone | ScanInvalid]:
    """Node hash and `_info` of several scans, one round trip; each a document or why not."""
    if not keys:
        return {}
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
        pipe.hgetall(key + "_info")
    replies = pipe.execute(raise_on_error=False)
    out: dict[str, LegacyScanDocument | ScanGone | ScanInvalid] = {}
    for i, key in enumerate(keys):
        node, info = replies[2 * i], replies[2 * i + 1]
        raise_store_error(node)
        raise_store_error(info)
        try:
            out[key] = document(key, node, info)
        except (ScanGone, ScanInvalid) as exc:
            out[key] = exc
    return out


def document(key: str, node: dict[bytes, bytes] | Exception, raw_info: dict[bytes, bytes] | Exception | None) -> LegacyScanDocument:
    """A scan's document from its node hash and `_info` hash (HGETALL replies); raise ScanGone or ScanInvalid."""
    if isinstance(node, Exception):
        raise ScanInvalid(f"{key}: {describe_error(node)}")
    if not node:
        raise ScanGone(key)
    node_type = node.get(b"node_type")
    version = node.get(b"version") or b""
    if node_type not in SCAN_TYPES:
        raise ScanInvalid(f"{key}: node_type {node_type!r} is not scan or scan_group")
    if not is_v1(version):
        raise ScanInvalid(f"{key}: node version {version!r} is not v1.x")
    if isinstance(raw_info, Exception):
        raise ScanInvalid(f"{key}_info: {describe_error(raw_info)}")
    info: dict[str, Any] = {}
    for field, value in (raw_info or {}).items():
        try:
            info[text(field)] = unpickler.plain(unpickler.loads(value))
        except unpickler.PickleRejected as exc:
            raise ScanInvalid(f"{key}_info {text(field)}: pickle rejected: {exc}") from None
    if node_type == b"scan_group" or info.get("is-scan-sequence") is True:
        info["is_scan_sequence"] = True  # BLISS 1.x spells it is-scan-sequence
    node_name = text(node.get(b"name") or key.rpartition(":")[2])
    scan_nb = info.get("scan_nb")
    number, name = None, node_name
    if isinstance(scan_nb, int) and not isinstance(scan_nb, bool):
        prefix = f"{scan_nb}_"
        if node_name.startswith(prefix) and len(node_name) > len(prefix):
            number, name = scan_nb, node_name[len(prefix):]  # "12_loopscan"; a shadow "_1_ct" stays whole
    session = info.get("session_name")
    if not isinstance(session, str) or not session:
        session = key.partition(":")[0]
    return LegacyScanDocument(key, session, name, number, info, state_keys_of(key), {})
