"""Micro-experiment: CPU per short scan of the exporter's Redis reads, as done now and batched.

    python benchmarks/experiments/short_scan_reads.py [--scans 300] [--rounds 7]

A private Redis Stack gets --scans closed short scans (3 channels x 10 points, one point per send)
published through blissdata (benchmarks/publisher.py's Publisher). Then, in this gevent-patched
process, through the exporter's own DataStoreSource (single-connection client, as each watcher
greenlet has), each variant reads what the exporter reads for every one of those scans; CPU seconds
(time.process_time) per scan, median of --rounds interleaved rounds. exporter/ is not modified: the
batched variants are written here with redis-py pipelines and the exporter's parsing functions
(parse_scan_document, parse_streams, DataStoreSource._parse_stats).

Per-call costs (what the exporter does now, per scan):
  read_history   XREAD COUNT 1 of the scan history (each history read returns ~1 entry at 77 scans/s)
  history_info   XINFO STREAM of the history (the gap check after each history batch)
  load_scan      TTL + JSON.GET of the document, parsed (pipelined: 1 round trip)
  scan_streams   JSON.GET $.data_streams through redis-py's JSON object (at PREPARED)
  read_states    one XREAD over 12 scans' state streams, per scan (1/12 of it)
  closing_snap   XINFO of the 3 data streams + JSON.GET $.info.end_reason (1 round trip)
Levers:
  history+info   XREAD and XINFO in one pipeline (Redis answers a pipeline in order, also after
                 a blocking XREAD: the gap check comes with the entries)
  load xB        TTL + JSON.GET of B new history entries in one pipeline (B = 2, 5, 15)
  load+info xB   the same pipeline also carrying the history's XINFO
  streams raw    JSON.GET $.data_streams through execute_command + json.loads (no redis-py JSON object)
  streams xB     that for B newly PREPARED scans in one pipeline
  closing xB     closing snapshots of B scans in one pipeline
  parse json/orjson  only json.loads vs orjson.loads of the document (bytes), then parse_scan_document
  trip xN        one pipeline of N TTLs: the cost of a round trip and of each command in it
Composed per-scan sequences (the weights of bench.py's round-trip table: scan_streams for 63 % of
the scans, one state XREAD per 12 scans):
  now            read_history + history_info + load_scan + 0.63 scan_streams + read_states/12 + closing_snap
  merged (B=1)   history+info + load_scan + 0.63 streams raw + read_states/12 + closing_snap
  batched B      (history+info)/B + load xB + 0.63 streams xB + read_states/12 + closing xB
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import orjson  # noqa: E402
import redis  # noqa: E402
from publisher import Publisher  # noqa: E402

from exporter.devtools.redis_stack import RedisStackServer  # noqa: E402
from exporter.devtools.simulator import Truth  # noqa: E402
from exporter.store.blissdata2 import HISTORY_STREAM, DataStoreSource, _deleted  # noqa: E402
from exporter.store.documents import parse_scan_document, parse_streams  # noqa: E402


class Fixture:
    def __init__(self, url: str, n: int):
        pub = Publisher(url, "reads", streams=3, events=10, points=1, first_number=1)
        truth = Truth()
        for _ in range(n):
            pub.publish(truth)
        self.src = DataStoreSource(url, single_connection=True)
        self.raw = redis.Redis.from_url(self.src.url, single_connection_client=True)  # no JSON reply parsers
        entries = self.raw.xrange(HISTORY_STREAM)
        self.history = [(eid.decode(), f[b"key"].decode()) for eid, f in entries][-n:]
        self.prev = ["0-0"] + [eid for eid, _ in self.history[:-1]]
        self.docs = {key: self.src.load_scan(key) for _, key in self.history}
        self.keys = [key for _, key in self.history]
        self.streams = {key: {k: kind for k, kind in doc.streams.values()} for key, doc in self.docs.items()}
        self.raw_docs = [self.raw.execute_command("JSON.GET", key) for key in self.keys]


def chunks(seq, b):
    return [seq[i:i + b] for i in range(0, len(seq), b)]


# -- the exporter's calls, as they are --------------------------------------------------------------
def read_history(fx):
    for since in fx.prev:
        fx.src.read_history(since, None, count=1)


def history_info(fx):
    for _ in fx.keys:
        fx.src.history_info()


def load_scan(fx):
    for key in fx.keys:
        fx.src.load_scan(key)


def scan_streams(fx):
    for key in fx.keys:
        fx.src.scan_streams(key)


def read_states(fx):
    docs = [fx.docs[k] for k in fx.keys]
    for group in chunks(docs, 12):
        fx.src.read_states({d.state_key: "0-0" for d in group}, None)
    return len(docs)


def closing_snapshot(fx):
    for key in fx.keys:
        fx.src.closing_snapshot(key, fx.streams[key])


# -- levers ---------------------------------------------------------------------------------------
def history_and_info(fx, b=1):
    r = fx.src.redis
    for since in fx.prev[::b]:
        pipe = r.pipeline(transaction=False)
        pipe.xread({HISTORY_STREAM: since}, count=b)
        pipe.xinfo_stream(HISTORY_STREAM)
        raw, info = pipe.execute()
        [(e.decode(), f[b"key"].decode()) for _, entries in raw for e, f in entries]
        int(info["entries-added"]), int(info["length"])


def load_batch(fx, b, with_info=False):
    r = fx.src.redis
    for group in chunks(fx.keys, b):
        pipe = r.pipeline(transaction=False)
        if with_info:
            pipe.xinfo_stream(HISTORY_STREAM)
        for key in group:
            pipe.ttl(key)
            pipe.execute_command("JSON.GET", key)
        replies = pipe.execute(raise_on_error=False)
        if with_info:
            replies = replies[1:]
        for key, ttl, doc in zip(group, replies[0::2], replies[1::2]):
            if not _deleted(ttl) and doc is not None:
                parse_scan_document(key, doc)


def streams_raw(fx, b=1):
    r = fx.raw
    for group in chunks(fx.keys, b):
        pipe = r.pipeline(transaction=False)
        for key in group:
            pipe.execute_command("JSON.GET", key, "$.data_streams")
        for key, found in zip(group, pipe.execute()):
            parse_streams(key, json.loads(found)[0])


def closing_batch(fx, b):
    src = fx.src
    for group in chunks(fx.keys, b):
        pipe = src.redis.pipeline(transaction=False)
        plan = []
        for key in group:
            keys = list(fx.streams[key])
            for k in keys:
                pipe.xinfo_stream(k)
            pipe.execute_command("JSON.GET", key, "$.info.end_reason")
            plan.append((key, keys))
        replies = pipe.execute(raise_on_error=False)
        i = 0
        for key, keys in plan:
            src._parse_stats(keys, fx.streams[key], replies[i:i + len(keys)])
            reason = replies[i + len(keys)]
            str(reason[0]) if reason else None
            i += len(keys) + 1


def parse_json(fx):
    for key, doc in zip(fx.keys, fx.raw_docs):
        parse_scan_document(key, json.loads(doc))


def parse_orjson(fx):
    for key, doc in zip(fx.keys, fx.raw_docs):
        parse_scan_document(key, orjson.loads(doc))


def trips(fx, n):
    r = fx.raw
    key = fx.keys[0]
    for _ in fx.keys:
        if n == 1:
            r.ttl(key)
        else:
            pipe = r.pipeline(transaction=False)
            for _ in range(n):
                pipe.ttl(key)
            pipe.execute()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scans", type=int, default=300)
    p.add_argument("--rounds", type=int, default=7)
    a = p.parse_args()
    server = RedisStackServer().start()
    try:
        server.init_blissdata()
        fx = Fixture(server.url, a.scans)
        n = len(fx.keys)
        variants = {
            "read_history": read_history, "history_info": history_info, "load_scan": load_scan,
            "scan_streams": scan_streams, "read_states (1/12 XREAD)": read_states,
            "closing_snapshot": closing_snapshot,
            "history+info (1 trip)": history_and_info,
            **{f"history+info, B={b}": (lambda fx, b=b: history_and_info(fx, b)) for b in (2, 5, 15)},
            **{f"load x{b}": (lambda fx, b=b: load_batch(fx, b)) for b in (2, 5, 15)},
            **{f"load+info x{b}": (lambda fx, b=b: load_batch(fx, b, True)) for b in (1, 2, 5, 15)},
            "streams raw": streams_raw,
            **{f"streams raw x{b}": (lambda fx, b=b: streams_raw(fx, b)) for b in (2, 5, 15)},
            **{f"closing x{b}": (lambda fx, b=b: closing_batch(fx, b)) for b in (2, 5, 15)},
            "parse: json.loads + parse_scan_document": parse_json,
            "parse: orjson.loads + parse_scan_document": parse_orjson,
            **{f"trip x{k} TTL": (lambda fx, k=k: trips(fx, k)) for k in (1, 2, 4, 8, 16, 32)},
        }
        times = {v: [] for v in variants}
        for fn in variants.values():
            fn(fx)  # warm
        for _ in range(a.rounds):
            for name, fn in variants.items():
                c0 = time.process_time()
                fn(fx)
                times[name].append((time.process_time() - c0) / n)
        med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
        print(f"CPU µs per scan (or per call for 'trip'), {n} short scans, median of {a.rounds} rounds:\n")
        print("| call | µs | min-max |")
        print("|---|---:|---:|")
        for k in variants:
            print(f"| {k} | {med[k]:.0f} | {min(times[k]) * 1e6:.0f}-{max(times[k]) * 1e6:.0f} |")
        now = (med["read_history"] + med["history_info"] + med["load_scan"] + 0.63 * med["scan_streams"]
               + med["read_states (1/12 XREAD)"] + med["closing_snapshot"])
        merged = (med["history+info (1 trip)"] + med["load_scan"] + 0.63 * med["streams raw"]
                  + med["read_states (1/12 XREAD)"] + med["closing_snapshot"])
        print("\nComposed per-scan read sequences (µs CPU per scan):\n")
        print("| sequence | round trips / scan | µs / scan | vs now |")
        print("|---|---:|---:|---:|")
        print(f"| now | {1 + 1 + 1 + 0.63 + 1 / 12 + 1:.2f} | {now:.0f} | |")
        print(f"| merged, B=1 (history+info, raw streams) | {1 + 1 + 0.63 + 1 / 12 + 1:.2f} | {merged:.0f} | "
              f"{(merged - now) / now * 100:+.0f} % |")
        for b in (2, 5, 15):
            batched = (med[f"history+info, B={b}"] + med[f"load x{b}"] + 0.63 * med[f"streams raw x{b}"]
                       + med["read_states (1/12 XREAD)"] + med[f"closing x{b}"])
            rt = 1 / b + 1 / b + 0.63 / b + 1 / 12 + 1 / b
            print(f"| batched, B={b} | {rt:.2f} | {batched:.0f} | {(batched - now) / now * 100:+.0f} % |")
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
