"""Experiments behind docs/legacy-model.md, on a plain redis-server and the genuine-layout publisher.

    .venv/bin/python -m benchmarks.experiments.legacy_model        # prints each experiment's findings

Each experiment starts a fresh plain Redis (tests/legacy_fixtures.LegacyRedis), publishes with
tests/legacy/publish.py in .venv-legacy and reads the store with redis-py the read-only way the note
describes (XINFO STREAM, XRANGE/XREVRANGE, HGET/HMGET, TTL), unpickling with exporter.store.legacy.unpickler.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from exporter.store.legacy.unpickler import loads
from tests.legacy_fixtures import LEGACY_PYTHON, ROOT, LegacyPublisher, LegacyRedis

SCANS = "demo_session:tmp:scans"
TMP = Path("/tmp") / "legacy-model-experiments"


def fresh(*extra):
    TMP.mkdir(exist_ok=True)
    return LegacyRedis(*extra, workdir=TMP).start()


def publish(server, spec, wait=True):
    pub = LegacyPublisher({"redis_url": server.url, "session": "demo_session", **spec}, TMP)
    return pub.finish() if wait else pub


def ms(entry_id: bytes) -> int:
    return int(entry_id.split(b"-")[0])


def e1_ids_are_server_times():
    """_prepared, _end and _children_list ids are auto ids (server ms); __TIMESTAMP__ is the client's."""
    s = fresh()
    r = s.client()
    t0 = r.time()
    publish(s, {"scans": [{"npoints": 5, "point_delay": 0.01}]})
    t1 = r.time()
    lo, hi = t0[0] * 1000 + t0[1] // 1000, t1[0] * 1000 + t1[1] // 1000
    out = {}
    for suffix in ("_prepared", "_end"):
        (eid, e), = r.xrange(f"{SCANS}:1_loopscan{suffix}")
        out[suffix] = {"id_ms": ms(eid), "seq": int(eid.split(b"-")[1]), "within_server_TIME": lo <= ms(eid) <= hi,
                       "__TIMESTAMP__ (client) ms": round(loads(e[b"__TIMESTAMP__"]) * 1000, 3)}
    eid, e = r.xrange(f"{SCANS}_children_list")[-1]
    out["scan NEW_NODE in scans_children_list"] = {"id_ms": ms(eid), "within_server_TIME": lo <= ms(eid) <= hi}
    info = r.hgetall(f"{SCANS}:1_loopscan_info")
    out["info start_timestamp (client) ms"] = round(loads(info[b"start_timestamp"]) * 1000, 3)
    out["duration prepared->end (server ms)"] = out["_end"]["id_ms"] - out["_prepared"]["id_ms"]
    out["keys in database 0"] = s.client(0).dbsize()
    out["keys in database 1"] = r.dbsize()
    s.stop()
    return out


def e2_points_from_ids_and_npoints():
    """Batches: ids are first point index + 1; points = last id - 1 + last __NPOINTS__; new_data =
    entries-added - 1 (the phantom 0-1 entry); the sum of __NPOINTS__ is the same until trimming."""
    s = fresh()
    r = s.client()
    pub = publish(s, {"scans": [{"npoints": 100, "batch": 7, "counters": ["diode1"]}]})
    t = pub.truth("1_loopscan")
    key = f"{SCANS}:1_loopscan:timer:epoch_data"
    info = r.xinfo_stream(key)
    (lid, last), = r.xrevrange(key, count=1)
    ids = [ms(i) for i, _ in r.xrange(key)]
    out = {"ids": ids[:4] + ["..."] + ids[-2:], "last __NPOINTS__": int(last[b"__NPOINTS__"]),
           "points = last id - 1 + last npoints": ms(lid) - 1 + int(last[b"__NPOINTS__"]),
           "sum __NPOINTS__": sum(int(e[b"__NPOINTS__"]) for _, e in r.xrange(key)),
           "entries-added - 1": info["entries-added"] - 1, "length": info["length"],
           "truth xadds": t["xadds"][key[:-5]], "truth points": t["channels"][key[:-5]],
           "xinfo last-entry npoints": int(info["last-entry"][1][b"__NPOINTS__"]),
           "__DATA__ of a batch": type(loads(last[b"__DATA__"])).__name__}
    s.stop()
    return out


