"""Baseline on BLISS 1.x data stores: the published watcher design, literally, on blissdata 0.3.1.

Run in the legacy venv (scripts/bootstrap.sh --test creates .venv-legacy):

    .venv-legacy/bin/python -m benchmarks.seed_watcher_legacy --redis-url redis://127.0.0.1:PORT/1 \\
        --session demo_session [--scans N | --duration S] [--result FILE] [--quiet]

The design (shared/seed/blissdata-low-level-api.txt) is kept as published:

    session_watcher: for ev in get_session_node(s).walk_on_new_events(exclude_children=("scan",
                     "scan_group"), wait=True): END_SCAN -> scans.pop(db_name).get();
                     NEW_NODE of type "scan" -> gevent.spawn(scan_watcher, db_name)
    scan_watcher:    for ev in get_node(name).walk_events(wait=True): events[ev.type] += 1 until END_SCAN

Only what real data breaks is handled, as little as needed to keep running, and counted in
"broken" of the summary:

- `scan_group_end`: the END_SCAN of a `scan_group` (a Sequence) raises KeyError in the published
  session watcher (it only spawns watchers for "scan" nodes): here the missing key is skipped;
- `scan_watcher_error`: a scan watcher that raises (its exception is printed, the session goes on);
- `scan_uris`: nexus_writer_service.utils.scan_utils.scan_uris is not part of blissdata: replaced
  by filename::/scan_nb.i for each top master of the acquisition chain.

Not repaired, on purpose (they are what the baseline measures; docs/legacy-model.md explains them):
NEW_DATA coalesces every entry a read returns into one event, `walk_on_new_events` starts from the
client's clock, the walkers write (a synchronisation stream per reader: EVALSHA, XADD, EXPIRE, DEL;
missing `_children_list`/`_prepared`/`_end` streams created) and search keys with KEYS.

Prints READY once the session walker is subscribed, START/END per scan like the original (unless
--quiet), and at the end one JSON summary line (also written to --result): events per type (summed
over the scan watchers, as the published design counts them: its NEW_NODE excludes the scan node
itself), points (sum of NEW_DATA block sizes), scans watched and ended, broken, CPU seconds
(getrusage) and wall time.
"""

from gevent import monkey

monkey.patch_all()  # the published design is gevent-based

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import urllib.parse  # noqa: E402
from collections import Counter  # noqa: E402

import gevent  # noqa: E402
from blissdata.client import set_default_redis_connection_manager_callback  # noqa: E402
from blissdata.data.node import get_node, get_session_node  # noqa: E402
from blissdata.redis.manager import RedisAddress, RedisConnectionManager  # noqa: E402
from gevent.event import Event as GEvent  # noqa: E402

NAMES = {"NEW_NODE": "new_node", "NEW_DATA": "new_data", "PREPARED_SCAN": "prepared_scan",
         "END_SCAN": "end_scan"}


class Totals:
    def __init__(self):
        self.events = Counter()
        self.points = 0
        self.scans_watched = 0
        self.scans_done = 0
        self.ended = 0  # END_SCAN events seen by the session watcher (scans and scan groups)
        self.broken = Counter()
        self.per_scan = {}


def connect(url: str) -> None:
    u = urllib.parse.urlparse(url)
    address = RedisAddress(host=u.hostname or "127.0.0.1", port=u.port or 6379, sock=None)
    manager = RedisConnectionManager({0: address, 1: address})
    set_default_redis_connection_manager_callback(lambda: manager)


def scan_uris(scan) -> list:
    """Stand-in for nexus_writer_service's scan_uris: filename::/scan_nb.i per top master."""
    info = scan.info.get_all()
    filename, scan_nb = info.get("filename"), info.get("scan_nb")
    if not filename or scan_nb is None:
        return []
    return [f"{filename}::/{scan_nb}.{i}" for i in range(1, len(info.get("acquisition_chain") or {}) + 1)]


def scan_watcher(scan_name: str, totals: Totals, quiet: bool) -> None:
    scan = get_node(scan_name)
    if not quiet:
        print("\nSTART", scan.name, flush=True)
        print(" URI:", scan_uris(scan), flush=True)
    totals.scans_watched += 1
    events = Counter()
    for ev in scan.walk_events(wait=True):
        events[NAMES[ev.type.name]] += 1
        if ev.type == ev.type.NEW_DATA and ev.data is not None:
            totals.points += int(ev.data.block_size or len(ev.data.data or ()))
        if ev.type == ev.type.END_SCAN:
            break
    totals.events.update(events)
    totals.per_scan[scan.name] = dict(events)
    totals.scans_done += 1
    if not quiet:
        print(dict(events), flush=True)
        print("END", scan.name, flush=True)


def _finish(greenlet, totals: Totals) -> None:
    try:
        greenlet.get()
    except Exception:
        totals.broken["scan_watcher_error"] += 1
        traceback.print_exc()


def session_watcher(session_name: str, totals: Totals, done: GEvent, max_scans: int, quiet: bool) -> None:
    session = get_session_node(session_name)
    scan_types = ("scan", "scan_group")
    scans = dict()
    started = GEvent()
    gevent.spawn(lambda: (started.wait(), print("READY", flush=True)))
    if not quiet:
        print("Start data processing ...", flush=True)
    for ev in session.walk_on_new_events(exclude_children=scan_types, wait=True, started_event=started):
        if ev.type == ev.type.END_SCAN:
            totals.ended += 1
            greenlet = scans.pop(ev.node.db_name, None)
            if greenlet is None:  # the published code: scans.pop(...) -> KeyError for a scan_group
                totals.broken["scan_group_end" if ev.node.type == "scan_group" else "unknown_end"] += 1
            else:
                _finish(greenlet, totals)
            if max_scans and totals.ended >= max_scans:
                break
        elif ev.type == ev.type.NEW_NODE and ev.node.type == "scan":
            scans[ev.node.db_name] = gevent.spawn(scan_watcher, ev.node.db_name, totals, quiet)
    for greenlet in scans.values():
        _finish(greenlet, totals)
    if not quiet:
        print("Data processing stopped", flush=True)
    done.set()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--redis-url", required=True, help="the data Redis (database 1 is used)")
    p.add_argument("--session", default="demo_session")
    p.add_argument("--scans", type=int, default=0, help="stop after this many END_SCAN (scans and sequences)")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds")
    p.add_argument("--result", help="also write the JSON summary to this file")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    connect(a.redis_url)
    totals = Totals()
    done = GEvent()
    gevent.signal_handler(signal.SIGTERM, done.set)
    gevent.signal_handler(signal.SIGINT, done.set)
    t0, r0 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    watcher = gevent.spawn(session_watcher, a.session, totals, done, a.scans, a.quiet)
    done.wait(timeout=a.duration or None)
    if not watcher.ready():
        watcher.kill()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    summary = {
        "events": dict(totals.events), "points": totals.points, "scans_watched": totals.scans_watched,
        "scans_done": totals.scans_done, "ended": totals.ended, "broken": dict(totals.broken),
        "per_scan": totals.per_scan,
        "cpu": {"user": r1.ru_utime - r0.ru_utime, "system": r1.ru_stime - r0.ru_stime},
        "wall": time.monotonic() - t0,
        "error": None if not watcher.ready() or watcher.successful() or watcher.exception is None
        else repr(watcher.exception),
    }
    line = json.dumps(summary, sort_keys=True)
    print(line, flush=True)
    if a.result:
        with open(a.result + ".tmp", "w") as f:
            f.write(line)
        os.replace(a.result + ".tmp", a.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
