"""`bliss-exporter demo`: embedded Redis Stack + scan simulator + exporter, until Ctrl-C."""

from __future__ import annotations

import subprocess
import sys

import structlog

from ..cli import Parser, config_from_args, parse_exporter_args, parse_listen_address, run_until_signal

log = structlog.get_logger("bliss_exporter.demo")


def main(argv: list[str]) -> int:
    from ..app import Exporter
    from ..sinks import logs
    from .redis_stack import RedisStackError, RedisStackServer

    p = Parser(prog="bliss-exporter demo", description="Run the exporter on a simulated beamline.")
    p.add_argument("--listen-address", default="127.0.0.1:9811", type=parse_listen_address)
    p.add_argument("--sessions", default="demo_session,id00_session", help="comma-separated simulated sessions")
    p.add_argument("--log-format", choices=("json", "console"), default=None)
    args = p.parse_args(argv)

    server = RedisStackServer()
    try:
        server.start()
        server.init_blissdata()
    except RedisStackError as exc:
        print(f"bliss-exporter demo: error: {exc}", file=sys.stderr)
        server.cleanup()
        return 1
    host, port = args.listen_address
    exporter_args = ["--redis-url", server.url, "--listen-address", f"{host}:{port}"]
    if args.log_format:
        exporter_args += ["--log-format", args.log_format]
    xargs = parse_exporter_args(exporter_args)
    logs.configure(xargs.log_format, "info")
    exporter = Exporter(config_from_args(xargs))
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
        print(f"\nbliss-exporter demo running: metrics at http://{shown}:{exporter.port}{xargs.telemetry_path}"
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
