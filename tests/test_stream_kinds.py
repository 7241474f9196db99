"""Points per stream kind (default, lima, lima2, mosca, scan_sequence, unknown plugin), published
through the plugins' own stream definitions, and undecodable entries confined to their stream."""

from __future__ import annotations

from types import SimpleNamespace

import blissdata_lima2 as lima2  # noqa: E402  (test extra: a missing plugin must fail, not skip)
import numpy as np
import pytest
from blissdata.redis_engine import scan as bd_scan
from blissdata.streams import StreamDefinition
from blissdata.streams.default import Stream
from blissdata.streams.encoding.json import JsonStreamEncoder
from blissdata.streams.encoding.numeric import NumericStreamEncoder
from blissdata.streams.scan_sequence.stream import ScanStream

from exporter.store.streams import SEAL_ID, StreamKind, stats_from_xinfo, stream_kind

from .builders import events, lima_definition, mosca_definition, new_scan

UNKNOWN_PLUGIN = "acme_detector"


@pytest.fixture
def plugins(monkeypatch):
    """The publisher side's plugins: blissdata-lima2 without a Lima2 conductor, and a plugin the
    exporter does not know.

    Lima2Stream's constructor does a version handshake with the Lima2 conductor (as blissdata-lima2's
    own tests, the test stands in for that session); its definition and encoder are the package's own.
    """
    import lima2.client.services as l2s

    monkeypatch.setattr(l2s.ConductorServices, "handshake", lambda self: None)
    monkeypatch.setitem(bd_scan.loaded_plugins, UNKNOWN_PLUGIN, SimpleNamespace(stream_cls=Stream))


def lima2_definition(name="lima2_simulator:raw_frame"):
    return lima2.Lima2Stream.make_definition(
        name=name, source_name="raw_frame", conductor_hostname="127.0.0.1", conductor_port=1,
        acq_uuid="7a1e8f6c-1d3b-11f0-9c1a-0242ac120002", master_file=None, dtype=np.uint16,
        shape=(1, 512, 512),
    )


def unknown_definition(name="acme:counts"):
    return StreamDefinition(name, {"plugin": UNKNOWN_PLUGIN}, NumericStreamEncoder(np.float64))


def publish_every_kind(data_store, session, number):
    """A scan with one stream of each kind and two child scans; returns (scan, streams, truth).

    Each send is one entry; the points are what the table in README's Metrics section says.
    """
    children = []
    for child_number in (number + 1, number + 2):
        child = new_scan(data_store, session, child_number, name="ascan")
        child.prepare()
        child.start()
        child.stop()
        child.close()
        children.append(child)
    scan = new_scan(data_store, session, number, name="sequence", is_scan_sequence=True)
    s = SimpleNamespace(
        epoch=scan.create_stream(Stream.make_definition("timer:epoch", "float64")),
        lima=scan.create_stream(lima_definition()),
        lima2=scan.create_stream(lima2_definition()),
        mosca=scan.create_stream(mosca_definition()),
        subscans=scan.create_stream(ScanStream.make_definition("SUBSCANS")),
        unknown=scan.create_stream(unknown_definition()),
    )
    scan.prepare()
    scan.start()
    s.epoch.send(1.0)
    s.epoch.send(np.arange(9.0))                                   # 2 entries, 10 points
    s.lima.send({"last_index": 4, "last_index_saved": -1})
    s.lima.send({"last_index": 9, "last_index_saved": 9})         # 2 entries, 10 frames
    for frames in (3, 7, 12):
        s.lima2.send(np.uint32(frames))                            # 3 entries, 12 frames
    s.mosca.send({"last_read_index": 4, "last_saved_index": -1})
    s.mosca.send({"last_read_index": 19, "last_saved_index": 19})  # 2 entries, 20 spectra
    for child in children:
        s.subscans.send({"key": child.key, "scan_number": child.number})  # 2 entries, no points
    s.unknown.send(np.arange(5.0))
    s.unknown.send(np.arange(5.0))                                 # 2 entries, no points
    for stream in vars(s).values():
        stream.join()
    truth = SimpleNamespace(new_data=2 + 2 + 3 + 2 + 2 + 2, points=10 + 10 + 12 + 20)
    return scan, s, truth


