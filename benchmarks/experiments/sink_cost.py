"""Micro-experiment: CPU per short scan of the exporter's event sinks (logs, metrics), and of cheaper variants.

    python benchmarks/experiments/sink_cost.py [--scans 20000] [--rounds 5]

No Redis: the exporter's own sink objects (exporter.logs.LogSink, exporter.metrics.ExporterMetrics,
exporter.status.RecentScans, exporter.events.Fanout) get the calls one short scan makes
(scan_discovered, 5 scan_counted, scan_ended, as ScanWatcher makes them for a 3-channel scan), under
gevent's monkey patching as in the exporter. Log lines go to a real file, as the exporter's stdout
in bench.py. exporter/ is not modified: the log variants reconfigure structlog the way
exporter.logs.configure would with the change applied (same processors otherwise).

Variants, each timed in CPU seconds (time.process_time) over --scans scans, --rounds rounds
interleaved, median reported (and net of a 'no sink' variant that only builds the records):

  logs: as configured      exporter.logs.configure("json") (stdlib json, PrintLoggerFactory, logger not cached)
  logs: orjson + bytes     JSONRenderer(serializer=orjson.dumps) + BytesLoggerFactory
  logs: cached logger      cache_logger_on_first_use=True (no proxy bind/processor lookup per line)
  logs: orjson+bytes+cached
  logs: orjson direct      lower bound: one orjson.dumps of the same fields + timestamp, written
  metrics: as is           ExporterMetrics sink calls (labels() lookup per call)
  metrics: cached children the same increments on label children looked up once per session
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import orjson  # noqa: E402
import structlog  # noqa: E402
from exporter.logs import LogSink, _event_first  # noqa: E402
from exporter.metrics import ExporterMetrics  # noqa: E402
from exporter.scan import EventType, ScanRecord, State, StreamCursor  # noqa: E402
from exporter.status import RecentScans  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from exporter import logs  # noqa: E402


def make_record(i: int) -> ScanRecord:
    r = ScanRecord(key=f"esrf:scan:01M8S2RPFVK7YT998S8DEDAC{i:04d}", session="bench_short", name="loopscan",
                   number=i, scan_type="loopscan", uris=[], npoints=10, count_time=0.0, title="loopscan 10 0",
                   state_key=f"esrf:stream:01M8S2RPFVK7YT998S8DEDAS{i:04d}")
    for c in range(3):
        r.streams[f"esrf:stream:{i}:{c}"] = StreamCursor(key=f"esrf:stream:{i}:{c}", name=f"bench:ctr{c}",
                                                         kind="numeric")
    return r


def one_scan(sink, i: int) -> None:
    """The sink calls of one 3-channel, 10-point short scan, in ScanWatcher's order."""
    r = make_record(i)
    sink.scan_discovered(r)
    sink.scan_counted(r, Counter({EventType.NEW_NODE: 1}), 0)
    sink.scan_counted(r, Counter({EventType.NEW_NODE: 3}), 0)  # _learn_streams at PREPARED
    sink.scan_counted(r, Counter({EventType.PREPARED_SCAN: 1, EventType.START_SCAN: 1,
                                  EventType.STOP_SCAN: 1}), 0)
    for c in r.streams.values():
        c.entries, c.points = 10, 10
    sink.scan_counted(r, Counter({EventType.NEW_DATA: 30}), 30)
    r.state, r.created_at, r.started_at, r.closed_at = State.CLOSED, 1.0, 1.01, 1.2
    r.end_reason = "SUCCESS"
    sink.scan_counted(r, Counter({EventType.END_SCAN: 1}), 0)
    sink.scan_ended(r)


def configure_logs(stream, variant: str) -> None:
    if variant == "as configured":
        logs.configure("json", "info", stream)
        return
    orj = "orjson" in variant
    cached = "cached" in variant
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _event_first,
    ]
    renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps) if orj else \
        structlog.processors.JSONRenderer(sort_keys=False)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(20),
        logger_factory=structlog.BytesLoggerFactory(stream.buffer) if orj else structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=cached,
    )


