"""LegacySource (exporter/store/legacy/) against a real plain Redis written by blissdata 0.3.1 itself
(tests/legacy/publish.py, the genuine BLISS 1.11.4 layout): its methods called the way the session
and scan watchers call a Source, and every count compared with the publisher's printed truth.

Everything is polled with deadlines (other suites share the cores), never timed.
"""

from __future__ import annotations

import pickle
import time

import pytest
import redis

from exporter.model import State, stream_id_time
from exporter.store.base import REFERENCE_KIND, NewScans, ScanStreams
from exporter.store.detect import detect_model
from exporter.store.documents import ScanDocument
from exporter.store.errors import DataStoreError, DataStoreUnavailable, ScanGone, ScanInvalid
from exporter.store.legacy import (
    ACL_RULES,
    LEGACY_KIND,
    LEGACY_LIMA_KIND,
    READ_COMMANDS,
    LegacyPosition,
    LegacyScanDocument,
    LegacySource,
)

from . import legacy_fixtures

legacy_redis = legacy_fixtures.legacy_redis
legacy_publish = legacy_fixtures.legacy_publish

SCANS = "demo_session:tmp:scans"

# Every case of the brief in one session, published while the watcher-like reader runs.
WORKLOAD = {"scans": [
    {"type": "loopscan", "npoints": 20, "counters": ["diode1", "diode2"], "point_delay": 0.01},  # success
    {"type": "loopscan", "npoints": 10, "counters": ["diode1"], "outcome": "FAILURE", "fail_after": 3},
    {"type": "loopscan", "npoints": 1000, "counters": ["diode1"], "outcome": "USER_ABORT", "fail_after": 79},
    {"type": "loopscan", "npoints": 100, "counters": ["diode1"], "batch": 7},  # batches (last one of 2)
    {"type": "loopscan", "npoints": 10, "channels": 5},  # several channels, 5 controllers of one name
    {"type": "ascan", "npoints": 12, "counters": ["diode1", "diode2"]},  # one controller node listed twice
    {"type": "ct", "npoints": 1, "counters": ["diode1"], "save": False, "title": "ct 0.01 1"},  # shadow scan
    {"type": "loopscan", "npoints": 10, "counters": ["diode1"], "lima": ["lima_simulator"], "lima_batch": 3},
    {"sequence": "myseq", "children": [{"type": "loopscan", "npoints": 5, "counters": ["diode1"]},
                                       {"type": "loopscan", "npoints": 4, "counters": ["diode2"], "batch": 3}]},
]}


