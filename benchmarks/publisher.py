"""Benchmark publisher: writes scans through blissdata's own API as fast as it can (a child of benchmarks.bench).

Modes (all talk to the benchmark by lines on stdin/stdout, so that it can read every process's CPU
time at the same instants):

  workload  READY, wait for a line, publish --scans scans (--concurrent at a time, each with --streams
            float64 streams, --events send() per stream, --points points per send), print the truth
            (JSON), wait for stdin to close.
  short     the same for short scans (e.g. 3 streams x 10 sends of 1 point), plus --sequences scan
            sequences of --children children each, mixed in the same pool: a parent with
            `is_scan_sequence: true` and a SUBSCANS stream (blissdata's ScanStream), children with
            `group` = the parent's key run one after the other, one JSON reference
            {"key", "scan_number"} sent into SUBSCANS per child (as BLISS 2.4's ScanSequence does);
            the truth also lists the unix time each scan.close() returned ("closes").
  bulk      the same, for many short scans (1 send per stream) - the 10,000-scan memory test.
  steps     READY; then per line holding a number N: publish N more short scans and print the
            truth so far (JSON); any other line ends it - the memory/soak test, sampled between steps.
  hold      open --scans scans (CREATED, PREPARED, STARTED, one send per stream), READY, keep them
            open until a line arrives, then close them and print the truth.
  delay     open --scans scans, READY; then per line: "close" closes the next open one, "short"
            publishes a new short scan from creation to close; each time it prints the unix time at
            which scan.close() returned ("CLOSED <time>"); any other line: close the rest, print
            the truth.

The truth is the sum of exporter.devtools.simulator.Truth: the exact events a correct watcher must count.
"""

from gevent import monkey

monkey.patch_all()  # before blissdata: its stream sinks become greenlets, as in BLISS

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import numpy as np  # noqa: E402
from gevent.pool import Pool  # noqa: E402

from exporter.devtools.simulator import Truth, open_data_store  # noqa: E402


def say(*words) -> None:
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def wait_line() -> str:
    return sys.stdin.readline()


class Publisher:
    def __init__(self, url: str, session: str, streams: int, events: int, points: int, first_number: int):
        self.data_store = open_data_store(url)
        self.session = session
        self.n_streams = streams
        self.events = events
        self.points = points
        self.next_number = first_number
        self.buffer = np.arange(max(points, 1) * 64, dtype=np.float64)

    def _number(self) -> int:
        n = self.next_number
        self.next_number += 1
        return n

    def open_scan(self, truth: Truth, group: str | None = None):
        """Create, prepare and start a scan; returns (scan, streams)."""
        from blissdata.streams.default import Stream

        number = self._number()
        identity = {"name": "loopscan", "number": number, "data_policy": "None", "session": self.session}
        info = {"type": "loopscan", "title": f"loopscan {self.events} 0", "npoints": self.events * self.points,
                "count_time": 0.0, "scan_nb": number, "session_name": self.session, "save": False}
        if group is not None:
            info["group"] = group  # a child of a scan sequence
        scan = self.data_store.create_scan(identity, info=info)
        streams = [scan.create_stream(Stream.make_definition(f"bench:ctr{i}", "float64"))
                   for i in range(self.n_streams)]
        scan.prepare()
        scan.start()
        truth.scans += 1
        truth.events["new_node"] += 1 + len(streams)
        truth.events["prepared_scan"] += 1
        truth.events["start_scan"] += 1
        return scan, streams

    def send_all(self, streams, truth: Truth, events: int) -> None:
        p = self.points
        done = 0
        for e in range(events):
            data = self.buffer[(e % 64) * p:(e % 64 + 1) * p] if p > 1 else float(e)
            for stream in streams:
                stream.send(data)
            done += 1
            if e % 16 == 15:
                gevent.sleep(0)  # let the sinks (and the other scans) run, as BLISS's acquisition loop does
        truth.events["new_data"] += done * len(streams)
        truth.points += done * p * len(streams)

    @staticmethod
    def close_scan(scan, streams, truth: Truth) -> None:
        for stream in streams:
            stream.join()
        scan.stop()
        scan.info["end_reason"] = "SUCCESS"
        scan.close()
        truth.events["stop_scan"] += 1
        truth.events["end_scan"] += 1
        truth.ended["SUCCESS"] += 1

    def publish(self, truth: Truth, events: int | None = None, closes: list | None = None,
                group: str | None = None) -> object:
        scan, streams = self.open_scan(truth, group=group)
        self.send_all(streams, truth, self.events if events is None else events)
        self.close_scan(scan, streams, truth)
        if closes is not None:
            closes.append(time.time())
        return scan

    def publish_sequence(self, truth: Truth, children: int, closes: list) -> None:
        """A scan sequence as BLISS 2.4 publishes one (shared/reference/bliss-2.4.0-scans/05_sequence_*):
        parent with is_scan_sequence and a SUBSCANS stream, one reference per child, children run in turn."""
        from blissdata.streams.scan_sequence.stream import ScanStream

        number = self._number()
        identity = {"name": "sequence", "number": number, "data_policy": "None", "session": self.session}
        info = {"title": "sequence_of_scans", "is_scan_sequence": True, "scan_nb": number,
                "session_name": self.session, "save": False}
        scan = self.data_store.create_scan(identity, info=info)
        subscans = scan.create_stream(ScanStream.make_definition("SUBSCANS"))
        scan.prepare()
        scan.start()
        truth.scans += 1
        truth.events["new_node"] += 2  # the parent and its SUBSCANS stream
        truth.events["prepared_scan"] += 1
        truth.events["start_scan"] += 1
        for _ in range(children):
            child = self.publish(truth, closes=closes, group=scan.key)
            subscans.send({"key": child.key, "scan_number": child.number})
            truth.events["new_data"] += 1  # a reference is an entry, without points
        self.close_scan(scan, [subscans], truth)
        closes.append(time.time())