def child_events(n_children=2):
    """Events of stream-less child scans, each through PREPARED, STARTED, STOPPED, CLOSED."""
    return {"new_node": n_children, "prepared_scan": n_children, "start_scan": n_children,
            "stop_scan": n_children, "end_scan": n_children}


def assert_every_kind_counted(exporter, session, scan_label, truth):
    kids = child_events()
    expected = {
        "new_node": 1 + 6 + kids["new_node"], "new_data": truth.new_data, "prepared_scan": 1 + kids["prepared_scan"],
        "start_scan": 1 + kids["start_scan"], "stop_scan": 1 + kids["stop_scan"], "end_scan": 1 + kids["end_scan"],
    }
    assert events(exporter, session) == expected
    assert exporter.value("bliss_scan_points_total", session=session) == truth.points
    (end,) = [e for e in exporter.logs("scan_end") if e["scan"] == scan_label]
    assert end["points"] == truth.points
    assert end["events"] == {"new_node": 7, "new_data": truth.new_data, "prepared_scan": 1, "start_scan": 1,
                             "stop_scan": 1, "end_scan": 1}
    (unknown,) = exporter.logs("unknown_stream_plugin")
    assert unknown["plugin"] == UNKNOWN_PLUGIN and unknown["stream"] == "acme:counts"
    assert unknown["key"].startswith("esrf:scan:") and unknown["level"] == "warning"
    for reason in ("bad_index", "bad_status", "bad_reference"):
        assert exporter.value("bliss_exporter_stream_errors_total", reason=reason) == 0
    assert not exporter.logs("stream_error")


def test_points_of_every_stream_kind_live(plugins, start_exporter, data_store):
    exporter = start_exporter()
    scan, streams, truth = publish_every_kind(data_store, "s1", 10)
    # counted while the streams are open: the last entry of each is a data entry or a status
    exporter.wait_value(truth.points, "bliss_scan_points_total", session="s1")
    exporter.wait_value(truth.new_data, "bliss_scan_events_total", session="s1", event_type="new_data")
    streams.lima2.send(np.uint32(15))                                # +3 frames
    streams.mosca.send({"last_read_index": 24, "last_saved_index": 19})  # +5 spectra
    truth.new_data += 2
    truth.points += 3 + 5
    scan.stop()  # seals every stream
    scan.close()
    exporter.wait_value(3, "bliss_scan_events_total", session="s1", event_type="end_scan")
    exporter.barrier(data_store)  # the values below are final: an over-count would show
    assert_every_kind_counted(exporter, "s1", "10_sequence", truth)


def test_points_of_every_stream_kind_sealed(plugins, start_exporter, data_store, raw_redis):
    """Adopted after every stream was sealed: the points come from the seals, and for status
    streams (lima, lima2, mosca) from the status before the seal, since their seal's `id` is the
    number of status entries (blissdata's seal_stream: last entry's index + len)."""
    scan, streams, truth = publish_every_kind(data_store, "s1", 10)
    scan.stop()  # seals every stream; the scan stays active (STOPPED), to be adopted
    seals = {name: raw_redis.xrevrange(stream.key, count=1)[0] for name, stream in vars(streams).items()}
    assert all(entry_id == SEAL_ID for entry_id, _ in seals.values())
    assert {name: int(fields[b"id"]) for name, (_, fields) in seals.items()} == {
        "epoch": 10, "lima": 2, "lima2": 3, "mosca": 2, "subscans": 2, "unknown": 10}
    exporter = start_exporter()
    exporter.wait_value(1, "bliss_active_scans", session="s1", state="stopped", role="sequence")
    scan.close()
    exporter.wait_value(1, "bliss_scan_events_total", session="s1", event_type="end_scan")
    exporter.barrier(data_store)  # the values below are final: an over-count would show
    # its history is its own (scan_end); the counters count what happened since the exporter started
    assert events(exporter, "s1") == {"new_node": 0, "new_data": 0, "prepared_scan": 0,
                                      "start_scan": 0, "stop_scan": 0, "end_scan": 1}
    (end,) = exporter.logs("scan_end", session="s1")
    assert end["scan"] == "10_sequence" and end["points"] == truth.points
    assert end["events"] == {"new_node": 7, "new_data": truth.new_data, "prepared_scan": 1,
                             "start_scan": 1, "stop_scan": 1, "end_scan": 1}
    assert exporter.value("bliss_scan_points_total", session="s1") == 0


