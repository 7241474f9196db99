"""Scan documents in-process: parse_scan_document on the RedisJSON documents of a genuine BLISS 2.4.0
session (tests/data/bliss-2.4.0-scans, see its README), and on malformed ones (ScanInvalid, a message
naming the scan and what is wrong)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from exporter.store.documents import (
    SCAN_PREFIX,
    STREAM_PREFIX,
    parse_reference,
    parse_scan_document,
)
from exporter.store.errors import ScanInvalid

REFERENCE = Path(__file__).parent / "data" / "bliss-2.4.0-scans"
DUMPS = sorted(REFERENCE.glob("*.json"))


def load(name: str) -> dict:
    return json.loads((REFERENCE / name).read_text())


def test_the_reference_scans_are_there():
    assert [p.name for p in DUMPS] == [
        "01_ct_SUCCESS.json", "01_loopscan_SUCCESS.json", "02_ascan_SUCCESS.json", "03_loopscan_FAILURE.json",
        "04_loopscan_USER_ABORT.json", "05_loopscan_SUCCESS.json", "05_sequence_sequence_SUCCESS.json",
        "06_loopscan_child1_SUCCESS.json", "07_loopscan_child2_SUCCESS.json"]


@pytest.mark.parametrize("path", DUMPS, ids=[p.stem for p in DUMPS])
def test_blissdata_2_documents_parse(path):
    dump = json.loads(path.read_text())
    key, raw = dump["key"], dump["redis_json"]
    doc = parse_scan_document(key, raw)
    number, name = path.stem.split("_")[:2]
    assert key.startswith(SCAN_PREFIX) and doc.key == key
    assert (doc.session, doc.name, doc.number) == ("demo_session", name, int(number))
    assert doc.info == raw["info"]
    assert doc.state_keys == (STREAM_PREFIX + raw["state_stream"]["pk"],)
    # every channel the dump read from the data store, under the stream key it read it from
    assert {name: key for name, (key, _) in doc.streams.items()} == {
        name: stream["key"] for name, stream in dump["streams"].items()}
    kinds = {name: str(kind) for name, (_, kind) in doc.streams.items()}
    if name == "sequence":
        assert kinds == {"SUBSCANS": "scan_sequence"}
    else:
        assert set(kinds.values()) == {"numeric"} and "timer:epoch" in kinds


def test_the_sequence_document_and_its_references():
    parent = load("05_sequence_sequence_SUCCESS.json")
    children = [load(name) for name in ("06_loopscan_child1_SUCCESS.json", "07_loopscan_child2_SUCCESS.json")]
    subscans = parent["streams"]["SUBSCANS"]
    for child in children:
        assert parse_scan_document(child["key"], child["redis_json"]).info["group"] == parent["key"]
    *entries, (seal_id, _) = subscans["raw_entries"]
    assert seal_id == "18446744073709551615-18446744073709551615"
    refs = [parse_reference({k.encode(): v.encode() for k, v in fields.items()}) for _, fields in entries]
    assert refs == [(child["key"], "") for child in children]


def test_identity_fallbacks():
    dump = load("01_loopscan_SUCCESS.json")
    raw = copy.deepcopy(dump["redis_json"])
    del raw["id"]["session"]  # the session from scan.info then
    raw["id"]["number"] = "7"
    doc = parse_scan_document(dump["key"], raw)
    assert (doc.session, doc.number) == ("demo_session", 7)
    del raw["info"]["session_name"]
    raw["id"]["number"] = None
    del raw["data_streams"]  # CREATED: no stream yet
    doc = parse_scan_document(dump["key"], raw)
    assert (doc.session, doc.number, doc.streams) == ("", None, {})


def _set(path: str, value):
    """A change to a document: set (or with value DELETE, remove) the item at a dotted path."""
    def change(doc):
        *parents, last = path.split(".")
        node = doc
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
        return doc
    return change


DELETE = object()
EPOCH = "data_streams.timer:epoch"

#: (name, change: a valid loopscan document -> the malformed one, pattern of the message after "<scan key>: ")
MALFORMED = [
    ("not an object", lambda doc: [], "TypeError: document is not an object"),
    ("a string", lambda doc: '{"id": {}}', "TypeError: document is not an object"),
    ("no identity", _set("id", DELETE), "KeyError: 'id'"),
    ("identity not an object", _set("id", "loopscan"), "TypeError: string indices must be integers.*"),
    ("no name", _set("id.name", DELETE), "KeyError: 'name'"),
    ("empty name", _set("id.name", ""), "identity has no name"),
    ("name not a string", _set("id.name", 5), "identity has no name"),
    ("number not a number", _set("id.number", "abc"), r"ValueError: invalid literal for int\(\) with base 10: 'abc'"),
    ("number a list", _set("id.number", [1]), r"TypeError: int\(\) argument must be .*, not 'list'"),
    ("no info", _set("info", DELETE), "TypeError: info is not an object"),
    ("info not an object", _set("info", "loopscan 10 0.1"), "TypeError: info is not an object"),
    ("no state stream", _set("state_stream", DELETE), "KeyError: 'state_stream'"),
    ("state stream null", _set("state_stream", None), "TypeError: 'NoneType' object is not subscriptable"),
    ("state stream without pk", _set("state_stream.pk", DELETE), "KeyError: 'pk'"),
    ("data streams a list", _set("data_streams", ["timer:epoch"]), "data_streams: ValueError: .*"),
    ("data stream null", _set(EPOCH, None), "data_streams: TypeError: 'NoneType' object is not subscriptable"),
    ("data stream without pk", _set(EPOCH + ".pk", DELETE), "data_streams: KeyError: 'pk'"),
]


@pytest.mark.parametrize("name, change, message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_document_is_invalid_with_a_useful_message(name, change, message):
    dump = load("01_loopscan_SUCCESS.json")
    raw = change(copy.deepcopy(dump["redis_json"]))
    with pytest.raises(ScanInvalid) as raised:
        parse_scan_document(dump["key"], raw)
    text = str(raised.value)
    assert text.startswith(dump["key"] + ": "), text  # which scan
    assert re.fullmatch(message, text[len(dump["key"]) + 2:]), text  # what is wrong
    assert "\n" not in text and raised.value.__cause__ is None