class Reader:
    """Calls a Source as the session watcher and the scan watcher do, and keeps what it reads."""

    def __init__(self, source: LegacySource, position=None, block_ms: int = 20):
        self.source = source
        self.position = source.anchor() if position is None else position
        self.block_ms = block_ms
        self.order: list[str] = []  # scans in the order they were discovered
        self.docs: dict[str, LegacyScanDocument] = {}
        self.cursors: dict[str, str] = {}  # state stream key -> cursor
        self.scan_of: dict[str, str] = {}  # state stream key -> scan key
        self.states: dict[str, list[tuple[State | None, str]]] = {}
        self.streams: dict[str, ScanStreams] = {}  # read at PREPARED
        self.streams_at_end: dict[str, ScanStreams] = {}  # read again at CLOSED
        self.polls: dict[str, list] = {}  # stream key -> [StreamStats] while running
        self.closings: dict = {}

    def watch(self, docs: dict) -> None:
        for key, doc in docs.items():
            assert isinstance(doc, ScanDocument), (key, doc)
            self.order.append(key)
            self.docs[key] = doc
            self.states[key] = []
            for state_key in doc.state_keys:
                self.cursors[state_key] = "0-0"
                self.scan_of[state_key] = key

    def cycle(self) -> None:
        found = self.source.new_scans(self.position, self.block_ms)
        assert isinstance(found, NewScans) and not found.gap
        self.position = found.position
        new = [k for k in found.keys if k not in self.docs]
        if new:
            self.watch(self.source.load_scans(new))
        open_cursors = {k: c for k, c in self.cursors.items() if self.scan_of[k] not in self.closings}
        prepared, closed = [], []
        for state_key, entries in self.source.read_states(open_cursors, self.block_ms).items():
            scan = self.scan_of[state_key]
            for cursor, state in entries:
                self.cursors[state_key] = cursor
                self.states[scan].append((state, cursor))
                (prepared if state is State.PREPARED else closed).append(scan)
        if prepared:
            self.streams.update(self.source.scan_streams(prepared))
        if closed:
            at_end = self.source.scan_streams(closed)
            self.streams_at_end.update(at_end)
            self.closings.update(self.source.closing({s: self.kinds(at_end[s]) for s in closed}))
        running = {}
        for scan, streams in self.streams.items():
            if scan not in self.closings:
                running.update(self.kinds(streams))
        for key, stats in self.source.stream_stats(running).items():
            self.polls.setdefault(key, []).append(stats)

    @staticmethod
    def kinds(streams: ScanStreams) -> dict:
        return {key: kind for key, kind in streams.streams.values()}

    def run_until(self, done, deadline_s: float = 90.0, what: str = "scans closed") -> None:
        end = time.monotonic() + deadline_s
        while not done():
            assert time.monotonic() < end, f"timed out waiting for {what}: closed {sorted(self.closings)}"
            self.cycle()

    # -- what a watcher would count ---------------------------------------------------------------
    def counts(self, scan: str) -> dict:
        closing = self.closings[scan]
        stats = closing.stats
        return {
            "new_node": 1 + self.streams_at_end[scan].nodes,
            "new_data": sum(s.entries for s in stats.values() if s is not None),
            "points": sum(s.points for s in stats.values() if s is not None),
            "prepared_scan": sum(1 for st, _ in self.states[scan] if st is State.PREPARED),
            "end_scan": sum(1 for st, _ in self.states[scan] if st is State.CLOSED),
            "end_reason": closing.end_reason,
        }

    def duration_ms(self, scan: str) -> int:
        ids = {st: cursor for st, cursor in self.states[scan]}
        return int((stream_id_time(ids[State.CLOSED]) - stream_id_time(ids[State.PREPARED])) * 1000)


def truth_counts(truth: dict) -> dict:
    return {k: truth[k] for k in ("new_node", "new_data", "points", "prepared_scan", "end_scan", "end_reason")}


def assert_exact(reader: Reader, pub, keys=None) -> None:
    truths = {t["key"]: t for t in pub.truths}
    for key in keys or truths:
        t = truths[key]
        assert reader.counts(key) == truth_counts(t), key
        # per stream: points and XADDs of each channel / lima / node_ref node
        streams = reader.streams_at_end[key].streams
        stats = reader.closings[key].stats
        by_node = {skey[: -len("_data")]: stats[skey] for skey, _ in streams.values()}
        assert {n: s.points for n, s in by_node.items()} == t["channels"], key
        assert {n: s.entries for n, s in by_node.items()} == t["xadds"], key
        assert reader.closings[key].exists
        # the tree under a scan is complete at PREPARED (BLISS creates it while preparing)
        assert reader.streams[key] == reader.streams_at_end[key], key
        assert [st for st, _ in reader.states[key]] in ([State.PREPARED, State.CLOSED],
                                                        [State.CLOSED, State.PREPARED]), key
        # counts seen while running never exceed the final ones, and never go down
        for skey, _ in streams.values():
            seen = [(s.entries, s.points) for s in reader.polls.get(skey, []) if s is not None]
            assert seen == sorted(seen) and all(e <= by_node[skey[:-5]].entries for e, _ in seen), skey


