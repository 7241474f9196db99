"""Experiment: candidate CPU savings on top of the current exporter (exporter/ untouched), each behind a switch.

    NEXT=json,single,history python benchmarks/bench.py --skip memory --skip latency --no-baseline \\
        --scans 120 --exporter-command "python benchmarks/experiments/next_changes_exporter.py"

NEXT is a comma-separated list of:

  json     load_scan and closing_snapshot send JSON.GET with `pipe.execute_command(...)` instead of
           `pipe.json().get(...)`: each `.json()` call builds a new redis-py JSON command object
           (get_protocol_version, callbacks registered again), ~100 us of CPU. The client already
           decodes JSON.GET replies (DataStoreSource.__init__ called `.json()` once);
  single   the scan watcher and the session watcher each get their own single-connection client
           (`redis.Redis(..., single_connection_client=True)`), used by that greenlet only: no pool
           checkout/release (`get_connection`, `can_read()`, `record_connection_count`) per command;
  history  the session watcher's gap check (XINFO STREAM of the history) and the loads of the
           batch's new scans (TTL + JSON.GET each) go in one pipeline after the history XREAD,
           instead of XINFO, then one pipeline per scan;
  gap=S    the scan watcher leaves at least S seconds (instead of 0.05) between two state XREADs.

Monkeypatches the exporter as of 2026-12-01 (load_scan with a TTL + JSON.GET pipeline,
closing_snapshot, SessionWatcher.step/discover); may need updating if they change.
"""

from gevent import monkey

monkey.patch_all()  # as exporter.cli.main does

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import redis  # noqa: E402

import exporter.source as src  # noqa: E402
from exporter.watchers import scan as scan_mod  # noqa: E402
from exporter.watchers import session as session_mod  # noqa: E402

NEXT = {w.strip() for w in os.environ.get("NEXT", "").split(",") if w.strip()}
GAP = next((float(w[4:]) for w in NEXT if w.startswith("gap=")), None)
NEXT -= {w for w in NEXT if w.startswith("gap=")}
unknown = NEXT - {"json", "single", "history"}
if unknown:
    raise SystemExit(f"NEXT: unknown switch(es) {sorted(unknown)}")


def _json(raw):
    # the client decodes JSON.GET itself once `.json()` was called on it (it registers its callbacks)
    return json.loads(raw) if isinstance(raw, (bytes, bytearray, str)) else raw


def _doc_from_replies(key, ttl, raw, deleted_ok=False):
    """load_scan's checks, on the replies of TTL and a raw JSON.GET."""
    if isinstance(ttl, Exception) or (isinstance(raw, Exception) and not isinstance(raw, redis.ResponseError)):
        raise ttl if isinstance(ttl, Exception) else raw
    if ttl == -2 or (not deleted_ok and 0 <= ttl <= 10):
        raise src.ScanGone(key)
    if isinstance(raw, redis.ResponseError):
        raise src.ScanInvalid(f"{key}: {raw}")
    if raw is None:
        raise src.ScanGone(key)
    return src.parse_scan_document(key, _json(raw))


def load_scan(self, key, deleted_ok=False):
    preloaded = getattr(self, "_preloaded", None)
    if preloaded and key in preloaded:
        return _doc_from_replies(key, *preloaded.pop(key), deleted_ok=deleted_ok)
    if not key.startswith(src.SCAN_PREFIX):
        raise src.ScanInvalid(f"not a scan key: {key!r}")
    pipe = self.redis.pipeline(transaction=False)
    pipe.ttl(key)
    pipe.execute_command("JSON.GET", key)
    ttl, raw = pipe.execute(raise_on_error=False)
    return _doc_from_replies(key, ttl, raw, deleted_ok)


def closing_snapshot(self, key, streams):
    pipe = self.redis.pipeline(transaction=False)
    keys = list(streams)
    for stream_key in keys:
        pipe.xinfo_stream(stream_key)
    pipe.execute_command("JSON.GET", key, "$.info.end_reason")
    replies = pipe.execute(raise_on_error=False)
    stats = self._parse_stats(keys, streams, replies[:-1])
    reason = replies[-1]
    if isinstance(reason, Exception):
        if not isinstance(reason, redis.ResponseError):
            raise reason
        return stats, None, True
    if reason is None:
        return stats, None, False
    reason = _json(reason)
    return stats, (str(reason[0]) if reason and reason[0] else None), True


def own_source(source):
    """A DataStoreSource like `source`, on its own single-connection client (one greenlet only)."""
    clone = object.__new__(src.DataStoreSource)
    clone.__dict__.update(source.__dict__)
    clone.redis = redis.Redis.from_url(source.url, socket_timeout=10.0, socket_connect_timeout=3.0,
                                       health_check_interval=0, single_connection_client=True)
    clone._json = clone.redis.json()
    return clone


def history_step(self, block_ms):
    """SessionWatcher.step with the gap check and the batch's loads in one pipeline."""
    entries = self.source.read_history(self.position or "0-0", block_ms)
    if not entries:
        return
    new = [k for _, k in entries if k.startswith(src.SCAN_PREFIX) and not self.scans.is_known(k)]
    pipe = self.source.redis.pipeline(transaction=False)
    pipe.xinfo_stream(src.HISTORY_STREAM)
    for key in new:
        pipe.ttl(key)
        pipe.execute_command("JSON.GET", key)
    replies = pipe.execute(raise_on_error=False)
    info = replies[0]
    if isinstance(info, redis.ResponseError):
        added, length = 0, 0
    elif isinstance(info, Exception):
        raise info
    else:
        added, length = int(info["entries-added"]), int(info["length"])
    self.source._preloaded = {key: (replies[1 + 2 * i], replies[2 + 2 * i]) for i, key in enumerate(new)}
    try:
        if added - length > self.sequence or added < self.sequence:
            self.resync()
            for _, key in entries:
                self.discover(key)
            return
        for entry_id, key in entries:
            self.discover(key)
            self.position = entry_id
            self.sequence += 1
    finally:
        self.source._preloaded = None


if "json" in NEXT or "history" in NEXT:
    src.DataStoreSource.load_scan = load_scan
if "json" in NEXT:
    src.DataStoreSource.closing_snapshot = closing_snapshot
if "single" in NEXT:
    _scan_init = scan_mod.ScanWatcher.__init__
    _session_init = session_mod.SessionWatcher.__init__

    def scan_init(self, source, *args, **kwargs):
        _scan_init(self, own_source(source), *args, **kwargs)

    def session_init(self, source, *args, **kwargs):
        _session_init(self, own_source(source), *args, **kwargs)

    scan_mod.ScanWatcher.__init__ = scan_init
    session_mod.SessionWatcher.__init__ = session_init
if "history" in NEXT:
    session_mod.SessionWatcher.step = history_step
if GAP is not None:
    _scan_init2 = scan_mod.ScanWatcher.__init__

    def scan_init_gap(self, *args, **kwargs):
        _scan_init2(self, *args, **kwargs)
        self.min_read_interval = GAP

    scan_mod.ScanWatcher.__init__ = scan_init_gap

if __name__ == "__main__":
    from exporter.cli import main

    sys.argv = ["bliss-exporter", *sys.argv[1:]]
    sys.exit(main())
