"""The read model of scrapes and the status page: what the exporter knows right now, read-only.

Fed as a sink (sessions seen, recently ended scans) and attached to the scan watcher's active scans
once the data store is found; the active-scans collector and the status page read only this.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from .model import ScanRecord
from .sinks.events import Event, ScanDiscovered, ScanEnded, ScanLost, ScansInStore

#: Ended scans kept for the status page.
RECENT_LIMIT = 50


@dataclass(slots=True)
class EndedScan:
    """One recently ended (or lost) scan."""

    session: str
    label: str
    scan_type: str
    end_reason: str
    duration: float | None
    points: int
    uris: tuple[str, ...]
    ended_at: float
    role: str = "scan"
    sequence: str | None = None  # a child's parent sequence (label)


class ExporterView:
    """Active scans, sessions seen, recently ended scans, health and settings, for readers that never write."""

    def __init__(self, health, datastore: Callable[[], str], session_filter: str = "*",
                 stall_threshold: float = 600.0, stall_factor: float = 10.0,
                 recent_limit: int = RECENT_LIMIT, clock=time.time):
        self.health = health  # .ready, .reason
        self._datastore = datastore
        self.session_filter = session_filter
        self.stall_default = stall_threshold
        self.stall_factor = stall_factor
        self.clock = clock
        self._active: Callable[[], Iterable[ScanRecord]] = tuple
        self._sessions: set[str] = set()
        self._recent: collections.deque[EndedScan] = collections.deque(maxlen=recent_limit)
        #: event type -> its handler (SinkChain calls them directly)
        self.handlers = {ScanDiscovered: self._discovered, ScanEnded: self._ended, ScanLost: self._lost,
                         ScansInStore: self._in_store}

    # -- fed by the exporter -------------------------------------------------------------------
    def attach(self, active: Callable[[], Iterable[ScanRecord]]) -> None:
        """Where the active scans are read from (the scan watcher, once the data store is found)."""
        self._active = active

    def __call__(self, event: Event) -> None:
        """Sink: remember sessions seen and scans that ended or were lost."""
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _discovered(self, event: ScanDiscovered) -> None:
        self._sessions.add(event.scan.session)

    def _ended(self, event: ScanEnded) -> None:
        scan = event.scan
        self._remember(scan, scan.end_reason or "UNKNOWN", scan.duration, scan.closed_at)

    def _lost(self, event: ScanLost) -> None:
        self._remember(event.scan, f"LOST ({event.reason})", None, None)

    def _in_store(self, event: ScansInStore) -> None:
        self._sessions.update(session for session, _ in event.kinds)

    def _remember(self, scan: ScanRecord, end_reason: str, duration: float | None, ended_at: float | None) -> None:
        self._recent.appendleft(EndedScan(
            session=scan.session, label=scan.label, scan_type=scan.scan_type, end_reason=end_reason,
            duration=duration, points=scan.points, uris=tuple(scan.uris),
            ended_at=ended_at if ended_at is not None else self.clock(), role=scan.role, sequence=scan.sequence,
        ))

    # -- read ------------------------------------------------------------------------------------
    def active_scans(self) -> list[ScanRecord]:
        """Scans being watched (not yet CLOSED)."""
        return list(self._active())

    def sessions(self) -> frozenset[str]:
        """Every session a scan was seen in since start."""
        return frozenset(self._sessions)

    def recent_scans(self) -> list[EndedScan]:
        """Recently ended or lost scans, newest first."""
        return list(self._recent)

    @property
    def recent_limit(self) -> int:
        return self._recent.maxlen

    @property
    def datastore(self) -> str:
        """The data store, password removed (Beacon's address until Beacon answered)."""
        return self._datastore()

    def stall_threshold(self, scan: ScanRecord) -> float:
        """Idle seconds after which this scan counts as stalled."""
        return scan.stall_threshold(self.stall_default, self.stall_factor)
