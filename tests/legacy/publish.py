"""Publish BLISS 1.x scans into a legacy data store with blissdata 0.3.1 itself (no BLISS, no Beacon).

Run with the legacy venv (scripts/bootstrap.sh --test creates it):

    .venv-legacy/bin/python tests/legacy/publish.py SPEC      # SPEC: a JSON file, inline JSON, or - (stdin)

Imports only blissdata 0.3.1, numpy, gevent and the standard library. The key layout is the one
genuine BLISS 1.11.4 writes (checked against /work/shared/reference/bliss-1.11.4-scans by
tests/test_legacy_layout.py): container nodes session -> tmp -> scans, one `scan` node per scan
with a `timer` master device node, one device node per counter controller (the simulation diode
controllers share one name, so the same node is created - and listed in its parent's
children_list - once per controller, as BLISS does), `channel` nodes (data streams with ids =
point index + 1), optional `lima` nodes (status events), and a `scan_group` node for a Sequence
with its GroupingMaster channels `scans` (node_ref_channel) and `scan_numbers`. scan.info has the
keys BLISS 1.11.4 writes, `_end`'s `__EXCEPTION__` is the pickled str BLISS writes, the final
`state` is written ~2 ms after END_SCAN, and expiration times are set as BLISS sets them at the
end of a scan (600 s for the nodes under a scan, 1 day for the scan and its parents).

Spec (JSON object):

    {"redis_url": "redis://127.0.0.1:PORT/1",   # the data Redis; database 1 is used whatever is given
     "session": "demo_session",
     "parallel": false,                        # run the top-level scans concurrently (greenlets)
     "scan_delay": 0.0,                        # seconds between two top-level scans
     "proposal": null,                         # a proposal name: the ESRF data policy's node tree
     "expire": true,                           # set expiration times at scan end as BLISS does
     "scans": [SCAN or SEQUENCE, ...]}

    SCAN: {"type": "loopscan", "npoints": 10, "count_time": 0.01,
           "counters": ["diode1", "diode2"],    # one simulation_diode_sampling_controller each
                                                # ("channels": N is the same with N diodes)
           "batch": 1,                          # points per XADD on every channel
           "lima": ["lima_simulator"],          # lima detectors (one status event per frame batch)
           "lima_batch": 1,                     # frames per lima status event
           "lima_saving": {"lima_simulator": 3}, # detectors that save (AUTO_FRAME), that many frames behind
           "outcome": "SUCCESS" | "FAILURE" | "USER_ABORT",
           "fail_after": 3,                     # points published before the failure / abort
           "point_delay": 0.0,                  # seconds between two point batches
           "save": true,                        # false: a shadow scan (`_N_ct`), like ct
           "wait": "token"}                     # print {"event": "waiting", ...} before the end and
                                                # wait for one line on stdin (adoption tests)
    SEQUENCE: {"sequence": "myseq", "children": [SCAN, ...], "outcome": ..., "wait": ...}

Output, one JSON object per line on stdout: {"event": "created", "scan": ...} when a scan node
exists, {"event": "waiting", ...} (see "wait"), {"event": "truth", ...} when a scan has ended, and
last {"event": "done", "scans": N, "totals": {...}, "ended": {...}, "wall": s, "cpu": {...}}.
A truth is what an exact reader must count:

    new_node       1 for the scan + the distinct nodes under it (a node listed twice counts once)
    new_data       one per XADD to a data stream of the scan (channels, lima, node_ref)
    prepared_scan  1, end_scan 1
    points         sum over the scan's data streams: points (numeric), frames (lima), references
    channels       {node db_name: points}, xadds {node db_name: XADD count}
    end_reason     SUCCESS | FAILURE | USER_ABORT; state: DONE | KILLED | USER_ABORTED
    role           scan | sequence | child (a child's "group" is its sequence's db_name)
"""

from __future__ import annotations

import gevent.monkey