def test_a_session_read_as_the_watchers_read_it(legacy_redis, legacy_publish):
    source = LegacySource(legacy_redis.url)
    reader = Reader(source)  # anchored on an empty store: the session does not exist yet
    assert reader.position == LegacyPosition({}, 0.0)
    pub = legacy_publish(WORKLOAD, wait=False)
    reader.run_until(lambda: len(reader.closings) == 11)
    pub.finish()
    created = [line["key"] for line in pub.lines if line["event"] == "created"]
    assert reader.order == created  # discovered in creation order, each once
    assert_exact(reader, pub)
    source.check()

    by_name = {t["scan"]: t for t in pub.truths}
    assert {n: t["end_reason"] for n, t in by_name.items() if t["end_reason"] != "SUCCESS"} == {
        "2_loopscan": "FAILURE", "3_loopscan": "USER_ABORT"}
    # documents: what the watchers read from scan.info
    doc = reader.docs[f"{SCANS}:1_loopscan"]
    assert isinstance(doc, LegacyScanDocument)
    assert (doc.session, doc.name, doc.number) == ("demo_session", "loopscan", 1)
    assert doc.state_key == f"{SCANS}:1_loopscan_prepared"
    assert doc.state_keys == (f"{SCANS}:1_loopscan_prepared", f"{SCANS}:1_loopscan_end")
    assert doc.info["type"] == "loopscan" and doc.info["npoints"] == 20 and type(doc.info["npoints"]) is int
    assert doc.info["count_time"] == 0.01 and doc.info["title"] == "loopscan 20 0.01" and doc.info["scan_nb"] == 1
    assert list(doc.info["acquisition_chain"]) == ["timer"]
    assert "is_scan_sequence" not in doc.info and doc.info.get("group") is None
    shadow = reader.docs[f"{SCANS}:_1_ct"]
    assert (shadow.name, shadow.number, shadow.info["type"]) == ("_1_ct", None, "ct")
    seq, child1, child2 = (f"{SCANS}:8_myseq", f"{SCANS}:9_loopscan", f"{SCANS}:10_loopscan")
    assert reader.docs[seq].info["is_scan_sequence"] is True and (reader.docs[seq].name, reader.docs[seq].number) == (
        "myseq", 8)
    assert reader.docs[child1].info["group"] == seq and reader.docs[child2].info["group"] == seq
    assert by_name["8_myseq"]["role"] == "sequence" and by_name["9_loopscan"]["role"] == "child"

    # stream kinds and nodes: the shared controller listed twice counts once
    kinds = {name: kind for name, (_, kind) in reader.streams[seq].streams.items()}
    assert kinds == {"GroupingMaster:scans": REFERENCE_KIND, "GroupingMaster:scan_numbers": LEGACY_KIND}
    lima = {name: kind for name, (_, kind) in reader.streams[f"{SCANS}:7_loopscan"].streams.items()}
    assert lima["timer:lima_simulator:image"] == LEGACY_LIMA_KIND
    client = legacy_redis.client()
    shared = f"{SCANS}:6_ascan:timer_children_list"
    assert client.xlen(shared) == 4  # elapsed_time, epoch, the diodes' controller twice
    assert reader.streams[f"{SCANS}:6_ascan"].nodes == 6  # timer, elapsed_time, epoch, controller, 2 diodes
    assert by_name["5_loopscan"]["new_node"] == 1 + reader.streams[f"{SCANS}:5_loopscan"].nodes == 10
    # the batch scan: ids 1, 8, ..., 99 and a last batch of 2 points
    assert reader.closings[f"{SCANS}:4_loopscan"].stats[f"{SCANS}:4_loopscan:timer:epoch_data"].points == 100
    assert by_name["7_loopscan"]["channels"][f"{SCANS}:7_loopscan:timer:lima_simulator:image"] == 10

    # the sequence's references name its children, in order
    refs, more = source.read_references(f"{seq}:GroupingMaster:scans_data", "0-0", 1000)
    assert [(r[1], r[2]) for r in refs] == [(child1, ""), (child2, "")] and not more
    refs, more = source.read_references(f"{seq}:GroupingMaster:scans_data", "0-0", 1)
    assert [r[1] for r in refs] == [child1] and more
    assert source.read_references(f"{seq}:GroupingMaster:scans_data", refs[0][0], 10)[0][0][1] == child2

    # times: ids are server ms; creation <= PREPARED <= END; the slow scan lasted its 20 x 10 ms
    created_ids = source.creation_ids(reader.order)
    assert created_ids == LegacySource(legacy_redis.url).creation_ids(reader.order)  # remembered = read
    assert created_ids == {k: d.created_id for k, d in reader.docs.items()}
    for key in reader.order:
        ids = dict(reader.states[key])
        assert stream_id_time(created_ids[key]) <= stream_id_time(ids[State.PREPARED]) <= stream_id_time(ids[State.CLOSED])
    assert reader.duration_ms(f"{SCANS}:1_loopscan") >= 200
    assert reader.duration_ms(seq) >= reader.duration_ms(child1) + reader.duration_ms(child2)

    # discovery helpers agree with what was read
    assert source.scan_keys() == created
    assert source.scans_created_after(LegacyPosition(), list(reversed(created))) == created
    assert source.new_scans(reader.position, None).keys == []
    lifetimes = source.lifetimes(list(reader.docs.values()))
    for key in reader.order:  # every one closed; its times are its ids'
        ids = dict(reader.states[key])
        assert lifetimes[key].created == stream_id_time(created_ids[key])
        assert (lifetimes[key].prepared, lifetimes[key].closed) == (
            stream_id_time(ids[State.PREPARED]), stream_id_time(ids[State.CLOSED]))
    alive = source.scans_alive({k: d.state_keys for k, d in reader.docs.items()})
    assert alive == dict.fromkeys(created)