def test_undecodable_statuses_stay_in_their_stream(plugins, start_exporter, data_store, raw_redis):
    """Foreign garbage in a lima2, a mosca and a scan_sequence stream: their points stay, each is
    counted and logged once, the other streams and scans keep counting."""
    exporter = start_exporter()
    child = new_scan(data_store, "s1", 2, name="ascan")
    child.prepare()
    child.start()
    child.stop()
    child.close()
    scan = new_scan(data_store, "s1", 1, name="sequence")
    epoch = scan.create_stream(Stream.make_definition("timer:epoch", "float64"))
    l2 = scan.create_stream(lima2_definition())
    ms = scan.create_stream(mosca_definition())
    subscans = scan.create_stream(ScanStream.make_definition("SUBSCANS"))
    scan.prepare()
    scan.start()
    epoch.send(np.arange(4.0))
    l2.send(np.uint32(8))
    ms.send({"last_read_index": 9, "last_saved_index": 9})
    subscans.send({"key": child.key, "scan_number": 2})
    for stream in (epoch, l2, ms, subscans):
        stream.join()
    exporter.wait_value(4 + 8 + 10, "bliss_scan_points_total", session="s1")
    # Garbage written by someone else, with ids between the publisher's ("<n>-0" < its next "<n>-1"),
    # so the publisher goes on afterwards.
    raw_redis.xadd(l2.key, {"payload": b"\x01\x02\x03"}, id="1-0")         # not a uint32
    raw_redis.xadd(ms.key, {"payload": b'{"last_saved_index": 3}'}, id="1-0")  # no last_read_index
    raw_redis.xadd(subscans.key, {"payload": b"not json"}, id="1-0")
    exporter.wait_value(2, "bliss_exporter_stream_errors_total", reason="bad_status")
    exporter.wait_value(1, "bliss_exporter_stream_errors_total", reason="bad_reference")
    # other streams of the scan, and other scans, keep counting while the garbage is there
    for n in (1, 2):
        epoch.send(1.0)
        epoch.join()
        exporter.wait_value(4 + n + 8 + 10, "bliss_scan_points_total", session="s1")
    other = new_scan(data_store, "s2", 1)
    other_epoch = other.create_stream(Stream.make_definition("timer:epoch", "float64"))
    other.prepare()
    other.start()
    other_epoch.send(np.arange(3.0))
    other.stop()
    other.close()
    exporter.wait_value(1, "bliss_scan_events_total", session="s2", event_type="end_scan")
    assert exporter.value("bliss_scan_points_total", session="s2") == 3
    assert exporter.value("bliss_scan_points_total", session="s1") == 6 + 8 + 10
    # the statuses after the garbage count again
    l2.send(np.uint32(20))
    ms.send({"last_read_index": 29, "last_saved_index": 29})
    scan.stop()
    scan.close()
    exporter.wait_value(2, "bliss_scan_events_total", session="s1", event_type="end_scan")
    assert exporter.value("bliss_scan_points_total", session="s1") == 6 + 20 + 30
    # every entry is a new_data event, the garbage ones too: 3 epoch, 2+1 lima2, 2+1 mosca, 1+1 subscans
    assert exporter.value("bliss_scan_events_total", session="s1", event_type="new_data") == 3 + 3 + 3 + 2
    (end,) = [e for e in exporter.logs("scan_end") if e["scan"] == "1_sequence"]
    assert end["points"] == 6 + 20 + 30
    errors = exporter.logs("stream_error")
    assert sorted((e["stream"], e["reason"]) for e in errors) == [
        ("SUBSCANS", "bad_reference"), ("lima2_simulator:raw_frame", "bad_status"),
        ("mosca_simulator:spectrum_det00", "bad_status"),
    ]
    assert {e["key"] for e in errors} == {scan.key}
    assert exporter.value("bliss_exporter_stream_errors_total", reason="bad_status") == 2
    assert exporter.value("bliss_exporter_stream_errors_total", reason="bad_reference") == 1
    assert exporter.value("bliss_exporter_stream_errors_total", reason="bad_index") == 0
    assert exporter.value("bliss_exporter_watcher_errors_total", watcher="scan_watcher") == 0


