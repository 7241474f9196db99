"""`bliss-exporter simulate`: publish BLISS-like scans into a data store, through blissdata."""

from __future__ import annotations

import argparse
import random

import structlog

from ..options import UsageError, env, parse_redis_url

log = structlog.get_logger("bliss_exporter.simulator")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `simulate` sub-command's flags."""
    p.add_argument("--redis-url", type=parse_redis_url, default=env("REDIS_URL"), help="data Redis URL")
    p.add_argument("--session", action="append", default=None, help="session name (repeatable; default demo_session)")
    p.add_argument("--scans", type=int, default=10,
                   help="scans (or sequences, each with its children) to publish per session (0: forever)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between two scans of a session")
    p.add_argument("--speed", type=float, default=1.0, help="time acceleration of the point rate (0: no waiting)")
    p.add_argument("--failure-rate", type=float, default=0.1, help="share of scans ending in FAILURE")
    p.add_argument("--abort-rate", type=float, default=0.05, help="share of scans ending in USER_ABORT")
    p.add_argument("--lima", action="store_true", help="add a lima stream to scans")
    p.add_argument("--mca", action="store_true", help="add a 1D (MCA) stream to scans")
    p.add_argument("--sequences", action="store_true",
                   help="publish scan sequences too (about 1 in 4: a ScanSequence of 2-3 scans, as BLISS does)")
    p.add_argument("--seed", type=int, default=None, help="random seed (reproducible scans)")
    p.add_argument("--first-number", type=int, default=1, help="scan number of the first scan")
    p.add_argument("--log-format", choices=("json", "console"), default="console")


def run(args: argparse.Namespace) -> int:
    """Publish scans per session until done (or forever with --scans 0)."""
    import gevent

    from ..runtime import configure_process
    from .simulator import Truth, open_data_store, publish_scan, publish_sequence, random_sequence, random_spec

    if not args.redis_url:
        raise UsageError("simulate needs --redis-url")
    configure_process(args.log_format, "info")
    sessions = args.session or ["demo_session"]
    try:
        store = open_data_store(args.redis_url)
    except Exception as exc:  # redis errors, protocol mismatch
        raise UsageError(f"cannot use data store {args.redis_url}: {exc}") from None
    rng = random.Random(args.seed)
    total = Truth()

    def one_session(session: str) -> None:
        number = args.first_number
        published = 0
        while args.scans == 0 or published < args.scans:
            if args.sequences and rng.random() < 0.25:
                seq = random_sequence(rng, session, number, args.failure_rate, args.abort_rate, args.lima, args.mca,
                                      args.speed)
                truth = publish_sequence(store, seq, pause=gevent.sleep)
                reason = next((c.end_reason for c in seq.children if c.end_reason != "SUCCESS"), "SUCCESS")
                log.info("scan_published", session=session, scan=f"{number}_sequence", role="sequence",
                         end_reason=reason, subscans=truth.scans - 1, points=truth.points, events=dict(truth.events))
                number += 1 + len(seq.children)
            else:
                spec = random_spec(rng, session, number, args.failure_rate, args.abort_rate, args.lima, args.mca,
                                   args.speed)
                truth = publish_scan(store, spec, pause=gevent.sleep)
                log.info("scan_published", session=session, scan=f"{number}_{spec.scan_type}",
                         end_reason=spec.end_reason, points=truth.points, events=dict(truth.events))
                number += 1
            total.add(truth)
            published += 1
            gevent.sleep(args.interval)

    greenlets = [gevent.spawn(one_session, s) for s in sessions]
    try:
        gevent.joinall(greenlets, raise_error=True)
    except KeyboardInterrupt:
        gevent.killall(greenlets)
    log.info("simulation_done", scans=total.scans, points=total.points, events=dict(total.events),
             ended=dict(total.ended))
    return 0
