"""Session watcher: finds the scans of the watched sessions and hands them to the scan watcher.

At start it adopts the scans that are still active (whole history counted, so totals stay exact
across an exporter restart) and then follows blissdata's scan-history stream from where it was.
If the history was trimmed past its position while it could not read (more than ~2048 scans), it
logs the gap and re-synchronises from the scans themselves instead of skipping any.
"""

from __future__ import annotations

import fnmatch

import structlog

from ..model import State
from ..sinks.events import ScanSkipped, Sink
from ..store import DataStoreSource, ScanGone, ScanInvalid
from .scan_watcher import ScanWatcher

log = structlog.get_logger("bliss_exporter.session_watcher")


def id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class SessionFilter:
    """Session name globs (`--session`); no glob means every session."""

    def __init__(self, globs: list[str] | None):
        self.globs = list(globs or [])

    def __call__(self, session: str) -> bool:
        return not self.globs or any(fnmatch.fnmatchcase(session, g) for g in self.globs)

    def __str__(self) -> str:
        return ",".join(self.globs) or "*"


class SessionWatcher:
    """Follows the scan history; every scan of a watched session is passed to the scan watcher."""

    def __init__(
        self,
        source: DataStoreSource,
        scans: ScanWatcher,
        emit: Sink,
        sessions: SessionFilter,
        block_ms: int = 1000,
    ):
        self.source = source
        self.scans = scans
        self.emit = emit
        self.sessions = sessions
        self.block_ms = block_ms
        self.position: str | None = None  # id of the last history entry handled
        self.sequence = 0  # how many history entries were ever added up to `position`

    def run(self) -> None:
        """Watch forever; raises on data store errors (the supervisor restarts it, position kept)."""
        if self.position is None:
            self.adopt_active()
        else:
            self.resume()
        while True:
            self.step(self.block_ms)

    def step(self, block_ms: int | None) -> None:
        entries = self.source.read_history(self.position or "0-0", block_ms)
        if not entries:
            return
        added, length, _ = self.source.history_info()
        if added - length > self.sequence or added < self.sequence:
            # entries after our position were trimmed away (or the history was recreated)
            self.resync()
            for _, key in entries:  # older than the new anchor: just make sure they are watched
                self.discover(key)
            return
        for entry_id, key in entries:
            self.discover(key)
            self.position = entry_id
            self.sequence += 1

    def adopt_active(self) -> None:
        """First start: watch the scans not yet closed; closed ones belong to the past."""
        self._anchor()
        for key in sorted(self.source.list_scan_keys()):
            self.discover(key, adopt=True)

    def _anchor(self) -> None:
        self.sequence, _, self.position = self.source.history_info()

    def resume(self) -> None:
        """After a reconnection: re-synchronise if the history was trimmed past our position."""
        added, length, _ = self.source.history_info()
        if added - length > self.sequence or added < self.sequence:
            self.resync()

    def resync(self) -> None:
        """Find the scans created after our position in the data store itself, oldest first."""
        log.warning("history_gap", position=self.position, action="resync from the data store")
        since = id_tuple(self.position)
        self._anchor()  # scans after the new anchor come through the history again (duplicates ignored)
        missed = []
        for key in self.source.list_scan_keys():
            if self.scans.is_known(key):
                continue
            state_key = self._state_key(key)
            created = state_key and self.source.creation_id(state_key)
            if created and id_tuple(created) > since:
                missed.append((id_tuple(created), key))
        for _, key in sorted(missed):
            self.discover(key)
        log.info("history_resync", scans_found=len(missed))

    def _state_key(self, key: str) -> str | None:
        try:
            return self.source.load_scan(key).state_key
        except (ScanGone, ScanInvalid):
            return None

    def discover(self, key: str, adopt: bool = False) -> None:
        """Load a scan and watch it if its session is watched (at start-up, only if still active)."""
        if self.scans.is_known(key):
            return
        try:
            doc = self.source.load_scan(key)
        except ScanGone:
            if not adopt:
                self.emit(ScanSkipped(key, "vanished", "deleted before it could be read"))
            return
        except ScanInvalid as exc:
            self.emit(ScanSkipped(key, "invalid", str(exc)))
            return
        if not self.sessions(doc.session):
            return
        if adopt:
            state = self.source.last_state(doc.state_key)
            if state is None or state is State.CLOSED:
                return
        self.scans.watch(doc, adopted=adopt)