def test_positions_and_scans_created_after(legacy_redis, legacy_publish):
    source = LegacySource(legacy_redis.url, sessions=["demo_session"])  # named: followed before it exists
    empty = source.anchor()
    assert empty.cursors == {"demo_session_children_list": "0-0"}
    pub = legacy_publish({"scans": [{"npoints": 3, "counters": ["diode1"]}] * 3})
    keys = [t["key"] for t in pub.truths]
    middle = source.anchor()  # now: nothing new after it
    assert source.new_scans(middle, None).keys == []
    assert source.scans_created_after(middle, keys) == []
    found = source.new_scans(empty, 100)
    assert found.keys == keys
    assert source.new_scans(found.position, None).keys == []
    assert source.scans_created_after(empty, keys[::-1]) == keys
    pub2 = legacy_publish({"scans": [{"npoints": 3, "counters": ["diode1"]}] * 2})
    later = [t["key"] for t in pub2.truths]
    assert source.scans_created_after(middle, keys + later) == later
    assert source.new_scans(middle, 100).keys == later
    assert source.scan_keys() == keys + later
    # an other session, not followed by this source; found by one following every session
    legacy_publish({"session": "other_session", "scans": [{"npoints": 2, "counters": ["diode1"]}]})
    assert source.new_scans(middle, None).keys == later
    every = LegacySource(legacy_redis.url)
    assert every.scan_keys() == [*keys, *later, "other_session:tmp:scans:1_loopscan"]


def test_adoption_of_a_running_scan(legacy_redis, legacy_publish):
    """A reader started while a scan runs adopts it with its whole history: exact totals."""
    spec = {"scans": [{"npoints": 5, "counters": ["diode1"]},
                      {"npoints": 30, "counters": ["diode1", "diode2"], "batch": 4, "lima": ["lima_simulator"],
                       "wait": "held"},
                      {"npoints": 6, "counters": ["diode1"], "outcome": "FAILURE", "fail_after": 2}]}
    pub = legacy_publish(spec, wait=False)
    held = pub.wait_for("waiting", token="held")["key"]
    source = LegacySource(legacy_redis.url)
    source.check()
    reader = Reader(source)  # anchored now: the ended scan and the held one are history
    keys = source.scan_keys()
    assert keys == [f"{SCANS}:1_loopscan", held]
    docs = source.load_scans(keys)
    lifetimes = source.lifetimes(list(docs.values()))
    assert [key for key, life in lifetimes.items() if life.closed is None] == [held]
    assert lifetimes[held].created <= lifetimes[held].prepared
    reader.watch({held: docs[held]})
    reader.run_until(lambda: held in reader.streams and reader.polls, what="the held scan's PREPARED")
    assert [st for st, _ in reader.states[held]] == [State.PREPARED]
    assert source.scans_alive({held: docs[held].state_keys}) == {held: None}
    assert source.lifetimes([docs[held]])[held].closed is None
    # while held: all its data is there already, counted from the stream heads
    mid = source.stream_stats(Reader.kinds(reader.streams[held]))
    assert sum(s.points for s in mid.values()) == 4 * 30 + 30
    pub.release()
    reader.run_until(lambda: len(reader.closings) == 2, what="the held scan and the next one")
    pub.finish()
    assert reader.order == [held, f"{SCANS}:3_loopscan"]  # the next one through new_scans
    assert_exact(reader, pub, reader.order)
    assert reader.counts(f"{SCANS}:3_loopscan")["end_reason"] == "FAILURE"


