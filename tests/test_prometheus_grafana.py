"""Alert rules, dashboard and demo stack: promtool, tsc against @grafana/schema, and a real Prometheus.

The end-to-end test runs a real Redis Stack, the real exporter, the simulator and a real Prometheus
with the repository's rule file, evaluates every query of the dashboard against it, and forces a
stalled scan to see BlissScanStalled go pending/firing and resolve.
"""

from __future__ import annotations

import copy
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from .dashboard_queries import (
    DASHBOARD,
    all_panels,
    finite,
    load_dashboard,
    panel_queries,
    resolve_variables,
)
from .helpers import ROOT, wait_until
from .prometheus import RULES, needs_prometheus

RULE_TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.yml"))
VALIDATE = ROOT / "tests" / "dashboard"  # the dashboard type-check (npm, tsc)
COMPOSE = ROOT / "deploy" / "compose.yaml"  # its relative paths are relative to deploy/
PROMTOOL = shutil.which("promtool")
NPM = shutil.which("npm")

CI = os.environ.get("CI") == "true"  # under CI a missing tool fails the test instead of skipping it
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not CI, reason="promtool not installed (scripts/bootstrap.sh --test installs Debian's prometheus)")
needs_npm = pytest.mark.skipif(
    (NPM is None or shutil.which("node") is None) and not CI, reason="node/npm not installed (scripts/bootstrap.sh --test)")

# The exporter's metric families (README "Metrics"); histogram samples have their suffixes.
EXPORTER_METRICS = {
    "bliss_scan_events_total", "bliss_scan_points_total", "bliss_active_scans", "bliss_scan_duration_seconds_bucket",
    "bliss_scan_duration_seconds_sum", "bliss_scan_duration_seconds_count", "bliss_scans_ended_total",
    "bliss_scan_last_event_timestamp_seconds", "bliss_scan_stall_threshold_seconds", "bliss_scan_progress_ratio",
    "bliss_datastore_up", "bliss_exporter_build_info", "bliss_exporter_scans_skipped_total",
    "bliss_exporter_scans_lost_total", "bliss_exporter_watcher_errors_total", "bliss_exporter_stream_errors_total",
    "bliss_exporter_sequence_errors_total", "bliss_session_scanning_seconds_total", "bliss_scan_overhead_ratio_bucket",
    "bliss_scan_eta_seconds", "bliss_detector_frames", "bliss_detector_frames_saved_total",
    "bliss_detector_frames_acquired_total",
}
PROMETHEUS_METRICS = {"up", "scrape_duration_seconds"}


