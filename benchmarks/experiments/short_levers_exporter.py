"""A/B launcher: the exporter with some short-scan levers monkeypatched in (exporter/ is not modified).

    LEVERS=logs,metrics,history,interval=0.2,close python benchmarks/bench.py --skip throughput \\
        --skip memory --skip latency --exporter-command "python benchmarks/experiments/short_levers_exporter.py"

or benchmarks/experiments/ab_short.py, which runs the variants interleaved. LEVERS (comma-separated):

  logs        structlog's JSONRenderer(serializer=orjson.dumps) + BytesLoggerFactory + cached loggers
              (where: exporter/logs.py configure)
  metrics     scan_counted increments label children looked up once per session
              (where: exporter/metrics.py ExporterMetrics.scan_counted / _see_session)
  history     the session watcher's history XREAD and its gap check (XINFO of the history) in one
              pipeline, then the documents of every new entry (TTL + JSON.GET each) in one pipeline
              (where: exporter/watchers/session.py SessionWatcher.step, exporter/source.py
              read_history/history_info/load_scan -> a batched read)
  interval=X  at least X seconds between two history reads that found entries, so that a burst of
              new scans comes in one batch (where: SessionWatcher.step, like ScanWatcher's
              min_read_interval)
  close       per scan-watcher step, the $.data_streams of every newly PREPARED scan in one
              pipeline (JSON.GET through execute_command), and the closing snapshots of every
              CLOSED scan in one pipeline (where: exporter/watchers/scan.py
              ScanWatcher._finish_pending/_learn_streams/_close, exporter/source.py scan_streams/
              closing_snapshot -> batched)

With ROUND_TRIPS_FILE set it also counts its round trips as count_round_trips.py does (bench.py's
second pass).
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gevent  # noqa: E402
import redis  # noqa: E402
from exporter.metrics import ExporterMetrics  # noqa: E402
from exporter.scan import EventType, State  # noqa: E402
from exporter.source import (  # noqa: E402
    HISTORY_STREAM,
    DataStoreSource,
    ScanGone,
    ScanInvalid,
    _deleted,
    is_unavailable,
    parse_scan_document,
    parse_streams,
)
from exporter.watchers.scan import ScanWatcher, _set_streams  # noqa: E402
from exporter.watchers.session import SessionWatcher  # noqa: E402

from exporter import logs  # noqa: E402

LEVERS: dict[str, str] = {}
for item in filter(None, os.environ.get("LEVERS", "").split(",")):
    name, _, value = item.partition("=")
    LEVERS[name.strip()] = value.strip()


# -- logs --------------------------------------------------------------------------------------------
def lever_logs() -> None:
    import orjson
    import structlog

    original = logs.configure

    def configure(fmt="json", level="info", stream=None):
        original(fmt, level, stream)  # stdlib handler for libraries as before
        if fmt != "json":
            return
        stream = stream or sys.stdout
        config = structlog.get_config()
        processors = list(config["processors"])
        processors[-1] = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        structlog.configure(processors=processors, logger_factory=structlog.BytesLoggerFactory(stream.buffer),
                            cache_logger_on_first_use=True)

    logs.configure = configure


# -- metrics -----------------------------------------------------------------------------------------
def lever_metrics() -> None:
    def scan_counted(self, scan, events, points):
        children = self.__dict__.setdefault("_children", {})
        ch = children.get(scan.session)
        if ch is None:
            ch = children[scan.session] = ({e: self.events.labels(scan.session, e.value) for e in EventType},
                                           self.points.labels(scan.session))
        by_event, pts = ch
        for event, n in events.items():
            if n:
                by_event[event].inc(n)
        if points:
            pts.inc(points)

    ExporterMetrics.scan_counted = scan_counted


# -- history: XREAD + gap check in one round trip, new documents in one more ---------------------------
def _check_reply(reply):
    if isinstance(reply, Exception) and (is_unavailable(reply) or not isinstance(reply, redis.ResponseError)):
        raise reply


def _doc_or_error(key, ttl, doc):
    """load_scan's verdict on (TTL, JSON.GET) replies: a ScanDocument, or the exception it would raise."""
    _check_reply(ttl)
    _check_reply(doc)
    if ttl == -2 or _deleted(ttl):
        return ScanGone(key)
    if isinstance(doc, redis.ResponseError):
        return ScanInvalid(f"{key}: {doc}")
    if doc is None:
        return ScanGone(key)
    try:
        return parse_scan_document(key, doc)
    except ScanInvalid as exc:
        return exc


