"""Scan sequences (issue 9 §3): roles, parent/child links, stall of sequences, bounded labels and progress.

In-process checks of the metric sink first, then a real Redis Stack, the real exporter process and
sequences published exactly as BLISS 2.4 does (blissdata's ScanStream.make_definition("SUBSCANS")).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from exporter.metrics import ExporterMetrics, scan_progress
from exporter.scan import ScanRecord, State, StreamCursor
from exporter.watchers.scan import record_from_document
from exporter.source import ScanDocument

from .helpers import parse_metrics


def doc(info: dict, name="loopscan", number=1, key="esrf:scan:K1") -> ScanDocument:
    return ScanDocument(key, "s1", name, number, info, "esrf:stream:S1", {})


def test_progress_needs_an_integer_npoints_above_zero_and_stays_in_0_1():
    for bad in (-5, 0, True, False, 2.5, "10", None):
        record = record_from_document(doc({"npoints": bad}), adopted=False)
        record.streams = {"a": StreamCursor("a", "x", "numeric", points=2)}
        assert record.npoints is None and scan_progress(record) is None, bad
    record = record_from_document(doc({"npoints": 4, "count_time": True}), adopted=False)
    assert record.count_time is None  # a bool is no count time either
    record.streams = {"a": StreamCursor("a", "x", "numeric", points=2)}
    assert scan_progress(record) == 0.5
    record.streams["a"].points = 9
    assert scan_progress(record) == 1.0


def test_end_reason_label_is_bounded_and_the_known_reasons_always_pass():
    registry = CollectorRegistry()
    metrics = ExporterMetrics(registry, lambda: [])
    for n in range(200):
        scan = ScanRecord(key=f"k{n}", session="s1", name="ct", number=n, scan_type="ct", uris=[],
                          state=State.CLOSED, end_reason=f"odd reason {n}")
        metrics.scan_discovered(scan)
        metrics.scan_ended(scan)
    for reason in ("SUCCESS", "FAILURE", "USER_ABORT", "DELETION", None):
        scan = ScanRecord(key=reason or "none", session="s1", name="ct", number=1, scan_type="ct", uris=[],
                          state=State.CLOSED, end_reason=reason)
        metrics.scan_ended(scan)
    samples = parse_metrics(_exposition(registry))
    reasons = {dict(k[1])["end_reason"]: v for k, v in samples.items()
               if k[0] == "bliss_scans_ended_total" and dict(k[1]).get("role", "scan") == "scan"}
    assert len(reasons) == 21  # 20 values (5 known + 15 others) and "other"
    for known in ("SUCCESS", "FAILURE", "USER_ABORT", "DELETION", "UNKNOWN"):
        assert reasons[known] == 1
    assert reasons["other"] == 200 - 15
    assert sum(reasons.values()) == 205


def _exposition(registry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()
