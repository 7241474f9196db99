"""Scan documents of blissdata 2.x (RedisJSON): checked for the shape the exporter relies on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ScanInvalid
from .streams import StreamKind, stream_kind

SCAN_PREFIX = "esrf:scan:"
STREAM_PREFIX = "esrf:stream:"
#: blissdata 2.x's protocol version key (its presence also tells a 2.x store from a BLISS 1.x one)
PROTOCOL_KEY = "_PROTOCOL_VERSION_"


@dataclass
class ScanDocument:
    """What the exporter uses of a scan, whatever the data model: identity, scan.info, streams."""

    key: str
    session: str
    name: str
    number: int | None
    info: dict[str, object]  # scan.info, as JSON decoded
    state_keys: tuple[str, ...]  # the streams whose entries are the scan's states (blissdata 2.x: one)
    streams: dict[str, tuple[str, StreamKind]]  # name -> (redis key, kind); may be empty before PREPARED
    proposal: str = ""  # the data policy's proposal the scan belongs to; "" if the store names none
    #: the scan's creation (store time), when the document tells it (BLISS 1.x: its NEW_NODE entry);
    #: None when the scan's own states tell it (blissdata 2.x: the CREATED state entry)
    created_at: float | None = None


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
    proposal = identity.get("proposal")  # ESRF data policy only (None otherwise, as in the genuine dumps)
    return ScanDocument(key, str(session), name, number, info, (state_key,), streams,
                        proposal=proposal if isinstance(proposal, str) else "")


def parse_streams(key: str, models: Any) -> dict[str, tuple[str, StreamKind]]:
    """Data stream models of a scan document (its decoded JSON, unchecked) -> {name: (redis key, kind)};
    raise ScanInvalid."""
    try:
        return {
            name: (STREAM_PREFIX + model["pk"], stream_kind(model.get("info"), model.get("encoding"), key, name))
            for name, model in dict(models).items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ScanInvalid(f"{key}: data_streams: {type(exc).__name__}: {exc}") from None


def parse_reference(fields: Mapping[bytes, bytes]) -> tuple[str | None, str]:
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