def test_check_and_detect_model(legacy_redis, legacy_publish, redis_server):
    empty = LegacySource(legacy_redis.url)
    with pytest.raises(DataStoreError, match="no BLISS 1.x session"):
        empty.check()
    assert detect_model(legacy_redis.client()) is None
    legacy_publish({"scans": [{"npoints": 2, "counters": ["diode1"]}]})
    LegacySource(legacy_redis.url).check()
    LegacySource(legacy_redis.url, sessions=["demo_*"]).check()
    with pytest.raises(DataStoreError, match="no BLISS 1.x session"):
        LegacySource(legacy_redis.url, sessions=["other"]).check()
    assert detect_model(legacy_redis.client()) == "legacy"
    assert detect_model(legacy_redis.client(), sessions=["demo_session"]) == "legacy"
    # database 0 of the data Redis: empty, with a hint
    assert detect_model(legacy_redis.client(0)) is None
    with pytest.raises(DataStoreError, match="database 1"):
        LegacySource(legacy_redis.url[: -len("/1")] + "/0").check()
    # a blissdata 2.x store (Redis Stack, initialised by blissdata 2.x)
    stack = redis.Redis.from_url(redis_server.url, protocol=2)
    assert detect_model(stack) == "blissdata2"
    with pytest.raises(DataStoreError, match="blissdata 2.x"):
        LegacySource(redis_server.url).check()


