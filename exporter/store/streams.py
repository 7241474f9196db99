"""Data streams of blissdata 2.x: their kind (by plugin) and how their XINFO and entries give points."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Self, Sequence

import redis
import structlog

from ..bounded import BoundedDict
from .batch import Reply, run_batch
from .errors import raise_store_error, raises_store_errors

log = structlog.get_logger("bliss_exporter.source")

SEAL_ID = b"18446744073709551615-18446744073709551615"

#: Why a data stream's entry gave no points (`bliss_exporter_stream_errors_total{reason}`).
STREAM_ERROR_REASONS = ("bad_index", "bad_status", "bad_reference")


class StreamKind(str):
    """How a data stream's entries give points: the kind's name, plus what decoding it needs.

    The name (the string itself) is one of:
    - ``numeric``: a default stream (no plugin, numeric or JSON encoding; also ``hdf5_fallback``):
      an entry is a batch, points = last entry's index + ``len`` (the seal's ``id`` once sealed);
    - ``lima``: a JSON status per entry, points = its ``last_index`` + 1;
    - ``lima2``: a numeric (uint32) status per entry, the number of frames available so far;
    - ``mosca``: a JSON status per entry, points = its ``last_read_index`` + 1;
    - ``scan_sequence``: a JSON reference to a child scan per entry, no points;
    - ``unknown``: a plugin the exporter does not know, no points.
    A str subclass, so that plain strings (``"numeric"``) still work where a kind is expected.
    """

    dtype: str | None
    plugin: str | None
    scan: str
    stream: str
    saves: bool

    def __new__(cls, name: str, *, dtype: str | None = None, plugin: str | None = None,
                scan: str = "", stream: str = "", saves: bool = False) -> Self:
        self = super().__new__(cls, name)
        self.dtype = dtype  # numeric encoding's dtype_str (lima2's status)
        self.plugin = plugin  # as the stream's info names it
        self.scan = scan  # for log lines: the scan key and the stream's name in it
        self.stream = stream
        self.saves = saves  # a detector that saves its frames: its statuses say how many are saved
        return self


#: Kinds whose entries are statuses: once sealed, points are in the entry before the seal, whose
#: `id` only counts the status entries.
STATUS_KINDS = ("lima", "lima2", "mosca")


@dataclass(slots=True)
class StreamStats:
    """What XINFO STREAM says of one data stream."""

    entries: int  # data entries ever added (seal excluded), immune to trimming
    points: int  # 0 when unknown: counted points never go down, so theirs stay as they were
    sealed: bool
    error: tuple[str, str] | None = None  # (reason, detail) when the last entry gave no points
    saved: int | None = None  # a saving detector's frames saved, per its last status


class StreamDecodeError(ValueError):
    """A data stream entry does not decode as its kind says it should."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


#: Plugins whose streams the exporter reads points from; others are "unknown".
_PLUGIN_KINDS = {
    "lima": "lima",
    "lima2": "lima2",
    "mosca": "mosca",
    "scan_sequence": "scan_sequence",
    "hdf5_fallback": "numeric",  # blissdata's own: a default numeric stream backed by a file
}
#: blissdata's mapping of legacy (pre-plugin) JSON stream formats, as in Scan._wrap_event_stream.
_LEGACY_FORMATS = {"lima_v1": "lima", "lima_v2": "lima2", "subscan": "scan_sequence"}
_unknown_plugins_logged: set[str] = set()


def unreadable_streams(client: redis.Redis[bytes], keys: list[str]) -> list[str]:
    """The keys among these that exist but are not streams (a blocking XREAD on them fails), one round trip."""
    if not keys:
        return []
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    return [k for k, t in zip(keys, pipe.execute()) if t not in (b"stream", b"none")]