def test_a_poisoned_data_stream_does_not_freeze_other_scans(start_exporter, data_store, raw_redis):
    """`XADD <stream> * len abc` into a default stream: only that stream stops giving points."""
    exporter = start_exporter()
    poisoned = new_scan(data_store, "poisoned", 1)
    bad = poisoned.create_stream(Stream.make_definition("timer:epoch", "float64"))
    good = poisoned.create_stream(Stream.make_definition("diode", "float64"))
    poisoned.prepare()
    poisoned.start()
    bad.send(np.arange(3.0))
    bad.join()
    exporter.wait_value(3, "bliss_scan_points_total", session="poisoned")
    raw_redis.xadd(bad.key, {"len": "abc", "payload": b"x"})  # its seal (server-side) would fail too
    exporter.wait_value(1, "bliss_exporter_stream_errors_total", reason="bad_index")

    healthy = new_scan(data_store, "healthy", 1)
    stream = healthy.create_stream(Stream.make_definition("timer:epoch", "float64"))
    healthy.prepare()
    healthy.start()
    for i in range(5):
        stream.send(float(i))
        good.send(float(i))                 # the poisoned scan's other stream counts on
    stream.join()
    exporter.wait_value(5, "bliss_scan_points_total", session="healthy")
    healthy.stop()
    healthy.close()
    exporter.wait_value(1, "bliss_scan_events_total", session="healthy", event_type="end_scan")
    assert events(exporter, "healthy") == {"new_node": 2, "new_data": 5, "prepared_scan": 1, "start_scan": 1,
                                           "stop_scan": 1, "end_scan": 1}
    (end,) = exporter.logs("scan_end")
    assert end["scan"] == "1_loopscan" and end["session"] == "healthy" and end["points"] == 5
    good.join()
    exporter.wait_value(3 + 5, "bliss_scan_points_total", session="poisoned")
    exporter.wait_value(1 + 1 + 5, "bliss_scan_events_total", session="poisoned", event_type="new_data")
    (error,) = exporter.logs("stream_error")
    assert error["reason"] == "bad_index" and error["stream"] == "timer:epoch" and error["key"] == poisoned.key
    assert exporter.value("bliss_exporter_stream_errors_total", reason="bad_index") == 1
    assert exporter.value("bliss_exporter_watcher_errors_total", watcher="scan_watcher") == 0
    assert exporter.value("bliss_active_scans", session="poisoned", state="started") == 1


# -- decoding, without a data store -----------------------------------------------------------------

def _xinfo(entries: list[tuple[bytes, dict]], added: int | None = None) -> dict:
    return {"entries-added": added if added is not None else len(entries), "length": len(entries),
            "last-generated-id": entries[-1][0] if entries else b"0-0",
            "last-entry": entries[-1] if entries else None}


def _entry(index: int, batch) -> tuple[bytes, dict]:
    """A stream entry as blissdata's EventStream.send() writes it."""
    return (f"{index}-1".encode(), {k.encode(): (v if isinstance(v, bytes) else str(v).encode())
                                    for k, v in batch.todict().items()})


