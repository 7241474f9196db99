"""Session watcher: finds the scans of the watched sessions and hands them to the scan watcher.

Counters count what happened since the exporter started. At start it looks at every scan of the
watched sessions in the data store: those created since the exporter started (in the store's clock,
store.clock) are watched in full, even if already closed (nothing is lost while the exporter waited
for its store); older ones still active at the start are adopted: only what happens from then on adds
to the counters (the process before counted the rest). Every session and scan type found gets its
series at 0. It then follows the data model's flow of new scans from where it was (blissdata 2.x: the
scan-history stream). If scans were missed while it could not read (the history trimmed past its
position: more than ~2048 scans), it logs the gap and re-synchronises from the scans themselves
instead of skipping any.
"""

from __future__ import annotations

import fnmatch
from typing import Generic

import gevent
import structlog

from ..model import scan_type_of
from ..sinks.events import ScansInStore, ScanSkipped, Sink
from ..store import ScanDocument, ScanGone, ScanInvalid
from ..store.base import NewScans, Position, Source
from ..store.clock import StoreClock
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


class SessionWatcher(Generic[Position]):
    """Follows the flow of new scans; every scan of a watched session is passed to the scan watcher."""

    def __init__(
        self,
        source: Source[Position],
        scans: ScanWatcher,
        emit: Sink,
        sessions: SessionFilter,
        block_ms: int = 1000,
        min_read_interval: float = 0.5,
        store_clock: StoreClock | None = None,
    ):
        self.source = source
        self.store_clock = store_clock or scans.store_clock
        self.scans = scans
        self.emit = emit
        self.sessions = sessions
        self.block_ms = block_ms
        # a burst of new scans then comes in one read, which the scan watcher takes in at once (docs/benchmarks.md)
        self.min_read_interval = min_read_interval
        self.position: Position | None = None  # where the last scan handled was (the data model's)
        #: store time up to which every scan created is handed to the scan watcher (the start of the
        #: last read of new scans done)
        self.read_until = float("-inf")

    def run(self) -> None:
        """Watch forever; raises on data store errors (the supervisor restarts it, position kept)."""
        if self.position is None:
            self.start()
        while True:
            if self.step(self.block_ms):
                gevent.sleep(self.min_read_interval)

    def step(self, block_ms: int | None) -> bool:
        """Handle the scans created since our position (waiting up to block_ms); whether there were any."""
        position = self.position
        if position is None:
            raise RuntimeError("the session watcher steps once started (run() starts it)")
        sent = self.store_clock.now()
        found = self.source.new_scans(position, block_ms)
        if found.gap:
            self.resync(position, found)
        else:
            self.discover(found.keys)
            self.position = found.position  # only once they are watched: an error here retries them
        self.read_until = sent
        return bool(found.keys) or found.gap

    def start(self) -> None:
        """First start: series at 0 for what the store holds; scans created since the exporter started
        watched in full, older ones active at its start adopted (counted from then on)."""
        sent = self.store_clock.now()
        position = self.source.anchor()
        docs = self._load(sorted(self.source.scan_keys()), at_start=True)
        kinds: dict[tuple[str, str], bool] = {}
        for doc in docs:
            kinds[(doc.session, scan_type_of(doc))] = doc.info.get("is_scan_sequence") is True
        if kinds:
            self.emit(ScansInStore(kinds, {(doc.session, doc.proposal) for doc in docs}))
        started = self.store_clock.started
        self._vanished_since(started, docs)
        lifetimes = self.source.lifetimes(docs)
        new, adopted = [], []
        for doc in docs:
            life = lifetimes.get(doc.key)
            if life is None or life.created is None:
                continue  # no creation to tell (no state entry, node gone): not a scan to watch
            if life.created >= started:
                new.append((life.created, doc))
            elif life.closed is None or life.closed >= started:
                adopted.append(doc)
        for doc in adopted:  # parents before children created after the start
            self.scans.watch(doc, counted_from=started)
        for _, doc in sorted(new, key=lambda created_doc: created_doc[0]):
            self.scans.watch(doc)
        if new:
            log.info("scans_since_start", scans=len(new))
        self.position = position
        self.read_until = sent

    def _vanished_since(self, started: float, docs: list[ScanDocument]) -> None:
        """Scans created since the start but gone before this first read: skipped as vanished (counted,
        logged); a history trimmed past the start may have held more, which nothing can count."""
        keys, complete = self.source.created_since(started)
        found = {doc.key for doc in docs}
        missing = [key for key in keys if key not in found and not self.scans.is_known(key)]
        for key, doc in (self.source.load_scans(missing) if missing else {}).items():
            if isinstance(doc, ScanGone):  # (another session's, or an invalid one already reported: not here)
                self.emit(ScanSkipped(key, "vanished", "created after the exporter started, gone before it could read it"))
        if not complete:
            log.warning("history_gap", position="exporter start",
                        action="scans created since the start looked for in the data store; any deleted "
                               "meanwhile cannot be counted")

    def resync(self, position: Position, found: NewScans[Position]) -> None:
        """Scans were missed (the history was trimmed past `position`, ours): find them in the data store."""
        log.warning("history_gap", position=str(position), action="resync from the data store")
        unknown = [key for key in self.source.scan_keys() if not self.scans.is_known(key)]
        missed = self.source.scans_created_after(position, unknown)
        self.discover(missed)  # oldest first, then what the history still has (duplicates ignored)
        self.discover(found.keys)
        self.position = found.position
        log.info("history_resync", scans_found=len(missed))

    def discover(self, keys: list[str]) -> None:
        """Load scans (one read) and watch those of watched sessions."""
        for doc in self._load(keys):
            self.scans.watch(doc)

    def _load(self, keys: list[str], at_start: bool = False) -> list[ScanDocument]:
        """Documents of the scans of watched sessions not yet known; a scan that cannot be read is
        skipped (counted, logged), except one gone before start-up could read it (nothing to tell)."""
        keys = [key for key in dict.fromkeys(keys) if not self.scans.is_known(key)]
        if not keys:
            return []
        docs = []
        for key, doc in self.source.load_scans(keys).items():
            if isinstance(doc, ScanGone):
                if not at_start:
                    self.emit(ScanSkipped(key, "vanished", "deleted before it could be read"))
            elif isinstance(doc, ScanInvalid):
                self.emit(ScanSkipped(key, "invalid", str(doc)))
            elif self.sessions(doc.session):
                docs.append(doc)
        return docs
