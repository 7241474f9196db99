"""Command line: `bliss-exporter [flags]` runs the exporter; `demo` and `simulate` are sub-commands."""

from __future__ import annotations

import argparse
import os
import sys

from . import DEFAULT_PORT

ENV_PREFIX = "BLISS_EXPORTER_"


class UsageError(Exception):
    """Bad command line or environment: one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + error
        raise UsageError(message)


def env(name: str, default=None):
    return os.environ.get(ENV_PREFIX + name, default)


def parse_listen_address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"invalid listen address {value!r}: expected HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid listen address {value!r}: port is not a number") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"invalid listen address {value!r}: port out of range")
    return host, number


def parse_host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"invalid Beacon address {value!r}: expected HOST:PORT")
    return value


def parse_redis_url(value: str) -> str:
    from .store import normalize_redis_url

    try:
        normalize_redis_url(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value!r}")
    return number


def parse_buckets(value: str) -> tuple:
    try:
        buckets = tuple(sorted(float(v) for v in value.split(",") if v.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid buckets {value!r}: comma-separated seconds") from None
    if not buckets or buckets[0] <= 0:
        raise argparse.ArgumentTypeError(f"invalid buckets {value!r}: comma-separated positive seconds")
    return buckets


def telemetry_path(value: str) -> str:
    if not value.startswith("/") or value in ("/", "/healthz", "/readyz"):
        raise argparse.ArgumentTypeError(f"invalid telemetry path {value!r}: must start with / and not be / or a probe")
    return value


def exporter_parser() -> Parser:
    from .sinks.logs import LOG_FORMATS, LOG_LEVELS
    from .sinks.metrics import DEFAULT_DURATION_BUCKETS

    p = Parser(
        prog="bliss-exporter",
        description="Prometheus exporter for BLISS scans (blissdata 2.x). Sub-commands: demo, simulate.",
        epilog=f"Every flag can also be set by an environment variable {ENV_PREFIX}<FLAG> "
        f"(e.g. {ENV_PREFIX}REDIS_URL); BEACON_HOST is used when neither --redis-url nor --beacon-host is given.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--redis-url", type=parse_redis_url, default=env("REDIS_URL"),
                     help="data Redis URL, e.g. redis://host:6380")
    src.add_argument("--beacon-host", type=parse_host_port, default=env("BEACON_HOST"),
                     help="Beacon HOST:PORT to ask for the data Redis URL (default: $BEACON_HOST)")
    p.add_argument("--session", action="append", default=None, metavar="GLOB",
                   help="watch only sessions matching GLOB (repeatable; default: all sessions)")
    p.add_argument("--listen-address", type=parse_listen_address,
                   default=env("LISTEN_ADDRESS", f"0.0.0.0:{DEFAULT_PORT}"),
                   help=f"HOST:PORT to serve HTTP on (default 0.0.0.0:{DEFAULT_PORT})")
    p.add_argument("--telemetry-path", type=telemetry_path, default=env("TELEMETRY_PATH", "/metrics"))
    p.add_argument("--log-format", choices=LOG_FORMATS, default=env("LOG_FORMAT"),
                   help="json (default when stdout is not a terminal) or console")
    p.add_argument("--log-level", choices=LOG_LEVELS, type=str.lower, default=env("LOG_LEVEL", "info"))
    p.add_argument("--poll-interval", type=positive_float, default=env("POLL_INTERVAL", 0.5),
                   help="seconds between two reads of the data streams' counters (default 0.5)")
    p.add_argument("--stall-threshold", type=positive_float, default=env("STALL_THRESHOLD", 600.0),
                   help="seconds without any event after which an active scan is stalled (default 600)")
    p.add_argument("--stall-count-time-factor", type=positive_float, default=env("STALL_COUNT_TIME_FACTOR", 10.0),
                   help="a scan's threshold is at least this many times its count_time (default 10)")
    p.add_argument("--duration-buckets", type=parse_buckets,
                   default=env("DURATION_BUCKETS", ",".join(str(b) for b in DEFAULT_DURATION_BUCKETS)),
                   help="histogram buckets of bliss_scan_duration_seconds, comma-separated seconds")
    p.add_argument("--web.config.file", dest="web_config_file", default=env("WEB_CONFIG_FILE"),
                   help="Prometheus exporter web config (TLS, basic auth)")
    p.add_argument("--http-header-timeout", type=positive_float, default=env("HTTP_HEADER_TIMEOUT"),
                   help=argparse.SUPPRESS)  # seconds for a request's line and headers (tests lower it)
    return p


def parse_exporter_args(argv: list[str]):
    p = exporter_parser()
    # defaults come from the environment: name the variable, not the flag, when one is wrong
    for action in p._actions:
        if isinstance(action.default, str) and callable(action.type) and action.type is not str.lower:
            try:
                action.type(action.default)
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"{ENV_PREFIX}{action.dest.upper()}: {exc}") from None
    args = p.parse_args(argv)
    if args.session is None:
        sessions = env("SESSIONS") or env("SESSION")
        args.session = [s for s in (sessions or "").split(",") if s]
    if not args.redis_url and not args.beacon_host:
        beacon = os.environ.get("BEACON_HOST")
        if not beacon:
            raise UsageError("no data store: give --redis-url or --beacon-host (or set BEACON_HOST)")
        try:
            args.beacon_host = parse_host_port(beacon)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"BEACON_HOST: {exc}") from None
    if args.log_format is None:
        from .sinks.logs import default_format

        args.log_format = default_format()
    return args


def config_from_args(args):
    from .app import Config

    host, port = args.listen_address
    return Config(
        redis_url=args.redis_url,
        beacon_host=args.beacon_host,
        sessions=args.session,
        listen_host=host,
        listen_port=port,
        telemetry_path=args.telemetry_path,
        poll_interval=args.poll_interval,
        stall_threshold=args.stall_threshold,
        stall_factor=args.stall_count_time_factor,
        duration_buckets=args.duration_buckets,
        web_config_file=args.web_config_file,
    )


IGNORED_SIGNALS = ("SIGHUP", "SIGUSR1", "SIGUSR2")  # nothing to reload or dump: a stray one must not kill


def run_until_signal(start, stop) -> None:
    """Call start(), wait for SIGINT/SIGTERM, call stop(); SIGHUP, SIGUSR1 and SIGUSR2 are logged and ignored."""
    import signal

    import gevent
    import structlog
    from gevent.event import Event

    log = structlog.get_logger("bliss_exporter")
    stopping = Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    ignored = [gevent.signal_handler(getattr(signal, name), log.info, "signal_ignored", signal=name)
               for name in IGNORED_SIGNALS]  # kept referenced while running
    start()
    stopping.wait()
    stop()
    for handler in ignored:
        handler.cancel()


def run_exporter(argv: list[str]) -> int:
    args = parse_exporter_args(argv)
    from .app import Exporter
    from .sinks import logs

    logs.configure(args.log_format, args.log_level)
    config = config_from_args(args)
    ssl_args = None
    auth = None
    if config.web_config_file:
        from .web.webconfig import WebConfigError, load_web_config

        try:
            ssl_args, auth = load_web_config(config.web_config_file)
        except WebConfigError as exc:
            raise UsageError(str(exc)) from None
    if args.http_header_timeout:
        from .web.http import HttpServer

        HttpServer.HEADER_TIMEOUT = args.http_header_timeout
    exporter = Exporter(config)
    if auth is not None:
        exporter.routes = auth.wrap(exporter.routes)
    try:
        run_until_signal(lambda: exporter.start(ssl_args), exporter.stop)
    except OSError as exc:  # e.g. the listen port is taken
        from .web.http import format_address

        print(f"bliss-exporter: error: cannot listen on {format_address(*args.listen_address)}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    from gevent import monkey

    monkey.patch_all()
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] == "demo":
            from .devtools.demo import main as demo_main

            return demo_main(argv[1:])
        if argv and argv[0] == "simulate":
            from .devtools.simulate import main as simulate_main

            return simulate_main(argv[1:])
        return run_exporter(argv)
    except UsageError as exc:
        print(f"bliss-exporter: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
