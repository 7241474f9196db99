"""One benchmark run: its Redis, the measured exporter and the other children, and the results its phases add."""

from __future__ import annotations

import tempfile
from pathlib import Path

from exporter.devtools.redis_stack import RedisStackServer
from tests.helpers import wait_until

from .counts import session_counts
from .processes import Child, baseline_watcher, exporter_launcher, exporter_process, publisher, wait_baseline_ready, wait_ready
from .profiling import Profiler
from .resources import resources
from .scrape import Scraper


class Bench:
    """A run: start() its Redis and exporter, the phases on it, stop() every process; `results` for the report."""

    def __init__(self, args):
        self.a = args
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bliss-exporter-bench-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.children: list[Child] = []
        self.redis: RedisStackServer | None = None
        self.exporter: Child | None = None
        self.profiler = Profiler(args, self.workdir, self.log)
        self.results: dict = {"config": vars(args).copy()}

    def log(self, *words) -> None:
        print("#", *words, flush=True)

    def child(self, c: Child) -> Child:
        """Keep a child to stop at the end of the run."""
        self.children.append(c)
        return c

    # -- set-up ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.redis = RedisStackServer().start()
        self.redis.init_blissdata()
        self.url = self.redis.url
        self.redis_pid = self.redis._proc.pid
        self.exporter, self.scraper = self.start_exporter("exporter")
        self.log(f"redis {self.url} (pid {self.redis_pid}), exporter pid {self.exporter.pid} on :{self.scraper.port}, "
                 f"logs in {self.workdir}")

    def start_exporter(self, name: str, launcher: list[str] | None = None, extra: list[str] = (),
                       env: dict | None = None) -> tuple[Child, Scraper]:
        """Start an exporter process (the measured one unless `launcher` is given); wait until ready."""
        launcher = exporter_launcher(self.a) if launcher is None else launcher
        exporter, scraper = exporter_process(name, launcher, self.url, self.workdir, [*self.a.exporter_arg, *extra], env)
        self.child(exporter)
        wait_ready(exporter, scraper)
        return exporter, scraper

    def start_baseline(self, name: str, scans: int) -> Child:
        """Start the seed watcher port for `scans` scans; wait until it watches."""
        baseline = self.child(baseline_watcher(name, self.url, self.workdir, scans, self.a.baseline_read_timeout))
        wait_baseline_ready(baseline)
        return baseline

    def start_publisher(self, name: str, mode: str, **opts) -> Child:
        """Start a publisher in one of its modes (benchmarks/publisher.py), writing to the run's Redis."""
        return self.child(publisher(name, mode, self.url, self.workdir, **opts))

    def stop(self) -> None:
        for c in reversed(self.children):
            try:
                c.stop()
            except Exception:  # noqa: BLE001 - best effort
                pass
        if self.redis is not None:
            self.redis.cleanup()

    # -- what the measured exporter shows ---------------------------------------------------------
    def counts(self, session: str) -> dict:
        return session_counts(self.scraper.samples(), session)

    def wait_ended(self, session: str, n: int, timeout: float) -> dict:
        wait_until(lambda: (c := self.counts(session))["ended"] >= n and c["active"] == 0 and c,
                   timeout, 0.2, f"exporter: {n} scans of {session} ended")
        # a series new since the previous scrape showed 0 in that one, its first counts from the next
        # (exporter/sinks/first_scrape.py): the counts of the scrape after
        return self.counts(session)

    def resources(self, session: str) -> dict:
        """One sample of the measured exporter's bounded resources, and its counts of the session."""
        return resources(self.exporter, self.scraper, self.redis.port, session)

    def exporter_health(self) -> None:
        s = self.scraper.samples()
        self.results["exporter_errors"] = {
            "watcher_errors": sum(v for (n, _), v in s.items() if n == "bliss_exporter_watcher_errors_total"),
            "scans_lost": sum(v for (n, _), v in s.items() if n == "bliss_exporter_scans_lost_total"),
            "scans_skipped": sum(v for (n, _), v in s.items() if n == "bliss_exporter_scans_skipped_total"),
        }

    # -- profiles of the measured exporter (--profile, --py-spy) ----------------------------------
    def profile_start(self, phase: str) -> None:
        self.profiler.start(phase, self.exporter)

    def profile_stop(self, phase: str) -> None:
        self.profiler.stop(phase, self.exporter)
