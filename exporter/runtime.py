"""Process-wide switches, set once in `main`: log configuration, prometheus_client defaults, signals."""

from __future__ import annotations

import gc
import signal

import gevent
import structlog
from gevent.event import Event
from prometheus_client import disable_created_metrics

from .sinks import logs


def configure_process(log_format: str, log_level: str) -> None:
    """Logs as one line per event; no *_created series (they only confuse dashboards and rate())."""
    logs.configure(log_format, log_level)
    disable_created_metrics()


IGNORED_SIGNALS = ("SIGHUP", "SIGUSR1", "SIGUSR2")  # nothing to reload or dump: a stray one must not kill


def run_until_signal(start, stop) -> None:
    """Call start(), wait for SIGINT/SIGTERM, call stop(); SIGHUP, SIGUSR1 and SIGUSR2 are logged and ignored."""
    log = structlog.get_logger("bliss_exporter")
    stopping = Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    ignored = [gevent.signal_handler(getattr(signal, name), log.info, "signal_ignored", signal=name)
               for name in IGNORED_SIGNALS]  # kept referenced while running
    start()
    freeze_startup_objects()
    stopping.wait()
    stop()
    for handler in ignored:
        handler.cancel()


#: Allocations between two young-generation passes of the cyclic garbage collector (Python: 700).
GC_YOUNG_THRESHOLD = 10000


def freeze_startup_objects() -> None:
    """Leave what start-up made (imported modules, registry, configuration: it lives as long as the
    process) out of the cyclic garbage collector's later passes, which would otherwise walk it all
    again on every full collection while scans come and go (Python's gc.freeze).

    Then let the young generation grow to GC_YOUNG_THRESHOLD objects before it is scanned: a scan's
    objects (documents, records, events, log lines) are short-lived and acyclic, freed by reference
    counting; every 700 allocations a pass walked the live ones again (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
