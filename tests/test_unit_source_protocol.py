"""Both data models, and the in-memory store of the watchers' unit tests (tests/memory_source.py), implement
exporter.store.base.Source exactly: every method, the same parameters with the same defaults (a model may
add optional ones after them), and no model-specific attribute needed by the watchers (a document's
creation time is ScanDocument.created_at for both)."""

from __future__ import annotations

import ast
import inspect

import pytest
import redis

from exporter.model import record_from_document
from exporter.store.base import Source
from exporter.store.blissdata2 import DataStoreSource
from exporter.store.documents import ScanDocument
from exporter.store.errors import DataStoreUnavailable, describe_error
from exporter.store.legacy import LegacyPosition, LegacyScanDocument, LegacySource
from exporter.store.streams import StreamKind

from .memory_source import MemorySource

METHODS = [name for name, member in vars(Source).items() if not name.startswith("_") and callable(member)]


@pytest.mark.parametrize("store", [DataStoreSource, LegacySource, MemorySource], ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", METHODS)
def test_each_store_has_the_protocols_method_with_its_parameters(store, name):
    want = inspect.signature(getattr(Source, name)).parameters
    got = inspect.signature(getattr(store, name)).parameters
    assert list(got)[: len(want)] == list(want), name
    for param in want:
        assert got[param].default == want[param].default, (name, param)
    for extra in list(got)[len(want):]:
        assert got[extra].default is not inspect.Parameter.empty, (name, extra)


def test_the_protocol_lists_what_the_watchers_call():
    assert {"check", "anchor", "new_scans", "scan_keys", "created_since", "scans_created_after", "load_scans",
            "load_scan", "lifetimes", "server_time", "read_states", "unreadable_state_streams", "scan_streams",
            "stream_stats", "closing", "scans_alive", "read_references"} == set(METHODS)


def test_a_documents_creation_time_reaches_the_record_the_same_way_for_both_models():
    plain = ScanDocument("esrf:scan:K", "s", "loopscan", 1, {}, ("esrf:stream:K_state",), {})
    assert record_from_document(plain, adopted=False).created_at is None  # told by its CREATED entry
    legacy = LegacyScanDocument("s:tmp:1_loopscan", "s", "loopscan", 1, {}, ("a_prepared", "a_end"), {})
    legacy.created_at = 1764921600.5
    assert record_from_document(legacy, adopted=False).created_at == 1764921600.5


DOC = ScanDocument("esrf:scan:K", "s", "loopscan", 1, {}, ("esrf:stream:K_state",), {})
#: arguments of each method that make it read the store (not return early on nothing to read)
CALLS = {
    "check": (), "anchor": (), "new_scans": ("POSITION", 10), "scan_keys": (), "created_since": (0.0,),
    "scans_created_after": ("POSITION", [DOC.key]), "load_scans": ([DOC.key],), "load_scan": (DOC.key,),
    "lifetimes": ([DOC],), "server_time": (), "read_states": ({"esrf:stream:K_state": "0-0"}, None),
    "unreadable_state_streams": (["esrf:stream:K_state"],), "scan_streams": ([DOC.key],),
    "stream_stats": ({"esrf:stream:K_data": StreamKind("numeric")},), "closing": ({DOC.key: {}},),
    "scans_alive": ({DOC.key: DOC.state_keys},), "read_references": ("esrf:stream:K_subscans", "0-0"),
}
POSITIONS = {DataStoreSource: (0, "0-0"), LegacySource: LegacyPosition()}


def test_every_call_is_in_the_seams_test():
    assert set(CALLS) == set(METHODS)


@pytest.mark.parametrize("store", [DataStoreSource, LegacySource], ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", METHODS)
def test_no_redis_exception_crosses_the_seam(store, name, refused_port):
    """A data store that cannot be reached: every method raises the store's own DataStoreUnavailable,
    described as redis-py's error (the log lines and /readyz stay as they were), that error as its cause."""
    source = store(f"redis://127.0.0.1:{refused_port}")
    args = [POSITIONS[store] if arg == "POSITION" else arg for arg in CALLS[name]]
    with pytest.raises(DataStoreUnavailable) as raised:
        getattr(source, name)(*args)
    cause = raised.value.__cause__
    assert isinstance(cause, redis.ConnectionError), repr(cause)
    assert describe_error(raised.value) == describe_error(cause)
    assert describe_error(raised.value).startswith("ConnectionError: Error 111 connecting to 127.0.0.1:")


def test_nothing_above_the_seam_imports_redis():
    """The watchers, the supervisor and health see only the store's own exceptions and functions."""
    from .helpers import ROOT

    def imports(path) -> set[str]:
        nodes = list(ast.walk(ast.parse(path.read_text())))
        return ({alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names}
                | {node.module for node in nodes if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module})

    above = [*(ROOT / "exporter" / "watchers").glob("*.py"), ROOT / "exporter" / "supervisor.py",
             ROOT / "exporter" / "health.py"]
    assert {path.name: [m for m in imports(path) if m.split(".")[0] == "redis"] for path in above} == {
        path.name: [] for path in above}
