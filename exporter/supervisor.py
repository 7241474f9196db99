"""Supervision: every part of the exporter runs forever; a failure is logged, counted and retried."""

from __future__ import annotations

from typing import Callable

import gevent
import structlog

from .parts import Part
from .store import BeaconError, describe_error, is_unavailable

log = structlog.get_logger("bliss_exporter")


class Backoff:
    """Exponential retry delays, bounded."""

    def __init__(self, first: float = 0.2, cap: float = 5.0):
        self.first, self.cap, self.delay = first, cap, first

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.cap, self.delay * 2)
        return delay

    def reset(self) -> None:
        self.delay = self.first


class Supervisor:
    """Runs the exporter's parts (start-up, watchers, health check) so that none can die.

    Errors meaning the data store cannot serve us mark it down (logged once per outage); anything
    else is a `watcher_error` line (a traceback only at debug level). A part that fails twice in a
    row without a healthy run of `healthy_after` seconds makes /readyz fail with its last error.
    """

    def __init__(self, health, errors_counter, datastore: Callable[[], str],
                 wait_until_usable: Callable[[], None], healthy_after: float = 5.0):
        self.health = health
        self.errors = errors_counter  # bliss_exporter_watcher_errors_total
        self.datastore = datastore
        self.wait_until_usable = wait_until_usable
        self.healthy_after = healthy_after

    def run(self, name: Part, part: Callable, once: bool = False):
        """Run `part` forever (or until it returns, if `once`, giving its result), retrying with backoff."""
        label = str(name)  # a plain string in log lines, labels and /readyz
        backoff = Backoff()
        while True:
            healthy = None if once else gevent.spawn_later(self.healthy_after, self._healthy, label, backoff)
            try:
                result = part()
                if once:
                    self.health.part_ok(label)
                    return result
                raise RuntimeError("returned, but a watcher runs forever")
            except gevent.GreenletExit:
                raise
            except (Exception, gevent.Timeout) as exc:  # never let the supervisor die
                self.failed(label, exc)
            finally:
                if healthy is not None:
                    healthy.kill(block=False)
            gevent.sleep(backoff.next())
            if name not in (Part.HEALTH, Part.STARTUP):
                self.wait_until_usable()

    def _healthy(self, name: str, backoff: Backoff) -> None:
        self.health.part_ok(name)
        backoff.reset()

    def failed(self, name: str, exc: BaseException) -> None:
        """Log (one line), count and report a part's failure.

        A watcher stopped by a data store that cannot serve it now (unreachable, BUSY, LOADING...)
        has not failed: the data store is down (one line per outage), nothing is counted against the
        watcher, and /readyz is ready again as soon as the store is (the start-up's attempts are
        counted: they tell how long the exporter has waited for its store).
        """
        error = describe_error(exc)
        unavailable = is_unavailable(exc)
        if name == Part.STARTUP or not unavailable:
            self.errors.labels(name).inc()
            self.health.part_failed(name, error)
        expected = unavailable or (name == Part.STARTUP and isinstance(exc, (BeaconError, ValueError)))
        if name == Part.STARTUP or unavailable:
            self.health.down(self.datastore(), error)
        if expected:
            log.debug("watcher_retry", watcher=name, error=error)
        else:
            log.error("watcher_error", watcher=name, error=error)
        log.debug("watcher_traceback", watcher=name, exc_info=exc)
