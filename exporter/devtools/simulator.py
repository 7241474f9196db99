"""A BLISS-like scan publisher, through blissdata's own API (for the demo, tests and benchmarks).

Scans carry BLISS's scan.info keys (type, title, npoints, count_time, filename, scan_nb,
acquisition_chain, start_time; end_reason at close), a timer, motor positions and counters,
optionally a lima and a 1D (MCA) stream. Failed and aborted scans go to CLOSED without STOPPED,
as BLISS does. Each published scan returns its truth: the events a correct watcher must count.

Scan sequences are published as BLISS 2.4's ScanSequence does (bliss/scanning/scan_sequence.py): the
parent (`is_scan_sequence`, `sequence_info.scan_count`, no `type`) is created, prepared and started with
one `SUBSCANS` stream (blissdata's ScanStream definition); each child carries `group` (the parent's key)
and `index_in_sequence`, and its reference `{"key", "scan_number"}` is written when it is prepared; a
failed or aborted child ends the sequence the same way; the parent closes last.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

SCAN_TYPES = ("ct", "loopscan", "ascan", "timescan", "amesh")
MOTORS = ("roby", "robz", "sy", "sz")
COUNTERS = ("simulation_diode_sampling_controller:diode", "simulation_counter_controller:sim_ct_gauss")


@dataclass
class ScanSpec:
    """What one simulated scan looks like."""

    session: str = "demo_session"
    number: int = 1
    scan_type: str = "loopscan"
    npoints: int = 10
    count_time: float = 0.01
    batch: int = 1  # points per send()
    filename: str | None = "/tmp/scans/inhouse/id002106/id00/sample/sample_0001/sample_0001.h5"
    lima: bool = False
    mca: bool = False
    end_reason: str = "SUCCESS"  # SUCCESS, FAILURE, USER_ABORT
    fail_after: int | None = None  # points published before a FAILURE / USER_ABORT
    point_delay: float | None = None  # seconds between sends; default count_time
    group: str | None = None  # scan.info group: the parent sequence's scan key
    index_in_sequence: int | None = None
    proposal: str | None = None  # the ESRF data policy's proposal (scan identity), None without data policy


@dataclass
class Truth:
    """Events a watcher must count for the published scans (the seed's Counter, per type)."""

    events: Counter = field(default_factory=Counter)
    points: int = 0
    scans: int = 0
    ended: Counter = field(default_factory=Counter)  # end_reason -> scans

    def add(self, other: "Truth") -> None:
        self.events.update(other.events)
        self.points += other.points
        self.scans += other.scans
        self.ended.update(other.ended)


def _masters(spec: ScanSpec) -> list[str]:
    if spec.scan_type == "amesh":
        return ["axis", "timer"]  # two top masters: two URIs
    if spec.scan_type == "ascan":
        return ["axis"]
    return ["timer"]


def scan_info(spec: ScanSpec) -> dict:
    """BLISS-shaped scan.info for a spec (as in shared/reference/bliss-2.4.0-scans)."""
    motor = MOTORS[spec.number % len(MOTORS)]
    if spec.scan_type == "ascan":
        title = f"ascan {motor} 0.000000 1.000000 {spec.npoints - 1} {spec.count_time}"
    elif spec.scan_type == "ct":
        title = f"ct {spec.count_time}"
    else:
        title = f"{spec.scan_type} {spec.npoints} {spec.count_time}"
    chain = {
        master: {"master": {"scalars": [], "spectra": [], "images": []}, "scalars": [], "spectra": [], "images": []}
        for master in _masters(spec)
    }
    return {
        "type": spec.scan_type,
        "title": title,
        "npoints": spec.npoints,
        "count_time": spec.count_time,
        "filename": spec.filename,
        "scan_nb": spec.number,
        "name": f"{spec.number}_{spec.scan_type}",
        "session_name": spec.session,
        "user_name": "opid00",
        "save": spec.filename is not None,
        "data_policy": "None",
        "publisher": "bliss-exporter-simulator",
        "acquisition_chain": chain,
        "start_time": datetime.now(timezone.utc).isoformat(),
        **({"group": spec.group} if spec.group is not None else {}),
        **({"index_in_sequence": spec.index_in_sequence} if spec.index_in_sequence is not None else {}),
    }


def open_data_store(url: str):
    from blissdata.redis_engine.store import DataStore

    from ..store import normalize_redis_url

    return DataStore(normalize_redis_url(url))


def publish_scan(data_store, spec: ScanSpec, pause=time.sleep, on_prepared=None) -> Truth:
    """Publish one scan from creation to close; return what a watcher must count for it.

    `on_prepared(scan)` is called once the scan is PREPARED (a sequence writes its reference then).
    """
    from blissdata.streams.default import Stream
    from blissdata.streams.lima.stream import LimaStream

    identity = {"name": spec.scan_type, "number": spec.number, "data_policy": "None", "session": spec.session}
    if spec.proposal:
        identity.update(data_policy="ESRF", proposal=spec.proposal, collection="sample", dataset="0001")
    scan = data_store.create_scan(identity, info=scan_info(spec))
    streams = {"timer:elapsed_time": scan.create_stream(Stream.make_definition("timer:elapsed_time", "float64")),
               "timer:epoch": scan.create_stream(Stream.make_definition("timer:epoch", "float64"))}
    if spec.scan_type in ("ascan", "amesh"):
        name = f"axis:{MOTORS[spec.number % len(MOTORS)]}"
        streams[name] = scan.create_stream(Stream.make_definition(name, "float64"))
    for name in COUNTERS:
        streams[name] = scan.create_stream(Stream.make_definition(name, "float64"))
    mca = lima = None
    if spec.mca:
        mca = scan.create_stream(Stream.make_definition("mca1:spectrum", "uint32", shape=(128,)))
    if spec.lima:
        lima = scan.create_stream(LimaStream.make_definition(
            "lima_simulator:image", "uint16", (64, 64), server_url="id00/limaccds/simulator1",
            buffer_max_number=16, frames_per_acquisition=spec.npoints, acquisition_offset=0))
    n_streams = len(streams) + (mca is not None) + (lima is not None)

    truth = Truth(scans=1)
    truth.events["new_node"] = 1 + n_streams
    scan.prepare()
    truth.events["prepared_scan"] += 1
    if on_prepared is not None:
        on_prepared(scan)
    scan.start()
    truth.events["start_scan"] += 1

    total = spec.npoints if spec.fail_after is None else min(spec.fail_after, spec.npoints)
    delay = spec.count_time if spec.point_delay is None else spec.point_delay
    t0 = time.time()
    done = 0
    while done < total:
        n = min(spec.batch, total - done)
        idx = np.arange(done, done + n, dtype=float)
        values = {
            "timer:elapsed_time": idx * spec.count_time,
            "timer:epoch": t0 + idx * spec.count_time,
        }
        for name, stream in streams.items():
            data = values.get(name)
            if data is None:
                data = np.random.random(n) if not name.startswith("axis:") else idx / max(spec.npoints - 1, 1)
            stream.send(data if n > 1 else data[0])
            truth.events["new_data"] += 1
        truth.points += n * len(streams)
        if mca is not None:
            mca.send(np.zeros((n, 128), dtype=np.uint32) if n > 1 else np.zeros(128, dtype=np.uint32))
            truth.events["new_data"] += 1
            truth.points += n
        if lima is not None:
            lima.send({"last_index": done + n - 1, "last_index_saved": -1})
            truth.events["new_data"] += 1
        done += n
        if delay:
            pause(delay * n)
    if lima is not None:
        truth.points += done
    for stream in [*streams.values(), mca, lima]:
        if stream is not None:
            stream.join()

    if spec.end_reason == "SUCCESS":
        scan.stop()
        truth.events["stop_scan"] += 1
    scan.info["end_reason"] = spec.end_reason
    scan.info["end_time"] = datetime.now(timezone.utc).isoformat()
    scan.close()
    truth.events["end_scan"] += 1
    truth.ended[spec.end_reason] += 1
    return truth


def random_spec(rng: random.Random, session: str, number: int, failure_rate: float, abort_rate: float,
                lima: bool, mca: bool, speed: float) -> ScanSpec:
    """A plausible scan of a beamline session."""
    scan_type = rng.choice(SCAN_TYPES)
    npoints = 1 if scan_type == "ct" else rng.choice((10, 20, 50, 100))
    count_time = rng.choice((0.01, 0.02, 0.05, 0.1))
    roll = rng.random()
    end_reason, fail_after = "SUCCESS", None
    if roll < failure_rate:
        end_reason, fail_after = "FAILURE", rng.randrange(0, npoints)
    elif roll < failure_rate + abort_rate:
        end_reason, fail_after = "USER_ABORT", rng.randrange(0, npoints)
    filename = None if rng.random() < 0.2 else f"/tmp/scans/inhouse/id002106/id00/{session}/sample_0001/sample_0001.h5"
    return ScanSpec(
        session=session, number=number, scan_type=scan_type, npoints=npoints, count_time=count_time,
        batch=rng.choice((1, 1, 5)), filename=filename, lima=lima and scan_type != "ct", mca=mca,
        end_reason=end_reason, fail_after=fail_after, point_delay=count_time / speed if speed > 0 else 0,
    )


@dataclass
class SequenceSpec:
    """What one simulated ScanSequence looks like: its children run one after the other."""

    session: str = "demo_session"
    number: int = 1
    title: str = "sequence_of_scans"
    children: list = field(default_factory=list)  # ScanSpec of each child (numbers follow the parent's)
    scan_count: int | None = None  # sequence_info.scan_count; default: the number of children
    grouped: bool = True  # False: old-style Sequence.add() of running scans, linked by references only


def sequence_info(spec: SequenceSpec) -> dict:
    """scan.info of a ScanSequence as BLISS 2.4.0 writes it (05_sequence_sequence_SUCCESS.json)."""
    scan_count = spec.scan_count if spec.scan_count is not None else len(spec.children)
    return {
        "title": spec.title,
        "is_scan_sequence": True,
        "sequence_info": {"scan_count": scan_count},
        "channels": {"SUBSCANS": {"group": "subscans", "device": "GroupingMaster", "display_name": "SUBSCANS",
                                  "dim": 0}},
        "acquisition_chain": {"GroupingMaster": {"master": {"scalars": ["SUBSCANS"], "spectra": [], "images": []},
                                                 "scalars": [], "spectra": [], "images": []}},
        "session_name": spec.session,
        "user_name": "opid00",
        "save": True,
        "data_policy": "None",
        "publisher": "bliss-exporter-simulator",
        "scan_nb": spec.number,
        "name": f"{spec.number}_sequence",
        "filename": None,
        "start_time": datetime.now(timezone.utc).isoformat(),
    }


def open_sequence(data_store, spec: SequenceSpec):
    """Create, prepare and start a sequence with its SUBSCANS stream: (scan, SUBSCANS stream)."""
    from blissdata.streams.scan_sequence.stream import ScanStream

    identity = {"name": "sequence", "number": spec.number, "data_policy": "None", "session": spec.session}
    scan = data_store.create_scan(identity, info=sequence_info(spec))
    subscans = scan.create_stream(ScanStream.make_definition("SUBSCANS"))
    scan.prepare()
    scan.start()
    return scan, subscans


def reference(subscans, child) -> None:
    """The parent's reference to a child, as BLISS's GroupingMaster emits it."""
    subscans.send({"key": child.key, "scan_number": int(child.info["scan_nb"])})


def close_sequence(scan, subscans, end_reason: str = "SUCCESS") -> None:
    """End a sequence after its children: STOPPED only on SUCCESS, then CLOSED with its end_reason."""
    subscans.join()
    if end_reason == "SUCCESS":
        scan.stop()
    scan.info["end_reason"] = end_reason
    scan.info["end_time"] = datetime.now(timezone.utc).isoformat()
    scan.close()


def publish_sequence(data_store, spec: SequenceSpec, pause=time.sleep) -> Truth:
    """Publish a sequence and its children; the truth of all (the parent's references are entries, not points).

    A child that does not end in SUCCESS ends the sequence with its end_reason (the later children
    are not run), as BLISS's ScanSequence does when its runner raises.
    """
    parent, subscans = open_sequence(data_store, spec)
    truth = Truth(scans=1)
    truth.events.update({"new_node": 2, "prepared_scan": 1, "start_scan": 1})
    end_reason = "SUCCESS"
    for index, child in enumerate(spec.children):
        child.session = spec.session
        child.group = parent.key if spec.grouped else None
        child.index_in_sequence = index
        truth.add(publish_scan(data_store, child, pause, on_prepared=lambda scan: reference(subscans, scan)))
        truth.events["new_data"] += 1  # the reference
        if child.end_reason != "SUCCESS":
            end_reason = child.end_reason
            break
    close_sequence(parent, subscans, end_reason)
    truth.events["stop_scan"] += end_reason == "SUCCESS"
    truth.events["end_scan"] += 1
    truth.ended[end_reason] += 1
    return truth


def random_sequence(rng: random.Random, session: str, number: int, failure_rate: float, abort_rate: float,
                    lima: bool, mca: bool, speed: float) -> SequenceSpec:
    """A sequence of 2 or 3 plausible scans, numbered after the parent."""
    n = rng.choice((2, 3))
    children = [random_spec(rng, session, number + 1 + i, failure_rate, abort_rate, lima, mca, speed)
                for i in range(n)]
    return SequenceSpec(session=session, number=number, title=f"sequence_of_{n}_scans", children=children)
