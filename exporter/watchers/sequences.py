"""Scan sequences: which watched scans run in which sequence, from the children's `group` and the
sequences' references to their children (blissdata 2.x SUBSCANS, BLISS 1.x `GroupingMaster:scans`).

A child's activity keeps its sequence's last event fresh, and a sequence waits for its running
children before it counts as stalled (model.ScanRecord.parent, .running). Wrong links are reported
as SequenceError events, never followed into a cycle.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ..model import ROLE_SEQUENCE, ROLE_SUBSCAN, ScanRecord, scan_label
from ..sinks.events import SequenceError, Sink
from ..store import ScanGone, ScanInvalid
from ..store.base import REFERENCE_KIND, References, Source


class SequenceLinks:
    """Links the scan watcher's active scans to their sequences; reads the sequences' references."""

    def __init__(self, source: Source[Any], emit: Sink, active: dict[str, ScanRecord], is_known: Callable[[str], bool],
                 batch: int = 1000):
        self.source = source
        self.emit = emit
        self.active = active  # the scan watcher's active scans (shared, never copied)
        self.is_known = is_known
        self.batch = batch  # references read per round trip
        self.claimed: dict[str, str] = {}  # child key -> parent key, referenced before the child is watched

    def adopt_children(self, sequence: ScanRecord) -> None:
        """A sequence watched after some of its children: link those."""
        for child in list(self.active.values()):
            if child.group == sequence.key and child.parent is None:
                self.link(child, sequence)

    def forget(self, record: ScanRecord) -> None:
        """A scan is no longer watched: unlink it from its sequence, its children from it, its claims."""
        if record.parent is not None:
            record.parent.running.pop(record.key, None)
        for child in record.running.values():  # children outliving their sequence
            child.parent = None
        record.running.clear()
        for key in record.subscans:
            if self.claimed.get(key) == record.key:
                del self.claimed[key]

    def find_parent(self, record: ScanRecord) -> str | None:
        """Link a new scan to its parent sequence; the problem if its `group` names no sequence.

        A child names its parent in scan.info `group` (BLISS sets it before the child is created); a
        scan added to an old-style `Sequence` while already running has no `group`: the parent's
        SUBSCANS reference links it (maybe before it is watched: `claimed`). A `group` that names a
        missing scan or a scan that is not a sequence is reported, and the scan stays a plain scan.
        """
        problem = self._group_parent(record, record.group) if record.group is not None else None
        parent_key = self.claimed.pop(record.key, None)
        if record.parent is None and parent_key in self.active:
            self.link(record, self.active[parent_key])
        return problem

    def _group_parent(self, record: ScanRecord, group: str) -> str | None:
        parent = self.active.get(group)
        if parent is not None:
            if parent.role != ROLE_SEQUENCE:
                return f"group {group} is {parent.label}, not a scan sequence"
            self.link(record, parent)
            return None
        try:
            doc = self.source.load_scan(group, deleted_ok=True)
        except ScanGone:
            return f"group {group}: no such scan"
        except ScanInvalid as exc:
            return f"group {group}: {exc}"
        label = scan_label(doc.number, doc.name)
        if doc.info.get("is_scan_sequence") is not True:
            return f"group {group} is {label}, not a scan sequence"
        # a sequence not watched: not yet (adopted after its child) or no more (closed)
        if record.role != ROLE_SEQUENCE:
            record.role = ROLE_SUBSCAN
        record.sequence = label
        return None

    def link(self, child: ScanRecord, parent: ScanRecord) -> bool:
        """`child` runs in the sequence `parent`: its activity keeps the parent's last event fresh.

        Refused (False) if that would make a cycle (a sequence referencing itself or its ancestor).
        """
        if child.parent is parent:
            return True
        ancestor: ScanRecord | None = parent
        while ancestor is not None:
            if ancestor is child:
                return False
            ancestor = ancestor.parent
        if child.parent is not None:
            child.parent.running.pop(child.key, None)
        child.parent = parent
        child.sequence = parent.label
        if child.role != ROLE_SEQUENCE:  # a sequence inside a sequence stays a sequence
            child.role = ROLE_SUBSCAN
        parent.subscans.add(child.key)
        parent.running[child.key] = child
        if child.last_event_at is not None:
            parent.touch(child.last_event_at)
        return True

    def find_references(self, record: ScanRecord) -> None:
        """Which of a sequence's data streams hold references to its children (SUBSCANS)."""
        record.references = {}
        for cursor in record.streams.values():
            if cursor.kind == REFERENCE_KIND:
                cursor.reference = True
                cursor.points = 0
                record.references[cursor.key] = "0-0"

    def read_references(self, records: list[ScanRecord], read: Mapping[str, References] | None = None) -> None:
        """Read the new SUBSCANS entries of sequences whose reference stream grew (`read`: already read)."""
        for record in records:
            if not record.references:
                continue
            for cursor in record.streams.values():
                if not cursor.reference or cursor.entries == cursor.references_read:
                    continue
                entries = cursor.entries
                since = record.references[cursor.key]
                first = read.get(cursor.key) if read else None
                while True:
                    if first is not None:
                        (refs, more), first = first, None
                    else:
                        refs, more = self.source.read_references(cursor.key, since, self.batch)
                    for entry_id, child_key, problem in refs:
                        since = entry_id
                        if child_key is not None and not self._reference(record, child_key):
                            problem = f"{child_key} is this sequence or one of its parents"
                        if problem:
                            detail = f"{cursor.name} entry {entry_id}: {problem}"
                            self.emit(SequenceError(record, "bad_reference", detail))
                    record.references[cursor.key] = since
                    if not more:
                        break
                cursor.references_read = entries

    def _reference(self, parent: ScanRecord, child_key: str) -> bool:
        """A SUBSCANS reference of `parent` to `child_key`; False if it cannot be one of its children."""
        if child_key == parent.key:
            return False
        child = self.active.get(child_key)
        if child is not None and child.parent is None and not self.link(child, parent):
            return False
        parent.subscans.add(child_key)
        if child is None and not self.is_known(child_key):
            self.claimed[child_key] = parent.key
        return True
