"""Fixtures: a real Redis Stack per test (or $BLISS_EXPORTER_TEST_REDIS_URL), blissdata publisher, exporters."""

from __future__ import annotations

import os
import socket

import pytest
import redis

from exporter.devtools.redis_stack import RedisStackServer

from .builders import make_pki
from .helpers import ExporterProcess
from .prometheus import Prometheus


@pytest.fixture
def refused_port():
    """A port bound but never listening: connecting is refused, and no other process can take it meanwhile."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture
def redis_server():
    """A fresh, blissdata-initialised Redis Stack on 127.0.0.1 (stopped after the test)."""
    external = os.environ.get("BLISS_EXPORTER_TEST_REDIS_URL")
    if external:
        client = redis.Redis.from_url(external)
        client.flushall()
        from blissdata.redis_engine.store import DataStore

        DataStore(external + "?protocol=2" if "?" not in external else external, init_db=True)

        class External:
            url = external

        yield External()
        return
    server = RedisStackServer().start()
    server.init_blissdata()
    yield server
    server.cleanup()


@pytest.fixture
def data_store(redis_server):
    """blissdata's DataStore on the test server: the publisher side."""
    from blissdata.redis_engine.store import DataStore

    return DataStore(redis_server.url + "?protocol=2")


@pytest.fixture
def raw_redis(redis_server):
    return redis.Redis.from_url(redis_server.url + "?protocol=2")


@pytest.fixture
def start_exporter(redis_server, tmp_path):
    """Factory: start_exporter(*extra_args) -> a ready ExporterProcess on the test data store."""
    procs = []

    def start(*args, url: str | None = None, ready: bool = True, env=None, port: int | None = None):
        base = ["--redis-url", url or redis_server.url] if url is not False else []
        proc = ExporterProcess([*base, "--poll-interval", "0.1", *args], tmp_path, env=env, port=port)
        procs.append(proc)
        if ready:
            proc.wait_ready()
        return proc

    start.processes = procs
    yield start
    for proc in procs:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait()


@pytest.fixture
def start_prometheus(tmp_path):
    started = []

    def start(*args, **kw) -> Prometheus:
        prom = Prometheus(tmp_path, *args, **kw)
        started.append(prom)
        return prom.wait_ready()

    yield start
    for prom in started:
        prom.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """make_pki()'s files (a CA, server and client certificates it signed, a rogue one), once per run."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def pytest_sessionfinish(session, exitstatus):
    session.config._bliss_exit_status = int(exitstatus)


def pytest_unconfigure(config):
    """Exit even if a test left a blissdata stream unsealed.

    blissdata's publisher runs each stream's sink in non-daemon threads that stop when the stream
    is sealed; a test that abandons a scan (killed Redis, deleted scan) would keep the interpreter
    waiting for them forever after the summary is printed.
    """
    import sys
    import threading

    if any(not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(getattr(config, "_bliss_exit_status", 0))
