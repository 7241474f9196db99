"""Real Prometheus-ecosystem servers from Debian's packages on 127.0.0.1, for end-to-end tests: Prometheus
2.42 (scraping exporters every second, or as configured), VictoriaMetrics, vmalert and Alertmanager; and
the facility's shipped configurations (deploy/facility/) with local addresses."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from exporter.devtools.redis_stack import free_port

from .helpers import ROOT, require_tool, wait_until

PROMETHEUS = shutil.which("prometheus") or ("/usr/bin/prometheus" if os.path.exists("/usr/bin/prometheus") else None)
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None and os.environ.get("CI") != "true",
    reason="prometheus not installed (scripts/bootstrap.sh --test installs Debian's prometheus)")


#: a beamline's Prometheus agent's command line as deploy/facility/beamline-agent.yml ships it (paths aside)
AGENT_FLAGS = ("--enable-feature=agent", "--storage.agent.retention.max-time=72h")
#: the shipped configurations of a beamline's Prometheus agent and of the central Prometheus
FACILITY = ROOT / "deploy" / "facility"
#: the shipped alerting rules
RULES = ROOT / "deploy" / "prometheus" / "rules" / "bliss-exporter.rules.yml"


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


class _Server:
    """A server process on 127.0.0.1 answering Prometheus' HTTP API at `base`."""

    proc: subprocess.Popen
    base: str

    def api(self, path: str, **params):
        body = requests.get(self.base + "/api/v1/" + path, params=params, timeout=10).json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Prometheus(_Server):
    def __init__(self, tmp_path: Path, scrape_targets: list[str], rule_files: list[Path], extra_args=(),
                 config: dict | None = None, port: int | None = None):
        """`config`: a whole prometheus.yml instead of one scraping `scrape_targets` every second;
        `port`: listen there (a restart on the same address, the same storage)."""
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = config or {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s",
                       "external_labels": {"grafana_url": "http://grafana.test:3000"}},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": "bliss-exporter", "static_configs": [{"targets": scrape_targets}]}],
        }
        self.config = tmp_path / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.log = tmp_path / "prometheus.log"
        agent = "--enable-feature=agent" in extra_args
        storage = f"--storage.agent.path={tmp_path / 'wal'}" if agent else f"--storage.tsdb.path={tmp_path / 'tsdb'}"
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.config}", storage,
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn", *extra_args],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"), cwd=tmp_path)

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        data = self.api("query", query=expr, **({"time": str(at)} if at is not None else {}))
        assert data["resultType"] in ("vector", "scalar"), data
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def alerts(self, alertname: str | None = None, **labels) -> list[dict]:
        return [a for a in self.api("alerts")["alerts"]
                if (alertname is None or a["labels"]["alertname"] == alertname)
                and all(a["labels"].get(k) == v for k, v in labels.items())]

    def wait_ready(self):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                return requests.get(self.base + "/-/ready", timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_until(ready, 30, 0.2, "prometheus ready")
        return self


def value(result: list[dict]) -> float | None:
    """The value of a query's first sample (an instant query's result), None when it has none."""
    return float(result[0]["value"][1]) if result else None


def increase_of_raw_samples(samples: list[tuple[float, float]]) -> float:
    """What a counter's raw samples add up to, resets handled as Prometheus' increase() does (a drop is a
    restart from 0), without its extrapolation to the range's edges."""
    total = 0.0
    for (_, before), (_, after) in zip(samples, samples[1:]):
        total += after - before if after >= before else after
    return total


class VictoriaMetrics(_Server):
    """victoria-metrics (single node) on 127.0.0.1, its data in `path` (a restart keeps it)."""

    def __init__(self, path: Path, port: int | None = None):
        self.path, self.port = path, port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [require_tool("victoria-metrics"), f"-httpListenAddr=127.0.0.1:{self.port}",
             f"-storageDataPath={path / 'data'}", "-retentionPeriod=1", "-search.latencyOffset=0s",
             "-loggerLevel=ERROR"], stdout=subprocess.DEVNULL, stderr=open(path / "vm.log", "ab"))
        wait_until(lambda: _ok(f"{self.base}/health"), 30, 0.2, "victoria-metrics ready")

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr, **({"time": str(at)} if at else {})}
        body = requests.get(self.base + "/api/v1/query", params=params, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]["result"]


