"""The exporter: wires store → watchers → sinks (metrics, logs, read model) → web, under supervision."""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
import structlog
from prometheus_client import CollectorRegistry

from . import __version__
from .config import Config
from .health import Health
from .parts import Part
from .sinks.events import ScanLost, Sink, SinkChain
from .sinks.logs import LogSink
from .sinks.metrics import DEFAULT_DURATION_BUCKETS, ExporterMetrics
from .store import DataStoreError, DataStoreSource, normalize_redis_url, redact_url
from .store.base import Source
from .store.beacon import data_store_url
from .store.clock import StoreClock
from .store.detect import choose_model
from .store.legacy import LegacySource
from .supervisor import Backoff, Supervisor
from .view import ExporterView
from .watchers import ScanWatcher, SessionWatcher
from .watchers.session_watcher import SessionFilter
from .web.http import Routes, make_server
from .web.status import StatusPage

log = structlog.get_logger("bliss_exporter")


def _legacy(sessions):
    """LegacySource following these sessions (`--session` globs) as they appear."""
    return lambda url, **kw: LegacySource(url, sessions=sessions, **kw)


class Wiring:
    """The sinks every event passes (metrics, log lines, read model) and, once connected, the watchers feeding them.

    `taps`: sinks that see each event first (a test's recorder).
    """

    def __init__(self, registry: CollectorRegistry, view: ExporterView, duration_buckets: tuple[float, ...] = DEFAULT_DURATION_BUCKETS,
                 taps: tuple[Sink, ...] = ()):
        self.view = view
        self.scan_watcher: ScanWatcher | None = None
        self.session_watcher: SessionWatcher | None = None
        self.metrics = ExporterMetrics(registry, view, duration_buckets=duration_buckets, read_until=self.read_until)
        self.emit = SinkChain(*taps, self.metrics, LogSink(), view)

    def watch(self, scans: Source, sessions: Source, session_filter: SessionFilter, store_clock: StoreClock,
              poll_interval: float = 0.5, clock: Callable[[], float] = time.time) -> tuple[ScanWatcher, SessionWatcher]:
        """New watchers reading `scans` and `sessions` (the exporter gives each a connection of its own) into the sinks."""
        scan_watcher = ScanWatcher(scans, self.emit, poll_interval=poll_interval, clock=clock, store_clock=store_clock)
        session_watcher = SessionWatcher(sessions, scan_watcher, self.emit, session_filter)
        self.scan_watcher, self.session_watcher = scan_watcher, session_watcher
        self.view.attach(lambda: scan_watcher.active.values())
        return scan_watcher, session_watcher

    def read_until(self) -> float:
        """Store time up to which the watchers know every scan's creation and state changes."""
        if self.scan_watcher is None or self.session_watcher is None:
            return float("-inf")
        return min(self.scan_watcher.read_until, self.session_watcher.read_until)


