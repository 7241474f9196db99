"""Structured logs: structlog configured once as a chain of processors; the log sink for scan events."""

from __future__ import annotations

import logging
import sys
import time

import gevent
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


class LineHead:
    """Leads each line with `timestamp`, `level` and `event`; the event's own fields follow.

    `timestamp` as structlog's TimeStamper(fmt="iso", utc=True) writes it (the date formatted once a
    second), `level` as its add_log_level: one processor, as every scan writes two lines.
    """

    _LEVELS = {"warn": "warning", "exception": "error"}

    def __init__(self):
        self._second = -1
        self._prefix = ""

    def __call__(self, _, method_name, event_dict):
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._prefix = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        head = {"timestamp": f"{self._prefix}.{int((now - second) * 1_000_000):06d}Z",
                "level": self._LEVELS.get(method_name, method_name), "event": event_dict.pop("event", None)}
        head.update(event_dict)
        return head


class CoalescingBytesLogger:
    """Writes rendered lines to a binary file; lines a greenlet writes before it next waits go out in one write.

    structlog's BytesLogger flushes (one system call) per line; a watcher cycle writes two lines per
    scan that ended or started in it. Here a greenlet's lines are flushed by the gevent hub as soon as
    that greenlet yields (waits on Redis, sleeps), so they are late by no more than the rest of its
    cycle's work (and before any later scrape shows what they report: the HTTP side yields to the hub
    first). Outside a gevent greenlet (start-up, tests) each line is flushed at once.
    """

    def __init__(self, file):
        self._file = file
        self._flush_pending = False

    def msg(self, message: bytes) -> None:
        self._file.write(message + b"\n")
        if not isinstance(gevent.getcurrent(), gevent.Greenlet):
            self._file.flush()
        elif not self._flush_pending:
            self._flush_pending = True
            gevent.get_hub().loop.run_callback(self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        try:
            self._file.flush()
        except (OSError, ValueError):  # output closed (broken pipe): nowhere left to write lines
            pass

    log = debug = info = warn = warning = fatal = failure = err = error = critical = exception = msg


def configure(fmt: str = "json", level: str = "info", stream=None) -> None:
    """Configure structlog (and stdlib logging of libraries) to write one line per event to stream."""
    stream = stream or sys.stdout
    numeric = getattr(logging, level.upper())
    shared = [LineHead()]
    text_renderer = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=getattr(stream, "isatty", lambda: False)())
    )
    buffer = getattr(stream, "buffer", None)
    if fmt == "json" and buffer is not None:
        # the two lines per scan are on the hot path: orjson renders bytes, written without re-encoding
        logger = CoalescingBytesLogger(buffer)
        renderer, factory = structlog.processors.JSONRenderer(serializer=orjson.dumps), lambda *_: logger
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


_EVENT_TYPES = tuple((event, event.value) for event in EventType)


def event_counts(scan: ScanRecord) -> dict[str, int]:
    counts = scan.counts
    return {name: counts.get(event, 0) for event, name in _EVENT_TYPES}


def detector_fields(scan: ScanRecord) -> dict:
    """`detectors`: frames acquired and saved of each saving detector (a lag shows), when it has any."""
    detectors = scan.detectors()
    if not detectors:
        return {}
    return {"detectors": {name: {"acquired": acquired, "saved": saved} for name, (acquired, saved) in detectors.items()}}


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
        self._logger = logger
        self._log = None  # bound on first use: after main() configured structlog
        #: event type -> its handler (SinkChain calls them directly)
        self.handlers = {ScanDiscovered: self._discovered, ScanEnded: self._ended, ScanLost: self._lost,
                         ScanSkipped: self._skipped, SequenceError: self._sequence_error}

    @property
    def log(self):
        if self._log is None:
            self._log = (self._logger or structlog.get_logger("bliss_exporter")).bind()
        return self._log

    def __call__(self, event: Event) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _discovered(self, event: ScanDiscovered) -> None:
        scan = event.scan
        self.log.info(
            "scan_start", session=scan.session, scan=scan.label, uris=scan.uris, scan_type=scan.scan_type,
            title=scan.title, adopted=scan.adopted, **sequence_fields(scan), key=scan.key,
        )

    def _ended(self, event: ScanEnded) -> None:
        scan = event.scan
        duration = scan.duration
        self.log.info(
            "scan_end", session=scan.session, scan=scan.label, uris=scan.uris,
            duration_seconds=round(duration, 3) if duration is not None else None,
            end_reason=scan.end_reason, points=scan.points, events=event_counts(scan),
            **sequence_fields(scan), **detector_fields(scan), key=scan.key,
        )

    def _lost(self, event: ScanLost) -> None:
        scan = event.scan
        self.log.warning(
            "scan_lost", session=scan.session, scan=scan.label, reason=event.reason,
            points=scan.points, events=event_counts(scan), key=scan.key,
        )

    def _skipped(self, event: ScanSkipped) -> None:
        self.log.warning("scan_skipped", key=event.key, reason=event.reason, detail=event.detail)

    def _sequence_error(self, event: SequenceError) -> None:
        scan = event.scan
        self.log.warning("sequence_error", session=scan.session, scan=scan.label, reason=event.reason,
                         detail=event.detail, key=scan.key)
