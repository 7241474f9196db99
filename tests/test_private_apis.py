"""Every private API of a dependency the exporter uses (docs/dependencies.md lists them, with why) still
has the shape the exporter relies on: a release that changes one fails here, by name, rather than in
production. pyproject.toml bounds each such dependency below its next major version."""

from __future__ import annotations

import argparse
import inspect
import pickle
import threading
from types import SimpleNamespace

import gevent
import gevent.pywsgi
import gevent.socket
import numpy
import pytest
import redis
from gevent.baseserver import BaseServer
from prometheus_client.utils import floatToGoString

from exporter.store.batch import run_batch
from exporter.store.legacy import unpickler
from exporter.web import http


def test_redis_connection_parser_reads_one_raw_reply_and_returns_error_replies(redis_server):
    """store/batch.py reads each reply with `connection._parser.read_response()`, below redis-py's
    per-reply wrapper: an error reply comes back as its exception object, not raised."""
    client = redis.Redis.from_url(redis_server.url, single_connection_client=True)
    try:
        parser = client.connection._parser
        assert callable(parser.read_response)
        assert type(parser).__name__ == "_HiredisParser"  # hiredis installed: redis-py picks it
        replies = run_batch(client, [("PING",), ("NOSUCHCOMMAND",), ("ECHO", "x")])
        assert replies[0] in (b"PONG", "PONG") and replies[2] == b"x"
        assert isinstance(replies[1], redis.ResponseError)
        assert client.ping()  # the connection is still in step with its replies
    finally:
        client.close()


def test_redis_client_connection_and_lock_are_those_redis_pys_own_commands_use(redis_server):
    """store/batch.py sends a batch on `Redis.connection` (a single_connection_client's one connection, None
    for a pooled client) holding `Redis.single_connection_lock`, the lock redis-py's own commands take on it:
    greenlets sharing the client never interleave their replies."""
    pooled = redis.Redis.from_url(redis_server.url)
    single = redis.Redis.from_url(redis_server.url, single_connection_client=True)
    try:
        assert pooled.connection is None
        assert isinstance(single.connection, redis.connection.AbstractConnection)
        replies: list = []
        with single.single_connection_lock:
            command = threading.Thread(target=lambda: replies.append(single.ping()))
            command.start()
            command.join(0.3)
            assert command.is_alive() and replies == []  # redis-py's own command waits for the lock
        command.join(5)
        assert replies == [True]
    finally:
        pooled.close()
        single.close()


def test_gevent_handler_and_server_hooks_exist_with_the_signatures_overridden():
    """web/http.py overrides WSGIHandler._handle_client_error(ex) (no traceback per bad request) and
    calls WSGIServer._spawn (to count connections); it clears the request body's Input
    content_length / chunked_input (bodies never read)."""
    assert list(inspect.signature(gevent.pywsgi.WSGIHandler._handle_client_error).parameters) == ["self", "ex"]
    assert http._Handler._handle_client_error is not gevent.pywsgi.WSGIHandler._handle_client_error
    server = gevent.pywsgi.WSGIServer(("127.0.0.1", 0), lambda env, start: [])
    assert callable(server._spawn)
    parameters = inspect.signature(gevent.pywsgi.Input.__init__).parameters
    assert "content_length" in parameters and "chunked_input" in parameters
    body = gevent.pywsgi.Input(None, 5, chunked_input=False)
    assert body.content_length == 5 and body.chunked_input is False


def test_the_quiet_bad_request_answer_is_gevents_own():
    """web/http.py's _handle_client_error answers an unparsable request as gevent's does, with a copy of its
    private pywsgi._BAD_REQUEST_RESPONSE, only without the log line."""
    handler = SimpleNamespace(client_address=("127.0.0.1", 1), log_error=lambda *args: None)
    gevents = gevent.pywsgi.WSGIHandler._handle_client_error(handler, ValueError("bad request line"))
    assert gevents == ("400", gevent.pywsgi._BAD_REQUEST_RESPONSE)
    assert http._Handler._handle_client_error(handler, ValueError("bad request line")) == gevents


