"""The two watcher roles of the published design: a session watcher and a scan watcher."""

from .scan import ScanWatcher
from .session import SessionWatcher

__all__ = ["ScanWatcher", "SessionWatcher"]