gevent.monkey.patch_all()

import datetime  # noqa: E402
import getpass  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402

import gevent  # noqa: E402
import gevent.lock  # noqa: E402
import numpy  # noqa: E402
from blissdata.client import set_default_redis_connection_manager_callback  # noqa: E402
from blissdata.data import expiration  # noqa: E402
from blissdata.data.node import create_node, datanode_factory  # noqa: E402
from blissdata.redis.manager import RedisAddress, RedisConnectionManager  # noqa: E402

PUBLISHER_VERSION = "1.11.4"  # the BLISS version whose layout this reproduces
EXCEPTIONS = {
    "SUCCESS": ("", "DONE"),
    "FAILURE": ("<class 'RuntimeError'>", "KILLED"),
    "USER_ABORT": ("<class 'bliss.scanning.scan.ScanAbort'>", "USER_ABORTED"),
}
_out_lock = gevent.lock.Semaphore()
_ids = itertools.count(139856550000000, 4144)  # device ids as BLISS prints them: id(obj)


def say(**obj) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
        sys.stdout.flush()


def connect(url: str) -> None:
    """blissdata 0.3.1's own connection manager, on databases 0 and 1 of one server (no Beacon)."""
    u = urllib.parse.urlparse(url)
    if u.scheme == "unix":
        address = RedisAddress(host=None, port=None, sock=u.path)
    else:
        address = RedisAddress(host=u.hostname or "127.0.0.1", port=u.port or 6379, sock=None)
    manager = RedisConnectionManager({0: address, 1: address})
    set_default_redis_connection_manager_callback(lambda: manager)


class Session:
    """The session's containers as BLISS 1.11.4 creates them without a data policy, or with the ESRF data
    policy (`proposal`: ESRFScanSaving's <session>:data:visitor:<proposal>:<collection>:<collection>_<dataset>,
    node types container, container, container, proposal, dataset_collection, dataset)."""

    def __init__(self, name: str, expire: bool = True, proposal: str | None = None):
        self.name = name
        self.expire = expire
        self.node = datanode_factory(name, node_type="container", create_not_state=True)
        if proposal is None:
            self.tmp = datanode_factory("tmp", node_type="container", parent=self.node, create_not_state=True)
            self.scans = datanode_factory("scans", node_type="container", parent=self.tmp, create_not_state=True)
            return
        parent = self.node
        for part, node_type in (("data", "container"), ("visitor", "container"), (proposal, "proposal"),
                                ("sample", "dataset_collection"), ("sample_0001", "dataset")):
            parent = datanode_factory(part, node_type=node_type, parent=parent, create_not_state=True)
        self.scans = parent

    def next_number(self, shadow: bool) -> int:
        field = "last_shadow_scan_number" if shadow else "last_scan_number"
        return int(self.scans.connection.hincrby(self.scans.db_name, field, 1))


class Channel:
    def __init__(self, parent, fullname: str, dtype, unit=None, kind: str = "channel", reference=False):
        self.fullname = fullname
        self.dtype = dtype
        self.unit = unit
        self.reference = reference
        short = fullname.rsplit(":", 1)[-1]
        self.node = create_node(short, kind, parent=parent, shape=(), dtype=dtype, unit=unit,
                                fullname=fullname, channel_name=fullname)
        self.points = 0
        self.xadds = 0

    def store(self, values) -> None:
        """One XADD of len(values) points (one point: a scalar, several: an array, as BLISS sends)."""
        desc = {"reference": self.reference, "dtype": self.dtype, "shape": (), "unit": self.unit}
        data = values[0] if len(values) == 1 else numpy.asarray(values, dtype=self.dtype)
        self.node.store({"name": self.fullname, "data": data, "description": desc})
        self.points += len(values)
        self.xadds += 1


