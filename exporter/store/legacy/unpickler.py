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
and logs a rejection; it never falls back to `pickle.loads`. `plain` gives an unpickled value as the
JSON of blissdata 2.x would.

Standalone (standard library and numpy only): tests/legacy/dump.py loads this file by its path in the
BLISS 1.x venv.
"""

from __future__ import annotations

import _compat_pickle
import collections
import datetime
import io
import pickle
from typing import Any, Callable

__all__ = ["PickleRejected", "loads", "allowed_globals", "plain"]

MAX_BYTES = 16 * 1024 * 1024  # a legacy value larger than this is not something BLISS writes


class PickleRejected(ValueError):
    """The bytes are not a pickle of what BLISS 1.x writes (never executed)."""

    def __init__(self, reason: str, module: str | None = None, name: str | None = None):
        self.reason = reason
        self.module = module
        self.name = name
        super().__init__(f"{reason}: {module}.{name}" if module else reason)


_BUILTINS: dict[str, type] = {
    "dict": dict, "list": list, "tuple": tuple, "set": set, "frozenset": frozenset, "str": str,
    "bytes": bytes, "bytearray": bytearray, "int": int, "float": float, "complex": complex,
    "bool": bool, "NoneType": type(None),
}
_DATETIME: dict[str, type] = {n: getattr(datetime, n) for n in ("datetime", "date", "time", "timedelta", "timezone")}


def _numpy_globals() -> dict[tuple[str, str], Any]:
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy comes with the exporter's dependencies
        return {}
    core = getattr(numpy, "_core", None)
    if core is None or not hasattr(core, "multiarray"):  # numpy 1.x
        from numpy.core import multiarray
    else:
        multiarray = core.multiarray
    allowed: dict[tuple[str, str], Any] = {}
    # scalar types as classes (channel dtype) and their values: every numpy.generic leaf type
    # except object_ and void (which could carry arbitrary objects / structured bytes)
    for name in dir(numpy):
        obj = getattr(numpy, name, None)
        if isinstance(obj, type) and issubclass(obj, numpy.generic) and obj not in (numpy.object_, numpy.void):
            allowed[("numpy", name)] = obj
    allowed[("numpy", "dtype")] = numpy.dtype
    allowed[("numpy", "ndarray")] = numpy.ndarray

    def _reconstruct(subtype: type, shape: tuple[int, ...], dtype_char: bytes) -> Any:
        # numpy's own pickles always start from an empty array that __setstate__ then fills
        if subtype is not numpy.ndarray or tuple(shape) != (0,):
            raise PickleRejected("unexpected array reconstruction", "numpy", "_reconstruct")
        return multiarray._reconstruct(subtype, shape, dtype_char)

    def scalar(dtype: Any, *state: Any) -> Any:
        if not isinstance(dtype, numpy.dtype) or dtype.hasobject or dtype.kind == "V":
            raise PickleRejected("unexpected numpy scalar", "numpy", "scalar")
        return multiarray.scalar(dtype, *state)

    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = _frombuffer_checked(numpy)
    return allowed


def _frombuffer_checked(numpy: Any) -> Callable[..., Any]:
    def _frombuffer(buf: bytes, dtype: Any, shape: tuple[int, ...], order: str) -> Any:  # protocol-5 pickles of arrays
        if not isinstance(dtype, numpy.dtype) or dtype.hasobject:
            raise PickleRejected("unexpected array buffer", "numpy", "_frombuffer")
        return numpy.frombuffer(buf, dtype=dtype).reshape(shape, order=order)

    return _frombuffer


def _codecs_encode(obj: object, encoding: str = "utf-8") -> bytes:
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise PickleRejected("unexpected _codecs.encode", "_codecs", "encode")
    return obj.encode(encoding)


_allowed: dict[tuple[str, str], Any] | None = None


def allowed_globals() -> dict[tuple[str, str], Any]:
    """{(module, name): object} that a legacy pickle may name."""
    global _allowed
    if _allowed is None:
        allowed: dict[tuple[str, str], Any] = {("builtins", n): o for n, o in _BUILTINS.items()}
        allowed.update({("datetime", n): o for n, o in _DATETIME.items()})
        allowed[("collections", "OrderedDict")] = collections.OrderedDict
        allowed[("_codecs", "encode")] = _codecs_encode
        allowed.update(_numpy_globals())
        _allowed = allowed
    return _allowed


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
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

    def persistent_load(self, pid: Any) -> Any:
        raise PickleRejected("persistent id not allowed")


def loads(data: bytes | bytearray | memoryview, max_bytes: int = MAX_BYTES) -> Any:
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


def plain(value: Any, depth: int = 0) -> Any:
    """A value of scan.info as blissdata 2.x's JSON would give it: numpy scalars and arrays as Python
    numbers and lists (`valid_count` wants an int, not a numpy.int64), datetimes as ISO strings,
    tuples and sets as lists, dict keys as strings."""
    if depth > 20:
        return str(value)
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v, depth + 1) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode(errors="replace")
    tolist = getattr(value, "tolist", None)  # numpy scalars (a Python value) and arrays (lists)
    if tolist is not None:
        try:
            return plain(tolist(), depth + 1)
        except (TypeError, ValueError):
            pass
    return str(value)  # a type, a timedelta...: its name
