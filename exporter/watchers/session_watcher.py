"""Session watcher: finds the scans of the watched sessions and hands them to the scan watcher.

At start it adopts the scans that are still active (whole history counted, so totals stay exact
across an exporter restart) and then follows the data model's flow of new scans from where it was
(blissdata 2.x: the scan-history stream). If scans were missed while it could not read (the history
trimmed past its position: more than ~2048 scans), it logs the gap and re-synchronises from the
scans themselves instead of skipping any.
"""

from __future__ import annotations

import fnmatch

import gevent
import structlog

from ..sinks.events import ScanSkipped, Sink
from ..store import ScanGone, ScanInvalid
from ..store.base import Position, Source
from .scan_watcher import ScanWatcher

log = structlog.get_logger("bliss_exporter.session_watcher")


class SessionFilter:
    """Session name globs (`--session`); no glob means every session."""

    def __init__(self, globs: list[str] | None):
        self.globs = list(globs or [])

    def __call__(self, session: str) -> bool:
        return not self.globs or any(fnmatch.fnmatchcase(session, g) for g in self.globs)

    def __str__(self) -> str:
        return ",".join(self.globs) or "*"


class SessionWatcher:
    """Follows the flow of new scans; every scan of a watched session is passed to the scan watcher."""

    def __init__(
        self,
        source: Source,
        scans: ScanWatcher,
        emit: Sink,
        sessions: SessionFilter,
        block_ms: int = 1000,
        min_read_interval: float = 0.5,
    ):
        self.source = source
        self.scans = scans
        self.emit = emit
        self.sessions = sessions
        self.block_ms = block_ms
        # a burst of new scans then comes in one read, which the scan watcher takes in at once (docs/benchmarks.md)
        self.min_read_interval = min_read_interval
        self.position: Position | None = None  # where the last scan handled was (the data model's)

    def run(self) -> None:
        """Watch forever; raises on data store errors (the supervisor restarts it, position kept)."""
        if self.position is None:
            self.adopt_active()
        while True:
            if self.step(self.block_ms):
                gevent.sleep(self.min_read_interval)

    def step(self, block_ms: int | None) -> bool:
        """Handle the scans created since our position (waiting up to block_ms); whether there were any."""
        found = self.source.new_scans(self.position, block_ms)
        if found.gap:
            self.resync(found)
            return True
        self.discover(found.keys)
        self.position = found.position  # only once they are watched: an error here retries them
        return bool(found.keys)

    def adopt_active(self) -> None:
        """First start: watch the scans not yet closed; closed ones belong to the past."""
        position = self.source.anchor()
        self.discover(sorted(self.source.scan_keys()), adopt=True)
        self.position = position

    def resync(self, found) -> None:
        """Scans were missed (the history was trimmed past our position): find them in the data store."""
        log.warning("history_gap", position=str(self.position), action="resync from the data store")
        unknown = [key for key in self.source.scan_keys() if not self.scans.is_known(key)]
        missed = self.source.scans_created_after(self.position, unknown)
        self.discover(missed)  # oldest first, then what the history still has (duplicates ignored)
        self.discover(found.keys)
        self.position = found.position
        log.info("history_resync", scans_found=len(missed))

    def discover(self, keys: list[str], adopt: bool = False) -> None:
        """Load scans (one read) and watch those of watched sessions (at start-up, only if still active)."""
        keys = [key for key in dict.fromkeys(keys) if not self.scans.is_known(key)]
        if not keys:
            return
        docs = []
        for key, doc in self.source.load_scans(keys).items():
            if isinstance(doc, ScanGone):
                if not adopt:
                    self.emit(ScanSkipped(key, "vanished", "deleted before it could be read"))
            elif isinstance(doc, ScanInvalid):
                self.emit(ScanSkipped(key, "invalid", str(doc)))
            elif self.sessions(doc.session):
                docs.append(doc)
        if adopt:
            docs = self.source.still_active(docs)
        for doc in docs:
            self.scans.watch(doc, adopted=adopt)