def _ok(environ, start_response):
    start_response("200 OK", [("Content-Length", "3")])
    return [b"ok\n"]


def test_gevent_server_resumes_accepting_through_start_accepting_if_started():
    """web/http.py pauses accepting after accept() fails for lack of descriptors and resumes ACCEPT_BACKOFF later
    with BaseServer._start_accepting_if_started (as gevent's own backoff does): nothing once the server stopped."""
    assert list(inspect.signature(BaseServer._start_accepting_if_started).parameters) == ["self", "_event"]
    server = http.make_server("127.0.0.1", 0, _ok)
    server.start()
    try:
        server.stop_accepting()
        with gevent.socket.create_connection(("127.0.0.1", server.server_port)) as client:
            client.sendall(b"GET / HTTP/1.0\r\n\r\n")
            with pytest.raises(gevent.Timeout), gevent.Timeout(0.3):
                client.recv(1)  # queued by the kernel, never accepted
            server._start_accepting_if_started()
            with gevent.Timeout(5):
                assert b" 200 OK\r\n" in client.recv(4096)
    finally:
        server.stop()
    server._start_accepting_if_started()  # a backoff ending after the server stopped
    assert not server.started


def test_gevent_server_handle_wraps_tls_when_serving_tls():
    """web/http.py's do_handle runs BaseServer._handle in each tracked connection's greenlet: gevent sets it to
    `handle`, or to `wrap_socket_and_handle` (the TLS handshake, then `handle`) when serving TLS, so TLS is
    never served as plain text."""
    plain = http.make_server("127.0.0.1", 0, _ok)
    tls = http.make_server("127.0.0.1", 0, _ok, ssl_args={"keyfile": "server.key", "certfile": "server.crt"})
    try:
        for server in (plain, tls):
            server.init_socket()  # what start() does first
        assert plain._handle == plain.handle
        assert tls._handle == tls.wrap_socket_and_handle
        assert list(inspect.signature(tls.wrap_socket_and_handle).parameters) == ["client_socket", "address"]
    finally:
        plain.close()
        tls.close()


def test_numpy_rebuilds_arrays_and_scalars_through_the_private_functions_legacy_pickles_name():
    """store/legacy/unpickler.py lets a BLISS 1.x pickle call numpy's private multiarray._reconstruct and
    multiarray.scalar (numpy.core.multiarray in numpy 1, numpy._core.multiarray in numpy 2), arguments checked."""
    core = getattr(numpy, "_core", None)
    multiarray = core.multiarray if core is not None and hasattr(core, "multiarray") else numpy.core.multiarray
    empty = multiarray._reconstruct(numpy.ndarray, (0,), b"b")
    assert type(empty) is numpy.ndarray and empty.shape == (0,)
    assert multiarray.scalar(numpy.dtype("float64"), numpy.float64(1.5).tobytes()) == 1.5
    for value, name in ((numpy.arange(3.0), b"_reconstruct"), (numpy.float64(1.5), b"scalar")):
        pickled = pickle.dumps(value, protocol=2)
        assert b"c" + multiarray.__name__.encode() + b"\n" + name + b"\n" in pickled  # numpy pickles through it
        as_numpy_1 = pickled.replace(b"cnumpy._core.", b"cnumpy.core.")
        for data in (pickled, as_numpy_1):
            assert numpy.array_equal(unpickler.loads(data), value)


@pytest.mark.parametrize("value, text", [(0.5, "0.5"), (1, "1.0"), (1.05, "1.05"), (86400, "86400.0"),
                                         (float("inf"), "+Inf")])
def test_prometheus_client_float_to_go_string_formats_bucket_bounds(value, text):
    """sinks/histograms.py writes `le` with prometheus_client.utils.floatToGoString, as its Histogram does."""
    assert floatToGoString(value) == text


def test_argparse_actions_list_the_flags_with_their_defaults_and_types():
    """config.py walks ArgumentParser._actions to check defaults taken from the environment."""
    p = argparse.ArgumentParser()
    p.add_argument("--x", default="1", type=int)
    (action,) = [a for a in p._actions if a.dest == "x"]
    assert action.default == "1" and action.type is int
