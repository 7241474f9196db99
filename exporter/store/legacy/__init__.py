"""Read-only access to a BLISS 1.x data store (blissdata 0.x node layout, "legacy"), as a `Source`.

docs/legacy-model.md is the specification: everything here only reads (redis-py, RESP2, no Lua, no
synchronisation streams, commands in READ_COMMANDS), and counts exactly from server-side facts:

- the change log is the tree of container nodes' `_children_list` streams (session -> tmp ->
  scans, or the data policy's proposal/collection/dataset): one XREAD over all of them finds the
  new `scan` / `scan_group` nodes, whose NEW_NODE entry id is their creation time (server ms);
- a scan has two state streams, `{scan}_prepared` (PREPARED) and `{scan}_end` (CLOSED, with the
  pickled `__EXCEPTION__` str that gives the end reason), and no CREATED/STARTED/STOPPED;
- its data streams are the `_data` streams of the channel / lima / node_ref_channel nodes below it
  (device nodes are containers with their own `_children_list`; one node can be listed twice);
- `XINFO STREAM` gives new_data (`entries-added` minus the phantom `0-1` entry every stream is
  created with) and points (last entry id - 1 + `__NPOINTS__`; lima: `last_image_ready` + 1).

Every pickled value goes through `unpickler.loads` (never `pickle.loads`).

One module per job: `layout` (the layout's names), `detect` (is it a legacy store, its sessions),
`check` (the self-test and ACL), `discovery` (the container tree), `unpickler` (pickled values),
`documents` (scan documents), `states` (state streams, lifetimes), `data_streams` (a scan's streams),
`stats` (their counters), `closing` (end reasons, liveness), `references` (sequences' children);
`source.LegacySource` puts them together as a store.base.Source.
"""

from .check import ACL_RULES, READ_COMMANDS
from .closing import end_reason_of
from .detect import find_sessions, is_legacy
from .discovery import LegacyPosition
from .documents import LegacyScanDocument
from .layout import LEGACY_KIND, LEGACY_LIMA_KIND
from .source import LegacySource
from .stats import legacy_stats

__all__ = [
    "ACL_RULES", "LEGACY_KIND", "LEGACY_LIMA_KIND", "READ_COMMANDS", "LegacyPosition", "LegacyScanDocument",
    "LegacySource", "end_reason_of", "find_sessions", "is_legacy", "legacy_stats",
]
