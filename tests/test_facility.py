"""Facility scale (issue 21): two beamlines, each exporter scraped by a Prometheus agent that adds its
`beamline` label and remote-writes to the central stores, a Prometheus (remote-write receiver) and
VictoriaMetrics, both at once; the central stores are stopped while the beamlines keep scanning, and
the agents replay what they buffered. The same rule file is evaluated centrally by Prometheus and by
vmalert (on VictoriaMetrics), both sending to one Alertmanager routed by beamline.

Real servers from Debian's packages, on 127.0.0.1, with the shipped configurations of deploy/facility/
(only addresses, the scrape interval and the retry back-off shortened for the test).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import time

import numpy
import pytest
import yaml

from exporter.devtools.redis_stack import RedisStackServer, free_port
from exporter.devtools.simulator import ScanSpec, publish_scan

from .builders import lima_definition, new_scan
from .dashboard_queries import finite, load_dashboard, panel_queries, resolve_variables
from .helpers import ROOT, require_tool, wait_until
from .prometheus import (
    AGENT_FLAGS,
    FACILITY,
    RULES,
    Alertmanager,
    Prometheus,
    VictoriaMetrics,
    VMAlert,
    agent_config,
    central_config,
    needs_prometheus,
    start_central,
    value,
)


@needs_prometheus
def test_two_beamlines_into_central_prometheus_and_victoriametrics_through_an_outage(
        start_exporter, redis_server, data_store, tmp_path):
    require_tool("victoria-metrics")
    second = RedisStackServer().start()
    second.init_blissdata()
    from blissdata.redis_engine.store import DataStore
    from blissdata.streams.default import Stream
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
    alertmanager = Alertmanager(tmp_path, ROOT / "deploy" / "alertmanager" / "alertmanager.yml")
    am_address = alertmanager.base.removeprefix("http://")

    central_prometheus = central_config([RULES, variant], am_address, evaluation_interval="1s")
    central, vm = start_central(central_dir, central_prometheus, central_port), VictoriaMetrics(vm_dir, vm_port)
    agents, vmalert = [], None
    try:
        for beamline, exporter in exporters.items():
            agent_dir = tmp_path / f"agent-{beamline}"
            agent_dir.mkdir()
            writes = [f"{central.base}/api/v1/write", f"{vm.base}/api/v1/write"]
            agent = agent_config(beamline, [f"127.0.0.1:{exporter.port}"], writes, scrape_interval="1s",
                                 queue_config=dict(batch_send_deadline="1s", max_backoff="1s"))  # the test's patience
            agents.append(Prometheus(agent_dir, [], [], extra_args=AGENT_FLAGS, config=agent).wait_ready())

        def publish(number: int) -> None:
            for beamline, store in stores.items():
                publish_scan(store, ScanSpec(session=f"{beamline}_main", number=number, npoints=4, count_time=0.01))

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
        central, vm = start_central(central_dir, central_prometheus, central_port), VictoriaMetrics(vm_dir, vm_port)
        wait_until(central_totals_match, 90, 1.0, "the agents replayed the outage into both central stores")
        # no gap: the samples scraped while the central stores were down are there (1 s scrapes)
        middle = (down_at + up_at) / 2
        for beamline in stores:
            expr = f'count_over_time(up{{beamline="{beamline}"}}[16s])'
            assert value(central.query(expr, at=middle + 8)) >= 12, beamline
            assert value(vm.query(expr, at=middle + 8)) >= 12, beamline

        # the dashboard on each central store, one beamline selected: with a scan running on each beamline
        # (progress, ETA, a saving detector) and short scans ending, every panel query has data for it
        running = {}
        for beamline, store in stores.items():
            scan = new_scan(store, f"{beamline}_main", 1000, npoints=1000, count_time=0.1)
            channel = scan.create_stream(Stream.make_definition("timer:elapsed_time", "float64"))
            detector = scan.create_stream(lima_definition("eiger1:image", saving=True))
            scan.prepare()
            scan.start()
            running[beamline] = (scan, channel, detector)
        dashboard = load_dashboard()
        sent = 0

        def advance():
            nonlocal sent, number
            for scan, channel, detector in running.values():
                for _ in range(5):
                    channel.send(numpy.float64(sent))
                    sent += 1
                detector.send({"last_index": sent - 1, "last_index_saved": sent - 3})
                channel.join()
                detector.join()
            publish(number)
            number += 1

        def empty_panels() -> list[str]:
            empty = []
            for store in (central, vm):
                for beamline in stores:
                    variables = resolve_variables(store, dashboard, fixed={"beamline": beamline})
                    assert variables["session"] == f"({beamline}_main)", variables
                    for what, expr in panel_queries(dashboard, variables):
                        if not finite(store.query(expr)):
                            empty.append(f"{type(store).__name__} {beamline}: {what}: {expr}")
            return empty

        deadline, empty = time.time() + 45, ["not evaluated yet"]
        while empty and time.time() < deadline:
            advance()
            time.sleep(0.5)
            empty = empty_panels()
        assert not empty, "panels without data:\n" + "\n".join(empty)
        for scan, channel, detector in running.values():
            scan.stop()
            scan.info["end_reason"] = "SUCCESS"
            scan.close()

        # alerts evaluated centrally, per beamline, by Prometheus and by vmalert (on VictoriaMetrics) with the
        # same rule files, both sending to one Alertmanager: a stalled scan on id00, a data store down on id01
        vmalert = VMAlert(tmp_path, vm.base, alertmanager.base, [RULES, variant])
        stalled = new_scan(stores["id00"], "id00_main", 99)
        stalled.prepare()
        stalled.start()
        second.kill()
        wanted = {("BlissScanStalled", "id00"), ("BlissDatastoreDown", "id01")}
        unwanted = {("BlissScanStalled", "id01"), ("BlissDatastoreDown", "id00")}

        def firing(alerts, state_of) -> set:
            return {(a["labels"]["alertname"], a["labels"].get("beamline")) for a in alerts
                    if state_of(a) == "firing" and a["labels"].get("e2e") == "short-for"}

        def all_fire():
            by_prometheus = firing(central.alerts(), lambda a: a["state"])
            by_vmalert = firing(vmalert.alerts(), lambda a: a["state"])
            return wanted <= by_prometheus and wanted <= by_vmalert and (by_prometheus, by_vmalert)
        by_prometheus, by_vmalert = wait_until(all_fire, 60, 0.5, "both alerts firing, by Prometheus and by vmalert")
        assert not unwanted & by_prometheus and not unwanted & by_vmalert, (by_prometheus, by_vmalert)

        # Alertmanager got each alert from both evaluators, and routed it by its beamline
        def received():
            got = {}
            for alert in alertmanager.alerts():
                labels = alert["labels"]
                if labels.get("e2e") != "short-for":
                    continue
                source = "vmalert" if "alertgroup" in labels else "prometheus"  # vmalert names the group
                got[(labels["alertname"], labels.get("beamline"), source)] = {r["name"] for r in alert["receivers"]}
            return all((*a, source) in got for a in wanted for source in ("prometheus", "vmalert")) and got
        got = wait_until(received, 30, 0.5, "Alertmanager received both alerts from both evaluators")
        for source in ("prometheus", "vmalert"):
            assert got[("BlissScanStalled", "id00", source)] == {"control-room-oncall", "beamline-id00"}, got
            assert got[("BlissDatastoreDown", "id01", source)] == {"control-room-oncall", "beamline-chat"}, got
    finally:
        for agent in agents:
            agent.stop()
        for server in (vmalert, central, vm, alertmanager):
            if server is not None:
                server.stop()
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
