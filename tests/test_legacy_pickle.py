"""exporter.store.legacy.unpickler: loads what BLISS 1.x writes, rejects everything else without running it."""

from __future__ import annotations

import datetime
import json
import os
import pickle
import pickletools
import re
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

from exporter.store.legacy.unpickler import PickleRejected, allowed_globals, loads

from . import legacy_fixtures

legacy_redis = legacy_fixtures.legacy_redis  # pytest fixtures
legacy_publish = legacy_fixtures.legacy_publish

REFERENCE = Path(__file__).parent / "legacy" / "reference-bliss-1.11.4"


class _Reduce:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _pickled_reprs():
    for f in sorted(REFERENCE.glob("*.json")):
        stack = [json.loads(f.read_text())]
        while stack:
            v = stack.pop()
            if isinstance(v, dict):
                if set(v) == {"pickle"}:
                    yield f.name, v["pickle"]
                else:
                    stack.extend(v.values())
            elif isinstance(v, list):
                stack.extend(v)


def test_every_class_in_the_reference_dumps_is_allowed():
    """The reference's pickled values name these globals: builtins types, numpy scalar types,
    datetime.datetime. Strings that look like classes (__EXCEPTION__) are only strings."""
    named = set()
    for _, r in _pickled_reprs():
        if r.startswith(("'", '"')):
            continue
        for cls in re.findall(r"<class '([\w.]+)'>", r):
            module, _, name = cls.rpartition(".")
            named.add((module or "builtins", name))
        if "datetime.datetime(" in r:
            named.add(("datetime", "datetime"))
    assert named == {("builtins", "float"), ("builtins", "int"), ("builtins", "str"), ("numpy", "float64"),
                     ("datetime", "datetime")}
    assert named <= set(allowed_globals())


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_values_bliss_writes_round_trip(protocol):
    values = [
        None, True, 3, 0.01, "loopscan 10 0.01", b"raw", (), (2048, 2048), [1, "a"], {"a": {"b": [1.5]}},
        {1, 2}, frozenset({3}), float, int, str, numpy.float64, numpy.uint16, numpy.int32,
        numpy.float64(0.011174917221069336), numpy.int64(7), numpy.bool_(True), numpy.dtype("float64"),
        numpy.arange(10.0), numpy.array(["a", "b"]), numpy.zeros((3, 4), dtype=numpy.uint16),
        datetime.datetime(2026, 12, 1, 13, 46, 22, 728831), datetime.timedelta(seconds=3),
        {"reference": False, "dtype": numpy.float64, "shape": (), "unit": "s"},
        "<class 'bliss.scanning.scan.ScanAbort'>",
    ]
    for v in values:
        out = loads(pickle.dumps(v, protocol=protocol))
        if isinstance(v, numpy.ndarray):
            assert out.dtype == v.dtype and (out == v).all()
        else:
            assert out == v and type(out) is type(v), v


def test_every_pickled_value_of_a_published_store_loads(legacy_redis, legacy_publish):
    """All pickles blissdata 0.3.1 writes (info hashes, data/desc, timestamps, exceptions, lima
    status and reference lists, node refs, batches as numpy arrays) load with the restricted unpickler."""
    legacy_publish({"scans": [
        {"npoints": 12, "batch": 5, "lima": ["lima_simulator"], "lima_batch": 2},
        {"npoints": 10, "outcome": "FAILURE", "fail_after": 3},
        {"npoints": 50, "outcome": "USER_ABORT", "fail_after": 20, "batch": 3},
        {"sequence": "myseq", "children": [{"npoints": 3}, {"type": "ct", "npoints": 1, "save": False}]},
    ]})
    r = legacy_redis.client()
    seen = 0
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        if kind == b"hash":
            values = list(r.hgetall(key).values())
        elif kind == b"stream":
            values = [v for _, e in r.xrange(key) for v in e.values()]
        elif kind == b"list":
            values = r.lrange(key, 0, -1)
        else:
            continue
        for v in values:
            if v[:1] == b"\x80":
                out = loads(v)
                expected = pickle.loads(v)  # trusted here: the test's own publisher wrote it
                if isinstance(expected, numpy.ndarray):
                    assert (out == expected).all()
                else:
                    assert repr(out) == repr(expected)
                seen += 1
    assert seen > 300


