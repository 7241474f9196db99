"""The events watchers emit, and the sink protocol that metrics and logs implement."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from ..model import ScanRecord


class EventSink(Protocol):
    """Receives what the watchers see; implemented by the metrics and the log sinks."""

    def scan_discovered(self, scan: ScanRecord) -> None:
        """A scan starts being watched (new, or adopted at start-up)."""

    def scan_counted(self, scan: ScanRecord, events: Counter, points: int) -> None:
        """New events (by EventType) and points of a watched scan."""

    def scan_ended(self, scan: ScanRecord) -> None:
        """A watched scan reached CLOSED; its counts are final."""

    def scan_lost(self, scan: ScanRecord, reason: str) -> None:
        """A watched scan disappeared from the data store before it was closed."""

    def scan_skipped(self, key: str, reason: str, detail: str) -> None:
        """A scan could not be watched (vanished, invalid document)."""

    def sequence_error(self, scan: ScanRecord, reason: str, detail: str) -> None:
        """A scan's sequence link is wrong: `bad_group` (the child's group is no sequence),
        `bad_reference` (an entry of the sequence's SUBSCANS stream is no scan reference)."""


class Fanout:
    """Forwards every event to several sinks, in order."""

    def __init__(self, *sinks: EventSink):
        self.sinks = list(sinks)

    def scan_discovered(self, scan):
        for sink in self.sinks:
            sink.scan_discovered(scan)

    def scan_counted(self, scan, events, points):
        for sink in self.sinks:
            sink.scan_counted(scan, events, points)

    def scan_ended(self, scan):
        for sink in self.sinks:
            sink.scan_ended(scan)

    def scan_lost(self, scan, reason):
        for sink in self.sinks:
            sink.scan_lost(scan, reason)

    def scan_skipped(self, key, reason, detail):
        for sink in self.sinks:
            sink.scan_skipped(key, reason, detail)

    def sequence_error(self, scan, reason, detail):
        for sink in self.sinks:
            sink.sequence_error(scan, reason, detail)
