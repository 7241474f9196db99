"""Dump keys of a legacy data store in the format of /work/shared/reference/bliss-1.11.4-scans.

    .venv-legacy/bin/python tests/legacy/dump.py REDIS_URL PATTERN [PATTERN ...]   # JSON on stdout

Every key matching a pattern (KEYS: a test tool, never the exporter's way): its Redis type, TTL and
content. Pickled hash values and stream fields are shown as {"pickle": repr(value)} (unpickled with
exporter/store/legacy/unpickler.py, never pickle.loads); streams show XINFO STREAM figures and their first 3
and last 2 entries. Run in .venv-legacy so that numpy 1.x reprs compare with the reference's.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import redis

_spec = importlib.util.spec_from_file_location(
    "unpickler", Path(__file__).resolve().parents[2] / "exporter" / "store" / "legacy" / "unpickler.py")
unpickler = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(unpickler)


def show(value: bytes):
    if value[:1] == b"\x80":
        try:
            return {"pickle": repr(unpickler.loads(value))}
        except unpickler.PickleRejected as exc:
            return {"rejected": str(exc)}
    return value.decode()


def entries(items):
    return [[i.decode(), {k.decode(): show(v) for k, v in e.items()}] for i, e in items]


def dump_key(r: redis.Redis, key: bytes) -> dict:
    kind = r.type(key).decode()
    out = {"type": kind, "ttl": r.ttl(key)}
    if kind == "hash":
        out["fields"] = {k.decode(): show(v) for k, v in r.hgetall(key).items()}
    elif kind == "stream":
        info = r.xinfo_stream(key)
        out["xinfo"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in info.items()
                        if k in ("length", "entries-added", "max-deleted-entry-id", "last-generated-id")}
        out["first"] = entries(r.xrange(key, count=3))
        out["last"] = entries(reversed(r.xrevrange(key, count=2)))
    elif kind == "list":
        out["items"] = [show(v) for v in r.lrange(key, 0, -1)]
    elif kind == "string":
        out["value"] = show(r.get(key))
    return out


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    url, patterns = argv[0], argv[1:]
    r = redis.Redis.from_url(url)
    keys = sorted({k for p in patterns for k in r.keys(p)})
    json.dump({k.decode(): dump_key(r, k) for k in keys}, sys.stdout, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
