"""Command line (exit codes, messages), HTTP routes, exposition validity, Beacon discovery."""

from __future__ import annotations

import signal
import socket
import subprocess

import pytest
import requests

from .helpers import BeaconPeer, require_tool, run_cli, wait_until


@pytest.mark.parametrize("args, message", [
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--redis-url", "http://x:1"], "invalid Redis URL 'http://x:1'"),
    (["--redis-url", "redis://host:notaport"], "bad port"),
    (["--redis-url", "redis://h:1", "--listen-address", "nohostport"], "invalid listen address"),
    (["--beacon-host", "justahost"], "invalid Beacon address"),
    (["--redis-url", "redis://h:1", "--poll-interval", "-1"], "must be positive"),
    (["--redis-url", "redis://h:1", "--log-format", "xml"], "invalid choice: 'xml'"),
    ([], "no data store: give --redis-url or --beacon-host (or set BEACON_HOST)"),
])
def test_bad_command_line_is_one_line_and_exit_2(args, message):
    result = run_cli(args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bliss-exporter: error: ") and message in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_bad_environment_value_is_reported_like_a_flag():
    result = run_cli([], env={"BLISS_EXPORTER_REDIS_URL": "redis://h:1", "BLISS_EXPORTER_STALL_THRESHOLD": "soon"})
    assert result.returncode == 2
    assert result.stderr.strip() == "bliss-exporter: error: BLISS_EXPORTER_STALL_THRESHOLD: not a number: 'soon'"


def test_taken_port_is_a_clear_error(redis_server):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run_cli(["--redis-url", redis_server.url, "--listen-address", f"127.0.0.1:{port}"])
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr


def test_help_lists_the_flags():
    result = run_cli(["--help"])
    assert result.returncode == 0
    for flag in ("--redis-url", "--beacon-host", "--session", "--listen-address", "--telemetry-path",
                 "--log-format", "--log-level", "--stall-threshold", "--web.config.file"):
        assert flag in result.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_with_exit_0(start_exporter, sig):
    exporter = start_exporter()
    assert exporter.stop(sig) == 0
    assert [e["event"] for e in exporter.logs()][-1] == "exporter_stop"
    assert "Traceback" not in exporter.stderr()


def test_http_routes(start_exporter, redis_server):
    exporter = start_exporter("--telemetry-path", "/prom")
    home = exporter.get("/")
    assert home.status_code == 200 and "/prom" in home.text and home.headers["Content-Type"].startswith("text/html")
    assert exporter.get("/healthz").status_code == 200
    assert exporter.get("/readyz").text == "ready\n"
    metrics = exporter.get("/prom")
    assert metrics.status_code == 200 and "bliss_datastore_up 1.0" in metrics.text
    assert exporter.get("/metrics").status_code == 404
    assert exporter.get("/nope").status_code == 404
    post = requests.post(exporter.base + "/prom", timeout=5)
    assert post.status_code == 405 and post.headers["Allow"] == "GET, HEAD"
    (start,) = exporter.logs("exporter_start")
    assert start["listen_address"] == f"127.0.0.1:{exporter.port}"
    assert start["datastore"] == redis_server.url
    assert start["session_filter"] == "*"


def test_build_info_and_promtool_check_metrics(start_exporter, data_store):
    from exporter.devtools.simulator import ScanSpec, publish_scan

    exporter = start_exporter()
    publish_scan(data_store, ScanSpec(session="s1", number=1, npoints=3, count_time=0, end_reason="FAILURE", fail_after=1))
    exporter.wait_value(1, "bliss_scan_events_total", session="s1", event_type="end_scan")
    text = exporter.metrics_text()
    import importlib.metadata as md

    from exporter import __version__

    assert f'bliss_exporter_build_info{{blissdata_version="{md.version("blissdata")}",version="{__version__}"}} 1.0' in text
    assert "_created" not in text
    promtool = require_tool("promtool")
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0 and check.stderr == "" and check.stdout == "", check.stderr


def test_beacon_host_from_environment_gives_the_data_store(start_exporter, redis_server):
    port = int(redis_server.url.rsplit(":", 1)[1])
    peer = BeaconPeer("127.0.0.1", port)
    try:
        exporter = start_exporter(url=False, env={"BEACON_HOST": f"127.0.0.1:{peer.port}"})
        assert exporter.value("bliss_datastore_up") == 1
        (resolved,) = exporter.logs("beacon_resolved")
        assert resolved["datastore"] == f"redis://127.0.0.1:{port}"
        (start,) = exporter.logs("exporter_start")
        assert start["datastore"] == f"beacon://127.0.0.1:{peer.port}"
    finally:
        peer.close()


def test_beacon_error_is_logged_and_retried(start_exporter, refused_port):
    peer = BeaconPeer("x", 0, fail="no data server configured")
    try:
        exporter = start_exporter("--beacon-host", f"127.0.0.1:{peer.port}", url=False, ready=False)
        exporter.wait_ready("/healthz")
        wait_until(lambda: peer.requests >= 2, what="Beacon asked again")
        assert exporter.get("/readyz").status_code == 503
        assert exporter.value("bliss_datastore_up") == 0
        downs = exporter.logs("datastore_down")
        assert len(downs) == 1 and "no data server configured" in downs[0]["error"]
    finally:
        peer.close()
    # Beacon unreachable altogether
    port = refused_port
    exporter = start_exporter("--beacon-host", f"127.0.0.1:{port}", url=False, ready=False)
    exporter.wait_ready("/healthz")
    wait_until(lambda: exporter.logs("datastore_down"), what="datastore_down log")
    assert exporter.logs("datastore_down")[0]["error"] == (
        f"Beacon 127.0.0.1:{port}: ConnectionRefusedError: [Errno 111] Connection refused")