class VMAlert(_Server):
    """vmalert evaluating Prometheus rule files on a VictoriaMetrics, sending alerts to an Alertmanager."""

    def __init__(self, path: Path, datasource: str, alertmanager: str, rule_files: list[Path],
                 evaluation_interval: str = "1s"):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [require_tool("vmalert"), f"-httpListenAddr=127.0.0.1:{self.port}", f"-datasource.url={datasource}",
             f"-notifier.url={alertmanager}", f"-evaluationInterval={evaluation_interval}", "-loggerLevel=ERROR",
             *(f"-rule={p}" for p in rule_files)], stdout=subprocess.DEVNULL, stderr=open(path / "vmalert.log", "ab"))
        wait_until(lambda: _ok(f"{self.base}/health"), 30, 0.2, "vmalert ready")

    def alerts(self) -> list[dict]:
        return self.api("alerts")["alerts"] or []  # null while there is none


class Alertmanager(_Server):
    """prometheus-alertmanager with a given configuration, alone (no cluster)."""

    def __init__(self, path: Path, config: Path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [require_tool("alertmanager", "prometheus-alertmanager"), f"--config.file={config}",
             f"--storage.path={path / 'alertmanager'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--cluster.listen-address=", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=open(path / "alertmanager.log", "ab"))
        wait_until(lambda: _ok(f"{self.base}/-/ready"), 30, 0.2, "alertmanager ready")

    def alerts(self) -> list[dict]:
        """Alerts received (API v2): labels, generatorURL, receivers, status."""
        return requests.get(self.base + "/api/v2/alerts", timeout=10).json()


# -- the facility (deploy/facility/) --------------------------------------------------------------
def agent_config(beamline: str, targets: list[str], writes: list[str], scrape_interval: str | None = None,
                 beamlines: list[str] | None = None, queue_config: dict | None = None) -> dict:
    """The shipped agent configuration; only addresses and the beamline changed, and, if given, the scrape
    interval (its timeout too) and `queue_config` (merged into each remote write's). `beamlines`: one
    target per simulated beamline, each labelled as that beamline instead of the external label."""
    config = yaml.safe_load((FACILITY / "beamline-agent.yml").read_text())
    config["global"]["external_labels"]["beamline"] = beamline
    if scrape_interval:
        config["global"].update(scrape_interval=scrape_interval, scrape_timeout=scrape_interval)
    job = config["scrape_configs"][0]
    if beamlines:
        config["global"]["external_labels"].pop("beamline")
        # one exporter stands for every beamline: the same target address, one job per beamline
        config["scrape_configs"] = [dict(copy.deepcopy(job), job_name=f"bliss-exporter-{b}",
                                         static_configs=[{"targets": targets, "labels": {"beamline": b}}])
                                    for b in beamlines]
    else:
        job["static_configs"][0]["targets"] = targets
    shipped = config["remote_write"][0]
    config["remote_write"] = [dict(copy.deepcopy(shipped), url=url) for url in writes]
    for write in config["remote_write"]:
        write["queue_config"].update(queue_config or {})
    return config


def central_config(rule_files: list[Path], alertmanager: str | None = None, evaluation_interval: str | None = None) -> dict:
    """The shipped central Prometheus configuration evaluating `rule_files`, alerting `alertmanager`
    (host:port; None: no alerting), every `evaluation_interval` if given."""
    config = yaml.safe_load((FACILITY / "central-prometheus.yml").read_text())
    if evaluation_interval:
        config["global"]["evaluation_interval"] = evaluation_interval
    config["rule_files"] = [str(p) for p in rule_files]
    if alertmanager is None:
        config.pop("alerting")
    else:
        config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [alertmanager]
    return config


def start_central(path: Path, config: dict, port: int | None = None) -> Prometheus:
    """A central Prometheus receiving the agents' remote writes, ready; `port`: a restart on the same address."""
    return Prometheus(path, [], [], extra_args=["--web.enable-remote-write-receiver"], config=config, port=port).wait_ready()
