"""Experiment: fewer Redis round trips per scan (exporter/ untouched), to size the gain.

Two changes, monkeypatched onto the exporter as it is today (may need updating if it changes):

1. DataStoreSource.load_scan sends TTL and JSON.GET in one pipeline (one round trip, not two);
   the exporter loads each scan three times (discovery, PREPARED, CLOSED);
2. ScanWatcher.step waits until PROTO_MIN_GAP seconds (default 0.05) have passed since the
   previous state read: bursts of state changes (prepare+start, stop+close, several scans) are
   read by one XREAD instead of one each. Latency cost: at most PROTO_MIN_GAP.

    python benchmarks/bench.py --skip memory --skip latency --scans 160 --events 250 --no-baseline \
        --exporter-command "python benchmarks/experiments/fewer_round_trips_exporter.py"
"""

import json
import os
import sys
import time

import gevent

import exporter.source as src
from exporter.watchers import scan as scan_watcher


def load_scan(self, key):
    if not key.startswith(src.SCAN_PREFIX):
        raise src.ScanInvalid(f"not a scan key: {key!r}")
    pipe = self.redis.pipeline(transaction=False)
    pipe.ttl(key)
    pipe.execute_command("JSON.GET", key)
    ttl, raw = pipe.execute(raise_on_error=False)
    if ttl == -2 or (isinstance(ttl, int) and 0 <= ttl <= 10):
        raise src.ScanGone(key)
    if isinstance(raw, Exception):
        raise src.ScanInvalid(f"{key}: {raw}")
    if raw is None:
        raise src.ScanGone(key)
    doc = json.loads(raw) if isinstance(raw, (bytes, str)) else raw
    return src.parse_scan_document(key, doc)


MIN_GAP = float(os.environ.get("PROTO_MIN_GAP", "0.05"))
_step = scan_watcher.ScanWatcher.step


def step(self, block_ms):
    wait = getattr(self, "_last_state_read", 0.0) + MIN_GAP - time.monotonic()
    if wait > 0:
        gevent.sleep(wait)
        if block_ms is not None:
            block_ms = max(1, block_ms - int(wait * 1000))
    self._last_state_read = time.monotonic()
    return _step(self, block_ms)


src.DataStoreSource.load_scan = load_scan
scan_watcher.ScanWatcher.step = step

if __name__ == "__main__":
    from exporter.cli import main

    sys.argv = ["bliss-exporter", *sys.argv[1:]]
    sys.exit(main())
