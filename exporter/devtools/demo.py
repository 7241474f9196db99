"""`bliss-exporter demo`: embedded Redis Stack + scan simulator + exporter, until Ctrl-C."""

from __future__ import annotations

import argparse
import subprocess
import sys

import structlog

from ..options import parse_listen_address

log = structlog.get_logger("bliss_exporter.demo")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `demo` sub-command's flags."""
    p.add_argument("--listen-address", default="127.0.0.1:9811", type=parse_listen_address)
    p.add_argument("--sessions", default="demo_session,id00_session", help="comma-separated simulated sessions")
    p.add_argument("--log-format", choices=("json", "console"), default=None)


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
        server.init_blissdata()
    except RedisStackError as exc:
        print(f"bliss-exporter demo: error: {exc}", file=sys.stderr)
        server.cleanup()
        return 1
    host, port = args.listen_address
    config = Config(redis_url=server.url, listen_host=host, listen_port=port,
                    log_format=args.log_format or default_format())
    configure_process(config.log_format, "info")
    exporter = Exporter(config)
    sim_cmd = [sys.executable, "-m", "exporter", "simulate", "--redis-url", server.url, "--scans", "0",
               "--interval", "2", "--lima", "--mca", "--sequences", "--log-format", "json"]
    for session in args.sessions.split(","):
        sim_cmd += ["--session", session]
    simulator = None

    def start():
        nonlocal simulator
        exporter.start()
        simulator = subprocess.Popen(sim_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        print(f"\nbliss-exporter demo running: metrics at http://{shown}:{exporter.port}{config.telemetry_path}"
              f"  (status page http://{shown}:{exporter.port}/ ; Ctrl-C to stop)\n", flush=True)

    def stop():
        if simulator is not None:
            simulator.terminate()
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
