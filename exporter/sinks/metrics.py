"""Prometheus metrics: counters updated from watcher events, active-scan gauges computed at scrape time."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .. import __version__
from ..model import ACTIVE_STATES, ROLE_SCAN, ROLE_SEQUENCE, ROLE_SUBSCAN, ROLES, EventType, clean_label_value
from ..parts import Part
from ..store import STREAM_ERROR_REASONS
from .beam_time import ScanningTime, ScanOverhead
from .detectors import DetectorFrames
from .events import Event, ScanCounted, ScanDiscovered, ScanEnded, ScanLost, ScansInStore, ScanSkipped, SequenceError
from .first_scrape import FirstScrape
from .histograms import Histograms

#: Scan durations go from a `ct` (under a second) to day-long mapping scans.
DEFAULT_DURATION_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)
OTHER = "other"
#: scan.info end_reason values BLISS writes (UNKNOWN: none written); exported at 0 from the first scan
END_REASONS = ("SUCCESS", "FAILURE", "USER_ABORT", "DELETION", "UNKNOWN")


def blissdata_version() -> str:
    try:
        return version("blissdata")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def scan_exemplar(scan) -> tuple[str, str, float | None]:
    """The exemplar of a scan's observations: its label and its key (in every scan_* log line), at its end
    (made OpenMetrics exemplar labels `scan`, `key` at scrape time: sinks/histograms.py)."""
    return scan.label, scan.key, scan.closed_at


class BoundedLabel:
    """Keeps a label's cardinality bounded: the first `limit` values pass, later ones become 'other'.

    `known` values always pass (they count towards the limit from the start).
    """

    def __init__(self, limit: int, known: tuple[str, ...] = (), length: int = 64):
        self.limit = limit
        self.length = length
        self.values: set[str] = set(known)

        self._seen: dict[str, str] = {}  # raw value -> label value, bounded like the values

    def __call__(self, value: str) -> str:
        label = self._seen.get(value)
        if label is None:
            label = self._label(value)
            if len(self._seen) < 4 * self.limit:
                self._seen[value] = label
        return label

    def _label(self, value: str) -> str:
        value = clean_label_value(value, self.length)
        if value in self.values:
            return value
        if len(self.values) < self.limit:
            self.values.add(value)
            return value
        return OTHER


class ScanCounts:
    """bliss_scan_events_total and bliss_scan_points_total, kept as plain integers and exposed at scrape time.

    Counted several times per scan: an integer addition (one writer, the watchers' greenlets) costs a
    fraction of a prometheus_client Counter child's locked increment.
    """

    def __init__(self):
        self.events: dict[str, dict[EventType, int]] = {}
        self.points: dict[str, int] = {}
        self.first_scrape = FirstScrape()

    def add_session(self, session: str) -> None:
        """Every series of a session, at 0 (shown so by a scrape before its first counts apply)."""
        if session not in self.events:
            self.events[session] = dict.fromkeys(EventType, 0)
            self.points[session] = 0
            self.first_scrape.created(session)

    def add(self, session: str, events, points: int) -> None:
        by_event = self.events.get(session)
        if by_event is None:
            self.add_session(session)
            by_event = self.events[session]
        for event_type, n in events.items():
            by_event[event_type] += n
        if points:
            self.points[session] += points

    def collect(self):
        events = CounterMetricFamily("bliss_scan_events", "Scan events seen, by type.", labels=["session", "event_type"])
        points = CounterMetricFamily("bliss_scan_points", "Points published on data streams (lima: frames).",
                                     labels=["session"])
        unscraped = self.first_scrape.unscraped
        for session, by_event in list(self.events.items()):
            new = session in unscraped  # its first scrape: 0 (sinks/first_scrape.py)
            for event_type, n in list(by_event.items()):
                events.add_metric([session, event_type.value], 0 if new else n)
            points.add_metric([session], 0 if new else self.points[session])
        self.first_scrape.scraped()
        yield events
        yield points


class ScanEnds:
    """bliss_scans_ended_total and bliss_scan_duration_seconds, kept as plain numbers and exposed at scrape time.

    As ScanCounts: one end per scan, and a locked Counter increment plus a Histogram observation
    cost several times what an addition and a bisection do. Each duration bucket's exemplar is its
    latest scan (`scan`, `key`: OpenMetrics only).
    """

    def __init__(self, buckets):
        self.ended: dict[tuple[str, str, str, str], int] = {}  # (session, scan_type, role, end_reason)
        self.durations = Histograms(buckets)  # (session, scan_type, role)
        self.first_scrape = FirstScrape()

    def add_series(self, session: str, scan_type: str, role: str, end_reasons) -> None:
        """The series of these labels at 0 (shown so by a scrape before the first scan that ends)."""
        for reason in end_reasons:
            if (session, scan_type, role, reason) not in self.ended:
                self.ended[(session, scan_type, role, reason)] = 0
                self.first_scrape.created((session, scan_type, role, reason))
        if self.durations.add_series((session, scan_type, role)):
            self.first_scrape.created((session, scan_type, role))

    def add(self, ended: tuple[str, str, str, str], duration: float | None, exemplar: tuple | None = None) -> None:
        """One scan ended (labels of bliss_scans_ended_total), with its duration if it has one."""
        if ended not in self.ended:
            self.add_series(*ended[:3], (ended[3],))
        self.ended[ended] += 1
        if duration is not None:
            self.durations.observe(ended[:3], duration, exemplar)

    def collect(self):
        ended = CounterMetricFamily("bliss_scans_ended", "Closed scans, by end_reason and role (scan, sequence, subscan).",
                                    labels=["session", "scan_type", "role", "end_reason"])
        unscraped = self.first_scrape.unscraped
        for labels, n in list(self.ended.items()):
            ended.add_metric(labels, 0 if labels in unscraped else n)
        duration = self.durations.family(
            "bliss_scan_duration_seconds", "Scan duration from STARTED (or creation) to CLOSED, observed when the scan closes.",
            ["session", "scan_type", "role"], zero=unscraped)
        self.first_scrape.scraped()
        yield duration  # in the order the exposition always had
        yield ended


class ActiveScansCollector:
    """Scrape-time view of the scans being watched: counts by state, last event, stall threshold, progress."""

    def __init__(self, view):
        self.view = view  # exporter.view.ExporterView

    def collect(self):
        by_state = GaugeMetricFamily(
            "bliss_active_scans", "Scans not yet CLOSED, by state and role (scan, sequence, subscan).",
            labels=["session", "state", "role"],
        )
        last_event = GaugeMetricFamily(
            "bliss_scan_last_event_timestamp_seconds",
            "Unix time of the last event (state change or data) of each active scan.",
            labels=["session", "scan"],
        )
        threshold = GaugeMetricFamily(
            "bliss_scan_stall_threshold_seconds",
            "Idle time after which an active scan counts as stalled (default, or more for slow count times).",
            labels=["session", "scan"],
        )
        frames = GaugeMetricFamily(
            "bliss_detector_frames",
            "Frames of each saving detector (lima, mosca) of each active scan, per its latest status: acquired, saved.",
            labels=["session", "scan", "detector", "stage"],
        )
        eta = GaugeMetricFamily(
            "bliss_scan_eta_seconds",
            "Seconds until an active scan reaches its npoints at its recent point rate (absent until that rate is known).",
            labels=["session", "scan"],
        )
        progress = GaugeMetricFamily(
            "bliss_scan_progress_ratio",
            "Points of the scan's fullest data stream over its npoints; sequences: children seen over "
            "sequence_info.scan_count.",
            labels=["session", "scan"],
        )
        counts = {(s, state.name.lower(), role): 0
                  for s in self.view.sessions() for state in ACTIVE_STATES for role in ROLES}
        per_scan: dict[tuple[str, str], tuple[float, float, float | None, float | None]] = {}
        now = self.view.clock()
        for record in self.view.active_scans():
            key = (record.session, record.state.name.lower(), record.role)
            counts[key] = counts.get(key, 0) + 1
            if record.last_event_at is None:
                continue
            key = (record.session, record.label)
            thr = self.view.stall_threshold(record)
            prog = record.progress
            if key in per_scan:  # two active scans with the same label: keep the most recent
                old = per_scan[key]
                if old[0] >= record.last_event_at:
                    continue
            per_scan[key] = (record.last_event_at, thr, prog, record.eta(now))
            for detector, (acquired, saved) in record.detectors().items():
                frames.add_metric([record.session, record.label, detector, "acquired"], acquired)
                frames.add_metric([record.session, record.label, detector, "saved"], saved)
        for (session, state, role), n in sorted(counts.items()):
            by_state.add_metric([session, state, role], n)
        for (session, scan), (last, thr, prog, remaining) in sorted(per_scan.items()):
            last_event.add_metric([session, scan], last)
            threshold.add_metric([session, scan], thr)
            if prog is not None:
                progress.add_metric([session, scan], prog)
            if remaining is not None:
                eta.add_metric([session, scan], remaining)
        yield by_state
        yield last_event
        yield threshold
        yield progress
        yield eta
        yield frames


class ExporterMetrics:
    """All exporter metrics in one registry; also the sink that keeps them up to date.

    `view` (the exporter's read model) feeds the scrape-time collector of active scans.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        view,
        duration_buckets=DEFAULT_DURATION_BUCKETS,
        max_scan_types: int = 100,
        max_end_reasons: int = 20,
        read_until: Callable[[], float] = lambda: float("-inf"),
    ):
        """`read_until()`: store time up to which the watchers know every scan's start and end."""
        self.registry = registry
        self._sessions_initialised: set[str] = set()
        self._types_seen: set[tuple[str, str, bool]] = set()
        self._ended_labels: dict[tuple[str, str, str, str], tuple] = {}  # raw labels -> bounded label values
        #: event type -> its handler (SinkChain calls them directly)
        self.handlers = {ScansInStore: self._in_store, ScanCounted: self._counted, ScanDiscovered: self._discovered,
                         ScanEnded: self._ended,
                         ScanLost: self._lost, ScanSkipped: self._skipped, SequenceError: self._sequence_error}
        self.scan_type_label = BoundedLabel(max_scan_types)
        self.end_reason_label = BoundedLabel(max_end_reasons, known=END_REASONS, length=32)
        self.counts = ScanCounts()
        registry.register(self.counts)
        self.ends = ScanEnds(duration_buckets)
        registry.register(self.ends)
        self.scanning = ScanningTime(read_until)
        registry.register(self.scanning)
        self.overhead = ScanOverhead()
        registry.register(self.overhead)
        self.detectors = DetectorFrames()
        registry.register(self.detectors)
        self.lost = Counter(
            "bliss_exporter_scans_lost",
            "Watched scans that vanished from the data store before they were closed.",
            ["session"],
            registry=registry,
        )
        self.skipped = Counter(
            "bliss_exporter_scans_skipped",
            "Scans that could not be watched, by reason (vanished, invalid).",
            ["reason"],
            registry=registry,
        )
        self.sequence_errors = Counter(
            "bliss_exporter_sequence_errors",
            "Wrong sequence links, by reason: bad_group (a child's group is no scan sequence), "
            "bad_reference (a SUBSCANS entry is no scan reference).",
            ["reason"],
            registry=registry,
        )
        self.watcher_errors = Counter(
            "bliss_exporter_watcher_errors",
            "Watcher failures (each one logged; the watcher is restarted).",
            ["watcher"],
            registry=registry,
        )
        self.stream_errors = Counter(
            "bliss_exporter_stream_errors",
            "Data streams whose entries stopped giving points, by reason (bad_index, bad_status, bad_reference).",
            ["reason"],
            registry=registry,
        )
        self.build_info = Gauge(
            "bliss_exporter_build_info", "Constant 1, labelled with the versions.",
            ["version", "blissdata_version"], registry=registry,
        )
        self.build_info.labels(__version__, blissdata_version()).set(1)
        for reason in ("vanished", "invalid"):
            self.skipped.labels(reason)
        for reason in ("bad_group", "bad_reference"):
            self.sequence_errors.labels(reason)
        for watcher in Part:
            self.watcher_errors.labels(watcher)
        for reason in STREAM_ERROR_REASONS:
            self.stream_errors.labels(reason)
        ProcessCollector(registry=registry)  # process_* : RSS, open fds, CPU (bounded-resource evidence)
        registry.register(ActiveScansCollector(view))

    def _see_session(self, session: str) -> None:
        if session not in self._sessions_initialised:
            self._sessions_initialised.add(session)
            self.counts.add_session(session)
            self.lost.labels(session)

    def _see_scan_type(self, session: str, scan_type: str, sequence: bool) -> None:
        """Series exist at 0 before the first scan ends, so increase() sees that first scan too.

        Only for the roles a scan of that kind can end with: a sequence stays a sequence (also
        inside another one); a plain scan may turn out to run in a sequence (subscan).
        """
        if (session, scan_type, sequence) not in self._types_seen:
            self._types_seen.add((session, scan_type, sequence))
            for role in ((ROLE_SEQUENCE,) if sequence else (ROLE_SCAN, ROLE_SUBSCAN)):
                self.ends.add_series(session, scan_type, role, END_REASONS)
            if not sequence:
                self.overhead.add_series(session, scan_type)

    def count_stream_error(self, reason: str) -> None:
        """A data stream's entries stopped giving points (reported once per stream by the source)."""
        self.stream_errors.labels(reason).inc()

    # -- sink --------------------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        handler = self.handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _counted(self, event: ScanCounted) -> None:
        if event.frames:
            self.detectors.add(event.scan.session, event.frames)
        if event.events or event.points:
            self.counts.add(event.scan.session, event.events, event.points)

    def _in_store(self, event: ScansInStore) -> None:
        self.scanning.in_store(event.proposals)
        for (session, scan_type), sequence in event.kinds.items():
            self._see_session(session)
            self._see_scan_type(session, self.scan_type_label(scan_type), sequence)

    def _discovered(self, event: ScanDiscovered) -> None:
        scan = event.scan
        self.scanning.started(scan)
        self._see_session(scan.session)
        self._see_scan_type(scan.session, self.scan_type_label(scan.scan_type), scan.role == ROLE_SEQUENCE)

    def _ended(self, event: ScanEnded) -> None:
        scan = event.scan
        raw = (scan.session, scan.scan_type, scan.role, scan.end_reason or "UNKNOWN")
        labels = self._ended_labels.get(raw)
        if labels is None:
            labels = (raw[0], self.scan_type_label(raw[1]), raw[2], self.end_reason_label(raw[3]))
            if len(self._ended_labels) < 10000:
                self._ended_labels[raw] = labels
        exemplar = scan_exemplar(scan)
        self.ends.add(labels, scan.duration, exemplar)
        self.overhead.observe(labels[:2], scan, exemplar)
        self.scanning.ended(scan)

    def _lost(self, event: ScanLost) -> None:
        self.scanning.ended(event.scan, lost=True)
        self.lost.labels(event.scan.session).inc()

    def _skipped(self, event: ScanSkipped) -> None:
        self.skipped.labels(event.reason).inc()

    def _sequence_error(self, event: SequenceError) -> None:
        self.sequence_errors.labels(event.reason).inc()
