"""The names of the exporter's supervised parts, in one place."""

from __future__ import annotations

import enum


class Part(enum.StrEnum):
    """The exporter's supervised parts: the `watcher` label of bliss_exporter_watcher_errors_total."""

    STARTUP = "startup"  # connects to the data store and finds its data model (once)
    SESSION_WATCHER = "session_watcher"
    SCAN_WATCHER = "scan_watcher"
    HEALTH = "health"  # the periodic data store check
