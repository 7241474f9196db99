"""Legacy (BLISS 1.x, blissdata 0.3.1) data stores for tests: Debian's plain redis-server and the
genuine-layout publisher tests/legacy/publish.py run in .venv-legacy.

Use from a test module:

    from . import legacy_fixtures

    legacy_redis = legacy_fixtures.legacy_redis  # pytest fixtures, found as module attributes
    legacy_publish = legacy_fixtures.legacy_publish

    def test_x(legacy_redis, legacy_publish):
        run = legacy_publish({"scans": [{"npoints": 10}]})      # waits for the publisher to finish
        assert run.truths[0]["new_data"] == 40
        client = legacy_redis.client()                           # redis-py on database 1

`legacy_publish(spec, wait=False)` returns a running LegacyPublisher: `wait_for("waiting", scan=…)`,
`release()` (one line on its stdin: a scan with "wait" goes on), `finish()`.
Everything is polled with deadlines, never timed.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

from exporter.devtools.redis_stack import free_port

ROOT = Path(__file__).resolve().parent.parent
REDIS_SERVER = shutil.which("redis-server", path="/usr/bin:/usr/local/bin") or "/usr/bin/redis-server"
LEGACY_PYTHON = ROOT / ".venv-legacy" / "bin" / "python"
PUBLISHER = ROOT / "tests" / "legacy" / "publish.py"


def _require() -> None:
    missing = [str(p) for p in (Path(REDIS_SERVER), LEGACY_PYTHON) if not p.exists()]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/bootstrap.sh --test", pytrace=False)


class LegacyRedis:
    """A plain Redis 7.0 (Debian's redis-server, no modules) on a free 127.0.0.1 port, no persistence."""

    def __init__(self, *extra_args: str, workdir: Path | None = None):
        self.extra_args = list(extra_args)
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The data Redis as BLISS 1.x uses it: logical database 1."""
        return f"redis://127.0.0.1:{self.port}/1"

    def client(self, db: int = 1) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, protocol=2)

    def start(self, deadline_s: float = 20.0) -> "LegacyRedis":
        last_error = "not started"
        for _ in range(5):  # another suite may take the port between probe and bind: retry
            self.port = free_port()
            cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes", *self.extra_args]
            if self.workdir is not None:
                cmd += ["--dir", str(self.workdir)]
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            end = time.monotonic() + deadline_s
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    last_error = (self.proc.stdout.read() or "")[-500:]
                    break
                try:
                    if self.client(0).ping():
                        return self
                except redis.RedisError as exc:
                    last_error = str(exc)
                time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"redis-server did not start: {last_error}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None


class LegacyPublisher:
    """tests/legacy/publish.py running in .venv-legacy; its JSON lines collected by a reader thread."""

    def __init__(self, spec: dict, workdir: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        self.spec_path = workdir / f"legacy-spec-{os.getpid()}-{id(self)}.json"
        self.spec_path.write_text(json.dumps(spec))
        self.proc = subprocess.Popen([str(LEGACY_PYTHON), str(PUBLISHER), str(self.spec_path)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=str(ROOT))
        self.lines: list[dict] = []
        self._queue: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                self._queue.put(json.loads(line))
        self._queue.put(None)

    def _drain(self, timeout: float) -> bool:
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return True
        if item is None:
            self._ended = True
            return False
        self.lines.append(item)
        return True

    def wait_for(self, event: str, deadline_s: float = 60.0, **match) -> dict:
        """The first line (already seen or to come) with this event and fields."""
        end = time.monotonic() + deadline_s
        seen = 0
        while True:
            for item in self.lines[seen:]:
                if item.get("event") == event and all(item.get(k) == v for k, v in match.items()):
                    return item
            seen = len(self.lines)
            if time.monotonic() > end or getattr(self, "_ended", False):
                err = self.proc.stderr.read() if self.proc.poll() is not None else ""
                raise AssertionError(f"publisher: no {event} {match} (lines: {self.lines[-3:]}) {err[-2000:]}")
            self._drain(min(0.5, max(0.01, end - time.monotonic())))

    def release(self) -> None:
        """Let a scan waiting before its end (spec "wait") go on."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def finish(self, deadline_s: float = 120.0) -> "LegacyPublisher":
        done = self.wait_for("done", deadline_s=deadline_s)
        self.proc.wait(deadline_s)
        assert self.proc.returncode == 0, self.proc.stderr.read()
        self.done = done
        return self

    @property
    def truths(self) -> list[dict]:
        return [item for item in self.lines if item.get("event") == "truth"]

    def truth(self, scan: str) -> dict:
        return next(t for t in self.truths if t["scan"] == scan)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass


@pytest.fixture
def legacy_redis(tmp_path):
    """A fresh plain Redis for a legacy data store (stopped after the test)."""
    _require()
    server = LegacyRedis(workdir=tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def legacy_publish(legacy_redis, tmp_path):
    """Factory: legacy_publish(spec, wait=True) -> LegacyPublisher (finished unless wait=False).

    spec gets redis_url (the fixture's server) and session ("demo_session") unless given.
    """
    pubs: list[LegacyPublisher] = []

    def publish(spec: dict, wait: bool = True, deadline_s: float = 120.0) -> LegacyPublisher:
        spec = {"redis_url": legacy_redis.url, "session": "demo_session", **spec}
        pub = LegacyPublisher(spec, tmp_path)
        pubs.append(pub)
        return pub.finish(deadline_s) if wait else pub

    yield publish
    for pub in pubs:
        pub.kill()
