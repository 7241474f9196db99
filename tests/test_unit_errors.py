"""Error classification in-process, on real redis-py exception objects: describe_error (one line for logs
and /readyz) and is_unavailable (the data store is down for us, with this reason, until it passes).

Error replies are turned into exceptions by redis-py's own reply parser, as a server's reply would be;
connection errors come from real connections to a closed port and to a server that never answers.
"""

from __future__ import annotations

import socket

import pytest
import redis
from redis._parsers.base import BaseParser
from redis.backoff import NoBackoff
from redis.retry import Retry

from exporter.store.errors import (
    BeaconError,
    DataStoreError,
    DataStoreReadError,
    DataStoreUnavailable,
    KeyReadError,
    ScanInvalid,
    describe_error,
    error_code,
    is_unavailable,
    key_reply,
    raises_store_errors,
    store_error,
)

NO_RETRY = Retry(NoBackoff(), 0)  # one attempt: the error itself, not redis-py's retries with backoff


def reply_error(text: str) -> redis.RedisError:
    """The exception redis-py raises for the error reply `-<text>`."""
    return BaseParser().parse_error(text)


ERROR_REPLIES = [
    # (reply, redis-py class, unavailable): unavailable ones make the data store down until they pass
    ("NOPERM User reader has no permissions to run the 'set' command", redis.exceptions.NoPermissionError, True),
    ("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.",
     redis.exceptions.ResponseError, True),
    ("LOADING Redis is loading the dataset in memory", redis.exceptions.BusyLoadingError, True),
    ("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
     redis.exceptions.MasterDownError, True),
    ("WRONGPASS invalid username-password pair or user is disabled.", redis.exceptions.AuthenticationError, True),
    ("NOAUTH Authentication required.", redis.exceptions.AuthenticationError, True),
    ("TRYAGAIN Multiple keys request during rehashing of slot", redis.exceptions.TryAgainError, True),
    ("CLUSTERDOWN The cluster is down", redis.exceptions.ClusterDownError, True),
    ("NOREPLICAS Not enough good replicas to write.", redis.exceptions.ResponseError, True),
    # errors of one command or one key: the data store itself is fine
    ("WRONGTYPE Operation against a key holding the wrong kind of value", redis.exceptions.ResponseError, False),
    ("ERR unknown command 'FT._LIST', with args beginning with: '-'", redis.exceptions.ResponseError, False),
    ("READONLY You can't write against a read only replica.", redis.exceptions.ReadOnlyError, False),
    ("NOSCRIPT No matching script. Please use EVAL.", redis.exceptions.NoScriptError, False),
    ("OOM command not allowed when used memory > 'maxmemory'.", redis.exceptions.OutOfMemoryError, False),
    ("EXECABORT Transaction discarded because of previous errors.", redis.exceptions.ExecAbortError, False),
]


@pytest.mark.parametrize("reply, cls, unavailable", ERROR_REPLIES, ids=[r.split()[0] for r, _, _ in ERROR_REPLIES])
def test_error_reply_is_described_by_its_code_and_classified(reply, cls, unavailable):
    exc = reply_error(reply)
    assert type(exc) is cls  # what redis-py really raises for that reply
    code = reply.split()[0]
    assert error_code(exc) == code
    assert describe_error(exc) == reply  # the code and message, as Redis said it
    assert is_unavailable(exc) is unavailable


@pytest.mark.parametrize("reply, cls, unavailable", ERROR_REPLIES, ids=[r.split()[0] for r, _, _ in ERROR_REPLIES])
def test_error_reply_inside_a_pipeline_is_classified_by_its_own_code(reply, cls, unavailable):
    """redis-py's pipeline wraps a reply: "Command # 2 (EXISTS k) of pipeline caused error: BUSY ..."."""
    exc = reply_error(reply)
    redis.client.Pipeline.annotate_exception(None, exc, 2, ("EXISTS", "esrf:scan:x"))
    assert str(exc).startswith("Command # 2 (EXISTS esrf:scan:x) of pipeline caused error: ")
    assert error_code(exc) == reply.split()[0]
    assert describe_error(exc) == reply
    assert is_unavailable(exc) is unavailable


def test_error_reply_without_a_code():
    exc = reply_error("something went wrong")
    assert type(exc) is redis.exceptions.ResponseError and error_code(exc) is None
    assert describe_error(exc) == "ResponseError: something went wrong"
    assert is_unavailable(exc) is False


def test_connection_refused_is_unavailable(refused_port):
    client = redis.Redis(host="127.0.0.1", port=refused_port, socket_connect_timeout=2, retry=NO_RETRY)
    with pytest.raises(redis.ConnectionError) as raised:
        client.ping()
    exc = raised.value
    assert error_code(exc) is None and is_unavailable(exc)
    text = describe_error(exc)
    assert text.startswith("ConnectionError: Error 111 connecting to 127.0.0.1:") and "\n" not in text, text


