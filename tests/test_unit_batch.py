"""store.batch.run_batch: the watchers' raw read batches, against a real Redis Stack."""

from __future__ import annotations

import signal
import threading

import pytest
import redis

from exporter.store.batch import run_batch


@pytest.fixture(params=[False, True], ids=["pooled", "single_connection"])
def client(redis_server, request):
    c = redis.Redis.from_url(redis_server.url, single_connection_client=request.param)
    yield c
    c.close()


def test_replies_in_order_raw_and_error_replies_in_their_place(client, raw_redis):
    raw_redis.xadd("s", {"state": 1}, id="5-1")
    raw_redis.set("k", "v")
    replies = run_batch(client, [("TTL", "k"), ("XRANGE", "s", "-", "+"), ("XINFO", "STREAM", "k"), ("GET", "k"),
                                 ("JSON.GET", "nokey")])
    assert replies[0] == -1
    assert replies[1] == [[b"5-1", [b"state", b"1"]]]
    assert isinstance(replies[2], redis.ResponseError) and "WRONGTYPE" in str(replies[2])
    assert replies[3:] == [b"v", None]
    assert run_batch(client, []) == []
    assert client.get("k") == b"v"  # the connection is still in step with its replies


def test_a_single_connection_shared_by_two_threads_keeps_each_reply_with_its_command(redis_server, raw_redis):
    """The scan watcher's connection is also used by the session watcher (a new scan's parent sequence)."""
    client = redis.Redis.from_url(redis_server.url, single_connection_client=True, socket_timeout=3)
    raw_redis.set("k", "v")
    blocked = threading.Thread(target=lambda: results.append(run_batch(client, [("XREAD", "BLOCK", 300, "STREAMS", "s", "$")])))
    results: list = []
    blocked.start()
    for _ in range(20):
        assert run_batch(client, [("GET", "k"), ("TTL", "k")]) == [b"v", -1]
    blocked.join(5)
    assert results == [[None]]
    client.close()


def test_a_dropped_connection_fails_one_batch_as_a_connection_error_then_reconnects(client, raw_redis):
    """As redis-py's own commands: the pool replaces a dead connection; a single connection fails once."""
    raw_redis.set("k", "v")
    assert run_batch(client, [("GET", "k")]) == [b"v"]
    raw_redis.client_kill_filter(_type="normal", skipme=True)
    if client.connection is not None:
        with pytest.raises(redis.ConnectionError):
            run_batch(client, [("GET", "k")])
    assert run_batch(client, [("GET", "k"), ("TTL", "k")]) == [b"v", -1]


def test_a_read_cut_short_leaves_no_reply_unread(client, raw_redis):
    """A watcher killed mid-read (gevent.Timeout, GreenletExit): the next batch must not get the old batch's replies."""

    class Killed(BaseException):
        pass

    def kill(*_):
        raise Killed

    raw_redis.set("k", "v")
    previous = signal.signal(signal.SIGALRM, kill)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Killed):
            run_batch(client, [("XREAD", "BLOCK", 1000, "STREAMS", "s", "$"), ("GET", "k")])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    raw_redis.xadd("s", {"a": 1})  # the cut XREAD's reply, if its connection were still in use
    assert run_batch(client, [("GET", "k"), ("TTL", "k")]) == [b"v", -1]
    assert run_batch(client, [("TTL", "k")]) == [-1]
