"""What a watcher counted of a session, against the publishers' truth."""

from __future__ import annotations

from collections import Counter

from exporter.model import EventType

#: the event types in the order of the report's tables (a scan's life, its data after it started)
EVENT_TYPES = tuple(e.value for e in (EventType.NEW_NODE, EventType.PREPARED_SCAN, EventType.START_SCAN,
                                      EventType.NEW_DATA, EventType.STOP_SCAN, EventType.END_SCAN))


def session_counts(samples: dict, session: str) -> dict:
    """The exporter's counts for one session: events by type, points, scans ended, active scans."""
    events = Counter()
    ended = active = 0.0
    points = 0.0
    for (name, labels), value in samples.items():
        lab = dict(labels)
        if lab.get("session") != session:
            continue
        if name == "bliss_scan_events_total":
            events[lab["event_type"]] += int(value)
        elif name == "bliss_scan_points_total":
            points += value
        elif name == "bliss_scans_ended_total":
            ended += value
        elif name == "bliss_active_scans":
            active += value
    return {"events": events, "points": int(points), "ended": int(ended), "active": int(active)}


def add_truth(total: dict, part: dict) -> None:
    """Add one publisher's truth (events by type, points, scans) to the total."""
    total.setdefault("events", Counter()).update(part["events"])
    total["points"] = total.get("points", 0) + part["points"]
    total["scans"] = total.get("scans", 0) + part["scans"]


def exact(truth: dict, seen: dict) -> bool:
    """Every event type and the points counted exactly as the truth has them."""
    return all(int(seen["events"].get(t, 0)) == int(truth["events"].get(t, 0)) for t in EVENT_TYPES) and \
        int(seen["points"]) == int(truth["points"])
