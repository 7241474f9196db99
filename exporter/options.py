"""Command-line option types shared by the exporter and its sub-commands: one-line errors, env defaults."""

from __future__ import annotations

import argparse
import os

from .store.urls import normalize_redis_url

ENV_PREFIX = "BLISS_EXPORTER_"


class UsageError(Exception):
    """Bad command line or environment: one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (UsageError) instead of usage + message."""

    def error(self, message):  # one line instead of usage + error
        raise UsageError(message)


def env(name: str, default=None):
    """The value of BLISS_EXPORTER_<name>, else default."""
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
