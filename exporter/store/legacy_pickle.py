"""A restricted unpickler for the pickled values of BLISS 1.x (blissdata 0.3.1) data stores.

blissdata 0.3.1 pickles every value of a node's `{db_name}_info` hash (settings.HashObjSetting:
`write_type_conversion=pickle.dumps`), the `__DATA__`/`__DESC__` fields of channel data streams,
`__TIMESTAMP__`/`__EXCEPTION__` of the `_prepared`/`_end` streams, lima `__STATUS__` events and the
`_data_ref` list. `pickle.loads` on such bytes runs whatever callable the bytes name: a data store is
not trusted input. `loads` here resolves only the globals BLISS 1.11.4 really writes (checked on
every pickled value of /work/shared/reference/bliss-1.11.4-scans and of tests/legacy/publish.py):

- builtins containers and scalars: dict, list, tuple, set, frozenset, str, bytes, bytearray, int,
  float, complex, bool (pickled as opcodes, or as the classes themselves: channel `dtype` is often
  `<class 'float'>`, `<class 'int'>`, `<class 'str'>`);
- datetime.datetime / date / time / timedelta / timezone (scan.info `start_time`, `end_time`);
- numpy scalar types as classes (`dtype` `<class 'numpy.float64'>`) and as values
  (`numpy.core.multiarray.scalar`), `numpy.dtype`, and arrays (`numpy.core.multiarray._reconstruct`
  + `numpy.ndarray`: the `__DATA__` of a batch of several points is a numpy array), under both
  numpy 1 (`numpy.core`) and numpy 2 (`numpy._core`) module names;
- `_codecs.encode` (protocol-2 pickles of bytes) and `collections.OrderedDict`.

Anything else - `os.system`, `builtins.eval`, `subprocess.Popen`, `builtins.getattr`, any class of
BLISS (`bliss.scanning.scan.ScanAbort` would be one: BLISS 1.11.4 writes the *string*
"<class 'bliss.scanning.scan.ScanAbort'>", never the class) - raises PickleRejected before anything
is called. So do malformed, truncated or over-long input and `persistent_load`. The caller counts
and logs a rejection; it never falls back to `pickle.loads`.
"""

from __future__ import annotations

import _compat_pickle
import collections
import datetime
import io
import pickle

__all__ = ["PickleRejected", "loads", "allowed_globals"]

MAX_BYTES = 16 * 1024 * 1024  # a legacy value larger than this is not something BLISS writes


class PickleRejected(ValueError):
    """The bytes are not a pickle of what BLISS 1.x writes (never executed)."""

    def __init__(self, reason: str, module: str | None = None, name: str | None = None):
        self.reason = reason
        self.module = module
        self.name = name
        super().__init__(f"{reason}: {module}.{name}" if module else reason)


_BUILTINS = {
    "dict": dict, "list": list, "tuple": tuple, "set": set, "frozenset": frozenset, "str": str,
    "bytes": bytes, "bytearray": bytearray, "int": int, "float": float, "complex": complex,
    "bool": bool, "NoneType": type(None),
}
_DATETIME = {n: getattr(datetime, n) for n in ("datetime", "date", "time", "timedelta", "timezone")}


def _numpy_globals() -> dict:
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy comes with the exporter's dependencies
        return {}
    core = getattr(numpy, "_core", None)
    if core is None or not hasattr(core, "multiarray"):  # numpy 1.x
        from numpy.core import multiarray
    else:
        multiarray = core.multiarray
    allowed: dict = {}
    # scalar types as classes (channel dtype) and their values: every numpy.generic leaf type
    # except object_ and void (which could carry arbitrary objects / structured bytes)
    for name in dir(numpy):
        obj = getattr(numpy, name, None)
        if isinstance(obj, type) and issubclass(obj, numpy.generic) and obj not in (numpy.object_, numpy.void):
            allowed[("numpy", name)] = obj
    allowed[("numpy", "dtype")] = numpy.dtype
    allowed[("numpy", "ndarray")] = numpy.ndarray

    def _reconstruct(subtype, shape, dtype_char):
        # numpy's own pickles always start from an empty array that __setstate__ then fills
        if subtype is not numpy.ndarray or tuple(shape) != (0,):
            raise PickleRejected("unexpected array reconstruction", "numpy", "_reconstruct")
        return multiarray._reconstruct(subtype, shape, dtype_char)

    def scalar(dtype, *state):
        if not isinstance(dtype, numpy.dtype) or dtype.hasobject or dtype.kind == "V":
            raise PickleRejected("unexpected numpy scalar", "numpy", "scalar")
        return multiarray.scalar(dtype, *state)

    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = _frombuffer_checked(numpy)
    return allowed


def _frombuffer_checked(numpy):
    def _frombuffer(buf, dtype, shape, order):  # protocol-5 pickles of arrays
        if not isinstance(dtype, numpy.dtype) or dtype.hasobject:
            raise PickleRejected("unexpected array buffer", "numpy", "_frombuffer")
        return numpy.frombuffer(buf, dtype=dtype).reshape(shape, order=order)

    return _frombuffer


def _codecs_encode(obj, encoding="utf-8"):
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise PickleRejected("unexpected _codecs.encode", "_codecs", "encode")
    return obj.encode(encoding)


_allowed: dict | None = None


def allowed_globals() -> dict:
    """{(module, name): object} that a legacy pickle may name."""
    global _allowed
    if _allowed is None:
        allowed = {("builtins", n): o for n, o in _BUILTINS.items()}
        allowed.update({("datetime", n): o for n, o in _DATETIME.items()})
        allowed[("collections", "OrderedDict")] = collections.OrderedDict
        allowed[("_codecs", "encode")] = _codecs_encode
        allowed.update(_numpy_globals())
        _allowed = allowed
    return _allowed


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        # Python 2 names in protocol 0-2 pickles (pickle.Unpickler maps them the same way); the
        # mapped name must still be allowed
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        obj = allowed_globals().get((module, name))
        if obj is None:
            raise PickleRejected("global not allowed", module, name)
        return obj

    def persistent_load(self, pid):
        raise PickleRejected("persistent id not allowed")


def loads(data: bytes, max_bytes: int = MAX_BYTES):
    """Unpickle a value written by BLISS 1.x; PickleRejected for anything else (never executed)."""
    if isinstance(data, memoryview):
        data = data.tobytes()
    if not isinstance(data, (bytes, bytearray)):
        raise PickleRejected(f"not bytes: {type(data).__name__}")
    if len(data) > max_bytes:
        raise PickleRejected(f"too large: {len(data)} bytes")
    try:
        return _Unpickler(io.BytesIO(data)).load()
    except PickleRejected:
        raise
    except RecursionError:
        raise PickleRejected("too deeply nested") from None
    except Exception as exc:  # malformed, truncated, wrong state for a BUILD, ...
        raise PickleRejected(f"malformed: {type(exc).__name__}: {exc}"[:300]) from None
