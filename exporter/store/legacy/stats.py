"""Counters of BLISS 1.x data streams from their XINFO STREAM: entries, points, frames saved.

`XINFO STREAM` gives new_data (`entries-added` minus the phantom `0-1` entry every stream is created
with) and points (last entry id - 1 + `__NPOINTS__`; lima: `last_image_ready` + 1).
"""

from __future__ import annotations

from typing import Any

from ..base import REFERENCE_KIND
from ..streams import StreamDecodeError, StreamStats
from . import unpickler
from .layout import LEGACY_KIND, LEGACY_LIMA_KIND, text


def legacy_stats(reply: dict[str, Any], kind: str) -> StreamStats:
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
            if kind == LEGACY_LIMA_KIND:
                status = _lima_status(fields)
                stats.points = _lima_index(status, "last_image_ready") + 1
                if getattr(kind, "saves", False):
                    stats.saved = _lima_index(status, "last_image_saved", -1) + 1
            else:
                stats.points = _legacy_points(kind, entry_id, fields)
        except StreamDecodeError as exc:
            stats.error = (exc.reason, exc.detail)
    return stats


def _lima_status(fields: dict[bytes, bytes]) -> object:
    """A lima LIMAIMAGESTATUS event's `__STATUS__`, unpickled."""
    raw = fields.get(b"__STATUS__")
    if raw is None:
        raise StreamDecodeError("bad_status", "lima status event has no __STATUS__")
    try:
        return unpickler.loads(raw)
    except unpickler.PickleRejected as exc:
        raise StreamDecodeError("bad_status", f"__STATUS__: {exc}") from None


def _lima_index(status: object, name: str, absent: object = None) -> int:
    """A lima status's last frame index `name` (`last_image_ready`: frames acquired - 1, `last_image_saved`:
    saved - 1), checked: an integer >= -1; `absent` if the status has none."""
    last = unpickler.plain(status.get(name, absent)) if isinstance(status, dict) else None
    if isinstance(last, float) and last.is_integer():  # not what lima writes, but a number all the same
        last = int(last)
    if isinstance(last, bool) or not isinstance(last, int) or last < -1:
        raise StreamDecodeError("bad_status", f"lima {name} {last!r} is not an integer >= -1")
    return last


def _legacy_points(kind: str, entry_id: bytes | str, fields: dict[bytes, bytes]) -> int:
    """Points a channel or node_ref channel holds up to its last entry (0 for a kind without points)."""
    entry_id = text(entry_id)
    ms, _, seq = entry_id.partition("-")
    if kind in (LEGACY_KIND, REFERENCE_KIND):
        reason = "bad_reference" if kind == REFERENCE_KIND else "bad_index"
        if not ms.isdigit() or seq != "0" or int(ms) < 1:
            raise StreamDecodeError(reason, f"entry id {entry_id!r} is not <first point index + 1>-0")
        npoints = fields.get(b"__NPOINTS__")
        try:
            n = int(npoints if npoints is not None else b"")
        except (TypeError, ValueError):
            raise StreamDecodeError(reason, f"__NPOINTS__ {npoints!r} is not an integer") from None
        if n < 1:
            raise StreamDecodeError(reason, f"__NPOINTS__ {n} < 1")
        return int(ms) - 1 + n
    return 0