def test_malicious_payload_is_rejected_and_never_executed(tmp_path):
    target = tmp_path / "pwned"
    payloads = [
        pickle.dumps(_Reduce(os.system, f"touch {target}")),
        pickle.dumps(_Reduce(os.system, f"touch {target}"), protocol=0),
        pickle.dumps({"state": _Reduce(os.system, f"touch {target}")}),  # nested in a dict
        pickle.dumps([1, 2, (_Reduce(subprocess.Popen, ["touch", str(target)]),)]),
        pickle.dumps(_Reduce(eval, f"open({str(target)!r}, 'w').close()")),
        pickle.dumps(_Reduce(exec, f"open({str(target)!r}, 'w').close()")),
        b"cos\nsystem\n(S'touch " + str(target).encode() + b"'\ntR.",  # hand-written protocol 0
        b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'touch "
        + str(target).encode() + b"'\ntR.",
    ]
    for p in payloads:
        with pytest.raises(PickleRejected) as err:
            loads(p)
        assert err.value.reason == "global not allowed"
    assert not target.exists()


def test_numpy_gadgets_are_rejected(tmp_path):
    target = tmp_path / "pwned"
    from exporter.store.legacy import unpickler

    multiarray_module = "numpy._core.multiarray" if hasattr(numpy, "_core") else "numpy.core.multiarray"
    evil = _Reduce(os.system, f"touch {target}")
    # an object-dtype scalar or array would carry arbitrary objects: refused before they are built
    obj_scalar = pickle.dumps(numpy.array([evil], dtype=object)[0:1])
    with pytest.raises(PickleRejected):
        loads(obj_scalar)
    with pytest.raises(PickleRejected):
        unpickler.allowed_globals()[(multiarray_module, "scalar")](numpy.dtype("O"), "x")
    # an array reconstruction that is not numpy's own (empty, then __setstate__)
    with pytest.raises(PickleRejected):
        unpickler.allowed_globals()[(multiarray_module, "_reconstruct")](numpy.ndarray, (10**9,), b"b")
    for name in ("object_", "void"):
        assert ("numpy", name) not in allowed_globals()
    assert not target.exists()


def test_bliss_classes_and_other_globals_are_rejected():
    class ScanAbort(Exception):
        pass

    ScanAbort.__module__ = "bliss.scanning.scan"
    for p, (module, name) in [
        (b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x13bliss.scanning.scan\x94\x8c\tScanAbort\x94\x93\x94.",
         ("bliss.scanning.scan", "ScanAbort")),
        (pickle.dumps(_Reduce(getattr, int, "mro")), ("builtins", "getattr")),
        (pickle.dumps(datetime.datetime.now), ("builtins", "getattr")),
    ]:
        with pytest.raises(PickleRejected) as err:
            loads(p)
        assert (err.value.module, err.value.name) == (module, name)


@pytest.mark.parametrize("data", [b"", b"\x80\x04", b"garbage", b"\x80\x04K", pickle.dumps(1)[:-1],
                                  b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00(]\x94h\x99."])
def test_malformed_input_is_rejected(data):
    with pytest.raises(PickleRejected):
        loads(data)


def test_persistent_ids_size_and_type_are_rejected():
    with pytest.raises(PickleRejected):
        loads(b"\x80\x04\x95\x06\x00\x00\x00\x00\x00\x00\x00\x8c\x01x\x94Q.")  # BINPERSID
    with pytest.raises(PickleRejected):
        loads(pickle.dumps("x" * 100), max_bytes=50)
    with pytest.raises(PickleRejected):
        loads("not bytes")  # type: ignore[arg-type]


def test_no_global_is_named_without_being_checked():
    """Every opcode that names a global goes through find_class (checked on a sample of what
    blissdata writes): the pickles only name allowed globals."""
    sample = pickle.dumps({"dtype": numpy.float64, "t": datetime.datetime(2026, 1, 1), "a": numpy.arange(3.0)})
    names = [op.name for op, _, _ in pickletools.genops(sample)]
    assert "STACK_GLOBAL" in names and "REDUCE" in names
    assert sys.modules["exporter.store.legacy.unpickler"].loads(sample)["dtype"] is numpy.float64
