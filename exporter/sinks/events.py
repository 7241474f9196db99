"""What the watchers see, as small event objects, and the chain of sinks that receives them.

A sink is any callable taking one event; it handles the kinds it cares about and ignores the rest.
Events are read-only by convention (not frozen: a frozen dataclass costs ~3x more to create, and
several are made per scan).
The chain is configured in one place (the exporter's wiring), like structlog's processor chain:
metrics, log lines, the recently-ended list of the read model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

from ..model import EventType, ScanRecord


@dataclass(slots=True)
class ScanDiscovered:
    """A scan starts being watched (new, or adopted at start-up)."""

    scan: ScanRecord


@dataclass(slots=True)
class ScansInStore:
    """At start: the sessions and scan types the data store holds scans of ({(session, scan_type): is a
    sequence}), watched or not, so that their series start at 0 before anything is counted."""

    kinds: dict[tuple[str, str], bool]  # (session, scan_type) -> bool (a scan sequence)
    proposals: set[tuple[str, str]] = field(default_factory=set)  # (session, proposal)


@dataclass(slots=True)
class ScanCounted:
    """New events (by EventType) and points of a watched scan, since the exporter started (an adopted
    scan's earlier history is not in them)."""

    scan: ScanRecord
    events: dict[EventType, int]
    points: int
    frames: dict[str, list[int]] | None = None  # saving detectors: {detector: [frames acquired, frames saved]} (new ones)


@dataclass(slots=True)
class ScanEnded:
    """A watched scan reached CLOSED; its counts are final."""

    scan: ScanRecord


@dataclass(slots=True)
class ScanLost:
    """A watched scan disappeared from the data store before it was closed."""

    scan: ScanRecord
    reason: str


@dataclass(slots=True)
class ScanSkipped:
    """A scan could not be watched (`vanished`, `invalid` document)."""

    key: str
    reason: str
    detail: str


@dataclass(slots=True)
class SequenceError:
    """A wrong sequence link: `bad_group` (the child's group is no sequence), `bad_reference` (a SUBSCANS
    entry is no scan reference)."""

    scan: ScanRecord
    reason: str
    detail: str


Event = Union[ScansInStore, ScanDiscovered, ScanCounted, ScanEnded, ScanLost, ScanSkipped, SequenceError]
Sink = Callable[[Event], None]


class SinkChain:
    """Passes every event to each sink, in the configured order.

    A sink may map the event types it handles to their handlers (`handlers`: {type: callable}); the
    chain then calls those handlers directly, and only for those types (several events per scan: each
    type is routed once, not each event through every sink and its own dispatch).
    """

    def __init__(self, *sinks: Sink):
        self.sinks = tuple(sinks)
        self._routes: dict[type, tuple[Sink, ...]] = {}

    def __call__(self, event: Event) -> None:
        kind = type(event)
        route = self._routes.get(kind)
        if route is None:
            route = self._routes[kind] = tuple(self._handler(sink, kind) for sink in self.sinks
                                               if kind in getattr(sink, "handlers", (kind,)))
        for handler in route:
            handler(event)

    @staticmethod
    def _handler(sink: Sink, kind: type) -> Sink:
        handlers = getattr(sink, "handlers", None)
        return handlers[kind] if handlers is not None else sink
