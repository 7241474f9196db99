"""`bliss-exporter demo`: embedded Redis Stack + scan simulator + exporter, until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import structlog

from ..options import parse_listen_address

log = structlog.get_logger("bliss_exporter.demo")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `demo` sub-command's flags."""
    p.add_argument("--listen-address", default="127.0.0.1:9811", type=parse_listen_address)
    p.add_argument("--sessions", default="demo_session,id00_session", help="comma-separated simulated sessions")
    p.add_argument("--log-format", choices=("json", "console"), default=None)
    p.add_argument("--data-model", choices=("blissdata2", "legacy"), default="blissdata2",
                   help="blissdata2: a BLISS 2.x session (default); legacy: a BLISS 1.x session, published by "
                        "blissdata 0.3.1 (scripts/demo.sh --data-model legacy installs it)")


def run(args: argparse.Namespace) -> int:
    """Embedded Redis Stack, the simulator in a child process, and an exporter, until SIGINT/SIGTERM."""
    from ..app import Exporter
    from ..config import Config
    from ..runtime import configure_process, run_until_signal
    from ..sinks.logs import default_format
    from .redis_stack import RedisStackError, RedisStackServer

    server = RedisStackServer()
    try:
        server.start()
        if args.data_model == "blissdata2":
            server.init_blissdata()  # a BLISS 1.x store is plain Redis, written by the publisher itself
    except RedisStackError as exc:
        print(f"bliss-exporter demo: error: {exc}", file=sys.stderr)
        server.cleanup()
        return 1
    host, port = args.listen_address
    config = Config(redis_url=server.url, data_model=args.data_model, listen_host=host, listen_port=port,
                    log_format=args.log_format or default_format())
    configure_process(config.log_format, "info")
    exporter = Exporter(config)
    if args.data_model == "legacy":
        sim_cmd = legacy_simulator(server.url, args.sessions.split(",")[0])
        if sim_cmd is None:
            print("bliss-exporter demo: error: the BLISS 1.x demo needs blissdata 0.3.1 in .venv-legacy and the "
                  "repository's tests/legacy/publish.py: run scripts/demo.sh --data-model legacy", file=sys.stderr)
            server.cleanup()
            return 1
    else:
        sim_cmd = [sys.executable, "-m", "exporter", "simulate", "--redis-url", server.url, "--scans", "0",
                   "--interval", "2", "--lima", "--mca", "--sequences", "--log-format", "json"]
        for session in args.sessions.split(","):
            sim_cmd += ["--session", session]
    simulator = None

    def start():
        nonlocal simulator
        exporter.start()
        simulator = subprocess.Popen(sim_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        print(f"\nbliss-exporter demo running: metrics at http://{shown}:{exporter.port}{config.telemetry_path}"
              f"  (status page http://{shown}:{exporter.port}/ ; Ctrl-C to stop)\n", flush=True)

    def stop():
        if simulator is not None:
            os.killpg(simulator.pid, signal.SIGTERM)  # the simulator and what it started
            simulator.wait(10)
        exporter.stop()
        server.cleanup()

    try:
        run_until_signal(start, stop)
    except OSError as exc:
        print(f"bliss-exporter demo: error: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        server.cleanup()
        return 1
    return 0


ROOT = Path(__file__).resolve().parents[2]
#: a BLISS 1.x session's scans, published again and again: plain, batched, failing, aborted, lima, a sequence
LEGACY_WORKLOAD = [
    {"type": "loopscan", "npoints": 20, "count_time": 0.1, "counters": ["diode1", "diode2"], "point_delay": 0.1},
    {"type": "ascan", "npoints": 30, "count_time": 0.05, "counters": ["diode1"], "batch": 3, "point_delay": 0.1},
    {"type": "loopscan", "npoints": 40, "counters": ["diode1"], "outcome": "FAILURE", "fail_after": 12,
     "point_delay": 0.05},
    {"type": "ct", "npoints": 1, "counters": ["diode1", "diode2"], "save": False},
    {"type": "loopscan", "npoints": 15, "counters": ["diode1"], "lima": ["lima_simulator"], "point_delay": 0.1},
    {"sequence": "myseq", "children": [{"type": "loopscan", "npoints": 8, "counters": ["diode1"], "point_delay": 0.1},
                                       {"type": "loopscan", "npoints": 6, "counters": ["diode2"], "point_delay": 0.1}]},
    {"type": "timescan", "npoints": 50, "counters": ["diode1"], "outcome": "USER_ABORT", "fail_after": 20,
     "point_delay": 0.05},
]


def legacy_simulator(url: str, session: str) -> list[str] | None:
    """A shell loop running blissdata 0.3.1's publisher (tests/legacy/publish.py) forever; None if absent."""
    python, publisher = ROOT / ".venv-legacy" / "bin" / "python", ROOT / "tests" / "legacy" / "publish.py"
    if not (python.exists() and publisher.exists()):
        return None
    spec = json.dumps({"redis_url": url.rstrip("/") + "/1", "session": session, "scan_delay": 2.0,
                       "scans": LEGACY_WORKLOAD})
    once = f"{shlex.quote(str(python))} {shlex.quote(str(publisher))} {shlex.quote(spec)}"
    return ["sh", "-c", f"while {once}; do sleep 2; done"]
