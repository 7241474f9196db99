"""Configuration in one place: flags and environment → one complete, checked Config (web config included)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from . import DEFAULT_PORT
from .options import (
    ENV_PREFIX,
    Parser,
    UsageError,
    env,
    parse_buckets,
    parse_host_port,
    parse_listen_address,
    parse_redis_url,
    positive_float,
    telemetry_path,
)
from .sinks.logs import LOG_FORMATS, LOG_LEVELS, default_format
from .sinks.metrics import DEFAULT_DURATION_BUCKETS
from .store.detect import DATA_MODELS


@dataclass
class Config:
    """Everything an exporter is configured with."""

    redis_url: str | None = None
    beacon_host: str | None = None
    data_model: str = "auto"  # auto | blissdata2 | legacy
    sessions: list[str] = field(default_factory=list)
    listen_host: str = "0.0.0.0"
    listen_port: int = DEFAULT_PORT
    telemetry_path: str = "/metrics"
    poll_interval: float = 0.5
    health_interval: float = 5.0  # self-test period (also run before any watcher restarts)
    stall_threshold: float = 600.0
    stall_factor: float = 10.0
    duration_buckets: tuple = DEFAULT_DURATION_BUCKETS
    log_format: str = "json"
    log_level: str = "info"
    web_config_file: str | None = None
    tls: dict | None = None  # gevent server SSL arguments, from the web config
    auth: object | None = None  # web.webconfig.BasicAuth, from the web config
    http_header_timeout: float | None = None  # None: the server's default


def exporter_parser() -> Parser:
    """The exporter's flags, each with its BLISS_EXPORTER_<FLAG> environment default."""
    p = Parser(
        prog="bliss-exporter",
        description="Prometheus exporter for BLISS scans (BLISS 2.x and 1.x data stores). Sub-commands: demo, simulate.",
        epilog=f"Every flag can also be set by an environment variable {ENV_PREFIX}<FLAG> "
        f"(e.g. {ENV_PREFIX}REDIS_URL); BEACON_HOST is used when neither --redis-url nor --beacon-host is given.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--redis-url", type=parse_redis_url, default=env("REDIS_URL"),
                     help="data Redis URL, e.g. redis://host:6380")
    src.add_argument("--beacon-host", type=parse_host_port, default=env("BEACON_HOST"),
                     help="Beacon HOST:PORT to ask for the data Redis URL (default: $BEACON_HOST)")
    p.add_argument("--data-model", choices=DATA_MODELS, default=env("DATA_MODEL", "auto"),
                   help="auto (default: detected at each connection), blissdata2 (BLISS 2.x), legacy (BLISS 1.x)")
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


def load_config(argv: list[str]) -> Config:
    """Flags, then BLISS_EXPORTER_* and BEACON_HOST, then the web config file: a complete Config.

    Raises UsageError (one line) for anything wrong, naming the variable when the environment is.
    """
    p = exporter_parser()
    for action in p._actions:
        if isinstance(action.default, str) and callable(action.type) and action.type is not str.lower:
            try:
                action.type(action.default)
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"{ENV_PREFIX}{action.dest.upper()}: {exc}") from None
    args = p.parse_args(argv)
    if args.data_model not in DATA_MODELS:  # from the environment (argparse checks only flags)
        raise UsageError(f"{ENV_PREFIX}DATA_MODEL: invalid choice {args.data_model!r} (choose from {', '.join(DATA_MODELS)})")
    sessions = args.session
    if sessions is None:
        sessions = [s for s in (env("SESSIONS") or env("SESSION") or "").split(",") if s]
    beacon_host = args.beacon_host
    if not args.redis_url and not beacon_host:
        beacon = os.environ.get("BEACON_HOST")
        if not beacon:
            raise UsageError("no data store: give --redis-url or --beacon-host (or set BEACON_HOST)")
        try:
            beacon_host = parse_host_port(beacon)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"BEACON_HOST: {exc}") from None
    tls = auth = None
    if args.web_config_file:
        from .web.webconfig import WebConfigError, load_web_config

        try:
            tls, auth = load_web_config(args.web_config_file)
        except WebConfigError as exc:
            raise UsageError(str(exc)) from None
    host, port = args.listen_address
    return Config(
        redis_url=args.redis_url,
        beacon_host=beacon_host,
        data_model=args.data_model,
        sessions=sessions,
        listen_host=host,
        listen_port=port,
        telemetry_path=args.telemetry_path,
        poll_interval=args.poll_interval,
        stall_threshold=args.stall_threshold,
        stall_factor=args.stall_count_time_factor,
        duration_buckets=args.duration_buckets,
        log_format=args.log_format or default_format(),
        log_level=args.log_level,
        web_config_file=args.web_config_file,
        tls=tls,
        auth=auth,
        http_header_timeout=args.http_header_timeout,
    )
