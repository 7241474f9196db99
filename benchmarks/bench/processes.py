"""The benchmark's children: publishers, exporters and the baseline watcher, each run from the repository root."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from exporter.devtools.redis_stack import free_port
from tests.helpers import wait_until

from ..procfs import cpu_seconds
from .scrape import Scraper

ROOT = Path(__file__).resolve().parents[2]


class Child:
    """A child process; stdout either a pipe (line protocol) or a log file."""

    def __init__(self, name: str, cmd: list[str], workdir: Path, pipe: bool = False, env: dict | None = None):
        self.name = name
        self.log = workdir / f"{name}.out"
        self.err = workdir / f"{name}.err"
        env = dict(os.environ, **(env or {}))
        env.pop("BEACON_HOST", None)
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE if pipe else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe else open(self.log, "w"),
            stderr=open(self.err, "w"),
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def expect(self, word: str, timeout: float = 60.0) -> str:
        """Read lines from the pipe until one starts with word; return the rest of it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.name} exited ({self.proc.poll()}): {self.err.read_text()[-2000:]}")
            if line.startswith(word):
                return line[len(word):].strip()
        raise RuntimeError(f"{self.name}: no {word} within {timeout:.0f} s")

    def send(self, line: str = "go") -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None and self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def module(name: str) -> list[str]:
    """The command running a module of the repository with the benchmark's own interpreter (the venv)."""
    return [sys.executable, "-m", name]


def command(line: str) -> list[str]:
    """A command line given as a flag; a leading `python` is the benchmark's own interpreter (the venv)."""
    launcher = shlex.split(line)
    if launcher and launcher[0] in ("python", "python3"):
        launcher[0] = sys.executable
    return launcher


def exporter_launcher(args) -> list[str]:
    """What runs the measured exporter: `python -m exporter`, under cProfile (--profile), or --exporter-command."""
    if args.profile:  # the same exporter, under cProfile (CPU-time timer): profile written at stop
        return [*module("benchmarks.profile_exporter"), args.profile]
    if args.exporter_command:  # A/B experiments: another launcher taking the exporter's flags
        return command(args.exporter_command)
    return module("exporter")


def exporter_process(name: str, launcher: list[str], url: str, workdir: Path, args: list[str],
                     env: dict | None = None) -> tuple[Child, Scraper]:
    """An exporter process on a free port, JSON logs, watching the Redis at url; and a scraper of it."""
    port = free_port()
    cmd = [*launcher, "--redis-url", url, "--listen-address", f"127.0.0.1:{port}", "--log-format", "json", *args]
    return Child(name, cmd, workdir, env=env), Scraper(port)


def wait_ready(exporter: Child, scraper: Scraper) -> None:
    """Wait until the exporter answers /readyz with 200; raise if it exits meanwhile."""
    def ready():
        if exporter.proc.poll() is not None:
            raise RuntimeError(f"{exporter.name} exited: {exporter.err.read_text()[-2000:]}")
        try:
            return scraper.get("/readyz")[0] == 200
        except OSError:
            return False

    wait_until(ready, 30, 0.1, f"{exporter.name} /readyz")


def publisher(name: str, mode: str, url: str, workdir: Path, **opts) -> Child:
    """benchmarks/publisher.py in one of its modes, talking by lines on stdin/stdout; opts are its flags."""
    cmd = [*module("benchmarks.publisher"), mode, "--redis-url", url]
    for key, value in opts.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    return Child(name, cmd, workdir, pipe=True)


def baseline_watcher(name: str, url: str, workdir: Path, scans: int, read_timeout: float) -> Child:
    """The seed watcher port (benchmarks/seed_watcher.py) until `scans` scans ended; its counts go to `result_file`."""
    result_file = workdir / f"{name}.json"
    child = Child(name, [*module("benchmarks.seed_watcher"), "--redis-url", url, "--result", str(result_file),
                         "--scans", str(scans), "--read-timeout", str(read_timeout)], workdir)
    child.result_file = result_file
    return child


def baseline_result(baseline: Child | None, cpu0: float, t0: float, timeout: float) -> tuple[dict | None, float | None, float | None]:
    """Once the seed watcher wrote its result: its counts, its CPU since `cpu0` and wall time since `t0`
    (monotonic); then it is stopped. All None without a baseline."""
    if baseline is None:
        return None, None, None
    wait_until(baseline.result_file.exists, timeout, 0.1, "baseline result")
    cpu = baseline.cpu() - cpu0
    wall = time.monotonic() - t0
    counts = json.loads(baseline.result_file.read_text())
    baseline.stop()
    return counts, cpu, wall


def wait_baseline_ready(baseline: Child) -> None:
    """Wait until the seed watcher printed READY (it watches the session from then on)."""
    wait_until(lambda: baseline.log.exists() and "READY" in baseline.log.read_text(), 60, 0.1, f"{baseline.name} READY")