def test_read_only_acl_user_can_do_everything(legacy_redis, legacy_publish):
    admin = legacy_redis.client()
    rules = ["resetkeys", "~*", "resetchannels", "-@all", *(f"+{c}" for c in READ_COMMANDS), "+select"]
    assert sorted(rules) == sorted(ACL_RULES)
    admin.execute_command("ACL", "SETUSER", "reader", "on", ">secret", *rules)
    url = f"redis://reader:secret@127.0.0.1:{legacy_redis.port}/1"
    source = LegacySource(url)
    reader = Reader(source)
    pub = legacy_publish({"scans": [
        {"npoints": 8, "counters": ["diode1", "diode2"], "lima": ["lima_simulator"], "batch": 3},
        {"npoints": 5, "counters": ["diode1"], "outcome": "USER_ABORT", "fail_after": 2},
        {"sequence": "seq", "children": [{"npoints": 3, "counters": ["diode1"]}]}]}, wait=False)
    reader.run_until(lambda: len(reader.closings) == 4)
    pub.finish()
    assert_exact(reader, pub)
    source.check()
    keys = source.scan_keys()
    assert len(keys) == 4 and source.scans_created_after(LegacyPosition(), keys) == keys
    assert all(isinstance(d, ScanDocument) for d in source.load_scans(keys).values())
    assert source.scans_alive({k: reader.docs[k].state_keys for k in keys}) == dict.fromkeys(keys)
    assert source.unreadable_state_streams(list(reader.cursors)) == []
    assert len(source.read_references(f"{SCANS}:3_seq:GroupingMaster:scans_data", "0-0", 10)[0]) == 1
    assert detect_model(source.redis) == "legacy"
    # and nothing else: no write, no script
    for command in (("SET", "x", "1"), ("XADD", f"{SCANS}:1_loopscan_end", "*", "a", "b"),
                    ("EVAL", "return 1", "0"), ("DEL", f"{SCANS}:1_loopscan"), ("KEYS", "*")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            source.redis.execute_command(*command)
    # a command taken away is named by the self-test
    admin.execute_command("ACL", "SETUSER", "reader", "-xinfo|stream")
    with pytest.raises(DataStoreUnavailable, match="XINFO|STREAM"):
        LegacySource(url).check()


def test_rejected_pickles_and_bad_entries(legacy_redis, legacy_publish):
    errors = []
    source = LegacySource(legacy_redis.url, on_stream_error=errors.append)
    pub = legacy_publish({"scans": [{"npoints": 4, "counters": ["diode1"]},
                                    {"npoints": 4, "counters": ["diode1"], "lima": ["lima_simulator"]},
                                    {"npoints": 4, "counters": ["diode1"], "outcome": "USER_ABORT", "fail_after": 1}]})
    keys = [t["key"] for t in pub.truths]
    admin = legacy_redis.client()

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, ("true",))

    admin.hset(f"{keys[0]}_info", "title", pickle.dumps(Evil()))
    docs = source.load_scans(keys + [f"{SCANS}:99_loopscan", f"{SCANS}:1_loopscan:timer"])
    assert isinstance(docs[keys[0]], ScanInvalid) and "rejected" in str(docs[keys[0]])
    assert isinstance(docs[keys[1]], ScanDocument)
    assert isinstance(docs[f"{SCANS}:99_loopscan"], ScanGone)
    assert isinstance(docs[f"{SCANS}:1_loopscan:timer"], ScanInvalid)  # a device node, not a scan
    with pytest.raises(ScanInvalid):
        source.load_scan(keys[0])

    # a lima status that does not unpickle, a channel entry without __NPOINTS__: errors, once per stream
    lima = f"{keys[1]}:timer:lima_simulator:image_data"
    diode = f"{keys[1]}:timer:simulation_diode_sampling_controller:diode1_data"
    admin.xadd(lima, {"__EVENT__": "LIMAIMAGESTATUS", "__STATUS__": pickle.dumps(Evil())}, id="99")
    admin.xadd(diode, {"__EVENT__": "CHANNELDATA", "__DATA__": pickle.dumps(1.0)}, id="99")
    kinds = Reader.kinds(source.scan_streams([keys[1]])[keys[1]])
    for _ in range(3):
        stats = source.stream_stats(kinds)
    assert stats[lima].error[0] == "bad_status" and stats[lima].points == 0 and stats[lima].entries == 5
    assert stats[diode].error[0] == "bad_index" and stats[diode].entries == 5
    assert sorted(errors) == ["bad_index", "bad_status"]

    # end reason: from __EXCEPTION__, else from the final state
    assert source.closing({keys[2]: {}})[keys[2]].end_reason == "USER_ABORT"
    end = f"{keys[2]}_end"
    (entry_id, fields), = admin.xrange(end)
    admin.delete(end)
    admin.xadd(end, {**fields, b"__EXCEPTION__": pickle.dumps(Evil())}, id=entry_id)
    assert source.closing({keys[2]: {}})[keys[2]].end_reason == "USER_ABORT"  # state USER_ABORTED
    admin.hset(f"{keys[2]}_info", "state", pickle.dumps("IDLE"))
    assert source.closing({keys[2]: {}})[keys[2]].end_reason is None
    # read_references: an entry that is not a scan db_name
    assert source.read_references(lima, "0-0", 10)[0][0][1:] == (None, "no __DATA__ field")


