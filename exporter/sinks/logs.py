"""Structured logs: structlog configured once as a chain of processors; the log sink for scan events."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog

from ..model import ROLE_SEQUENCE, EventType, ScanRecord
from .events import Event, ScanDiscovered, ScanEnded, ScanLost, ScanSkipped, SequenceError

LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


def default_format(stream=None) -> str:
    """JSON unless the output is a terminal."""
    stream = stream or sys.stdout
    return "console" if getattr(stream, "isatty", lambda: False)() else "json"


def _event_first(_, __, event_dict):
    """timestamp, level and event lead each line; the event's own fields follow."""
    head = {k: event_dict.pop(k) for k in ("timestamp", "level", "event") if k in event_dict}
    head.update(event_dict)
    return head


def configure(fmt: str = "json", level: str = "info", stream=None) -> None:
    """Configure structlog (and stdlib logging of libraries) to write one line per event to stream."""
    stream = stream or sys.stdout
    numeric = getattr(logging, level.upper())
    shared = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _event_first,
    ]
    text_renderer = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=getattr(stream, "isatty", lambda: False)())
    )
    buffer = getattr(stream, "buffer", None)
    if fmt == "json" and buffer is not None:
        # the two lines per scan are on the hot path: orjson renders bytes, written without re-encoding
        renderer, factory = structlog.processors.JSONRenderer(serializer=orjson.dumps), structlog.BytesLoggerFactory(buffer)
    else:
        renderer, factory = text_renderer, structlog.PrintLoggerFactory(stream)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Libraries (blissdata, redis) log through the standard library: same format, same stream.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, text_renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))


def event_counts(scan: ScanRecord) -> dict[str, int]:
    return {event.value: scan.counts.get(event, 0) for event in EventType}


def sequence_fields(scan: ScanRecord) -> dict:
    """`role`; a child's parent (`sequence`) and `index_in_sequence`; a sequence's children seen so far."""
    fields = {"role": scan.role}
    if scan.sequence is not None:
        fields["sequence"] = scan.sequence
        fields["index_in_sequence"] = scan.index_in_sequence
        if scan.retry_nb:
            fields["retry_nb"] = scan.retry_nb
    if scan.role == ROLE_SEQUENCE:
        fields["subscans"] = len(scan.subscans)
        fields["scan_count"] = scan.scan_count
    return fields


class LogSink:
    """Writes scan_start / scan_end (and skips, losses, sequence errors) log lines."""

    def __init__(self, logger=None):
        self.log = logger or structlog.get_logger("bliss_exporter")

    def __call__(self, event: Event) -> None:
        match event:
            case ScanDiscovered(scan):
                self.log.info(
                    "scan_start", session=scan.session, scan=scan.label, uris=scan.uris, scan_type=scan.scan_type,
                    title=scan.title, adopted=scan.adopted, **sequence_fields(scan), key=scan.key,
                )
            case ScanEnded(scan):
                duration = scan.duration
                self.log.info(
                    "scan_end", session=scan.session, scan=scan.label, uris=scan.uris,
                    duration_seconds=round(duration, 3) if duration is not None else None,
                    end_reason=scan.end_reason, points=scan.points, events=event_counts(scan),
                    **sequence_fields(scan), key=scan.key,
                )
            case ScanLost(scan, reason):
                self.log.warning(
                    "scan_lost", session=scan.session, scan=scan.label, reason=reason,
                    points=scan.points, events=event_counts(scan), key=scan.key,
                )
            case ScanSkipped(key, reason, detail):
                self.log.warning("scan_skipped", key=key, reason=reason, detail=detail)
            case SequenceError(scan, reason, detail):
                self.log.warning("sequence_error", session=scan.session, scan=scan.label, reason=reason,
                                 detail=detail, key=scan.key)