class Lima:
    """A lima detector: reference data at prepare, then one status event per batch of frames."""

    def __init__(self, parent, device: str, session: str, scan_nb: int, nframes: int, saving_lag: int | None = None):
        """`saving_lag`: the detector saves (saving_mode AUTO_FRAME), that many frames behind; None: it does
        not (NOSAVING: BLISS 1.11.4 then writes no saving_* key and Lima reports last_image_saved -1)."""
        self.device = device
        self.saving_lag = saving_lag
        self.node = create_node("image", "lima", parent=parent, shape=(-1, -1), dtype=numpy.uint16,
                                unit=None, fullname=f"{device}:image", channel_name=f"{device}:image")
        self.server_url = f"id00/limaccds/{device}"
        # the saving settings blissdata 0.3.1 reads (LimaImageStatusEvent.DEFAULT_INFO and the
        # image reference computation), as a lima saving in HDF5 one file per 100 frames
        ref = {"acq_trigger_mode": "INTERNAL_TRIGGER", "saving_mode": "AUTO_FRAME", "saving_overwrite": "ABORT",
               "acq_nb_frames": nframes, "saving_frame_per_file": 100, "saving_frame_per_acquisition": nframes,
               "saving_next_number": 0, "saving_index_format": "%04d", "saving_format": "HDF5",
               "saving_directory": f"/tmp/scans/{session}/scan{scan_nb:04d}", "saving_prefix": f"{device}_",
               "saving_suffix": ".h5", "lima_version": "1.9.18", "user_instrument_name": "instrument",
               "user_detector_name": device}
        if saving_lag is None:
            ref = {k: v for k, v in ref.items() if not k.startswith("saving_")}
        self.node.store({"name": f"{device}:image", "description": ref,
                         "data": {"in_prepare": True, "server_url": self.server_url, "buffer_max_number": 8}})
        self.points = 0
        self.xadds = 0

    def frames(self, total: int) -> None:
        """One LIMAIMAGESTATUS event saying `total` frames are acquired and ready."""
        last = total - 1
        self.node.store({"name": f"{self.device}:image", "description": None,
                         "data": {"last_image_acquired": last, "last_image_ready": last, "last_counter_ready": last,
                                  "last_image_saved": -1 if self.saving_lag is None else last - self.saving_lag}})
        self.points = total
        self.xadds += 1


def scan_info_base(session: Session, spec: dict, scan_nb: int, shadow: bool, kind: str) -> dict:
    """scan.info as BLISS 1.11.4 writes it when the scan node is created (keys of the reference)."""
    now = datetime.datetime.now()
    info = {
        "title": spec.get("title") or (spec["sequence"] if kind == "sequence" else
                                       f"{spec.get('type', 'loopscan')} {spec.get('npoints', 10)} "
                                       f"{spec.get('count_time', 0.01)}"),
        "_display_extra": {"plotselect": []},
        "data_policy": "None",
        "publisher_version": PUBLISHER_VERSION,
        "publisher": "Bliss",
        "images_path": f"/tmp/scans/{session.name}/scan{scan_nb:04d}/{{img_acq_device}}_",
        "filename": "",
        "session_name": session.name,
        "user_name": getpass.getuser(),
        "state": "IDLE",
        "scan_nb": scan_nb,
        "writer_options": {},
        "save": not shadow,
        "start_time": now,
        "start_time_str": now.strftime("%a %b %d %H:%M:%S %Y"),
        "start_timestamp": now.timestamp(),
        "shadow_scan_number": shadow,
        "data_writer": "null",
    }
    if kind == "sequence":
        info["is-scan-sequence"] = True
    else:
        info["type"] = spec.get("type", "loopscan")
        info["npoints"] = int(spec.get("npoints", 10))
        info["count_time"] = float(spec.get("count_time", 0.01))
    if not shadow:  # ct (a shadow scan) has no scan meta categories nor plots
        info["scan_meta_categories"] = ["technique", "positioners", "instrument"]
        info["technique"] = {"@NX_class": "NXcollection"}
        info["instrument"] = {"@NX_class": "NXinstrument"}
        info["positioners"] = {"positioners_start": {"roby": 0.0}, "positioners_dial_start": {"roby": 0.0},
                               "positioners_units": {"roby": "mm"}}
        if kind != "sequence":
            info["plots"] = [{"kind": "curve-plot", "items": [{"kind": "curve", "x": "timer:elapsed_time"}]}]
    return info


