"""The names of BLISS 1.x's key layout (docs/legacy-model.md): node types, key suffixes, data stream kinds."""

from __future__ import annotations

from ..base import REFERENCE_KIND

#: Suffix of a container node's stream listing its children (one NEW_NODE entry each, field `db_name`).
CHILDREN = "_children_list"

#: Node types (`node_type` field of a node hash) whose `_children_list` lists scans or containers.
CONTAINER_TYPES = frozenset({b"container", b"proposal", b"dataset_collection", b"dataset"})
#: The ESRF data policy's proposal node (BLISS 1.11.4 ESRFScanSaving: <session>:<base path...>:<proposal>:
#: <collection>:<collection>_<dataset>:<scan>); its `name` is the proposal, the last part of its db_name.
PROPOSAL_TYPE = b"proposal"
SCAN_TYPES = frozenset({b"scan", b"scan_group"})

#: Stream kinds of legacy data streams (StreamKind names; REFERENCE_KIND for node_ref_channel).
LEGACY_KIND = "legacy"  # a `channel` node's `_data`: ids = first point index + 1, `__NPOINTS__` per entry
LEGACY_LIMA_KIND = "legacy_lima"  # a `lima` node's `_data`: LIMAIMAGESTATUS events, pickled `__STATUS__`
DATA_NODE_KINDS = {b"channel": LEGACY_KIND, b"lima": LEGACY_LIMA_KIND, b"node_ref_channel": REFERENCE_KIND}


def state_keys_of(scan_key: str) -> tuple[str, str]:
    """A scan's state streams: `_prepared` (PREPARED) and `_end` (CLOSED)."""
    return f"{scan_key}_prepared", f"{scan_key}_end"


def is_v1(version: bytes | None) -> bool:
    """Whether a node hash's `version` is the node API of blissdata 0.x (v1.x)."""
    return version is not None and version.startswith(b"v1.")


def text(value: object) -> str:
    """A key, field or db_name as str (Redis gives bytes)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