def test_kinds_from_stream_models():
    def kind(definition):
        return stream_kind(definition.info, definition.encoder.info(), "esrf:scan:x", definition.name)

    assert kind(Stream.make_definition("a", "float64")) == "numeric"
    assert kind(lima_definition()) == "lima"
    k = kind(lima2_definition())
    assert k == "lima2" and k.dtype == np.dtype(np.uint32).str
    assert kind(mosca_definition()) == "mosca"
    assert kind(ScanStream.make_definition("SUBSCANS")) == "scan_sequence"
    assert stream_kind({"format": "subscan"}, {"type": "json"}) == "scan_sequence"  # legacy, as blissdata maps it
    assert stream_kind({"plugin": "hdf5_fallback"}, {"type": "numeric"}) == "numeric"
    assert stream_kind({"plugin": "someone_elses"}, {"type": "json"}, "esrf:scan:x", "s") == "unknown"
    assert isinstance(k, StreamKind) and isinstance(k, str)


def test_points_decoded_from_each_kind():
    lima2_kind = stream_kind(lima2_definition().info, lima2_definition().encoder.info())
    enc = lima2_definition().encoder
    entries = [_entry(i, enc.encode(np.uint32(v))) for i, v in enumerate((5, 9, 41))]
    assert stats_from_xinfo(_xinfo(entries), lima2_kind).points == 41
    batch = [_entry(0, enc.encode(np.array([5, 9, 44], dtype=np.uint32)))]  # one batch of 3 statuses
    assert stats_from_xinfo(_xinfo(batch), lima2_kind).points == 44
    js = JsonStreamEncoder()
    mosca_entry = [_entry(0, js.encode({"last_read_index": 99, "last_saved_index": 10}))]
    assert stats_from_xinfo(_xinfo(mosca_entry), "mosca").points == 100
    assert stats_from_xinfo(_xinfo([_entry(0, js.encode({"last_read_index": -1, "last_saved_index": -1}))]),
                             "mosca").points == 0
    ref = [_entry(0, js.encode({"key": "esrf:scan:child", "scan_number": 3}))]
    st = stats_from_xinfo(_xinfo(ref), "scan_sequence")
    assert (st.entries, st.points, st.error) == (1, 0, None)
    numeric = NumericStreamEncoder(np.float64)
    data = [_entry(0, numeric.encode(np.arange(4.0))), _entry(4, numeric.encode(1.0))]
    assert stats_from_xinfo(_xinfo(data), "numeric").points == 5
    assert stats_from_xinfo(_xinfo(data), "unknown").points == 0
    sealed = data + [(SEAL_ID, {b"id": b"5"})]
    st = stats_from_xinfo(_xinfo(sealed), "numeric")
    assert (st.entries, st.points, st.sealed) == (2, 5, True)


@pytest.mark.parametrize("kind, fields, reason", [
    ("lima2", {b"payload": b"\x01\x02\x03"}, "bad_status"),
    ("lima2", {b"payload": b"\x01\x00\x00\x00", b"len": b"2"}, "bad_status"),
    ("lima2", {}, "bad_status"),
    ("mosca", {b"payload": b'{"last_saved_index": 3}'}, "bad_status"),
    ("mosca", {b"payload": b'{"last_read_index": "7"}'}, "bad_status"),
    ("lima", {b"payload": b"[1, 2]"}, "bad_status"),
    ("scan_sequence", {b"payload": b"not json"}, "bad_reference"),
    ("scan_sequence", {b"payload": b'{"scan_number": 2}'}, "bad_reference"),
    ("numeric", {b"len": b"abc", b"payload": b"x"}, "bad_index"),
    ("numeric", {b"len": b"0", b"payload": b"x"}, "bad_index"),
])
def test_undecodable_entries_give_no_points_and_a_reason(kind, fields, reason):
    if kind == "lima2":
        kind = StreamKind("lima2", dtype=np.dtype(np.uint32).str)
    st = stats_from_xinfo(_xinfo([(b"7-1", fields)]), kind)
    assert st.points == 0 and st.entries == 1 and st.error[0] == reason


def test_foreign_entry_ids_are_not_points():
    """blissdata writes "<index>-1"; an XADD with `*` (a millisecond time) is not a point index."""
    st = stats_from_xinfo(_xinfo([(b"1764576000000-0", {b"payload": b"x"})]), "numeric")
    assert st.points == 0 and st.error[0] == "bad_index"