def run(cmd, cwd=ROOT, timeout=120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


# -------------------------------------------------------------------------------------------------
# promtool: rules, unit tests, configurations


@needs_promtool
def test_promtool_check_rules():
    result = run([PROMTOOL, "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_pass_and_cover_every_alert_both_ways():
    assert RULE_TESTS, "no promtool unit test in deploy/prometheus/tests/"
    result = run([PROMTOOL, "test", "rules", *map(str, RULE_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout

    # every alert has a case where it fires and a case where it does not
    firing, silent = set(), set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else silent).add(case["alertname"])
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts == {"BlissScanStalled", "BlissExporterDown", "BlissDatastoreDown", "BlissScanFailureRateHigh",
                      "BlissDetectorSavingStalled", "BlissDetectorSavingBehind"}
    assert alerts <= firing, f"alerts never tested firing: {alerts - firing}"
    assert alerts <= silent, f"alerts never tested not firing: {alerts - silent}"


def test_alert_rules_have_the_labels_and_annotations_routing_needs():
    for rule in rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert {"summary", "description", "dashboard_url"} <= set(rule["annotations"]), rule["alert"]
        assert "/d/bliss-exporter/" in rule["annotations"]["dashboard_url"], rule["alert"]
        assert "for" in rule, rule["alert"]
    stalled = next(r for r in rules() if r["alert"] == "BlissScanStalled")
    assert "humanizeDuration" in stalled["annotations"]["description"]
    assert "var-session={{ $labels.session" in stalled["annotations"]["dashboard_url"]
    # the dashboard the alerts link to is this one
    assert load_dashboard()["uid"] == "bliss-exporter"


@needs_promtool
@pytest.mark.parametrize("config", ["prometheus.compose.yml", "prometheus.yml"])
def test_promtool_check_config(config):
    result = run([PROMTOOL, "check", "config", str(ROOT / "deploy" / "prometheus" / config)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "bliss-exporter.rules.yml" in result.stdout + result.stderr


# -------------------------------------------------------------------------------------------------
# compose stack and Grafana provisioning (Docker cannot run here: structure and paths)


def test_compose_stack_references_existing_files_and_consistent_addresses():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"redis", "redis-init", "exporter", "simulator", "prometheus", "grafana"} <= set(services)
    assert services["redis"]["image"].startswith("redis/redis-stack-server:")
    for name in ("redis-init", "exporter", "simulator"):
        assert (COMPOSE.parent / services[name]["build"]).resolve() == ROOT, name
    assert "init_db=True" in services["redis-init"]["command"][0]
    assert services["simulator"]["command"][0] == "simulate"
    for name in ("exporter", "simulator"):
        assert services[name]["depends_on"]["redis-init"]["condition"] == "service_completed_successfully"

    mounts = {}  # container path -> local path, per service
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                local = (COMPOSE.parent / source).resolve()
                assert local.exists(), f"{name}: {source} does not exist"
                mounts[(name, target)] = local
            else:
                assert source in compose.get("volumes", {}), f"{name}: undeclared volume {source}"

    # Prometheus: the config's rule_files, resolved in the container, are the repository's rules
    prom_cfg_local = mounts[("prometheus", "/etc/prometheus/prometheus.yml")]
    assert prom_cfg_local == ROOT / "deploy" / "prometheus" / "prometheus.compose.yml"
    prom_cfg = yaml.safe_load(prom_cfg_local.read_text())
    for pattern in prom_cfg["rule_files"]:
        container = os.path.normpath(os.path.join("/etc/prometheus", pattern))
        base = next(t for (s, t) in mounts if s == "prometheus" and container.startswith(t + "/"))
        local = str(mounts[("prometheus", base)]) + container[len(base):]
        assert str(RULES) in glob.glob(local), f"{pattern} does not load {RULES} in the container"
    targets = [t for job in prom_cfg["scrape_configs"] if "bliss" in job["job_name"]
               for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == ["exporter:9811"]
    assert services["exporter"]["environment"]["BLISS_EXPORTER_LISTEN_ADDRESS"] == "0.0.0.0:9811"

    # Grafana: provisioning directories and the dashboards path the provider reads
    assert mounts[("grafana", "/etc/grafana/provisioning")] == ROOT / "grafana" / "provisioning"
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/bliss.yml").read_text())["providers"][0]
    assert mounts[("grafana", provider["options"]["path"])] == ROOT / "grafana" / "dashboards"
    datasource = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["isDefault"] is True
    host = urllib.parse.urlsplit(datasource["url"])
    assert host.hostname in services and host.port == 9090
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/" + DASHBOARD.name


def test_compose_builds_the_repository_dockerfile():
    compose = yaml.safe_load(COMPOSE.read_text())
    contexts = {(COMPOSE.parent / s["build"]).resolve() for s in compose["services"].values() if "build" in s}
    assert contexts == {ROOT}
    assert (ROOT / "Dockerfile").is_file(), "deploy/compose.yaml builds the repository's Dockerfile (build: ..)"


# -------------------------------------------------------------------------------------------------
# dashboard: structure, and type-check against @grafana/schema


def test_dashboard_structure():
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] >= 38 and dashboard["uid"] == "bliss-exporter"  # Grafana >= 10
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    session = variables["session"]
    assert session["query"]["query"].startswith("label_values(bliss_active_scans")
    assert session["query"]["query"].endswith(", session)")
    assert session["multi"] and session["includeAll"]
    assert variables["instance"]["query"]["query"].endswith(", instance)")

    panels = all_panels(dashboard)
    ids = [p["id"] for p in dashboard["panels"]] + [p["id"] for p in panels if p not in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    exprs = []
    for panel in panels:
        what = f"panel {panel['id']} {panel['title']!r}"
        assert panel.get("description", "").strip(), f"{what}: no description"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, what
        unit = panel["fieldConfig"]["defaults"].get("unit") or panel["options"].get("yAxis", {}).get("unit")
        assert unit, f"{what}: no unit"
        assert panel["targets"], what
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"], what
            exprs.append(target["expr"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, what
    types = {p["type"] for p in panels}
    assert {"timeseries", "stat", "table", "heatmap"} <= types
    text = "\n".join(exprs)
    assert "histogram_quantile(" in text
    for metric in ("bliss_active_scans", "bliss_scan_events_total", "bliss_scan_points_total",
                   "bliss_scan_duration_seconds_bucket", "bliss_scans_ended_total",
                   "bliss_scan_last_event_timestamp_seconds", "bliss_scan_stall_threshold_seconds",
                   "bliss_datastore_up", "bliss_exporter_build_info"):
        assert metric in text, f"no panel shows {metric}"
    for name in metric_names(text):
        assert name in EXPORTER_METRICS | PROMETHEUS_METRICS, f"dashboard uses unknown metric {name}"


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(bliss_[a-z_]+|up|scrape_duration_seconds)\b(?=\s*[{\[)])", expr))


def npm_install():
    if not (VALIDATE / "node_modules" / "@grafana" / "schema").is_dir():
        result = run([NPM, "ci", "--no-audit", "--no-fund"], cwd=VALIDATE, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr


def typecheck(dashboards: Path, work: Path) -> subprocess.CompletedProcess:
    """generate.mjs (dashboards -> typed TypeScript literals in work/gen), then tsc --noEmit on them."""
    result = run(["node", "generate.mjs", str(dashboards), str(work / "gen")], cwd=VALIDATE)
    assert result.returncode == 0, result.stdout + result.stderr
    (work / "tsconfig.json").write_text(json.dumps({"extends": str(VALIDATE / "tsconfig.json"), "include": ["gen/*.ts"]}))
    return run([str(VALIDATE / "node_modules" / ".bin" / "tsc"), "--noEmit", "-p", str(work)], cwd=VALIDATE)


@needs_npm
def test_dashboard_type_checks_against_grafana_schema(tmp_path):
    npm_install()
    (tmp_path / "good").mkdir()
    result = typecheck(DASHBOARD.parent, tmp_path / "good")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "good" / "gen" / "bliss_exporter.ts").is_file()

    # the check is not vacuous: a misspelt enum value and an unknown panel option are rejected
    bad = load_dashboard()
    panel = next(p for p in bad["panels"] if p["type"] == "stat")
    panel["fieldConfig"]["defaults"]["thresholds"]["mode"] = "absolut"
    timeseries = next(p for p in all_panels(bad) if p["type"] == "timeseries")
    timeseries["options"]["legend"]["placment"] = "bottom"
    for sub in ("dash", "bad"):
        (tmp_path / sub).mkdir()
    (tmp_path / "dash" / "bad.json").write_text(json.dumps(bad))
    result = typecheck(tmp_path / "dash", tmp_path / "bad")
    assert result.returncode != 0
    assert '"absolut"' in result.stdout and "placment" in result.stdout, result.stdout


# -------------------------------------------------------------------------------------------------
# end to end: real Prometheus scraping the real exporter


@pytest.fixture
def dead_target(refused_port):
    """A scrape target that refuses connections."""
    return f"127.0.0.1:{refused_port}"


@pytest.fixture
def simulator(redis_server, tmp_path):
    """`bliss-exporter simulate` publishing quick scans and sequences forever (30 % FAILURE, 10 % USER_ABORT)."""
    log = tmp_path / "simulator.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "exporter", "simulate", "--redis-url", redis_server.url, "--session", "sim_session",
         "--scans", "0", "--interval", "0.3", "--speed", "5", "--failure-rate", "0.3", "--abort-rate", "0.1",
         "--seed", "7", "--sequences", "--log-format", "json"],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=ROOT)
    yield proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@needs_prometheus
def test_end_to_end_dashboard_queries_and_stall_alert_on_a_real_prometheus(
        start_exporter, start_prometheus, simulator, data_store, raw_redis, dead_target, tmp_path):
    from blissdata.streams.default import Stream

    t0 = time.monotonic()
    exporter = start_exporter("--stall-threshold", "3")
    instance = f"127.0.0.1:{exporter.port}"

    # The production rules unchanged (BlissScanStalled has for: 1m: it goes pending), plus the same
    # rule with a 2 s `for` to see it fire within the test.
    stalled = copy.deepcopy(next(r for r in rules() if r.get("alert") == "BlissScanStalled"))
    stalled["for"] = "2s"
    stalled["labels"]["e2e"] = "short-for"
    # BlissDetectorSavingStalled with 6 s windows instead of 2 minutes and a 2 s `for`
    saving = copy.deepcopy(next(r for r in rules() if r.get("alert") == "BlissDetectorSavingStalled"))
    saving["expr"] = saving["expr"].replace("[2m]", "[6s]").replace("offset 2m", "offset 6s")
    saving["for"] = "2s"
    saving["labels"]["e2e"] = "short-for"
    variant = tmp_path / "stalled-short-for.rules.yml"
    variant.write_text(yaml.safe_dump({"groups": [{"name": "bliss-exporter-e2e", "rules": [stalled, saving]}]}))
    prom = start_prometheus([instance, dead_target], [RULES, variant])

    # A detector that saves its first 10 frames, then stops saving while it keeps acquiring.
    from .builders import lima_definition
    saving_scan = data_store.create_scan(
        {"name": "loopscan", "number": 1, "data_policy": "None", "session": "saving_session"},
        info={"type": "loopscan", "npoints": 100000, "count_time": 0.01, "scan_nb": 1})
    lima = saving_scan.create_stream(lima_definition("eiger1:image", saving=True))
    saving_scan.prepare()
    saving_scan.start()
    stop_acquiring = threading.Event()

    def acquire():
        frame = 9
        lima.send({"last_index": frame, "last_index_saved": 9})
        while not stop_acquiring.wait(0.3):
            frame += 10
            lima.send({"last_index": frame, "last_index_saved": 9})
    acquiring = threading.Thread(target=acquire, daemon=True)
    acquiring.start()

    # A scan that vanishes before CLOSED (bliss_exporter_scans_lost_total gets a series).
    lost = data_store.create_scan({"name": "loopscan", "number": 1, "data_policy": "None", "session": "lost_session"},
                                  info={"type": "loopscan", "npoints": 5, "count_time": 0.01})
    lost.create_stream(Stream.make_definition("timer:epoch", "float64"))
    lost.prepare()
    lost.start()
    exporter.wait_value(1, "bliss_active_scans", session="lost_session", state="started")
    raw_redis.delete(lost.key)
    exporter.wait_value(1, "bliss_exporter_scans_lost_total", session="lost_session", timeout=30)

    # The forced stall: a scan started through blissdata's API, 2 points, then left idle (threshold 3 s).
    scan = data_store.create_scan({"name": "loopscan", "number": 1, "data_policy": "None", "session": "stall_session"},
                                  info={"type": "loopscan", "title": "loopscan 10 0.01", "npoints": 10,
                                        "count_time": 0.01, "scan_nb": 1})
    stream = scan.create_stream(Stream.make_definition("timer:epoch", "float64"))
    scan.prepare()
    scan.start()
    stream.send(1.0)
    stream.join()
    exporter.wait_value(0.1, "bliss_scan_progress_ratio", session="stall_session", scan="1_loopscan")
    stream.send(2.0)  # a second point, read apart from the first: its point rate, hence an ETA, is known
    stream.join()
    key = {"session": "stall_session", "scan": "1_loopscan"}

    def stall_alerts():
        alerts = prom.alerts("BlissScanStalled", **key)
        prod = [a for a in alerts if "e2e" not in a["labels"]]
        short = [a for a in alerts if a["labels"].get("e2e") == "short-for"]
        return (prod and prod[0]["state"] == "pending" and short and short[0]["state"] == "firing"
                and (prod[0], short[0]))
    prod_alert, firing = wait_until(stall_alerts, 40, 0.25, "BlissScanStalled pending (for: 1m) and firing (for: 2s)")
    for alert in (prod_alert, firing):
        assert alert["labels"]["session"] == "stall_session" and alert["labels"]["scan"] == "1_loopscan"
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["instance"] == instance and alert["labels"]["job"] == "bliss-exporter"
        assert float(alert["value"]) > 3
    description = firing["annotations"]["description"]
    assert re.search(r"has had no event \(state change or data\) for \d+(\.\d+)?s, more than its stall threshold "
                     r"of 3s\.", description), description
    assert firing["annotations"]["dashboard_url"] == (
        f"http://grafana.test:3000/d/bliss-exporter/bliss-exporter?var-session=stall_session"
        f"&var-instance=127.0.0.1%3A{exporter.port}")
    # (waited for, not read once: a scrape slower than its 1 s timeout makes the series stale until the next)
    wait_until(lambda: prom.query('ALERTS{alertname="BlissScanStalled", alertstate="firing", '
                                  'session="stall_session", scan="1_loopscan"}'), 20, 0.25, "ALERTS firing")
    wait_until(lambda: [float(s["value"][1]) for s in prom.query(
        f'bliss_scan_stall_threshold_seconds{{session="stall_session", instance="{instance}"}}')] == [3.0],
        20, 0.25, "the stalled scan's threshold: 3 s")

    # The detector that stopped saving: BlissDetectorSavingStalled fires (short windows), with its labels.
    def saving_alert():
        alerts = [a for a in prom.alerts("BlissDetectorSavingStalled", session="saving_session")
                  if a["labels"].get("e2e") == "short-for" and a["state"] == "firing"]
        return alerts and alerts[0]
    saving_firing = wait_until(saving_alert, 40, 0.25, "BlissDetectorSavingStalled firing (6 s windows, for: 2s)")
    assert {k: saving_firing["labels"][k] for k in ("session", "scan", "detector", "severity")} == {
        "session": "saving_session", "scan": "1_loopscan", "detector": "eiger1", "severity": "critical"}
    assert "Check first the saving directory" in saving_firing["annotations"]["description"]
    assert not [a for a in prom.alerts("BlissDetectorSavingStalled") if a["state"] == "firing"
                and "e2e" not in a["labels"]]  # the production rule waits its 2 minutes

    # Every query of every panel returns data (and at least one number) while scans run, end and stall.
    dashboard = load_dashboard()
    state = {}

    def all_queries_answer():
        variables = resolve_variables(prom, dashboard)
        state["variables"] = variables
        state["empty"] = [(what, expr) for what, expr in panel_queries(dashboard, variables)
                          if not finite(prom.query(expr))]
        return not state["empty"]
    try:
        wait_until(all_queries_answer, 40, 1.0, "every dashboard query to return data")
    except AssertionError:
        raise AssertionError("queries without data: " + json.dumps(state, indent=1)) from None
    assert "sim_session" in state["variables"]["session"] and "stall_session" in state["variables"]["session"]
    names = set().union(*(metric_names(t["expr"]) for p in all_panels(dashboard) for t in p["targets"]))
    assert EXPORTER_METRICS <= names, f"metrics no panel shows: {EXPORTER_METRICS - names}"

    # Every rule evaluates without error on real data; the other alerts are right too.
    groups = prom.api("rules")["groups"]
    evaluated = [r for g in groups for r in g["rules"]]
    assert len(evaluated) == len(rules()) + 2
    assert all(r["health"] == "ok" for r in evaluated), [(r["name"], r.get("lastError")) for r in evaluated]
    down = [(a["labels"].get("instance"), a["state"]) for a in prom.alerts("BlissExporterDown")]
    assert (dead_target, "pending") in down, down  # for: 1m
    assert (instance, "firing") not in down, down  # (a pending blip is one scrape slower than its timeout)
    assert prom.alerts("BlissDatastoreDown") == []
    stop_acquiring.set()
    acquiring.join(5)
    # the simulator publishes scan sequences too (--sequences; with seed 7 its second item is one)
    wait_until(lambda: prom.query('sum(bliss_scans_ended_total{session="sim_session", role="sequence"}) > 0')
               and prom.query('sum(bliss_scans_ended_total{session="sim_session", role="subscan"}) > 0'),
               40, 0.5, "a simulated sequence and its subscans counted in Prometheus")
    # not firing even with for: 2s (a pending blip is a busy machine's late scrape, not a stall)
    assert [a for a in prom.alerts("BlissScanStalled", session="sim_session") if a["state"] == "firing"] == [], \
        "scans and sequences that publish (themselves or through their children) are not stalled"

    # The scan ends: its series disappear, the alert resolves.
    scan.stop()
    scan.info["end_reason"] = "SUCCESS"
    scan.close()
    wait_until(lambda: not prom.alerts("BlissScanStalled", session="stall_session")
               and not prom.query('ALERTS{alertname="BlissScanStalled", session="stall_session"}'),
               20, 0.25, "BlissScanStalled resolved after the scan ended")
    # the ended scan's series go stale with the next scrape (whose timing the alert does not follow)
    wait_until(lambda: prom.query('bliss_scan_last_event_timestamp_seconds{session="stall_session"}') == []
               and prom.query('bliss_scans_ended_total{session="stall_session", end_reason="SUCCESS"} == 1'),
               20, 0.25, "the ended scan's last-event series gone and its end counted in Prometheus")
    print(f"end-to-end test: {time.monotonic() - t0:.1f} s")