def lever_history(interval: float) -> None:
    original_load = DataStoreSource.load_scan

    def load_scan(self, key, deleted_ok=False):
        pre = self.__dict__.get("_preloaded")
        if pre and not deleted_ok and key in pre:
            found = pre.pop(key)
            if isinstance(found, Exception):
                raise found
            return found
        return original_load(self, key, deleted_ok)

    DataStoreSource.load_scan = load_scan

    def step(self, block_ms):
        started = time.monotonic()
        src = self.source
        pipe = src.redis.pipeline(transaction=False)
        pipe.xread({HISTORY_STREAM: self.position or "0-0"}, block=block_ms, count=256)
        pipe.xinfo_stream(HISTORY_STREAM)
        raw, info = pipe.execute(raise_on_error=False)
        _check_reply(raw)
        entries = [(eid.decode(), f[b"key"].decode()) for _, es in raw or () for eid, f in es if f.get(b"key")]
        if not entries:
            return
        if isinstance(info, Exception):
            _check_reply(info)
            added = length = 0
        else:
            added, length = int(info["entries-added"]), int(info["length"])
        if added - length > self.sequence or added < self.sequence:
            self.resync()
            for _, key in entries:
                self.discover(key)
            return
        keys = [k for _, k in entries if not self.scans.is_known(k) and k.startswith("esrf:scan:")]
        if keys:
            pipe = src.redis.pipeline(transaction=False)
            for key in keys:
                pipe.ttl(key)
                pipe.execute_command("JSON.GET", key)
            replies = pipe.execute(raise_on_error=False)
            src._preloaded = {k: _doc_or_error(k, t, d) for k, t, d in zip(keys, replies[0::2], replies[1::2])}
        try:
            for entry_id, key in entries:
                self.discover(key)
                self.position = entry_id
                self.sequence += 1
        finally:
            src._preloaded = None
        rest = interval - (time.monotonic() - started)
        if rest > 0:
            gevent.sleep(rest)

    SessionWatcher.step = step


# -- close: data_streams and closing snapshots of a step's scans, one pipeline each --------------------
def lever_close() -> None:
    def _finish_pending(self):
        records = list(self.active.values())
        learn = [r for r in records if r.state >= State.PREPARED and not r.streams_known]
        if learn:
            pipe = self.source.redis.pipeline(transaction=False)
            for r in learn:
                pipe.execute_command("JSON.GET", r.key, "$.data_streams")
            for r, found in zip(learn, pipe.execute(raise_on_error=False)):
                _check_reply(found)
                streams = None
                if not isinstance(found, Exception) and found:
                    try:
                        streams = parse_streams(r.key, found[0])
                    except ScanInvalid:
                        streams = None
                before = len(r.streams)
                if streams:
                    _set_streams(r, streams)
                r.streams_known = True
                added = len(r.streams) - before
                if added:
                    self._count(r, Counter({EventType.NEW_NODE: added}), 0)
        closing = [r for r in records if r.state is State.CLOSED]
        if not closing:
            return
        src = self.source
        pipe = src.redis.pipeline(transaction=False)
        plan = []
        for r in closing:
            streams = self._unsealed([r])
            for k in streams:
                pipe.xinfo_stream(k)
            pipe.execute_command("JSON.GET", r.key, "$.info.end_reason")
            plan.append((r, streams))
        replies = pipe.execute(raise_on_error=False)
        i = 0
        for r, streams in plan:
            keys = list(streams)
            stats = src._parse_stats(keys, streams, replies[i:i + len(keys)])
            reason = replies[i + len(keys)]
            i += len(keys) + 1
            exists = True
            if isinstance(reason, Exception):
                _check_reply(reason)
                reason = None
            elif reason is None:
                exists = False
            else:
                reason = str(reason[0]) if reason and reason[0] else None
            self._apply_stats([r], stats)
            if not exists:
                reason = "DELETION"
            r.end_reason = reason or "UNKNOWN"
            self._forget(r)
            self._count(r, Counter({EventType.END_SCAN: r.pending_end}), 0)
            r.pending_end = 0
            self.sink.scan_ended(r)

    ScanWatcher._finish_pending = _finish_pending


def main() -> int:
    if os.environ.get("ROUND_TRIPS_FILE"):
        import count_round_trips  # noqa: F401 - patches redis-py's send_packed_command on import

        gevent.spawn(count_round_trips.writer)
    if "logs" in LEVERS:
        lever_logs()
    if "metrics" in LEVERS:
        lever_metrics()
    if "history" in LEVERS or "interval" in LEVERS:
        lever_history(float(LEVERS.get("interval") or 0))
    if "close" in LEVERS:
        lever_close()
    from exporter.cli import main as exporter_main

    sys.argv = ["bliss-exporter", *sys.argv[1:]]
    return exporter_main()


if __name__ == "__main__":
    sys.exit(main())
