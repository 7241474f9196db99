"""Every private API of a dependency the exporter uses (docs/dependencies.md lists them, with why) still
has the shape the exporter relies on: a release that changes one fails here, by name, rather than in
production. pyproject.toml bounds each such dependency below its next major version."""

from __future__ import annotations

import argparse
import inspect

import gevent.pywsgi
import pytest
import redis
from prometheus_client.utils import floatToGoString

from exporter.store.batch import run_batch
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


def test_gevent_still_answers_bad_requests_as_the_copied_constant_says():
    """web/http.py answers unparsable requests with a copy of gevent's 400 response."""
    assert http.BAD_REQUEST.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in http.BAD_REQUEST


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
