"""Baseline: the published session/scan watcher design, ported literally to blissdata 2.x.

The published design (shared/seed/blissdata-low-level-api.txt, old blissdata API):

    session_watcher: for each NEW_NODE of type "scan" in the session, gevent.spawn(scan_watcher);
    scan_watcher:    for ev in scan.walk_events(wait=True): events[ev.type] += 1 (until END_SCAN).

blissdata 2.x has no walk_events(); what a user naturally writes instead, and what this file does:

- the session watcher follows `data_store.get_next_scan()` and spawns one greenlet per scan;
- the scan watcher loads the scan and counts NEW_NODE for it, then one NEW_NODE per stream once
  `scan.update()` reaches PREPARED (the streams are known from then on);
- state events (PREPARED_SCAN, START_SCAN, STOP_SCAN, END_SCAN) are counted each time `scan.update()`
  reports a change, by the new state. `scan.update()` keeps only the last of several new states
  (and a scan loaded late starts at its current state), so states can be missed: the naive port's
  first inexactness;
- NEW_DATA: every stream is walked with blissdata's cursors (`CursorGroup(scan.streams).read()`),
  the data decoded (`view.get_data()`), one NEW_DATA per view. A view coalesces all the entries that
  arrived since the previous read (up to 100 per stream): the second inexactness.

Prints "START <scan>" / "URI" / "END <scan>" per scan like the original, "READY" once it follows the
data store, and writes its totals as JSON to --result (after --scans scans, or on SIGTERM/SIGINT).
"""

from gevent import monkey

monkey.patch_all()  # the published design is gevent-based; blissdata's blocking reads then yield

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

import gevent  # noqa: E402
from blissdata.exceptions import EndOfStream  # noqa: E402
from blissdata.redis_engine.scan import ScanState  # noqa: E402
from blissdata.redis_engine.store import DataStore  # noqa: E402
from blissdata.streams.base import CursorGroup  # noqa: E402
from gevent.event import Event  # noqa: E402

STATE_EVENTS = {
    ScanState.PREPARED: "prepared_scan",
    ScanState.STARTED: "start_scan",
    ScanState.STOPPED: "stop_scan",
    ScanState.CLOSED: "end_scan",
}


class Totals:
    def __init__(self):
        self.events = Counter()
        self.points = 0
        self.scans_done = 0
        self.views_decoded = 0


def scan_uris(scan) -> list[str]:
    info = scan.info
    filename, scan_nb = info.get("filename"), info.get("scan_nb")
    if not filename or scan_nb is None:
        return []
    return [f"{filename}::/{scan_nb}.{i}" for i in range(1, len(info.get("acquisition_chain") or {}) + 1)]


def scan_watcher(data_store, key: str, totals: Totals, read_timeout: float, quiet: bool) -> None:
    scan = data_store.load_scan(key)
    name = f"{scan.number}_{scan.name}"
    if not quiet:
        print("\nSTART", name, flush=True)
        print(" URI:", scan_uris(scan))
    events = Counter()
    events["new_node"] += 1  # the scan itself
    cursor = None
    streams_done = False
    while True:
        if cursor is None and scan.state >= ScanState.PREPARED:
            events["new_node"] += len(scan.streams)  # one node per stream
            cursor = CursorGroup(scan.streams)
        if cursor is not None and not streams_done:
            # walk every stream: blocking read of whatever is new, data decoded, one event per view
            try:
                views = cursor.read(timeout=read_timeout)
            except EndOfStream:
                streams_done = True
            else:
                for stream, view in views.items():
                    data = view.get_data()
                    totals.points += len(data)
                    events["new_data"] += 1
                    totals.views_decoded += 1
        # while the streams are open, only peek at the state; otherwise wait for the next one
        if scan.update(block=cursor is None or streams_done, timeout=read_timeout if not streams_done else 0):
            event = STATE_EVENTS.get(scan.state)
            if event:
                events[event] += 1
        if scan.state == ScanState.CLOSED:
            if cursor is not None and not streams_done:
                continue  # streams are sealed before CLOSED: drain them, then stop
            break
    totals.events.update(events)
    totals.scans_done += 1
    if not quiet:
        print(dict(events), flush=True)
        print("END", name, flush=True)


def session_watcher(data_store, totals: Totals, done: Event, max_scans: int, read_timeout: float,
                    quiet: bool) -> None:
    since = data_store.get_last_scan_timetag()  # from now on, never missing one between two calls
    print("READY", flush=True)
    scans = {}
    spawned = 0
    while max_scans <= 0 or spawned < max_scans:
        since, key = data_store.get_next_scan(since=since)
        scans[key] = gevent.spawn(scan_watcher, data_store, key, totals, read_timeout, quiet)
        spawned += 1
        for k in [k for k, g in scans.items() if g.ready()]:
            scans.pop(k).get()
    gevent.joinall(list(scans.values()), raise_error=True)
    done.set()


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--redis-url", required=True)
    p.add_argument("--result", required=True, help="file to write the final counts to (JSON)")
    p.add_argument("--scans", type=int, default=0, help="stop after this many scans ended (0: until SIGTERM)")
    p.add_argument("--read-timeout", type=float, default=0.5, help="seconds a cursor read or update() waits")
    p.add_argument("--quiet", action="store_true", help="no START/END lines")
    a = p.parse_args(argv)
    url = a.redis_url if "protocol=" in a.redis_url else a.redis_url + ("&" if "?" in a.redis_url else "?") + "protocol=2"
    data_store = DataStore(url)
    totals = Totals()
    done = Event()
    gevent.signal_handler(signal.SIGTERM, done.set)
    gevent.signal_handler(signal.SIGINT, done.set)
    cpu0 = time.process_time()
    watcher = gevent.spawn(session_watcher, data_store, totals, done, a.scans, a.read_timeout, a.quiet)
    done.wait()
    cpu = time.process_time() - cpu0
    result = {"events": dict(totals.events), "points": totals.points, "scans": totals.scans_done,
              "views_decoded": totals.views_decoded, "self_cpu": cpu}
    with open(a.result + ".tmp", "w") as f:
        json.dump(result, f)
    import os

    os.replace(a.result + ".tmp", a.result)
    sys.stdout.flush()
    if watcher.ready() and not watcher.successful():
        watcher.get()
    # stay until told to stop, so that the benchmark reads our CPU time at a moment of its choosing
    stop = Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    if a.scans > 0:
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
