"""The container image, built from the shipped Dockerfile and run here with podman: what ships is what is tested.

No image registry is reachable here: the Dockerfile's base, debian:bookworm-slim, is made from Debian's
packages by deploy/container/debian-base.sh (once per machine), and the build lends the machine's pip
configuration and CA bundle read-only (never copied into a layer). podman runs with runc (crun refuses
this kernel's hybrid cgroups), explicit rlimits (root lacks CAP_SYS_RESOURCE) and the host's network
(loopback only: the data store and the stand-in Beacon are on 127.0.0.1).

    ./scripts/test.sh -m container      # these tests alone
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml

from exporter.devtools.redis_stack import free_port
from exporter.devtools.simulator import ScanSpec, Truth, publish_scan

from .builders import EVENT_TYPES
from .helpers import ROOT, BeaconPeer, parse_metrics, require_tool, wait_until

pytestmark = pytest.mark.container

IMAGE = "localhost/bliss-exporter:test"
BASE = "docker.io/library/debian:bookworm-slim"
LIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
PASSWORD = "c0ntainer-pw"


def podman(*args, check=True, timeout=600) -> subprocess.CompletedProcess:
    result = subprocess.run([require_tool("podman"), "--runtime", "runc", *args], capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])}... failed ({result.returncode}): {result.stderr[-3000:]}")
    return result


def pip_settings() -> dict[str, str]:
    """The machine's pip configuration (`pip config list`: files and PIP_* environment), as name -> value."""
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60).stdout
    settings = {}
    for line in out.splitlines():
        name, _, value = line.partition("=")
        settings[name.split(".", 1)[-1]] = value.strip().strip("'")
    return settings


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    """The image of the repository's Dockerfile, unchanged (layers reused by podman between runs)."""
    require_tool("podman")
    require_tool("debootstrap")
    base = subprocess.run(["bash", str(ROOT / "deploy" / "container" / "debian-base.sh"), BASE],
                          capture_output=True, text=True, timeout=900)
    assert base.returncode == 0, base.stderr
    work = tmp_path_factory.mktemp("build")
    settings = pip_settings()
    volumes, conf = [], ["[global]"]
    cert = settings.get("cert")
    if cert and os.path.exists(cert):  # lent under another path: Debian's ca-certificates owns the usual one
        volumes += ["--volume", f"{cert}:/run/host-ca/ca.crt:ro"]
        conf.append("cert = /run/host-ca/ca.crt")
    constraint = settings.get("constraint")
    if constraint and os.path.exists(constraint):
        volumes += ["--volume", f"{constraint}:/run/host-pip/constraints.txt:ro"]
        conf.append("constraint = /run/host-pip/constraints.txt")
    for name in ("index-url", "timeout", "default-timeout"):
        if settings.get(name) and not settings[name].startswith("file:"):
            conf.append(f"{name} = {settings[name]}")
    (work / "pip.conf").write_text("\n".join(conf) + "\n")
    volumes += ["--volume", f"{work / 'pip.conf'}:/etc/pip.conf:ro"]
    podman("build", "--format", "docker", "--network", "host", "--pull=never", *LIMITS, *volumes,
           "-t", IMAGE, str(ROOT), timeout=1500)
    return IMAGE


def inspect(name: str) -> dict:
    return json.loads(podman("inspect", name).stdout)[0]


def healthcheck(name: str) -> list[str]:
    """The image's HEALTHCHECK command (CMD form), to run by `podman exec` where `healthcheck run` cannot."""
    return json.loads(podman("image", "inspect", inspect(name)["Image"]).stdout)[0]["Healthcheck"]["Test"][1:]


def test_image_is_small_non_root_and_lends_nothing_of_the_build_machine(image):
    info = json.loads(podman("image", "inspect", image).stdout)[0]
    size_mb = info["Size"] / 1e6
    assert size_mb < 400, f"image is {size_mb:.0f} MB"
    assert info["User"] == "10001:10001"
    assert info["Healthcheck"]["Test"][0] == "CMD"  # kept: built with --format docker
    # what the build lent (pip configuration, CA bundle) left at most an empty mount point: never its content
    listing = podman("run", "--rm", "--network", "host", *LIMITS, "--entrypoint", "sh", image, "-c",
                     "for f in /etc/pip.conf /run/host-ca/* /run/host-pip/*; do [ -s \"$f\" ] && echo \"HAS $f\"; done; "
                     "command -v gcc cc pip3 || true").stdout
    assert "HAS " not in listing, listing
    assert "gcc" not in listing and "/cc" not in listing and "pip3" not in listing, listing  # no build tools