def test_eviction_and_vanished_scans(legacy_redis, legacy_publish):
    source = LegacySource(legacy_redis.url)
    pub = legacy_publish({"scans": [{"npoints": 6, "counters": ["diode1"]}] * 3})
    a, b, c = [t["key"] for t in pub.truths]
    admin = legacy_redis.client()
    docs = source.load_scans([a, b, c])
    # a data stream evicted and written again (explicit ids, no phantom): entries from 1 again
    stream = f"{a}:timer:epoch_data"
    admin.delete(stream)
    admin.xadd(stream, {"__EVENT__": "CHANNELDATA", "__NPOINTS__": 1, "__DATA__": pickle.dumps(1.0)}, id="7")
    stats = source.stream_stats({stream: LEGACY_KIND})[stream]
    assert (stats.entries, stats.points, stats.error) == (1, 7, None)
    assert source.stream_stats({f"{a}:gone_data": LEGACY_KIND}) == {f"{a}:gone_data": None}
    # b: the END entry lost while the info says it ended; c: everything gone
    admin.delete(f"{b}_end")
    admin.delete(c, f"{c}_prepared", f"{c}_end", f"{c}_info")
    assert source.scans_alive({k: docs[k].state_keys for k in (a, b, c)}) == {
        a: None, b: "state stream vanished", c: "vanished"}
    closing = source.closing({c: {}, a: {}})
    assert closing[c].exists is False and closing[a].exists is True and closing[a].end_reason == "SUCCESS"
    assert isinstance(source.scan_streams([c])[c], ScanGone)
    assert isinstance(source.load_scans([c])[c], ScanGone)
    # a state key that is not a stream
    admin.set(f"{a}_odd", "x")
    assert source.unreadable_state_streams([f"{a}_odd", f"{a}_end", f"{a}_none"]) == [f"{a}_odd"]


def test_a_key_of_another_type_is_its_scans_problem_never_the_stores(legacy_redis, legacy_publish):
    """A string where a node hash, an `_info`, a `_children_list` or a references stream is expected: as
    blissdata 2.x's store does, the scan is invalid (its document or its node), or that one key reads as
    not there; no Redis error comes out, every other key is read as before."""
    source = LegacySource(legacy_redis.url)
    pub = legacy_publish({"scans": [
        {"npoints": 3, "counters": ["diode1", "diode2"], "lima": ["lima_simulator"], "lima_saving": {"lima_simulator": 0}},
        {"sequence": "seq", "children": [{"npoints": 2, "counters": ["diode1"]}]},
        {"npoints": 2, "counters": ["diode1"]}]})
    a, seq, _, c = [t["key"] for t in pub.truths]
    docs = source.load_scans([a, seq, c])
    before = source.scan_streams([a, c])
    assert before[a].streams["timer:lima_simulator:image"][1].saves
    admin = legacy_redis.client()

    def replace(key: str) -> None:
        admin.delete(key)
        admin.set(key, "not what BLISS writes there")

    # a node under a scan: read as a node whose keys are gone; its siblings' streams are still known
    diode2 = f"{a}:timer:simulation_diode_sampling_controller:diode2"
    replace(diode2)
    replace(f"{a}:timer:lima_simulator:image_info")  # the lima node's saving_mode: not known, not saving
    replace(c)  # the scan's own node hash: the scan is invalid
    found = source.scan_streams([a, c])
    assert found[a].nodes == before[a].nodes
    assert {name: key for name, (key, _) in found[a].streams.items()} == {
        name: key for name, (key, _) in before[a].streams.items() if key != diode2 + "_data"}
    assert not found[a].streams["timer:lima_simulator:image"][1].saves
    assert isinstance(found[c], ScanInvalid) and "WRONGTYPE" in str(found[c])
    replace(f"{a}_children_list")
    assert isinstance(source.scan_streams([a])[a], ScanInvalid)

    # a sequence's `_info` and references stream: alive, its end read from `_end`, no references
    replace(f"{seq}_info")
    refs = f"{seq}:GroupingMaster:scans_data"
    replace(refs)
    assert source.scans_alive({seq: docs[seq].state_keys}) == {seq: None}
    closing = source.closing({seq: {}})[seq]
    assert (closing.end_reason, closing.exists) == ("SUCCESS", True)
    assert source.read_references(refs, "0-0") == ([], False)
    assert isinstance(source.load_scans([seq])[seq], ScanInvalid)

    # discovery: a listed node that is not a hash is a scan that is invalid; a container's list that is
    # not a stream lists nothing; a session-like node that is not a hash is not a session
    position = source.anchor()
    broken = f"{SCANS}:99_broken"
    admin.set(broken, "not a node hash")
    admin.xadd(f"{SCANS}_children_list", {"__EVENT__": "NEW_NODE", "db_name": broken})
    odd = "demo_session:tmp:odd"
    admin.hset(odd, mapping={"node_type": "container", "version": "v1.0", "name": "odd"})
    admin.set(odd + "_children_list", "not a stream")
    admin.xadd("demo_session:tmp_children_list", {"__EVENT__": "NEW_NODE", "db_name": odd})
    admin.set("odd_session", "not a node hash")
    admin.xadd("odd_session_children_list", {"__EVENT__": "NEW_NODE", "db_name": "odd_session:tmp"})
    found = source.new_scans(position, 10)
    assert found.keys == [broken] and odd + "_children_list" not in found.position.cursors
    assert source.new_scans(found.position, 10).keys == []
    assert isinstance(source.load_scans([broken])[broken], ScanInvalid)
    assert broken in source.scan_keys()
    source.check()
    assert detect_model(source.redis) == "legacy"