def test_server_that_never_answers_is_a_timeout_and_unavailable():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections (the kernel does), never answers
        client = redis.Redis(host="127.0.0.1", port=silent.getsockname()[1], socket_timeout=0.2,
                             socket_connect_timeout=2, retry=NO_RETRY)
        with pytest.raises(redis.TimeoutError) as raised:
            client.ping()
    exc = raised.value
    assert is_unavailable(exc)
    assert describe_error(exc).startswith("TimeoutError: Timeout reading from ")


def test_os_errors_are_unavailable():
    for exc, text in ((ConnectionRefusedError(111, "Connection refused"), "ConnectionRefusedError: [Errno 111] Connection refused"),
                      (socket.timeout("timed out"), "TimeoutError: timed out"),
                      (OSError(24, "Too many open files"), "OSError: [Errno 24] Too many open files")):
        assert is_unavailable(exc) and describe_error(exc) == text


def test_reason_errors_are_their_own_message():
    cases = [(DataStoreError("no blissdata protocol key"), True),
             (DataStoreUnavailable("NOPERM User reader has no permissions to run the 'ft._list' command"), True),
             (BeaconError("Beacon id00:10001 did not answer"), False)]
    for exc, unavailable in cases:
        assert describe_error(exc) == str(exc)
        assert is_unavailable(exc) is unavailable, exc


def test_descriptions_are_one_line():
    assert describe_error(reply_error("ERR first line\nsecond line")) == "ERR first line"
    assert describe_error(DataStoreError("why\nand more")) == "why"
    assert describe_error(ValueError("bad\nvalue")) == "ValueError: bad"
    assert describe_error(redis.exceptions.ResponseError("")) == "ResponseError"
    assert describe_error(RuntimeError()) == "RuntimeError"


def test_other_errors_are_not_unavailable():
    for exc in (ValueError("x"), KeyError("k"), ScanInvalid("esrf:scan:K: KeyError: 'id'"), RuntimeError("boom")):
        assert is_unavailable(exc) is False and error_code(exc) is None
    assert describe_error(KeyError("k")) == "KeyError: 'k'"
    assert describe_error(ScanInvalid("esrf:scan:K: KeyError: 'id'")) == "ScanInvalid: esrf:scan:K: KeyError: 'id'"


def test_a_key_read_error_is_described_by_its_reply_and_is_not_the_store_down():
    """A store's KeyReadError (one key is not a stream) logs as the error reply it wraps, the store up."""
    wrongtype = reply_error("WRONGTYPE Operation against a key holding the wrong kind of value")
    wrapped = KeyReadError(wrongtype)
    assert describe_error(wrapped) == describe_error(wrongtype) == "WRONGTYPE Operation against a key holding the wrong kind of value"
    assert is_unavailable(wrapped) is False and not isinstance(wrapped, redis.RedisError)


STORE_WIDE = [reply_error(reply) for reply, _, _ in ERROR_REPLIES] + [
    ConnectionRefusedError(111, "Connection refused"), socket.timeout("timed out"), OSError(24, "Too many open files"),
    redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
    redis.TimeoutError("Timeout reading from 127.0.0.1:6379"), redis.exceptions.ResponseError(""),
    reply_error("something went wrong"), redis.exceptions.DataError("Invalid input of type: 'dict'"),
]


@pytest.mark.parametrize("exc", STORE_WIDE, ids=describe_error)
def test_a_stores_own_exception_is_described_and_classified_as_the_redis_error_it_stands_for(exc):
    """What crosses the Source seam is the store's own exception, logged, counted and shown as before."""
    own = store_error(exc)
    assert not isinstance(own, (redis.RedisError, OSError))
    assert describe_error(own) == describe_error(exc)
    assert is_unavailable(own) is is_unavailable(exc)
    assert isinstance(own, DataStoreUnavailable if is_unavailable(exc) else DataStoreReadError)
    assert not isinstance(own, DataStoreError)  # the store answered as blissdata: no new detection of its model


def test_a_stores_read_raises_its_own_exception_with_the_redis_error_as_its_cause():
    busy = reply_error("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSCRIPT.")
    redis.client.Pipeline.annotate_exception(None, busy, 2, ("EXISTS", "esrf:scan:x"))

    @raises_store_errors
    def read(error: Exception) -> None:
        raise error

    with pytest.raises(DataStoreUnavailable) as raised:
        read(busy)
    assert raised.value.__cause__ is busy and describe_error(raised.value) == describe_error(busy)
    with pytest.raises(ScanInvalid):  # the store's own exceptions pass as they are
        read(ScanInvalid("esrf:scan:x: not JSON"))


def test_a_reply_about_one_key_is_read_as_no_key_one_about_the_store_is_raised():
    assert key_reply([b"1-0"]) == [b"1-0"] and key_reply(None) is None
    assert key_reply(reply_error("WRONGTYPE Operation against a key holding the wrong kind of value")) is None
    for exc in (reply_error("NOPERM User reader has no permissions to run the 'xrange' command"),
                redis.ConnectionError("Connection closed by server.")):
        with pytest.raises(type(exc)):
            key_reply(exc)
