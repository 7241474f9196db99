"""The exporter: wires source → watchers → events → metrics and logs → HTTP, and keeps it all alive."""

from __future__ import annotations

from dataclasses import dataclass, field

import gevent
import structlog
from prometheus_client import CollectorRegistry, disable_created_metrics

from . import DEFAULT_PORT, __version__
from .sinks.events import Fanout
from .sinks.logs import LogSink
from .sinks.metrics import DEFAULT_DURATION_BUCKETS, ExporterMetrics
from .store import BeaconError, DataStoreSource, describe_error, is_unavailable, normalize_redis_url, redact_url
from .watchers import ScanWatcher, SessionWatcher
from .watchers.session_watcher import SessionFilter
from .web.http import Routes, make_server
from .web.status import RecentScans, StatusPage

log = structlog.get_logger("bliss_exporter")


@dataclass
class Config:
    """Everything the exporter is configured with (command line or environment)."""

    redis_url: str | None = None
    beacon_host: str | None = None
    sessions: list[str] = field(default_factory=list)
    listen_host: str = "0.0.0.0"
    listen_port: int = DEFAULT_PORT
    telemetry_path: str = "/metrics"
    poll_interval: float = 0.5
    health_interval: float = 2.0
    stall_threshold: float = 600.0
    stall_factor: float = 10.0
    duration_buckets: tuple = DEFAULT_DURATION_BUCKETS
    web_config_file: str | None = None


def resolve_beacon(beacon_host: str, timeout: float = 5.0) -> str:
    """Ask Beacon for the data Redis URL; raise OSError/RuntimeError with a readable message."""
    from blissdata.beacon.data import BeaconData

    host, _, port = beacon_host.rpartition(":")
    with gevent.Timeout(timeout, OSError(f"Beacon {beacon_host} did not answer within {timeout:.0f} s")):
        client = BeaconData(host=host, port=int(port), timeout=timeout)
        try:
            return client.get_redis_data_db()
        finally:
            client.close()


class Health:
    """Whether the exporter can do its job: drives bliss_datastore_up and /readyz; logs transitions once.

    Ready when the data store passed its self-test and no part of the exporter keeps failing
    (two failures in a row without a healthy run in between).
    """

    FAILURES_BEFORE_UNREADY = 2

    def __init__(self, metrics: ExporterMetrics):
        self.metrics = metrics
        self.datastore_ok = False
        self.datastore_reason = "starting"
        self._reported: bool | None = None
        self._failures: dict[str, tuple[int, str]] = {}  # part -> (failures in a row, last error)
        metrics.datastore_up.set(0)

    @property
    def ready(self) -> bool:
        return self.datastore_ok and not self._failing()

    @property
    def reason(self) -> str:
        if not self.datastore_ok:
            return self.datastore_reason
        failing = self._failing()
        return "; ".join(f"{part} keeps failing: {error}" for part, error in failing.items())

    def _failing(self) -> dict[str, str]:
        return {part: error for part, (n, error) in self._failures.items() if n >= self.FAILURES_BEFORE_UNREADY}

    def up(self, where: str) -> None:
        self.datastore_ok, self.datastore_reason = True, ""
        self.metrics.datastore_up.set(1)
        if self._reported is not True:
            log.info("datastore_up", datastore=where)
        self._reported = True

    def down(self, where: str, error: BaseException | str) -> None:
        reason = error if isinstance(error, str) else describe_error(error)
        self.datastore_ok, self.datastore_reason = False, reason
        self.metrics.datastore_up.set(0)
        if self._reported is not False:
            log.warning("datastore_down", datastore=where, error=reason)
        self._reported = False

    def part_failed(self, part: str, error: str) -> None:
        n, _ = self._failures.get(part, (0, ""))
        self._failures[part] = (n + 1, error)

    def part_ok(self, part: str) -> None:
        self._failures.pop(part, None)