def e3_trimming():
    """MAXLEN ~2048: XLEN and the sum of __NPOINTS__ drop, entries-added and the last id stay exact."""
    s = fresh()
    r = s.client()
    publish(s, {"scans": [{"npoints": 5000, "counters": ["diode1"]}]})
    key = f"{SCANS}:1_loopscan:timer:epoch_data"
    info = r.xinfo_stream(key)
    out = {"length": info["length"], "entries-added": info["entries-added"],
           "first id": info["first-entry"][0].decode(), "last-generated-id": info["last-generated-id"].decode(),
           "max-deleted-entry-id": info["max-deleted-entry-id"].decode(),
           "sum __NPOINTS__ left": sum(int(e[b"__NPOINTS__"]) for _, e in r.xrange(key))}
    s.stop()
    return out


def e4_children_lists():
    """Distinct nodes vs children_list entries: controllers sharing a name are listed twice."""
    s = fresh()
    r = s.client()
    pub = publish(s, {"scans": [{"npoints": 3, "counters": ["diode1", "diode2", "diode3"]}]})
    scan = f"{SCANS}:1_loopscan"
    entries, nodes = 0, set()
    todo = [scan]
    while todo:
        node = todo.pop()
        for _, e in r.xrange(f"{node}_children_list"):
            entries += 1
            child = e[b"db_name"].decode()
            if child not in nodes:
                nodes.add(child)
                todo.append(child)
    types = Counter(r.hget(n, "node_type").decode() for n in nodes)
    out = {"children_list entries under the scan": entries, "distinct nodes": len(nodes), "node types": dict(types),
           "truth new_node (scan + distinct)": pub.truth("1_loopscan")["new_node"]}
    s.stop()
    return out


def e5_running_scan_keys_and_ttls():
    """While a scan runs its keys have no TTL; at its end: 600 s under the scan, a day for the scan."""
    s = fresh()
    r = s.client()
    pub = publish(s, {"scans": [{"npoints": 5, "wait": "hold"}]}, wait=False)
    pub.wait_for("waiting", scan="1_loopscan")
    scan = f"{SCANS}:1_loopscan"
    during = {k: r.ttl(k) for k in (scan, f"{scan}_info", f"{scan}:timer:epoch_data", "demo_session")}
    state_during = loads(r.hget(f"{scan}_info", "state"))
    end_len_during = r.xinfo_stream(f"{scan}_end")["length"]
    pub.release()
    pub.finish()
    after = {k: r.ttl(k) for k in during}
    out = {"ttl during": during, "ttl after": after, "state before END": state_during,
           "_end length before END": end_len_during, "state after": loads(r.hget(f"{scan}_info", "state"))}
    s.stop()
    return out


