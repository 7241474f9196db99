"""The blissdata constants the exporter copies are blissdata's own: an upgrade that changes one fails here."""

from __future__ import annotations

import inspect

from blissdata.redis_engine import memory_tracker, scan, store
from blissdata.streams.default import Stream

from exporter import store as source


def test_copied_constants_are_blissdatas():
    assert source.HISTORY_STREAM == scan.scan_creation_stream
    assert source.PROTOCOL_KEY == store._PROTOCOL_KEY
    assert source.SUPPORTED_PROTOCOL == store._PROTOCOL_VERSION
    assert source.SEAL_ID == memory_tracker.SEAL_ID
    # the server-side sealing function writes the same seal id
    assert f"local seal = '{source.SEAL_ID.decode()}'" in inspect.getsource(store)


def test_key_prefixes_are_those_of_real_scans_and_streams(data_store):
    published = data_store.create_scan({"name": "ct", "number": 1, "data_policy": "None", "session": "s"},
                                       info={"type": "ct"})
    stream = published.create_stream(Stream.make_definition("timer:epoch", "float64"))
    published.prepare()
    assert published.key.startswith(source.SCAN_PREFIX)
    assert stream.key.startswith(source.STREAM_PREFIX)
    doc = data_store._redis.json().get(published.key)
    assert source.parse_scan_document(published.key, doc).state_keys[0].startswith(source.STREAM_PREFIX)
    stream.seal()