class Exporter:
    """One exporter: its own registry, read model, watchers and HTTP server (several can share a process)."""

    def __init__(self, config: Config, registry: CollectorRegistry | None = None, clock=time.time):
        self.config = config
        self.store_clock = StoreClock(clock)  # the start: counters count what happens from now on
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.sessions = SessionFilter(config.sessions)
        self.datastore = redact_url(config.redis_url) if config.redis_url else f"beacon://{config.beacon_host}"
        self.source: Source | None = None  # the health check's connection, once connected
        self.health = Health(self.registry)
        self.view = ExporterView(
            self.health, datastore=lambda: self.datastore, session_filter=str(self.sessions),
            stall_threshold=config.stall_threshold, stall_factor=config.stall_factor,
        )
        self.wiring = Wiring(self.registry, self.view, duration_buckets=config.duration_buckets)
        self.supervisor = Supervisor(self.health, self.wiring.metrics.watcher_errors, lambda: self.datastore,
                                     self._wait_until_usable)
        app = Routes(self.registry, self.health, config.telemetry_path, status_page=StatusPage(self.view))
        self.wsgi = config.auth.wrap(app) if config.auth is not None else app
        self.server = None
        self._greenlets: list[gevent.Greenlet] = []
        self._resolved_url: str | None = None
        self._model: str | None = None
        self._base_url: str | None = None  # the data Redis before the model's database is chosen
        self._watchers: list[gevent.Greenlet] = []
        self._restarting = False

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Serve HTTP now; find the data store and run the watchers in the background."""
        self.server = make_server(self.config.listen_host, self.config.listen_port, self.wsgi, self.config.tls,
                                  header_timeout=self.config.http_header_timeout)
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
        log.info("exporter_stop", active_scans=len(self.view.active_scans()))

    def _main(self) -> None:
        """Connect (supervised like the watchers), then run the watchers and the health check."""
        session_watcher = self.supervisor.run(Part.STARTUP, self._connect, once=True)
        self._watchers = [
            gevent.spawn(self.supervisor.run, Part.SESSION_WATCHER, session_watcher.run),
            gevent.spawn(self.supervisor.run, Part.SCAN_WATCHER, self.wiring.scan_watcher.run),
            gevent.spawn(self.supervisor.run, Part.HEALTH, self._health_loop),
        ]
        self._greenlets += self._watchers

    def _restart(self, model: str) -> None:
        """The data store now holds another data model (`--data-model auto`): watch it from scratch."""
        log.warning("data_model_changed", previous=self._model, model=model, datastore=self.datastore)
        gevent.killall(self._watchers)
        self._greenlets = [g for g in self._greenlets if g not in self._watchers]
        for record in self.view.active_scans():  # they belonged to the other model's store
            self.wiring.emit(ScanLost(record, "data model changed"))
        self._restarting = False
        self._main()

    def _connect(self) -> SessionWatcher:
        """Every step from configuration to watchers ready: Beacon, URL, connections, self-test."""
        url = self._base_url = normalize_redis_url(self.config.redis_url or self._resolve_beacon())
        self.datastore = redact_url(url)
        model, url = choose_model(url, self.config.data_model, self.config.sessions)
        if model != self._model:
            log.info("data_model", model=model, datastore=redact_url(url), requested=self.config.data_model)
            self._model = model
        self.datastore = redact_url(url)
        open_source = DataStoreSource if model == "blissdata2" else _legacy(tuple(self.config.sessions))
        source = open_source(url)  # health checks
        source.check()
        self.store_clock.sync(source.server_time)  # once: the first connection
        # each watcher greenlet reads on a connection of its own (connected here, under supervision)
        _, session_watcher = self.wiring.watch(
            open_source(url, single_connection=True, on_stream_error=self.wiring.metrics.count_stream_error),
            open_source(url, single_connection=True), self.sessions, self.store_clock, poll_interval=self.config.poll_interval,
        )
        self.source = source
        self.health.up(self.datastore)
        return session_watcher

    def _resolve_beacon(self) -> str:
        url = data_store_url(self.config.beacon_host)
        if url != self._resolved_url:
            log.info("beacon_resolved", beacon_host=self.config.beacon_host, datastore=redact_url(url))
            self._resolved_url = url
        return url

    def _check(self) -> bool:
        """Self-test of the data store; any failure marks it down with its reason.

        With `--data-model auto`, a store that no longer reads as its model is detected again (at
        every reconnection, e.g. a data Redis restarted for the other BLISS generation).
        """
        try:
            self.source.check()
        except gevent.GreenletExit:
            raise
        except DataStoreError as exc:
            self.health.down(self.datastore, exc)
            self._detect_again()
            return False
        except Exception as exc:
            self.health.down(self.datastore, exc)
            return False
        self.health.up(self.datastore)
        return True

    def _detect_again(self) -> None:
        if self.config.data_model != "auto" or self._restarting:
            return
        try:
            model, _ = choose_model(self._base_url, "auto", self.config.sessions)
        except Exception:  # neither model yet: keep waiting
            return
        if model != self._model:
            self._restarting = True
            self._greenlets.append(gevent.spawn(self._restart, model))

    def _wait_until_usable(self) -> None:
        backoff = Backoff()
        while not self._check():
            gevent.sleep(backoff.next())

    def _health_loop(self) -> None:
        while True:
            gevent.sleep(self.config.health_interval)
            self._check()
