"""The status page (GET /): escaping and stall marking in-process, then rendered by headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time

from exporter.devtools.simulator import ScanSpec, publish_scan
from exporter.model import ScanRecord, State, StreamCursor
from exporter.sinks.events import ScanEnded, ScanLost
from exporter.web.status import StatusPage

from .builders import status_view
from .helpers import ROOT, Page, require_tool, wait_until

H5 = "/tmp/scans/inhouse/id002106/id00/id00_session/sample_0001/sample_0001.h5"
SCREENSHOT = ROOT / "docs" / "status-page.png"


def record(key, session, name, number, npoints, points, last_event_at, count_time=0.01, uris=()):
    r = ScanRecord(key=key, session=session, name=name, number=number, scan_type=name, uris=list(uris),
                   npoints=npoints, count_time=count_time, state=State.STARTED, last_event_at=last_event_at)
    r.streams = {"a": StreamCursor("a", "timer:epoch", "numeric", points=points),
                 "b": StreamCursor("b", "diode", "numeric", points=max(0, points - 1))}
    return r


def test_page_escapes_everything_marks_stalled_scans_and_keeps_a_bounded_history():
    now = 1_000_000.0
    evil = "<script>alert(1)</script>"
    stalled = record("k1", "id00_<b>", evil, 7, 10, 4, now - 5.0, uris=['/data/"x".h5::/7.1'])
    busy = record("k2", "id00_busy", "loopscan", 8, 20, 5, now - 0.2)
    view = status_view([stalled, busy], ready=False, reason="ConnectionError: <refused>", recent_limit=3,
                       clock=lambda: now)
    for n in range(5):
        ended = record(f"e{n}", "id00_busy", "ascan", n, 10, 10, now - 1)
        ended.started_at, ended.closed_at, ended.end_reason = now - 30, now - 10 + n, "<FAILURE>"
        view(ScanEnded(ended))
    view(ScanLost(record("l", "id00_busy", "ct", 99, 1, 0, now - 2), "vanished"))
    page = StatusPage(view, clock=lambda: now)
    text = page("/prom&metrics")

    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "id00_&lt;b&gt;" in text and "&lt;refused&gt;" in text and "&#34;x&#34;" in text and "\"x\"" not in text
    assert "&lt;FAILURE&gt;" in text and "<FAILURE>" not in text
    parsed = Page(text)
    assert parsed.refresh == "5"
    assert "/prom&metrics" in parsed.links  # escaped in the HTML, the right link once parsed
    assert parsed.ids["datastore-status"] == "DOWN"
    row = parsed.row(f"7_{evil}", "scan")
    assert "stalled" in row["class"] and "STALLED" in row["text"] and "4 / 10" in row["text"]
    assert "5 s / 1 s" in " ".join(row["text"].split())  # idle 5 s against a 1 s threshold
    busy_row = parsed.row("8_loopscan", "scan")
    assert "stalled" not in busy_row["class"] and "STALLED" not in busy_row["text"]
    assert "5 / 20" in busy_row["text"]  # progress from the fullest stream, not the sum (9)
    assert [r["scan"] for r in parsed.rows if "ended" in r["class"]] == ["99_ct", "4_ascan", "3_ascan"]
    assert "LOST (vanished)" in parsed.row("99_ct", "ended")["text"]
    assert parsed.ids["stalled-count"] == "1" and "1 stalled" in parsed.title


def chromium() -> str:
    return require_tool("chromium", "chromium-browser")


def run_chromium(tmp_path, *args) -> str:
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    profile.mkdir()
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def open_scan(data_store, session, number, name, npoints, count_time):
    from blissdata.streams.default import Stream

    identity = {"name": name, "number": number, "data_policy": "None", "session": session}
    info = {"type": name, "title": f"{name} {npoints} {count_time}", "npoints": npoints, "count_time": count_time,
            "filename": H5, "scan_nb": number, "acquisition_chain": {"timer": {}}}
    scan = data_store.create_scan(identity, info=info)
    epoch = scan.create_stream(Stream.make_definition("timer:epoch", "float64"))
    diode = scan.create_stream(Stream.make_definition("diode", "float64"))
    scan.prepare()
    scan.start()
    return scan, epoch, diode


def test_status_page_in_headless_chromium(start_exporter, data_store, tmp_path):
    chromium()
    exporter = start_exporter("--stall-threshold", "1")
    publish_scan(data_store, ScanSpec(session="id00_session", number=41, scan_type="ascan", npoints=8))
    publish_scan(data_store, ScanSpec(session="id00_session", number=42, scan_type="loopscan", npoints=20,
                                      end_reason="FAILURE", fail_after=6))
    # an active scan left idle: its threshold is max(1 s, 10 × 0.05 s) = 1 s
    _, epoch, diode = open_scan(data_store, "id00_session", 43, "loopscan", 10, 0.05)
    for i in range(3):
        epoch.send(float(i))
        diode.send(float(i))
    # an active scan still producing points (every 0.2 s, far inside its max(1 s, 10 × 0.5 s) = 5 s
    # threshold, so a busy machine cannot make it look stalled), in another session
    _, running, _ = open_scan(data_store, "id00_align", 7, "timescan", 500, 0.5)
    stop = threading.Event()

    def produce():
        i = 0
        while not stop.is_set():
            running.send(float(i))
            i += 1
            stop.wait(0.2)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        exporter.wait_value(1, "bliss_scans_ended_total", session="id00_session", scan_type="loopscan",
                            end_reason="FAILURE")
        exporter.wait_value(1, "bliss_active_scans", session="id00_align", state="started")
        wait_until(lambda: "STALLED" in exporter.get("/").text, 10, what="the idle scan to be stalled")

        dom = run_chromium(tmp_path, "--dump-dom", exporter.base + "/")
        page = Page(dom)
        assert page.refresh == "5"
        assert page.ids["datastore-status"] == "UP"
        assert "/metrics" in page.links

        idle = page.row("43_loopscan", "scan")
        assert "stalled" in idle["class"].split() and "STALLED" in idle["text"]
        assert "STARTED" in idle["text"] and "3 / 10" in idle["text"]
        assert f"{H5}::/43.1" in idle["text"]
        busy = page.row("7_timescan", "scan")
        assert "stalled" not in busy["class"].split() and "STALLED" not in busy["text"]
        assert "STARTED" in busy["text"] and " / 500" in busy["text"]
        assert busy["session"] == "id00_align"

        failed = page.row("42_loopscan", "ended")
        assert "FAILURE" in failed["text"] and f"{ScanSpec().filename}::/42.1" in failed["text"]
        ok = page.row("41_ascan", "ended")
        assert "SUCCESS" in ok["text"] and " s " in ok["text"]  # a duration
        assert [r["scan"] for r in page.rows if "ended" in r["class"].split()] == ["42_loopscan", "41_ascan"]
        assert "1 stalled" in page.title

        SCREENSHOT.parent.mkdir(exist_ok=True)
        shot = tmp_path / "status-page.png"
        run_chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,900", exporter.base + "/")
        data = shot.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
        # the screenshot in docs/ (shown by README) is refreshed on demand: BLISS_EXPORTER_UPDATE_DOCS=1
        if os.environ.get("BLISS_EXPORTER_UPDATE_DOCS"):
            shutil.copyfile(shot, SCREENSHOT)
    finally:
        stop.set()
        producer.join(5)


def test_page_before_the_data_store_is_found():
    view = status_view([], ready=False, reason="Beacon: OSError: Beacon id00:10001 did not answer")
    text = StatusPage(view)("/metrics")  # no scan watcher attached: still asking Beacon
    page = Page(text)
    assert page.ids["datastore-status"] == "DOWN" and "did not answer" in text
    assert "No session seen yet." in text and "No active scan." in text and "No scan ended" in text