def test_the_image_counts_a_real_session_configured_by_environment_only(image, redis_server, data_store, pki,
                                                                          tmp_path):
    port = int(redis_server.url.rsplit(":", 1)[1])
    beacon = BeaconPeer("127.0.0.1", port)
    web = tmp_path / "web"
    web.mkdir()
    os.chmod(web, 0o755)  # the image's non-root user reads it through the read-only mount
    for name in ("server.crt", "server.key"):
        shutil.copy(pki[name], web / name)
        os.chmod(web / name, 0o644)  # readable by the image's non-root user
    (web / "web-config.yml").write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": "/etc/bliss-exporter/server.crt", "key_file": "/etc/bliss-exporter/server.key"},
        "basic_auth_users": {"prometheus": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()}}))
    listen = free_port()
    name = f"bliss-exporter-test-{listen}"
    podman("run", "-d", "--name", name, "--network", "host", *LIMITS, "--read-only",
           "--volume", f"{web}:/etc/bliss-exporter:ro",
           "-e", f"BEACON_HOST=127.0.0.1:{beacon.port}", "-e", f"BLISS_EXPORTER_LISTEN_ADDRESS=127.0.0.1:{listen}",
           "-e", "BLISS_EXPORTER_WEB_CONFIG_FILE=/etc/bliss-exporter/web-config.yml",
           "-e", "BLISS_EXPORTER_SESSIONS=ctr_*", "-e", "BLISS_EXPORTER_POLL_INTERVAL=0.1", image)
    base = f"https://127.0.0.1:{listen}"

    def get(path: str, auth=True) -> requests.Response:
        return requests.get(base + path, verify=str(pki["ca.crt"]), timeout=5,
                            auth=("prometheus", PASSWORD) if auth else None)

    def metrics() -> dict:
        r = get("/metrics")
        r.raise_for_status()
        return parse_metrics(r.text)

    try:
        wait_until(lambda: _ok(lambda: get("/readyz").status_code == 200), 60, 0.5, "the container's /readyz")
        assert get("/metrics", auth=False).status_code == 401 and get("/healthz", auth=False).status_code == 200
        truth = Truth()
        for number, spec in enumerate([dict(), dict(scan_type="ascan", end_reason="FAILURE", fail_after=4),
                                       dict(lima=True, batch=3)], start=1):
            truth.add(publish_scan(data_store, ScanSpec(session="ctr_a", number=number, npoints=9, count_time=0, **spec)))
        publish_scan(data_store, ScanSpec(session="other", number=1, npoints=3, count_time=0))  # filtered out

        def counted():
            m = metrics()
            return {e: m.get(("bliss_scan_events_total", frozenset({"session": "ctr_a", "event_type": e}.items())))
                    for e in EVENT_TYPES}
        wait_until(lambda: counted() == {e: truth.events[e] for e in EVENT_TYPES}, 60, 0.5,
                   f"exact counts in the container (truth {dict(truth.events)})")
        m = metrics()
        assert m[("bliss_scan_points_total", frozenset({("session", "ctr_a")}))] == truth.points
        assert not [k for k in m if dict(k[1]).get("session") == "other"]
        assert m[("bliss_datastore_up", frozenset())] == 1

        assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
        top = podman("top", name, "user", "comm").stdout
        assert "bliss-exporter" in top or "10001" in top, top
        check = podman("healthcheck", "run", name, check=False)
        if check.returncode != 0 and "systemd" in check.stderr:  # no systemd here: the same command by exec
            check = podman("exec", name, *healthcheck(name), check=False)
        assert check.returncode == 0, check.stdout + check.stderr

        podman("stop", "-t", "10", name)  # SIGTERM, then SIGKILL (exit code 137) after the 10 s grace period
        state = inspect(name)["State"]
        assert state["ExitCode"] == 0, state
        logs = podman("logs", name).stdout
        lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
        events = [line["event"] for line in lines]
        assert "beacon_resolved" in events and "exporter_stop" in events, events
        assert "Traceback" not in logs + podman("logs", name).stderr
    finally:
        podman("rm", "-f", name, check=False)
        beacon.close()


def test_the_compose_exporter_service_runs_as_written(image, redis_server, data_store):
    """deploy/compose.yaml's exporter service (entrypoint, command, environment, read-only file system) through
    the same image; only the compose network's addresses become this machine's (the data Redis, the port)."""
    service = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"]["exporter"]
    listen = free_port()
    command = [arg.replace("redis://redis:6379", redis_server.url) for arg in service["command"]]
    environment = dict(service.get("environment", {}))
    assert environment["BLISS_EXPORTER_LISTEN_ADDRESS"] == "0.0.0.0:9811"  # the exporter and its HEALTHCHECK read it
    environment["BLISS_EXPORTER_LISTEN_ADDRESS"] = f"127.0.0.1:{listen}"
    env = [x for k, v in environment.items() for x in ("-e", f"{k}={v}")]
    read_only = ["--read-only"] if service.get("read_only") else []
    assert read_only, "the compose exporter service runs with a read-only file system"
    name = f"bliss-exporter-compose-{listen}"
    podman("run", "-d", "--name", name, "--network", "host", *LIMITS, *read_only, *env,
           "--entrypoint", service["entrypoint"][0], image, *command)
    try:
        base = f"http://127.0.0.1:{listen}"
        wait_until(lambda: _ok(lambda: requests.get(base + "/readyz", timeout=5).status_code == 200), 60, 0.5,
                   "the compose service's /readyz")
        truth = publish_scan(data_store, ScanSpec(session="compose", number=1, npoints=5, count_time=0))
        wait_until(lambda: parse_metrics(requests.get(base + "/metrics", timeout=5).text).get(
            ("bliss_scan_events_total", frozenset({"session": "compose", "event_type": "new_data"}.items())))
            == truth.events["new_data"], 60, 0.5, "the compose service counting")
        m = parse_metrics(requests.get(base + "/metrics", timeout=5).text)
        threshold = float(service["environment"]["BLISS_EXPORTER_STALL_THRESHOLD"])
        assert threshold == 120.0
        check = podman("healthcheck", "run", name, check=False)
        if check.returncode != 0 and "systemd" in check.stderr:
            check = podman("exec", name, *healthcheck(name), check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        assert m[("bliss_datastore_up", frozenset())] == 1
    finally:
        podman("rm", "-f", name, check=False)


def _ok(probe) -> bool:
    try:
        return probe()
    except requests.RequestException:
        return False


def test_debian_base_script_reuses_what_the_machine_has(image):
    result = subprocess.run(["bash", str(ROOT / "deploy" / "container" / "debian-base.sh"), BASE],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr  # kept, not made again
    assert Path(ROOT / "Dockerfile").read_text().count("FROM debian:bookworm-slim") == 2
