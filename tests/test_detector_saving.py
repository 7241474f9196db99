"""Detector saving (issue 19): frames acquired against frames saved, per detector, published through
blissdata's own LimaStream and blissdata-mosca definitions (blissdata 0.3.1 for BLISS 1.x)."""

from __future__ import annotations

from exporter.store.streams import stream_kind

from . import legacy_fixtures
from .builders import lima_definition, mosca_definition, new_scan
from .helpers import Page, wait_until

legacy_redis = legacy_fixtures.legacy_redis
legacy_publish = legacy_fixtures.legacy_publish


def frames(exporter, session, scan, detector) -> tuple:
    return tuple(exporter.value("bliss_detector_frames", session=session, scan=scan, detector=detector, stage=stage)
                 for stage in ("acquired", "saved"))


def totals(exporter, session, detector) -> tuple:
    return tuple(exporter.value(f"bliss_detector_frames_{stage}_total", session=session, detector=detector)
                 for stage in ("acquired", "saved"))


def test_which_detector_streams_save_is_decided_as_their_plugins_readers_do():
    assert stream_kind(lima_definition(saving=True).info, None).saves
    assert not stream_kind(lima_definition(saving=False).info, None).saves  # no file_path: NOSAVING
    assert stream_kind(mosca_definition(saving_enabled=True).info, None).saves
    assert not stream_kind(mosca_definition(saving_enabled=False).info, None).saves
    assert not stream_kind({"plugin": "lima2"}, {"type": "numeric", "dtype_str": "<u4"}).saves  # no saved count


def test_saving_that_keeps_up_lags_and_stops_then_the_scan_ends_behind(start_exporter, data_store):
    exporter = start_exporter()
    scan = new_scan(data_store, "det", 1, npoints=1000)
    keeps_up = scan.create_stream(lima_definition("basler1:image", saving=True))
    lags = scan.create_stream(lima_definition("eiger1:image", saving=True))
    nosave = scan.create_stream(lima_definition("pco1:image", saving=False))
    spectra = scan.create_stream(mosca_definition("mca1:spectrum_det00", saving_enabled=True))
    scan.prepare()
    scan.start()
    keeps_up.send({"last_index": 9, "last_index_saved": 9})
    lags.send({"last_index": 9, "last_index_saved": 4})
    nosave.send({"last_index": 9, "last_index_saved": -1})
    spectra.send({"last_read_index": 19, "last_saved_index": 19})
    for stream in (keeps_up, lags, nosave, spectra):
        stream.join()
    wait_until(lambda: frames(exporter, "det", "1_loopscan", "eiger1") == (10, 5), what="eiger1 10 acquired, 5 saved")
    assert frames(exporter, "det", "1_loopscan", "basler1") == (10, 10)
    assert frames(exporter, "det", "1_loopscan", "mca1") == (20, 20)
    assert frames(exporter, "det", "1_loopscan", "pco1") == (None, None)  # does not save: no series
    page = Page(exporter.get("/").text)
    row = page.row("1_loopscan", "scan")
    assert "eiger1: 10 acquired, 5 saved" in row["text"] and "basler1: 10 acquired, 10 saved" in row["text"]
    html = exporter.get("/").text
    assert "<span class='saved lag'>5 saved</span>" in html and "<span class='saved'>10 saved</span>" in html

    # saving stops while acquisition goes on
    for last in (29, 49):
        lags.send({"last_index": last, "last_index_saved": 4})
        keeps_up.send({"last_index": last, "last_index_saved": last})
    for stream in (keeps_up, lags):
        stream.join()
    wait_until(lambda: frames(exporter, "det", "1_loopscan", "eiger1") == (50, 5), what="eiger1 50 acquired, 5 saved")
    assert totals(exporter, "det", "eiger1") == (50, 5) and totals(exporter, "det", "basler1") == (50, 50)
    scan.stop()  # seals every stream
    scan.info["end_reason"] = "SUCCESS"
    scan.close()
    exporter.wait_value(1, "bliss_scan_events_total", session="det", event_type="end_scan")
    exporter.barrier(data_store)
    (end,) = exporter.logs("scan_end", session="det")
    assert end["detectors"] == {"basler1": {"acquired": 50, "saved": 50}, "eiger1": {"acquired": 50, "saved": 5},
                                "mca1": {"acquired": 20, "saved": 20}}  # the lag, in the log line
    assert frames(exporter, "det", "1_loopscan", "eiger1") == (None, None)  # ended: no per-scan series
    assert totals(exporter, "det", "eiger1") == (50, 5) and totals(exporter, "det", "mca1") == (20, 20)
    assert totals(exporter, "det", "pco1") == (None, None)

    # a second scan: the counters add up over scans
    second = new_scan(data_store, "det", 2, npoints=100)
    again = second.create_stream(lima_definition("eiger1:image", saving=True))
    second.prepare()
    second.start()
    again.send({"last_index": 6, "last_index_saved": 6})
    again.join()
    second.stop()
    second.info["end_reason"] = "SUCCESS"
    second.close()
    exporter.wait_value(2, "bliss_scan_events_total", session="det", event_type="end_scan")
    exporter.barrier(data_store)
    assert totals(exporter, "det", "eiger1") == (57, 12)


def test_an_adopted_scan_counts_its_detectors_from_their_current_status(start_exporter, data_store):
    scan = new_scan(data_store, "det", 1, npoints=1000)
    lima = scan.create_stream(lima_definition("eiger1:image", saving=True))
    scan.prepare()
    scan.start()
    lima.send({"last_index": 99, "last_index_saved": 89})
    lima.join()
    exporter = start_exporter()
    wait_until(lambda: frames(exporter, "det", "1_loopscan", "eiger1") == (100, 90), what="its current status")
    lima.send({"last_index": 109, "last_index_saved": 109})
    lima.join()
    wait_until(lambda: totals(exporter, "det", "eiger1") == (10, 20), what="only what came after the start")
    scan.stop()
    scan.close()


def test_bliss_1_lima_detectors_saving_or_not(legacy_redis, legacy_publish, start_exporter):
    legacy_publish({"scans": [{"type": "ct", "npoints": 1, "counters": ["diode1"]}]})  # a session node
    exporter = start_exporter(url=f"redis://127.0.0.1:{legacy_redis.port}")
    run = legacy_publish({"scans": [
        {"type": "loopscan", "npoints": 10, "counters": ["diode1"], "lima": ["lima_simulator"], "lima_batch": 2,
         "lima_saving": {"lima_simulator": 3}},
        {"type": "loopscan", "npoints": 10, "counters": ["diode1"], "lima": ["lima_simulator"], "lima_batch": 2}]})
    exporter.wait_value(2, "bliss_scan_events_total", session="demo_session", event_type="end_scan", timeout=60)
    exporter.metrics_text()
    saving, nosaving = run.truths
    ends = {e["scan"]: e for e in exporter.logs("scan_end", session="demo_session")}
    assert ends[saving["scan"]]["detectors"] == {"lima_simulator": {"acquired": 10, "saved": 7}}
    assert "detectors" not in ends[nosaving["scan"]]
    assert totals(exporter, "demo_session", "lima_simulator") == (10, 7)
