"""The two newcomer entry points: `bliss-exporter demo` and `bliss-exporter simulate`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import requests

from exporter.devtools.redis_stack import free_port

from .helpers import ROOT, parse_metrics, run_cli, wait_until


@pytest.mark.parametrize("model", ["blissdata2", "legacy"])
def test_demo_runs_everything_and_stops_on_ctrl_c(tmp_path, model):
    """The README's demo, of a BLISS 2.x session and (--data-model legacy) of a BLISS 1.x one."""
    port = free_port()
    out = open(tmp_path / "demo.out", "wb")
    env = {k: v for k, v in os.environ.items() if k != "BEACON_HOST"}
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "demo", "--listen-address", f"127.0.0.1:{port}",
                             "--log-format", "json", "--data-model", model], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    try:
        def text():
            return (tmp_path / "demo.out").read_text(errors="replace")
        wait_until(lambda: f"http://127.0.0.1:{port}/metrics" in text(), 60, what="metrics URL printed")

        def ended():
            try:
                m = parse_metrics(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
            except requests.RequestException:
                return 0
            return sum(v for k, v in m.items() if k[0] == "bliss_scans_ended_total" and dict(k[1])["role"] == "scan")
        # the demo may start with a sequence: wait for plain scans, whatever comes first
        wait_until(lambda: ended() >= 2, 90, what="simulated plain scans ending")
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert "Traceback" not in text()
        lines = [json.loads(line) for line in text().splitlines() if line.startswith("{")]
        assert lines[-1]["event"] == "exporter_stop"
        models = [line["model"] for line in lines if line["event"] == "data_model"]
        assert models == [model]
        roles = {line["role"] for line in lines if line["event"] == "scan_end"}
        assert "scan" in roles
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_simulate_truth_equals_the_exporter_counts(start_exporter, redis_server):
    exporter = start_exporter()
    result = run_cli(["simulate", "--redis-url", redis_server.url, "--session", "sim_a", "--session", "sim_b",
                      "--scans", "6", "--interval", "0", "--speed", "0", "--seed", "7", "--lima", "--mca",
                      "--failure-rate", "0.3", "--abort-rate", "0.2", "--log-format", "json"], timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    done = next(line for line in lines if line["event"] == "simulation_done")
    assert done["scans"] == 12
    reasons = {line["end_reason"] for line in lines if line["event"] == "scan_published"}
    assert "SUCCESS" in reasons and reasons & {"FAILURE", "USER_ABORT"}
    wait_until(lambda: sum(v for k, v in exporter.metrics().items()
                           if k[0] == "bliss_scan_events_total" and dict(k[1])["event_type"] == "end_scan") == 12,
               30, what="12 scans ended")
    m = exporter.metrics()
    for event, n in done["events"].items():
        got = sum(v for k, v in m.items() if k[0] == "bliss_scan_events_total" and dict(k[1])["event_type"] == event)
        assert got == n, event
    assert sum(v for k, v in m.items() if k[0] == "bliss_scan_points_total") == done["points"]
    for reason, n in done["ended"].items():
        assert sum(v for k, v in m.items() if k[0] == "bliss_scans_ended_total"
                   and dict(k[1])["end_reason"] == reason) == n, reason
    # failed and aborted scans went to CLOSED without STOPPED
    failed = done["ended"].get("FAILURE", 0) + done["ended"].get("USER_ABORT", 0)
    assert done["events"]["stop_scan"] == 12 - failed


def test_simulate_without_a_data_store_is_a_one_line_error(refused_port):
    result = run_cli(["simulate"])
    assert result.returncode == 2 and result.stderr.strip() == "bliss-exporter: error: simulate needs --redis-url"
    result = run_cli(["simulate", "--redis-url", f"redis://127.0.0.1:{refused_port}"])
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot use data store" in result.stderr
