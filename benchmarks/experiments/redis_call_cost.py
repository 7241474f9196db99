"""Micro-benchmark: CPU time of one Redis round trip through redis-py under gevent, as the exporter makes them.

    python -m benchmarks.experiments.redis_call_cost [--n 3000]

Starts a private Redis Stack, writes one stream shaped like a blissdata numeric stream, then times
(process CPU time, this process only, so a busy machine does not matter) each way of calling:
the pooled client the exporter uses, a single-connection client, and a raw connection (the floor:
no pool, no retry wrapper, no observability hooks). Also one scan_end log line (structlog, JSON).
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import redis  # noqa: E402

from exporter.devtools.redis_stack import RedisStackServer  # noqa: E402
from exporter.store import DataStoreSource  # noqa: E402


def cost(fn, n: int) -> float:
    for _ in range(min(200, n)):
        fn()
    t = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t) / n * 1e6


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=3000)
    a = p.parse_args()
    server = RedisStackServer().start()
    try:
        server.init_blissdata()
        url = server.url
        src = DataStoreSource(url)
        r = src.redis
        single = redis.Redis.from_url(src.url, single_connection_client=True, health_check_interval=0)
        keys = [f"esrf:stream:bench{i}" for i in range(8)]  # 8 numeric streams of 1000 entries
        key, state, scan = keys[0], "esrf:stream:state", "esrf:scan:bench"
        for k in keys:
            pl = r.pipeline(transaction=False)
            for i in range(1000):
                pl.xadd(k, {"len": 10, "payload": b"x" * 80}, id=f"{i * 10}-1")
            pl.execute()
        r.xadd(state, {"state": 1})
        last = r.xinfo_stream(state)["last-generated-id"]
        states = {state: last, **{f"{state}{i}": "$" for i in range(3)}}  # 4 state streams, nothing new
        r.execute_command("JSON.SET", scan, "$", '{"info": {"end_reason": "SUCCESS"}, "data_streams": {}}')
        raw = r.connection_pool.get_connection()

        def raw_ttl():
            raw.send_command("TTL", key)
            raw.read_response()

        def pipe(n_xinfo, json_get=None, ttl=False):
            def run():
                pl = r.pipeline(transaction=False)
                if ttl:
                    pl.ttl(scan)
                for k in keys[:n_xinfo]:
                    pl.xinfo_stream(k)
                if json_get == "json()":
                    pl.json().get(scan, "$.info.end_reason")
                elif json_get == "execute_command":
                    pl.execute_command("JSON.GET", scan, "$.info.end_reason")
                pl.execute(raise_on_error=False)
            return run

        rows = [
            ("TTL, pooled client (the exporter's)", lambda: r.ttl(key)),
            ("TTL, single-connection client", lambda: single.ttl(key)),
            ("TTL, raw connection (floor)", raw_ttl),
            ("XREAD 4 state streams, nothing new (block=None), pooled", lambda: r.xread(states)),
            ("XREAD same, single-connection client", lambda: single.xread(states)),
            ("XINFO STREAM (1000 entries), pooled", lambda: r.xinfo_stream(key)),
            ("pipeline: 8 x XINFO STREAM + pipe.json().get", pipe(8, "json()")),
            ("pipeline: 8 x XINFO STREAM + execute_command('JSON.GET')", pipe(8, "execute_command")),
            ("pipeline: 8 x XINFO STREAM only", pipe(8)),
            ("pipeline: TTL + pipe.json().get", pipe(0, "json()", ttl=True)),
            ("pipeline: TTL + execute_command('JSON.GET')", pipe(0, "execute_command", ttl=True)),
            ("closing (1 scan, 8 streams), as the exporter does",
             lambda: src.closing({scan: {k: "numeric" for k in keys}})),
            ("anchor (XINFO STREAM _SCAN_HISTORY_)", src.anchor),
        ]
        print(f"{'call':<62} {'CPU us/call':>11}")
        for name, fn in rows:
            print(f"{name:<62} {cost(fn, a.n):11.0f}")

        from exporter.model import ScanRecord
        from exporter.sinks.events import ScanDiscovered, ScanEnded
        from exporter.sinks.logs import LogSink, configure
        configure("json", "info", io.StringIO())
        sink = LogSink()
        rec = ScanRecord(key="esrf:scan:x", session="s", name="loopscan", number=1, scan_type="loopscan",
                         uris=[], npoints=10, count_time=0.1, title="loopscan 10 0.1", state_keys=(state,))
        for name, fn in (("log line scan_start (structlog JSON)", lambda: sink(ScanDiscovered(rec))),
                         ("log line scan_end (structlog JSON)", lambda: sink(ScanEnded(rec)))):
            print(f"{name:<62} {cost(fn, a.n):11.0f}")
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