def e6_walker_writes():
    """The published walker's commands (same workload with and without seed_watcher_legacy.py) and counts."""
    spec = {"scans": [{"npoints": 50, "counters": ["diode1"], "point_delay": 0.002},
                      {"sequence": "myseq", "children": [{"npoints": 5, "counters": ["diode1"]}]}]}
    stats = {}
    for with_walker in (False, True):
        s = fresh()
        r = s.client(0)
        r.config_resetstat()
        proc = None
        if with_walker:
            proc = subprocess.Popen([str(LEGACY_PYTHON), "-m", "benchmarks.seed_watcher_legacy",
                                     "--redis-url", s.url, "--scans", "3", "--quiet"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
            assert proc.stdout.readline().strip() == "READY"
        pub = publish(s, spec)
        if proc is not None:
            summary = json.loads(proc.communicate(timeout=60)[0].strip().splitlines()[-1])
            walker = {t["scan"]: {"truth new_data": t["new_data"], "truth new_node": t["new_node"],
                                  "walker": summary["per_scan"].get(t["scan"])} for t in pub.truths}
        raw = r.info("commandstats")
        stats[with_walker] = {k.replace("cmdstat_", ""): v["calls"] for k, v in raw.items()}
        s.stop()
    diff = {k: stats[True].get(k, 0) - stats[False].get(k, 0) for k in set(stats[True]) | set(stats[False])}
    return {"commands added by the walker": {k: v for k, v in sorted(diff.items()) if v > 0 and k not in
                                             ("config|resetstat", "info")},
            "walker counts vs truth": walker, "walker broken": summary["broken"]}


def e7_lima_and_node_refs():
    """Lima: one status event per XADD, frames = last_image_ready + 1; node_ref entries name children."""
    s = fresh()
    r = s.client()
    pub = publish(s, {"scans": [{"npoints": 10, "lima": ["lima_simulator"], "lima_batch": 3},
                                {"sequence": "myseq", "children": [{"npoints": 2}, {"npoints": 2}]}]})
    key = f"{SCANS}:1_loopscan:timer:lima_simulator:image_data"
    info = r.xinfo_stream(key)
    (lid, last), = r.xrevrange(key, count=1)
    status = loads(last[b"__STATUS__"])
    refs = [loads(e[b"__DATA__"]) for _, e in r.xrange(f"{SCANS}:2_myseq:GroupingMaster:scans_data")]
    out = {"lima ids": [i.decode() for i, _ in r.xrange(key)], "entries-added - 1": info["entries-added"] - 1,
           "frames = last_image_ready + 1": status["last_image_ready"] + 1,
           "truth frames": pub.truth("1_loopscan")["channels"][key[:-5]],
           "node_ref __DATA__": refs, "children": [t["key"] for t in pub.truths if t["role"] == "child"],
           "child info group": loads(r.hget(f"{SCANS}:3_loopscan_info", "group")),
           "sequence node_type": r.hget(f"{SCANS}:2_myseq", "node_type").decode()}
    s.stop()
    return out


def e8_evicted_streams():
    """A stream deleted (evicted) and written again has no phantom: max-deleted-entry-id 0-0,
    entries-added from 1; XREAD on a missing key is allowed and a blocked one wakes when it is created."""
    s = fresh()
    r = s.client()
    pub = publish(s, {"scans": [{"npoints": 5, "wait": "hold"}]}, wait=False)
    pub.wait_for("waiting", scan="1_loopscan")
    scan = f"{SCANS}:1_loopscan"
    before = r.xinfo_stream(f"{scan}_end")
    r.delete(f"{scan}_end", f"{scan}:timer:epoch_data")  # as allkeys-lru eviction would
    missing = r.xread({f"{scan}:timer:epoch_data": "0-0"})
    reader = s.client()
    got = {}
    t = threading.Thread(target=lambda: got.update(x=reader.xread({f"{scan}_end": "0-0"}, block=20000)))
    t.start()
    time.sleep(0.2)
    pub.release()
    pub.finish()
    t.join(30)
    after = r.xinfo_stream(f"{scan}_end")
    def fig(info):
        return {k: info[k].decode() if isinstance(info[k], bytes) else info[k]
                for k in ("length", "entries-added", "max-deleted-entry-id")}

    out = {"_end before": fig(before), "_end written again": fig(after),
           "XREAD on a missing key": missing, "blocked XREAD woken by the END": bool(got.get("x")),
           "__EXCEPTION__": loads(after["last-entry"][1][b"__EXCEPTION__"])}
    s.stop()
    return out


def main() -> int:
    for fn in (e1_ids_are_server_times, e2_points_from_ids_and_npoints, e3_trimming, e4_children_lists,
               e5_running_scan_keys_and_ttls, e6_walker_writes, e7_lima_and_node_refs, e8_evicted_streams):
        t = time.monotonic()
        result = fn()
        print(f"## {fn.__name__}: {fn.__doc__.strip()}")
        print(json.dumps(result, default=str))
        print(f"({time.monotonic() - t:.1f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
