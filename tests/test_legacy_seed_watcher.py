"""benchmarks/seed_watcher_legacy.py (the published design on blissdata 0.3.1) runs on genuine legacy
data: it survives a Sequence's END_SCAN (KeyError in the published code), counts what it counts."""

from __future__ import annotations

import json
import subprocess

from . import legacy_fixtures
from .legacy_fixtures import LEGACY_PYTHON, ROOT

legacy_redis = legacy_fixtures.legacy_redis  # pytest fixtures
legacy_publish = legacy_fixtures.legacy_publish


def test_seed_watcher_runs_on_a_session_with_a_sequence(legacy_redis, legacy_publish, tmp_path):
    result = tmp_path / "seed.json"
    proc = subprocess.Popen([str(LEGACY_PYTHON), "-m", "benchmarks.seed_watcher_legacy",
                             "--redis-url", legacy_redis.url, "--scans", "4", "--quiet", "--result", str(result)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == "READY"
        pub = legacy_publish({"scans": [
            {"npoints": 20, "counters": ["diode1", "diode2"]},
            {"npoints": 10, "outcome": "FAILURE", "fail_after": 3, "counters": ["diode1"]},
            {"sequence": "myseq", "children": [{"npoints": 5, "counters": ["diode1"]}]},
        ]})
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    summary = json.loads(result.read_text())
    scans = [t for t in pub.truths if t["role"] != "sequence"]
    assert summary["ended"] == 4 and summary["broken"] == {"scan_group_end": 1}
    assert summary["scans_done"] == len(scans) == 3
    assert summary["events"]["prepared_scan"] == summary["events"]["end_scan"] == 3
    # its NEW_NODE leaves out the scan node itself, and deduplicates a child listed twice only when
    # both entries come in one read: between the distinct nodes and the list entries (the 2-diode
    # scan lists its shared controller node twice: one duplicate entry in this workload)
    distinct = sum(t["new_node"] - 1 for t in scans)
    assert distinct <= summary["events"]["new_node"] <= distinct + 1
    # its points are exact for the scans it watches
    assert summary["points"] == sum(t["points"] for t in scans)
    # NEW_DATA coalesces entries: never more than the XADDs, usually fewer
    assert 0 < summary["events"]["new_data"] <= sum(t["new_data"] for t in scans)
    assert summary["cpu"]["user"] >= 0