class Exporter:
    """One exporter instance: its own registry, watchers and HTTP server."""

    #: a watcher that ran this long after a restart is healthy again
    HEALTHY_AFTER = 5.0

    def __init__(self, config: Config, registry: CollectorRegistry | None = None):
        self.config = config
        disable_created_metrics()  # *_created series only confuse dashboards and rate()
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.source: DataStoreSource | None = None
        self.scan_watcher: ScanWatcher | None = None
        self._active = lambda: list(self.scan_watcher.active.values()) if self.scan_watcher else []
        self.metrics = ExporterMetrics(
            self.registry,
            self._active,
            duration_buckets=config.duration_buckets,
            stall_threshold=config.stall_threshold,
            stall_factor=config.stall_factor,
        )
        self.health = Health(self.metrics)
        self.recent = RecentScans()  # recently ended scans, for the status page
        self.sink = Fanout(self.metrics, LogSink(), self.recent)
        self.sessions = SessionFilter(config.sessions)
        self.routes = Routes(self.registry, self.health, config.telemetry_path,
                             status_page=StatusPage(self, self.recent))
        self.server = None
        self._greenlets: list[gevent.Greenlet] = []
        self._resolved_url: str | None = None
        self.datastore = redact_url(config.redis_url) if config.redis_url else f"beacon://{config.beacon_host}"

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self, ssl_args: dict | None = None) -> None:
        self.server = make_server(self.config.listen_host, self.config.listen_port, self.routes, ssl_args)
        self.server.start()
        log.info(
            "exporter_start",
            version=__version__,
            listen_address=self.server.listen_address,
            telemetry_path=self.config.telemetry_path,
            datastore=self.datastore,
            session_filter=str(self.sessions),
        )
        self._greenlets.append(gevent.spawn(self._main))

    @property
    def port(self) -> int:
        return self.server.server_port

    def stop(self) -> None:
        gevent.killall(self._greenlets, timeout=5)
        if self.server is not None:
            self.server.stop(timeout=2)
        active = len(self.scan_watcher.active) if self.scan_watcher else 0
        log.info("exporter_stop", active_scans=active)

    def _main(self) -> None:
        """Connect (supervised like the watchers), then run the watchers and the health check."""
        session_watcher = self._supervise("startup", self._connect, once=True)
        self._greenlets += [
            gevent.spawn(self._supervise, "session_watcher", session_watcher.run),
            gevent.spawn(self._supervise, "scan_watcher", self.scan_watcher.run),
            gevent.spawn(self._supervise, "health", self._health_loop),
        ]

    def _stream_error(self, reason: str) -> None:
        self.metrics.stream_errors.labels(reason).inc()

    def _connect(self) -> SessionWatcher:
        """Every step from configuration to watchers ready: Beacon, URL, connections, self-test."""
        url = self.config.redis_url or self._resolve_beacon()
        url = normalize_redis_url(url)
        self.datastore = redact_url(url)
        source = DataStoreSource(url)  # health checks
        source.check()
        # each watcher greenlet reads on a connection of its own (connected here, under supervision)
        scan_watcher = ScanWatcher(
            DataStoreSource(url, single_connection=True, on_stream_error=self._stream_error),
            self.sink, poll_interval=self.config.poll_interval,
        )
        session_watcher = SessionWatcher(
            DataStoreSource(url, single_connection=True), scan_watcher, self.sink, self.sessions
        )
        self.source, self.scan_watcher = source, scan_watcher
        self.health.up(self.datastore)
        return session_watcher

    def _resolve_beacon(self) -> str:
        try:
            url = resolve_beacon(self.config.beacon_host)
        except Exception as exc:
            raise BeaconError(f"Beacon {self.config.beacon_host}: {describe_error(exc)}") from exc
        if url != self._resolved_url:
            log.info("beacon_resolved", beacon_host=self.config.beacon_host, datastore=redact_url(url))
            self._resolved_url = url
        return url

    def _check(self) -> bool:
        """Self-test of the data store; any failure marks it down with its reason."""
        try:
            self.source.check()
        except gevent.GreenletExit:
            raise
        except Exception as exc:
            self.health.down(self.datastore, exc)
            return False
        self.health.up(self.datastore)
        return True

    def _wait_until_usable(self) -> None:
        backoff = Backoff()
        while not self._check():
            gevent.sleep(backoff.next())

    def _health_loop(self) -> None:
        while True:
            gevent.sleep(self.config.health_interval)
            self._check()

    def _supervise(self, name: str, run, once: bool = False):
        """Run a part forever (or until it returns, if `once`): a failure is logged, counted, retried.

        Errors meaning the data store cannot serve us mark it down (logged once per outage);
        anything else is a `watcher_error` line. A part that fails twice in a row without a
        healthy run of HEALTHY_AFTER seconds makes /readyz fail with its last error.
        """
        backoff = Backoff()
        while True:
            healthy = None if once else gevent.spawn_later(self.HEALTHY_AFTER, self._healthy, name, backoff)
            try:
                result = run()
                if once:
                    self.health.part_ok(name)
                    return result
                raise RuntimeError("returned, but a watcher runs forever")
            except gevent.GreenletExit:
                raise
            except (Exception, gevent.Timeout) as exc:  # never let the supervisor die
                self._failed(name, exc)
            finally:
                if healthy is not None:
                    healthy.kill(block=False)
            gevent.sleep(backoff.next())
            if name not in ("health", "startup"):
                self._wait_until_usable()

    def _healthy(self, name: str, backoff: "Backoff") -> None:
        self.health.part_ok(name)
        backoff.reset()

    def _failed(self, name: str, exc: BaseException) -> None:
        """Log (one line, traceback only at debug level), count and report a part's failure."""
        error = describe_error(exc)
        self.metrics.watcher_errors.labels(name).inc()
        self.health.part_failed(name, error)
        expected = is_unavailable(exc) or (name == "startup" and isinstance(exc, (BeaconError, ValueError)))
        if name == "startup" or is_unavailable(exc):
            self.health.down(self.datastore, error)
        if expected:
            log.debug("watcher_retry", watcher=name, error=error)
        else:
            log.error("watcher_error", watcher=name, error=error)
        log.debug("watcher_traceback", watcher=name, exc_info=exc)


class Backoff:
    """Exponential retry delays, bounded."""

    def __init__(self, first: float = 0.2, cap: float = 5.0):
        self.first, self.cap, self.delay = first, cap, first

    def next(self) -> float:
        delay = self.delay
        self.delay = min(self.cap, self.delay * 2)
        return delay

    def reset(self) -> None:
        self.delay = self.first
