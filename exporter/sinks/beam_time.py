"""How beam time is used: scanning time per session and proposal, and how much each scan type loses.

- `ScanningTime` (bliss_session_scanning_seconds_total{session, proposal}): wall seconds during which
  at least one top-level scan of the session was active (CREATED to CLOSED, in the data store's
  time). A sequence's children run within their sequence and add nothing of their own; overlapping
  scans count once. It is advanced at scrape time up to what the watchers have read (every start and
  end before that point is known), so it never counts past the end of a scan. A scan adopted at start
  counts from the exporter's start only (the process before counted the rest).
- `ScanOverhead` (bliss_scan_overhead_ratio{session, scan_type}): a successful scan's duration over
  npoints × count_time, observed when it ends: 1 is the ideal, 1.5 means half again as long went to
  motor moves, readout and dead time.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client.core import CounterMetricFamily

from ..model import ROLE_SEQUENCE, ROLE_SUBSCAN, ScanRecord, valid_count
from .first_scrape import FirstScrape
from .histograms import Histograms

#: Bounds of bliss_scan_overhead_ratio: 1 is a scan that took npoints × count_time exactly.
OVERHEAD_BUCKETS = (1, 1.05, 1.25, 1.5, 2, 3, 5, 10)


class _Session:
    __slots__ = ("active", "counted_until", "proposal")

    def __init__(self):
        self.active: dict[str, ScanRecord] = {}  # its top-level scans not yet closed
        self.counted_until = float("-inf")  # store time up to which its scanning time is counted
        self.proposal: str | None = None  # of the last scan watched (its series exists)


class ScanningTime:
    """bliss_session_scanning_seconds_total: a sink (scans starting and ending) and a collector."""

    def __init__(self, read_until: Callable[[], float]):
        """`read_until()`: store time up to which the watchers know every scan's creation and end."""
        self.read_until = read_until
        self.seconds: dict[tuple[str, str], float] = {}  # (session, proposal) -> seconds
        self._sessions: dict[str, _Session] = {}
        self.first_scrape = FirstScrape()

    def add_series(self, session: str, proposal: str) -> None:
        if (session, proposal) not in self.seconds:
            self.seconds[(session, proposal)] = 0.0
            self.first_scrape.created((session, proposal))

    def started(self, scan: ScanRecord) -> None:
        """A scan is watched: a top-level one is active from its creation (or the exporter's start)."""
        name = scan.session
        session = self._sessions.get(name)
        if session is None or scan.proposal != session.proposal:
            self.add_series(name, scan.proposal)
            if session is None:
                session = self._sessions[name] = _Session()
            session.proposal = scan.proposal
        if scan.role != ROLE_SUBSCAN:  # a child known as such from its creation (group)
            session.active[scan.key] = scan

    def ended(self, scan: ScanRecord, lost: bool = False) -> None:
        """A scan closed (counted up to its end) or was lost (counted up to where it was)."""
        session = self._sessions.get(scan.session)
        if session is not None and scan.key in session.active:
            if not lost and scan.closed_at is not None:
                self._advance(scan.session, session, scan.closed_at)
            del session.active[scan.key]

    def in_store(self, proposals) -> None:
        """At start, the (session, proposal) pairs of the store's scans: their series at 0."""
        for session, proposal in proposals:
            self.add_series(session, proposal)

    @staticmethod
    def _start(scan: ScanRecord) -> float:
        """When the scan's active time starts counting: its creation, or the exporter's start if later."""
        start = scan.created_at if scan.created_at is not None else scan.watched_at
        if start is None:
            return float("inf")
        return start if scan.counted_from is None else max(start, scan.counted_from)

    def _advance(self, name: str, session: _Session, until: float) -> None:
        """Count the union of the active scans' times up to `until` (all of them last at least that long).

        Scans are watched in the order they were created: the first ones are those already running at
        `until` (usually one or two), the time goes to the proposal of the latest of them to start.
        """
        counted_until = session.counted_until
        if until <= counted_until:
            return
        begin, latest = float("inf"), None
        for scan in session.active.values():
            start = self._start(scan)
            if start >= until:
                break  # created at `until` or later (no time before it), as are those watched after it
            if start < begin:
                begin = start
            latest = scan
        if latest is None:
            return
        begin = max(begin, counted_until)
        key = (name, latest.proposal)
        if key not in self.seconds:
            self.add_series(*key)
        self.seconds[key] += until - begin
        session.counted_until = until

    def collect(self):
        until = self.read_until()
        for name, session in list(self._sessions.items()):
            self._advance(name, session, until)
            if not session.active and session.counted_until < until - 3600:
                del self._sessions[name]  # idle for an hour: nothing left to count against (series stay)
        family = CounterMetricFamily(
            "bliss_session_scanning_seconds",
            "Wall seconds with at least one top-level scan of the session active (scanning duty cycle: rate()), "
            "by the scans' proposal.", labels=["session", "proposal"])
        unscraped = self.first_scrape.unscraped
        for key, seconds in list(self.seconds.items()):
            family.add_metric(key, 0.0 if key in unscraped else seconds)
        self.first_scrape.scraped()
        yield family


class ScanOverhead:
    """bliss_scan_overhead_ratio: duration / (npoints × count_time) of scans that ended with SUCCESS."""

    def __init__(self, buckets=OVERHEAD_BUCKETS):
        self.ratios = Histograms(buckets)  # (session, scan_type)
        self.first_scrape = FirstScrape()

    def add_series(self, session: str, scan_type: str) -> None:
        if self.ratios.add_series((session, scan_type)):
            self.first_scrape.created((session, scan_type))

    def observe(self, labels: tuple[str, str], scan: ScanRecord, exemplar: dict[str, str] | None = None) -> None:
        """Observe a scan that ended, if it has an overhead: SUCCESS, not a sequence, npoints and count_time."""
        ratio = overhead_ratio(scan)
        if ratio is None:
            return
        self.add_series(*labels)
        self.ratios.observe(labels, ratio, exemplar)

    def collect(self):
        family = self.ratios.family(
            "bliss_scan_overhead_ratio",
            "Duration over npoints x count_time of scans that ended with SUCCESS (1: no time lost to motor moves, "
            "readout, dead time).", ["session", "scan_type"], zero=self.first_scrape.unscraped)
        self.first_scrape.scraped()
        yield family


def overhead_ratio(scan: ScanRecord) -> float | None:
    """duration / (npoints × count_time) of a scan that ended with SUCCESS; None where it means nothing
    (a sequence, no duration, npoints or count_time missing or not above 0, any other end)."""
    if scan.end_reason != "SUCCESS" or scan.role == ROLE_SEQUENCE:
        return None
    duration = scan.duration
    if duration is None or not valid_count(scan.npoints) or not scan.count_time or scan.count_time <= 0:
        return None
    return duration / (scan.npoints * scan.count_time)
