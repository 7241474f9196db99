"""Facility scale (issue 21): two beamlines, each exporter scraped by a Prometheus agent that adds its
`beamline` label and remote-writes to the central stores, a Prometheus (remote-write receiver) and
VictoriaMetrics, both at once; the central stores are stopped while the beamlines keep scanning, and
the agents replay what they buffered.

Real servers from Debian's packages, on 127.0.0.1, with the shipped configurations of deploy/facility/
(only addresses, the scrape interval and the retry back-off shortened for the test).
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from exporter.devtools.redis_stack import RedisStackServer, free_port
from exporter.devtools.simulator import ScanSpec, publish_scan

from .builders import new_scan
from .dashboard_queries import finite, load_dashboard, panel_queries, resolve_variables
from .helpers import ROOT, require_tool, wait_until
from .prometheus import Prometheus, needs_prometheus

FACILITY = ROOT / "deploy" / "facility"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "bliss-exporter.rules.yml"


class VictoriaMetrics:
    """victoria-metrics (single node) on 127.0.0.1, its data in `path` (a restart keeps it)."""

    def __init__(self, path: Path, port: int | None = None):
        self.path, self.port = path, port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [require_tool("victoria-metrics"), f"-httpListenAddr=127.0.0.1:{self.port}",
             f"-storageDataPath={path / 'data'}", "-retentionPeriod=1", "-search.latencyOffset=0s",
             "-loggerLevel=ERROR"], stdout=subprocess.DEVNULL, stderr=open(path / "vm.log", "ab"))
        wait_until(lambda: _ok(f"{self.base}/health"), 30, 0.2, "victoria-metrics ready")

    def api(self, path: str, **params):
        body = requests.get(self.base + "/api/v1/" + path, params=params, timeout=10).json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr, **({"time": str(at)} if at else {})}
        body = requests.get(self.base + "/api/v1/query", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def value(result: list[dict]) -> float | None:
    return float(result[0]["value"][1]) if result else None


def central_config(rule_files: list[Path]) -> dict:
    config = yaml.safe_load((FACILITY / "central-prometheus.yml").read_text())
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(p) for p in rule_files]
    config.pop("alerting")  # no Alertmanager here: the alerts are read from Prometheus
    return config


def agent_config(beamline: str, target: str, writes: list[str]) -> dict:
    config = yaml.safe_load((FACILITY / "beamline-agent.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s")
    config["global"]["external_labels"]["beamline"] = beamline
    config["scrape_configs"][0]["static_configs"][0]["targets"] = [target]
    shipped = config["remote_write"][0]
    config["remote_write"] = []
    for url in writes:
        write = copy.deepcopy(shipped)
        write["url"] = url
        write["queue_config"].update(batch_send_deadline="1s", max_backoff="1s")  # the test's patience
        config["remote_write"].append(write)
    return config


@needs_prometheus
def test_two_beamlines_into_central_prometheus_and_victoriametrics_through_an_outage(
        start_exporter, redis_server, data_store, tmp_path):
    require_tool("victoria-metrics")
    second = RedisStackServer().start()
    second.init_blissdata()
    from blissdata.redis_engine.store import DataStore
    stores = {"id00": data_store, "id01": DataStore(second.url + "?protocol=2")}
    exporters = {"id00": start_exporter("--stall-threshold", "2"), "id01": start_exporter(url=second.url)}

    # the production rules, plus the two alerts of the test with a 2 s `for`
    variants = []
    for name in ("BlissScanStalled", "BlissDatastoreDown"):
        rule = copy.deepcopy(next(r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
                                  if r.get("alert") == name))
        rule.update({"for": "2s"})
        rule["labels"]["e2e"] = "short-for"
        variants.append(rule)
    variant = tmp_path / "short-for.rules.yml"
    variant.write_text(yaml.safe_dump({"groups": [{"name": "e2e", "rules": variants}]}))
    central_dir, vm_dir = tmp_path / "central", tmp_path / "vm"
    central_dir.mkdir()
    vm_dir.mkdir()
    central_port, vm_port = free_port(), free_port()

    def start_central():
        prom = Prometheus(central_dir, [], [], extra_args=["--web.enable-remote-write-receiver"],
                          config=central_config([RULES, variant]), port=central_port)
        return prom.wait_ready()

    central, vm = start_central(), VictoriaMetrics(vm_dir, vm_port)
    agents = []
    try:
        for beamline, exporter in exporters.items():
            agent_dir = tmp_path / f"agent-{beamline}"
            agent_dir.mkdir()
            writes = [f"{central.base}/api/v1/write", f"{vm.base}/api/v1/write"]
            agents.append(Prometheus(agent_dir, [], [], extra_args=["--enable-feature=agent"],
                                     config=agent_config(beamline, f"127.0.0.1:{exporter.port}", writes)).wait_ready())

        def publish(number: int) -> None:
            for beamline, store in stores.items():
                publish_scan(store, ScanSpec(session=f"{beamline}_main", number=number, npoints=4, count_time=0))

        def exporter_total(beamline: str) -> float:
            return sum(v for (name, labels), v in exporters[beamline].metrics().items()
                       if name == "bliss_scan_events_total")

        def central_totals_match() -> bool:
            for beamline in stores:
                expr = f'sum(bliss_scan_events_total{{beamline="{beamline}"}})'
                truth = exporter_total(beamline)
                if value(central.query(expr)) != truth or value(vm.query(expr)) != truth:
                    return False
            return True

        publish(1)
        publish(2)
        wait_until(central_totals_match, 60, 0.5, "both central stores hold both beamlines' totals")
        # no counter counted twice: the sum over beamlines is the two exporters' totals
        total = sum(exporter_total(b) for b in stores)
        assert value(central.query("sum(bliss_scan_events_total)")) == total
        assert value(vm.query("sum(bliss_scan_events_total)")) == total

        # the central stores go down for 20 s while both beamlines keep scanning
        central.stop()
        vm.stop()
        down_at = time.time()
        number = 3
        while time.time() - down_at < 20:
            publish(number)
            number += 1
            time.sleep(1)
        up_at = time.time()
        central, vm = start_central(), VictoriaMetrics(vm_dir, vm_port)
        wait_until(central_totals_match, 90, 1.0, "the agents replayed the outage into both central stores")
        # no gap: the samples scraped while the central stores were down are there (1 s scrapes)
        middle = (down_at + up_at) / 2
        for beamline in stores:
            expr = f'count_over_time(up{{beamline="{beamline}"}}[16s])'
            assert value(central.query(expr, at=middle + 8)) >= 12, beamline
            assert value(vm.query(expr, at=middle + 8)) >= 12, beamline

        # the dashboard on each central store, one beamline selected: every query answers (MetricsQL
        # too), and those of the figures this workload makes have data for that beamline
        dashboard = load_dashboard()
        for store in (central, vm):
            for beamline in stores:
                variables = resolve_variables(store, dashboard, fixed={"beamline": beamline})
                assert variables["session"] == f"({beamline}_main)", variables
                for what, expr in panel_queries(dashboard, variables):
                    result = store.query(expr)
                    if re.search(r"bliss_scan_events_total|bliss_scans_ended_total|bliss_scan_points_total|"
                                 r"bliss_exporter_build_info|bliss_session_scanning_seconds_total", expr):
                        assert finite(result), f"{type(store).__name__} {beamline}: {what}: {expr}"

        # alerts evaluated centrally, per beamline: a stalled scan on id00, a data store down on id01
        stalled = new_scan(stores["id00"], "id00_main", 99)
        stalled.prepare()
        stalled.start()
        second.kill()

        def alerts():
            found = {(a["labels"]["alertname"], a["labels"].get("beamline")) for a in central.alerts()
                     if a["state"] == "firing" and a["labels"].get("e2e") == "short-for"}
            return {("BlissScanStalled", "id00"), ("BlissDatastoreDown", "id01")} <= found and found
        found = wait_until(alerts, 60, 0.5, "BlissScanStalled on id00 and BlissDatastoreDown on id01, firing")
        assert ("BlissScanStalled", "id01") not in found and ("BlissDatastoreDown", "id00") not in found
    finally:
        for agent in agents:
            agent.stop()
        central.stop()
        vm.stop()
        second.cleanup()
        shutil.rmtree(vm_dir, ignore_errors=True)


def test_shipped_facility_configs_pass_promtool():
    promtool = require_tool("promtool")
    for name in ("beamline-agent.yml", "central-prometheus.yml"):
        args = [promtool, "check", "config"] + (["--agent"] if name == "beamline-agent.yml" else []) + [
            str(FACILITY / name)]
        result = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