def test_expired_containers_are_forgotten_and_found_again(legacy_redis, legacy_publish, monkeypatch):
    from exporter.store.legacy import discovery

    monkeypatch.setattr(discovery, "SESSION_PROBE_INTERVAL", 0.0)  # look for sessions at every read
    source = LegacySource(legacy_redis.url)
    position = source.anchor()
    legacy_publish({"session": "old_session", "scans": [{"npoints": 2, "counters": ["diode1"]}]})
    found = source.new_scans(position, 100)
    assert found.keys == ["old_session:tmp:scans:1_loopscan"]
    assert sorted(found.position.cursors) == ["old_session:tmp:scans_children_list", "old_session:tmp_children_list",
                                              "old_session_children_list"]
    admin = legacy_redis.client()
    admin.delete(*admin.keys("old_session*"))  # as if expired, a day after its last scan
    legacy_publish({"scans": [{"npoints": 2, "counters": ["diode1"]}]})
    found = source.new_scans(found.position, 100)
    assert found.keys == ["demo_session:tmp:scans:1_loopscan"]
    assert not any(k.startswith("old_session") for k in found.position.cursors)
    legacy_publish({"session": "old_session", "scans": [{"npoints": 2, "counters": ["diode1"]}]})
    assert source.new_scans(found.position, 100).keys == ["old_session:tmp:scans:1_loopscan"]


def test_scan_info_is_plain_data(legacy_redis, legacy_publish):
    """scan.info as blissdata 2.x's JSON gives it: no numpy, datetime or class objects."""
    import json

    pub = legacy_publish({"scans": [{"npoints": 3, "counters": ["diode1"], "lima": ["lima_simulator"]}]})
    doc = LegacySource(legacy_redis.url).load_scan(pub.truths[0]["key"])
    assert json.loads(json.dumps(doc.info)) == doc.info
    assert isinstance(doc.info["start_time"], str) and doc.info["state"] == "DONE"


def test_legacy_source_has_the_protocol(legacy_redis):
    """Every method of exporter.store.base.Source, with the same parameters."""
    import inspect

    from exporter.store.base import Source

    for name, member in vars(Source).items():
        if name.startswith("_") or not callable(member):
            continue
        ours = getattr(LegacySource, name)
        want = list(inspect.signature(member).parameters)
        assert list(inspect.signature(ours).parameters)[: len(want)] == want, name
    assert LegacySource.model == "legacy"
    sig = inspect.signature(LegacySource.__init__)
    assert list(sig.parameters)[:5] == ["self", "url", "socket_timeout", "single_connection", "on_stream_error"]
    assert int(LegacySource(legacy_redis.url).redis.connection_pool.connection_kwargs["protocol"]) == 2
