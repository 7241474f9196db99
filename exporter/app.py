"""The exporter: wires source → watchers → events → metrics and logs → HTTP, and keeps it all alive."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gevent
import redis
import structlog
from prometheus_client import CollectorRegistry, disable_created_metrics

from . import DEFAULT_PORT, __version__
from .events import Fanout
from .http import Routes, make_server
from .logs import LogSink
from .metrics import DEFAULT_DURATION_BUCKETS, ExporterMetrics
from .status import RecentScans, StatusPage
from .source import CONNECTION_ERRORS, DataStoreError, DataStoreSource, redact_url
from .watchers import ScanWatcher, SessionWatcher
from .watchers.session import SessionFilter

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
    """Data store reachability: drives bliss_datastore_up and /readyz; logs each transition once."""

    def __init__(self, metrics: ExporterMetrics):
        self.metrics = metrics
        self.ready = False
        self.reason = "starting"
        self._reported: bool | None = None
        metrics.datastore_up.set(0)

    def up(self, where: str) -> None:
        self.ready, self.reason = True, ""
        self.metrics.datastore_up.set(1)
        if self._reported is not True:
            log.info("datastore_up", datastore=where)
        self._reported = True

    def down(self, where: str, error: BaseException | str) -> None:
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.ready, self.reason = False, reason
        self.metrics.datastore_up.set(0)
        if self._reported is not False:
            log.warning("datastore_down", datastore=where, error=reason)
        self._reported = False


class Exporter:
    """One exporter instance: its own registry, watchers and HTTP server."""

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
        """Find the data store, then run the watchers and the health check under supervision."""
        url = self.config.redis_url or self._resolve_beacon_forever()
        self.datastore = redact_url(url)
        self.source = DataStoreSource(url)  # health checks
        # each watcher greenlet reads on a connection of its own
        self.scan_watcher = ScanWatcher(
            DataStoreSource(url, single_connection=True), self.sink, poll_interval=self.config.poll_interval
        )
        session_watcher = SessionWatcher(
            DataStoreSource(url, single_connection=True), self.scan_watcher, self.sink, self.sessions
        )
        self._wait_until_usable()
        self._greenlets += [
            gevent.spawn(self._supervise, "session_watcher", session_watcher.run),
            gevent.spawn(self._supervise, "scan_watcher", self.scan_watcher.run),
            gevent.spawn(self._supervise, "health", self._health_loop),
        ]

    def _resolve_beacon_forever(self) -> str:
        backoff = Backoff()
        where = f"beacon://{self.config.beacon_host}"
        while True:
            try:
                url = resolve_beacon(self.config.beacon_host)
                log.info("beacon_resolved", beacon_host=self.config.beacon_host, datastore=redact_url(url))
                return url
            except (OSError, RuntimeError, ValueError) as exc:
                self.health.down(where, f"Beacon: {type(exc).__name__}: {exc}")
                gevent.sleep(backoff.next())

    def _check(self) -> bool:
        try:
            self.source.check()
        except CONNECTION_ERRORS as exc:
            self.health.down(self.datastore, exc)
            return False
        except DataStoreError as exc:
            self.health.down(self.datastore, str(exc))
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

    def _supervise(self, name: str, run) -> None:
        """Run a watcher forever: a failure is logged, counted, and the watcher restarted with backoff."""
        backoff = Backoff()
        while True:
            started = time.monotonic()
            try:
                run()
            except gevent.GreenletExit:
                raise
            except CONNECTION_ERRORS as exc:
                self.metrics.watcher_errors.labels(name).inc()
                self.health.down(self.datastore, exc)
                log.debug("watcher_retry", watcher=name, error=f"{type(exc).__name__}: {exc}")
            except redis.ResponseError as exc:  # an unexpected reply from the data store
                self.metrics.watcher_errors.labels(name).inc()
                log.error("watcher_error", watcher=name, error=f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # a bug: never let the greenlet die silently; keep the traceback
                self.metrics.watcher_errors.labels(name).inc()
                log.error("watcher_error", watcher=name, error=f"{type(exc).__name__}: {exc}", exc_info=True)
            if time.monotonic() - started > 30:
                backoff.reset()
            gevent.sleep(backoff.next())
            if name != "health":
                self._wait_until_usable()


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