class Scan:
    def __init__(self, session: Session, spec: dict, role: str = "scan", group: "Scan | None" = None):
        self.session = session
        self.spec = spec
        self.role = role
        kind = "sequence" if role == "sequence" else "scan"
        self.outcome = spec.get("outcome", "SUCCESS")
        if self.outcome not in EXCEPTIONS:
            raise ValueError(f"unknown outcome {self.outcome!r}")
        shadow = not spec.get("save", True)
        self.scan_nb = session.next_number(shadow)
        base = spec["sequence"] if kind == "sequence" else spec.get("type", "loopscan")
        self.name = f"_{self.scan_nb}_{base}" if shadow else f"{self.scan_nb}_{base}"
        self.info = scan_info_base(session, spec, self.scan_nb, shadow, kind)
        if group is not None:
            self.info["group"] = group.node.db_name
        node_type = "scan_group" if kind == "sequence" else "scan"
        self.node = create_node(self.name, node_type, parent=session.scans, info=self.info)
        self.nodes = []  # every node under the scan, in creation order (duplicates included)
        self.channels: list = []
        self.limas: list = []
        say(event="created", scan=self.name, key=self.node.db_name, role=role)
        if kind == "sequence":
            self._build_sequence()
        else:
            self._build_scan()

    def _device(self, name, parent):
        node = create_node(name, None, parent=parent)
        self.nodes.append(node.db_name)
        return node

    def _channel(self, parent, fullname, dtype, unit=None, kind="channel", reference=False):
        ch = Channel(parent, fullname, dtype, unit, kind, reference)
        self.nodes.append(ch.node.db_name)
        self.channels.append(ch)
        return ch

    def _build_scan(self):
        spec = self.spec
        devices, channels, chain_scalars = {}, {}, []
        timer = self._device("timer", self.node)
        timer_id = f"{next(_ids)}:timer"
        self.elapsed = self._channel(timer, "timer:elapsed_time", numpy.float64, "s")
        self.epoch = self._channel(timer, "timer:epoch", float, "s")
        devices[timer_id] = {"triggered_devices": [], "channels": ["timer:elapsed_time", "timer:epoch"]}
        for ch in (self.elapsed, self.epoch):
            channels[ch.fullname] = {"device": timer_id, "unit": "s", "display_name": ch.fullname.split(":")[1],
                                     "dim": 0}
        self.counters = []
        self.flaky = None
        counters = spec.get("counters", spec.get("channels", ["diode1", "diode2"]))
        if isinstance(counters, int):  # "channels": N -> N diodes
            counters = [f"diode{i + 1}" for i in range(counters)]
        counters = list(counters)
        if self.outcome == "FAILURE":
            counters.insert(0, "flaky")
        for counter in counters:
            ctrl = "flaky" if counter == "flaky" else "simulation_diode_sampling_controller"
            dev = self._device(ctrl, timer)
            dev_id = f"{next(_ids)}:{ctrl}"
            ch = self._channel(dev, f"{ctrl}:{counter}", float)
            devices[timer_id]["triggered_devices"].append(dev_id)
            devices[dev_id] = {"channels": [ch.fullname], "metadata": {}}
            channels[ch.fullname] = {"device": dev_id, "display_name": counter, "dim": 0}
            chain_scalars.append(ch.fullname)
            if counter == "flaky":
                self.flaky = ch
            else:
                self.counters.append(ch)
        for det in spec.get("lima", []):
            dev = self._device(det, timer)
            dev_id = f"{next(_ids)}:{det}"
            lima = Lima(dev, det, self.session.name, self.scan_nb, int(spec.get("npoints", 10)),
                        saving_lag=spec.get("lima_saving", {}).get(det))
            self.nodes.append(lima.node.db_name)
            self.limas.append(lima)
            devices[timer_id]["triggered_devices"].append(dev_id)
            devices[dev_id] = {"channels": [f"{det}:image"], "metadata": {}}
            channels[f"{det}:image"] = {"device": dev_id, "display_name": "image", "dim": 2}
        self.info["devices"] = devices
        self.info["channels"] = channels
        self.info["acquisition_chain"] = {"timer": {
            "master": {"scalars": ["timer:elapsed_time", "timer:epoch"], "spectra": [], "images": []},
            "scalars": chain_scalars, "spectra": [], "images": [f"{d}:image" for d in spec.get("lima", [])],
            "devices": list(devices)}}

    def _build_sequence(self):
        master = self._device("GroupingMaster", self.node)
        dev_id = f"{next(_ids)}:GroupingMaster"
        # the GroupingMaster's channels are named without their device (reference 5_myseq)
        self.refs = self._channel(master, "scans", str, kind="node_ref_channel", reference=True)
        self.numbers = self._channel(master, "scan_numbers", int)
        self.info["devices"] = {dev_id: {"channels": ["scans", "scan_numbers"]}}
        self.info["channels"] = {n: {"device": dev_id, "display_name": n, "dim": 0} for n in ("scans", "scan_numbers")}
        self.info["acquisition_chain"] = {"GroupingMaster": {
            "master": {"scalars": ["scans", "scan_numbers"], "spectra": [], "images": []},
            "devices": [dev_id]}}

    def prepared(self):
        self.info["state"] = "PREPARING"
        self.node.prepared(self.info)
        self.info["state"] = "STARTING"
        self.node.info["state"] = "STARTING"

    def run_points(self):
        spec = self.spec
        npoints = int(spec.get("npoints", 10))
        batch = max(1, int(spec.get("batch", 1)))
        delay = float(spec.get("point_delay", 0.0))
        lima_batch = max(1, int(spec.get("lima_batch", 1)))
        stop = npoints if self.outcome == "SUCCESS" else min(npoints, int(spec.get("fail_after", npoints // 2)))
        t0 = time.time()
        i = 0
        while i < stop:
            n = min(batch, stop - i)
            idx = range(i, i + n)
            self.elapsed.store([k * 0.01 for k in idx])
            self.epoch.store([t0 + k * 0.01 for k in idx])
            if self.flaky is not None:
                self.flaky.store([1.0] * n)
            for ch in self.counters:
                ch.store([float(k % 7) for k in idx])
            i += n
            for lima in self.limas:
                if (i % lima_batch == 0) or i == stop:
                    lima.frames(i)
            if delay:
                gevent.sleep(delay)
        if self.outcome == "FAILURE" and stop < npoints:
            # the failing read: every channel but the flaky counter got the point (3_loopscan)
            self.elapsed.store([stop * 0.01])
            self.epoch.store([t0 + stop * 0.01])
            for ch in self.counters:
                ch.store([float(stop % 7)])

    def end(self):
        exception, final = EXCEPTIONS[self.outcome]
        token = self.spec.get("wait")
        if token:
            say(event="waiting", scan=self.name, key=self.node.db_name, token=token)
            sys.stdin.readline()
        positioners = self.info.get("positioners")
        if positioners is not None:
            positioners["positioners_end"] = {"roby": 0.0}
            positioners["positioners_dial_end"] = {"roby": 0.0}
        self.info["state"] = "STOPPING"
        self.node.end(self.info, exception=exception)
        gevent.sleep(0.002)  # BLISS 1.11.4 writes the final state ~2 ms after END_SCAN
        self.info["state"] = final
        self.node.info["state"] = final
        if self.session.expire:
            self._expire()
        say(event="truth", **self.truth())

    def _expire(self):
        """As BLISS does at the end of a scan: the scan and its parents 1 day, what is under it 600 s."""
        expiration.set_expiration_time(self.node.get_db_names(), data=False)
        keys, seen = [], set()
        for db_name in self.nodes:
            if db_name in seen:
                continue
            seen.add(db_name)
            keys.extend([db_name, f"{db_name}_info", f"{db_name}_children_list", f"{db_name}_data",
                         f"{db_name}_data_ref"])
        for lima in self.limas:
            keys.append(lima.server_url)
        expiration.set_expiration_time(keys, data=True)

    def truth(self) -> dict:
        exception, final = EXCEPTIONS[self.outcome]
        streams = self.channels + self.limas
        return {
            "scan": self.name,
            "key": self.node.db_name,
            "scan_nb": self.scan_nb,
            "role": self.role,
            "group": self.info.get("group"),
            "type": self.info.get("type"),
            "new_node": 1 + len(set(self.nodes)),
            "new_data": sum(s.xadds for s in streams),
            "prepared_scan": 1,
            "end_scan": 1,
            "points": sum(s.points for s in streams),
            "channels": {s.node.db_name: s.points for s in streams},
            "xadds": {s.node.db_name: s.xadds for s in streams},
            "end_reason": self.outcome,
            "state": final,
            "exception": exception,
        }


def run_scan(session: Session, spec: dict, role="scan", group=None, sequence=None) -> dict:
    scan = Scan(session, spec, role=role, group=group)
    scan.prepared()
    if sequence is not None:  # the sequence references its child once the child is prepared
        sequence.refs.store([scan.node.db_name])
        sequence.numbers.store([scan.scan_nb])
    scan.run_points()
    scan.end()
    return scan.truth()


def run_sequence(session: Session, spec: dict) -> list:
    seq = Scan(session, spec, role="sequence")
    seq.prepared()
    truths = []
    for child in spec.get("children", []):
        truths.append(run_scan(session, child, role="child", group=seq, sequence=seq))
    seq.end()
    return [seq.truth()] + truths


def run_any(session: Session, spec: dict) -> list:
    if "sequence" in spec:
        return run_sequence(session, spec)
    return [run_scan(session, spec)]


def load_spec(arg: str) -> dict:
    if arg == "-":
        return json.loads(sys.stdin.read())  # then stdin is at EOF: "wait" does not wait
    if arg.lstrip().startswith("{"):
        return json.loads(arg)
    with open(arg) as f:
        return json.load(f)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    t0 = time.monotonic()
    spec = load_spec(argv[0])
    connect(spec["redis_url"])
    session = Session(spec.get("session", "demo_session"), expire=spec.get("expire", True), proposal=spec.get("proposal"))
    scans = spec.get("scans", [])
    truths: list = []
    if spec.get("parallel"):
        jobs = [gevent.spawn(run_any, session, s) for s in scans]
        gevent.joinall(jobs, raise_error=True)
        for job in jobs:
            truths.extend(job.value)
    else:
        delay = float(spec.get("scan_delay", 0.0))
        for i, s in enumerate(scans):
            if i and delay:
                gevent.sleep(delay)
            truths.extend(run_any(session, s))
    totals = {k: sum(t[k] for t in truths) for k in ("new_node", "new_data", "prepared_scan", "end_scan", "points")}
    ended = {}
    for t in truths:
        ended[t["end_reason"]] = ended.get(t["end_reason"], 0) + 1
    usage = resource.getrusage(resource.RUSAGE_SELF)
    say(event="done", scans=len(truths), totals=totals, ended=ended, wall=time.monotonic() - t0,
        cpu={"user": usage.ru_utime, "system": usage.ru_stime})
    return 0


if __name__ == "__main__":
    sys.exit(main())