def truth_json(truth: Truth, **extra) -> str:
    return json.dumps({"events": dict(truth.events), "points": truth.points, "scans": truth.scans,
                       "ended": dict(truth.ended), **extra})


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("workload", "short", "bulk", "steps", "hold", "delay"))
    p.add_argument("--redis-url", required=True)
    p.add_argument("--session", default="bench")
    p.add_argument("--scans", type=int, default=10)
    p.add_argument("--concurrent", type=int, default=1)
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--events", type=int, default=100)
    p.add_argument("--points", type=int, default=1)
    p.add_argument("--first-number", type=int, default=1)
    p.add_argument("--sequences", type=int, default=0, help="short mode: scan sequences")
    p.add_argument("--children", type=int, default=4, help="short mode: child scans per sequence")
    a = p.parse_args(argv)

    pub = Publisher(a.redis_url, a.session, a.streams, a.events, a.points, a.first_number)
    truth = Truth()

    if a.mode in ("workload", "bulk"):
        say("READY")
        wait_line()
        t0, c0 = time.time(), time.process_time()
        pool = Pool(max(1, a.concurrent))
        for _ in range(a.scans):
            pool.spawn(pub.publish, truth)
        pool.join(raise_error=True)
        say("TRUTH", truth_json(truth, wall=time.time() - t0, self_cpu=time.process_time() - c0))
        wait_line()  # the benchmark reads our CPU time, then closes stdin
        return 0

    if a.mode == "short":
        # plain scans and sequences interleaved (a sequence every len/sequences plain scans) in one pool
        say("READY")
        wait_line()
        t0, c0 = time.time(), time.process_time()
        closes: list[float] = []
        pool = Pool(max(1, a.concurrent))
        every = a.scans // a.sequences if a.sequences else 0
        seqs = 0
        for i in range(a.scans):
            pool.spawn(pub.publish, truth, None, closes)
            if every and (i + 1) % every == 0 and seqs < a.sequences:
                pool.spawn(pub.publish_sequence, truth, a.children, closes)
                seqs += 1
        while seqs < a.sequences:
            pool.spawn(pub.publish_sequence, truth, a.children, closes)
            seqs += 1
        pool.join(raise_error=True)
        say("TRUTH", truth_json(truth, wall=time.time() - t0, self_cpu=time.process_time() - c0, closes=closes))
        wait_line()
        return 0

    if a.mode == "steps":
        say("READY")
        while (line := wait_line().strip()).isdigit():
            pool = Pool(max(1, a.concurrent))
            for _ in range(int(line)):
                pool.spawn(pub.publish, truth)
            pool.join(raise_error=True)
            say("TRUTH", truth_json(truth))
        return 0

    if a.mode == "hold":
        held = [pub.open_scan(truth) for _ in range(a.scans)]
        for _, streams in held:
            pub.send_all(streams, truth, 1)
        for _, streams in held:
            for stream in streams:
                stream.join()
        say("READY")
        wait_line()
        for scan, streams in held:
            pub.close_scan(scan, streams, truth)
        say("TRUTH", truth_json(truth))
        wait_line()
        return 0

    # delay: --scans scans opened first (READY once they are STARTED); then, per line read,
    # "close" closes the next of them, "short" publishes a new short scan from creation to close
    prepared = [pub.open_scan(truth) for _ in range(a.scans)]
    for _, streams in prepared:
        pub.send_all(streams, truth, a.events)
        for stream in streams:
            stream.join()
    say("READY")
    while True:
        line = wait_line().strip()
        if line == "close" and prepared:
            scan, streams = prepared.pop(0)
        elif line == "short":
            scan, streams = pub.open_scan(truth)
            pub.send_all(streams, truth, a.events)
            for stream in streams:
                stream.join()
        else:
            break
        scan.stop()
        scan.info["end_reason"] = "SUCCESS"
        scan.close()
        closed = time.time()
        truth.events["stop_scan"] += 1
        truth.events["end_scan"] += 1
        truth.ended["SUCCESS"] += 1
        say("CLOSED", repr(closed))
    for scan, streams in prepared:  # not closed by the benchmark
        pub.close_scan(scan, streams, truth)
    say("TRUTH", truth_json(truth))
    wait_line()
    return 0


if __name__ == "__main__":
    sys.exit(main())
