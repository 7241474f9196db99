"""The two watcher roles of the published design: a session watcher and a scan watcher."""

from .scan_watcher import ScanWatcher
from .session_watcher import SessionWatcher

__all__ = ["ScanWatcher", "SessionWatcher"]