def id_tuple(entry_id: str) -> tuple[int, int]:
    """A stream entry id "<ms>-<seq>" as numbers, to compare ids ("<ms>" alone: sequence 0)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def stream_kind(info: object, encoding: object, scan: str = "", stream: str = "") -> StreamKind:
    info = info if isinstance(info, dict) else {}
    encoding = encoding if isinstance(encoding, dict) else {}
    plugin = info.get("plugin") or None
    if plugin is None:
        fmt = info.get("format")
        if fmt == "lima_v1" or (encoding.get("type") == "json" and "lima_info" in info):
            plugin = "lima"
        elif encoding.get("type") == "json":
            plugin = _LEGACY_FORMATS.get(fmt) if fmt is not None else None
    if plugin is None:
        return StreamKind("numeric", scan=scan, stream=stream)
    plugin = str(plugin)
    name = _PLUGIN_KINDS.get(plugin)
    if name is None:
        if plugin not in _unknown_plugins_logged:
            _unknown_plugins_logged.add(plugin)
            log.warning("unknown_stream_plugin", plugin=plugin, stream=stream, key=scan,
                        detail="its entries count as new_data, without points")
        return StreamKind("unknown", plugin=plugin, scan=scan, stream=stream)
    if name == "lima2" and encoding.get("type") != "numeric":
        # blissdata maps the legacy JSON format lima_v2 to the lima2 plugin: read it as a lima status
        name = "lima"
    dtype = encoding.get("dtype_str") if name == "lima2" else None
    return StreamKind(name, dtype=str(dtype) if dtype is not None else None, plugin=plugin, scan=scan, stream=stream,
                      saves=detector_saves(name, info))


def detector_saves(kind: str, info: Mapping[str, object]) -> bool:
    """Whether a detector stream's statuses count saved frames, as the plugin's own reader decides:
    lima, a `file_path` in `lima_info` (blissdata's LimaClient); mosca, `mosca_info.saving_enabled`
    (blissdata-mosca: the server's remote saving). lima2's status has no saved count."""
    if kind == "lima":
        lima_info = info.get("lima_info")
        return isinstance(lima_info, dict) and "file_path" in lima_info
    if kind == "mosca":
        mosca_info = info.get("mosca_info")
        return isinstance(mosca_info, dict) and bool(mosca_info.get("saving_enabled"))
    return False



#: The XINFO STREAM fields the data models read (the others are skipped, not decoded).
XINFO_FIELDS = {name.encode(): name for name in
                ("length", "entries-added", "last-generated-id", "max-deleted-entry-id", "last-entry")}
#: XINFO STREAM's reply, parsed: {field name: its value as Redis sent it}, `last-entry` as (id, {field: value}).
XInfo = dict[str, Any]
#: A stream entry's fields, as Redis sent them.
EntryFields = Mapping[bytes, bytes]


def parse_xinfo_stream(response: list[Reply] | Mapping[str | bytes, Reply], **options: object) -> XInfo:
    """XINFO STREAM's reply as redis-py gives it ({str: value}, `last-entry` as (id, {field: value})),
    only the fields in XINFO_FIELDS: it runs for every data stream polled."""
    if not isinstance(response, list):  # RESP3 or already parsed
        return {k.decode() if isinstance(k, bytes) else k: v for k, v in response.items()}
    data: XInfo = {}
    for i in range(0, len(response) - 1, 2):
        name = XINFO_FIELDS.get(response[i])
        if name is not None:
            data[name] = response[i + 1]
    last = data.get("last-entry")
    if last is not None and last[0] is not None:
        fields = iter(last[1])
        data["last-entry"] = (last[0], dict(zip(fields, fields)))
    return data


def stats_from_xinfo(reply: XInfo | list[Reply], kind: str) -> StreamStats:
    """A data stream's stats from its XINFO STREAM reply (parsed, or raw: read without building a dict)."""
    if isinstance(reply, list):
        return _stats_from_raw_xinfo(reply, kind)
    length: int = reply.get("length", 0)
    added = int(reply.get("entries-added", length))
    last = reply.get("last-entry")
    last_id = reply.get("last-generated-id", b"0-0")
    return _stats(added, last_id, last, kind)


def _stats_from_raw_xinfo(reply: list[Reply], kind: str) -> StreamStats:
    # Redis 7's 20-item reply: the fields read are at fixed places (checked); else looked for by name
    if len(reply) == 20 and reply[6] == b"last-generated-id" and reply[10] == b"entries-added" \
            and reply[18] == b"last-entry":
        entry = reply[19]
        last = None
        if entry is not None and entry[0] is not None:
            fields = iter(entry[1])
            last = (entry[0], dict(zip(fields, fields)))
        return _stats(int(reply[11]), reply[7], last, kind)
    added = length = 0
    last_id, last = b"0-0", None
    has_added = False
    for i in range(0, len(reply) - 1, 2):
        name = reply[i]
        if name == b"entries-added":
            added, has_added = reply[i + 1], True
        elif name == b"last-generated-id":
            last_id = reply[i + 1]
        elif name == b"last-entry":
            entry = reply[i + 1]
            if entry is not None and entry[0] is not None:
                fields = iter(entry[1])
                last = (entry[0], dict(zip(fields, fields)))
        elif name == b"length":
            length = reply[i + 1]
    return _stats(int(added if has_added else length), last_id, last, kind)


def _stats(added: int, last_id: bytes, last: tuple[bytes, EntryFields] | None, kind: str) -> StreamStats:
    sealed = last_id == SEAL_ID
    entries = added - 1 if sealed else added
    stats = StreamStats(entries=max(entries, 0), points=0, sealed=sealed)
    if last:
        entry_id, fields = last
        if entry_id != SEAL_ID or kind == "numeric":
            set_points(stats, kind, entry_id, fields)
        # sealed status kinds: read from the entry before the seal (DataStoreSource._parse_stats)
    return stats


def set_points(stats: StreamStats, kind: str, entry_id: bytes, fields: EntryFields) -> None:
    try:
        if entry_id == SEAL_ID:
            # the seal's `id` is the stream's length (last index + len): points, for a default stream
            stats.points = _int(fields.get(b"id"), "bad_index", "seal id")
        else:
            stats.points = _entry_points(kind, entry_id, fields)
            if getattr(kind, "saves", False):
                stats.saved = _entry_saved(kind, fields)
    except StreamDecodeError as exc:
        stats.points = 0  # no new points: the counted ones stay as they were
        stats.error = (exc.reason, exc.detail)


def _entry_points(kind: str, entry_id: bytes, fields: EntryFields) -> int:
    """Points a stream holds up to one (non-seal) entry of it, per the stream's kind."""
    if kind == "numeric":
        index, _, seq = entry_id.partition(b"-")
        if seq != b"1":  # blissdata writes every data entry as "<first point index>-1"
            raise StreamDecodeError("bad_index", f"entry id {entry_id!r} is not <point index>-1")
        length = _int(fields.get(b"len", b"1"), "bad_index", "len")
        if length < 1:
            raise StreamDecodeError("bad_index", f"len {length} < 1")
        return int(index) + length
    if kind == "lima":
        status = _json_payload(fields, "bad_status")
        if not isinstance(status, dict):
            raise StreamDecodeError("bad_status", "lima status is not a JSON object")
        # blissdata's LimaClient.update(last_index=-1, ...): absent means no frame yet
        return _int(status.get("last_index", -1), "bad_status", "lima last_index", minimum=-1) + 1
    if kind == "lima2":
        return _lima2_frames(getattr(kind, "dtype", None), fields)
    if kind == "mosca":
        status = _json_payload(fields, "bad_status")
        if not isinstance(status, dict) or "last_read_index" not in status:
            raise StreamDecodeError("bad_status", "mosca status has no last_read_index")
        return _int(status["last_read_index"], "bad_status", "mosca last_read_index", minimum=-1) + 1
    if kind == "scan_sequence":
        ref = _json_payload(fields, "bad_reference")
        if not isinstance(ref, dict) or not isinstance(ref.get("key"), str) or not ref["key"]:
            raise StreamDecodeError("bad_reference", "subscan reference has no scan key")
        return 0
    return 0  # unknown plugin: entries only


def _entry_saved(kind: str, fields: EntryFields) -> int:
    """Frames a saving detector has saved, per one status: lima `last_index_saved` + 1 (absent: none
    yet, as LimaClient.update's default), mosca `last_saved_index` + 1."""
    status = _json_payload(fields, "bad_status")
    if not isinstance(status, dict):
        raise StreamDecodeError("bad_status", f"{kind} status is not a JSON object")
    name = "last_index_saved" if kind == "lima" else "last_saved_index"
    return _int(status.get(name, -1), "bad_status", f"{kind} {name}", minimum=-1) + 1


def _int(value: object, reason: str, what: str, minimum: int = 0) -> int:
    """An integer field or JSON value (not a bool, not a float), at least `minimum`."""
    if isinstance(value, bytes):  # a Redis field (JSON strings are not integers)
        try:
            value = int(value)
        except ValueError:
            raise StreamDecodeError(reason, f"{what} {value!r} is not an integer") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise StreamDecodeError(reason, f"{what} {value!r} is not an integer")
    if value < minimum:
        raise StreamDecodeError(reason, f"{what} {value} < {minimum}")
    return value


def _json_payload(fields: EntryFields, reason: str) -> object:
    payload = fields.get(b"payload")
    if payload is None:
        raise StreamDecodeError(reason, "entry has no payload")
    try:
        return json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise StreamDecodeError(reason, f"payload is not JSON: {exc}") from None


def _lima2_frames(dtype: str | None, fields: EntryFields) -> int:
    """blissdata-lima2's status: NumericStreamEncoder(np.uint32) of the frames available so far.

    The payload is the batch's raw bytes (`ndarray.tobytes()`, point shape ()), `len` values when
    the field is there; the last value is the current count.
    """
    import numpy as np  # only streams of this kind need it

    payload = fields.get(b"payload")
    if payload is None:
        raise StreamDecodeError("bad_status", "lima2 status has no payload")
    length = _int(fields.get(b"len", b"1"), "bad_status", "lima2 status len", minimum=1)
    try:
        values = np.frombuffer(payload, dtype=np.dtype(dtype or "<u4"))
    except (TypeError, ValueError) as exc:
        raise StreamDecodeError("bad_status", f"lima2 status payload does not decode as {dtype}: {exc}") from None
    if values.shape != (length,) or values.dtype.kind not in "iu":
        raise StreamDecodeError(
            "bad_status", f"lima2 status payload holds {values.size} {values.dtype} values, not {length} integers"
        )
    return _int(int(values[-1]), "bad_status", "lima2 frames")


class StreamStatsReader:
    """What every data model does with its data streams' XINFO STREAM replies (a mixin of the sources).

    Subclasses give `redis`, `on_stream_error` and `_stats_of(reply, kind)` (their entries' decoding);
    a stream whose entries stop giving points is logged and counted once, not once per poll.
    """

    redis: redis.Redis[bytes]
    on_stream_error: Callable[[str], None] | None = None
    _streams_in_error: BoundedDict[str, bool]  # streams reported, the latest 10,000

    def _stats_of(self, reply: XInfo | list[Reply], kind: StreamKind) -> StreamStats:
        """Stats from one XINFO STREAM reply: raw (run_batch) or parsed (a pipeline's parse_xinfo_stream)."""
        raise NotImplementedError

    @raises_store_errors
    def stream_stats(self, streams: Mapping[str, StreamKind]) -> dict[str, StreamStats | None]:
        """XINFO STREAM of many data streams in one round trip: {key: stats, or None if absent}."""
        if not streams:
            return {}
        keys = list(streams)
        return self._parse_stats(keys, streams, run_batch(self.redis, [("XINFO", "STREAM", key) for key in keys]))

    def _parse_stats(self, keys: Sequence[str], streams: Mapping[str, StreamKind],
                     replies: Sequence[Reply]) -> dict[str, StreamStats | None]:
        out = self._decode_stats(keys, streams, replies)
        self._report_errors(out, streams)
        return out

    def _decode_stats(self, keys: Sequence[str], streams: Mapping[str, StreamKind],
                      replies: Sequence[Reply]) -> dict[str, StreamStats | None]:
        out: dict[str, StreamStats | None] = {}
        for key, reply in zip(keys, replies):
            if isinstance(reply, Exception):
                raise_store_error(reply)
                out[key] = None  # not created yet, gone (deleted, expired, evicted), or not a stream
                continue
            out[key] = self._stats_of(reply, streams[key])
        return out

    def _report_errors(self, out: Mapping[str, StreamStats | None], streams: Mapping[str, StreamKind]) -> None:
        for key, stats in out.items():
            if stats is not None and stats.error is not None:
                self._stream_error(key, streams[key], *stats.error)

    def _stream_error(self, key: str, kind: StreamKind, reason: str, detail: str) -> None:
        """Log and count a stream's undecodable entries once per stream (not once per poll)."""
        if key in self._streams_in_error:
            return
        self._streams_in_error[key] = True
        log.warning("stream_error", reason=reason, detail=detail, stream=getattr(kind, "stream", ""),
                    stream_key=key, kind=str(kind), key=getattr(kind, "scan", ""))
        if self.on_stream_error is not None:
            self.on_stream_error(reason)