class DirectLogSink(LogSink):
    """Lower bound for a JSON log line: the same fields, one orjson.dumps, one write."""

    def __init__(self, stream):
        super().__init__()
        self.out = stream.buffer

    def _line(self, event, level, **fields):
        self.out.write(orjson.dumps({"timestamp": datetime.now(timezone.utc).isoformat(), "level": level,
                                     "event": event, **fields}) + b"\n")

    def scan_discovered(self, scan):
        self._line("scan_start", "info", session=scan.session, scan=scan.label, uris=scan.uris,
                   scan_type=scan.scan_type, title=scan.title, adopted=scan.adopted, key=scan.key)

    def scan_ended(self, scan):
        d = scan.duration
        self._line("scan_end", "info", session=scan.session, scan=scan.label, uris=scan.uris,
                   duration_seconds=round(d, 3) if d is not None else None, end_reason=scan.end_reason,
                   points=scan.points, events=logs.event_counts(scan), key=scan.key)


class CachedChildrenMetrics(ExporterMetrics):
    """ExporterMetrics whose per-event increments use label children looked up once per session."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._children = {}

    def _event_children(self, session):
        ch = self._children.get(session)
        if ch is None:
            ch = self._children[session] = ({e: self.events.labels(session, e.value) for e in EventType},
                                             self.points.labels(session))
        return ch

    def scan_counted(self, scan, events, points):
        by_event, pts = self._event_children(scan.session)
        for event, n in events.items():
            if n:
                by_event[event].inc(n)
        if points:
            pts.inc(points)


class NullSink:
    """Only the record and Counter building of one_scan: subtracted from every other variant."""

    def scan_discovered(self, scan):
        pass

    def scan_counted(self, scan, events, points):
        pass

    def scan_ended(self, scan):
        pass


def run(variant: str, scans: int, tmp: Path) -> float:
    stream = open(tmp / f"{variant.replace(' ', '_').replace(':', '')}.log", "w")
    if variant.startswith("logs"):
        name = variant.split(": ", 1)[1]
        if name == "orjson direct":
            sink = DirectLogSink(stream)
        else:
            configure_logs(stream, name)
            sink = LogSink()
    elif variant == "metrics: as is":
        sink = ExporterMetrics(CollectorRegistry(auto_describe=True), lambda: [])
    elif variant == "metrics: cached children":
        sink = CachedChildrenMetrics(CollectorRegistry(auto_describe=True), lambda: [])
    elif variant == "recent scans":
        sink = RecentScans()
    elif variant == "no sink":
        sink = NullSink()
    else:
        raise ValueError(variant)
    one_scan(sink, 0)  # first-use costs out of the timing
    c0 = time.process_time()
    for i in range(scans):
        one_scan(sink, i)
    cpu = time.process_time() - c0
    stream.close()
    return cpu / scans


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scans", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    variants = ["no sink", "logs: as configured", "logs: orjson + bytes", "logs: cached logger", "logs: orjson + bytes + cached",
                "logs: orjson direct", "metrics: as is", "metrics: cached children", "recent scans"]
    base = CollectorRegistry()  # noqa: F841
    results = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(a.rounds):
            for v in variants:
                results[v].append(run(v, a.scans, Path(d)))
    print(f"CPU per short scan (scan_start + scan_end lines; 6 metric updates), median of {a.rounds} rounds "
          f"x {a.scans} scans:\n")
    print("(net: minus the 'no sink' variant, i.e. building the record and the Counters of one_scan)\n")
    print("| sink variant | net µs / scan | raw median µs | raw min-max µs | net vs as configured |")
    print("|---|---:|---:|---:|---:|")
    null = statistics.median(results["no sink"])
    ref = {"logs": statistics.median(results["logs: as configured"]) - null,
           "metrics": statistics.median(results["metrics: as is"]) - null}
    for v in variants:
        m = statistics.median(results[v])
        group = v.split(":")[0]
        rel = f"{(m - null - ref[group]) / ref[group] * 100:+.0f} %" if group in ref else ""
        print(f"| {v} | {(m - null) * 1e6:.1f} | {m * 1e6:.1f} | {min(results[v]) * 1e6:.1f}-{max(results[v]) * 1e6:.1f} "
              f"| {rel} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
