"""The data store's clock: times of the store (stream ids, Redis TIME) compared with the exporter's own.

Scan creation times are stream ids, i.e. the data store's server time. Whether a scan was created
before or after the exporter started is decided in that clock: the offset between the local clock
and Redis `TIME` is measured once, at the first connection, so a skewed host clock neither drops nor
double-counts scans.
"""

from __future__ import annotations

import time
from typing import Callable


class StoreClock:
    """The exporter's start and "now" in the data store's time (seconds since the epoch)."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.started_local = clock()  # the exporter's start, in the local clock
        self.offset: float | None = None  # store time - local time, once measured

    def sync(self, server_time: Callable[[], float]) -> None:
        """Measure the offset once (the first connection): `server_time()` is Redis TIME in seconds."""
        if self.offset is not None:
            return
        before = self.clock()
        server = server_time()
        after = self.clock()
        self.offset = server - (before + after) / 2

    @property
    def started(self) -> float:
        """The exporter's start in the store's time: scans created from then on are counted in full."""
        return self.started_local + (self.offset or 0.0)

    def now(self) -> float:
        """Now, in the store's time."""
        return self.clock() + (self.offset or 0.0)
