"""Errors of the data store and how to tell them apart: unreachable, unavailable, not blissdata, bad scans.

A data store raises only its own exceptions (`raises_store_errors`): a Redis error of the whole store
comes out as DataStoreUnavailable or DataStoreReadError, described as the Redis error itself; an error
of one key is the store's to map (ScanInvalid, None, KeyReadError...).
"""

from __future__ import annotations

import functools
import re
from typing import Callable, ParamSpec, TypeVar

import redis

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")

#: Errors meaning "the data store is not reachable right now".
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)

#: Error replies meaning "the data store cannot serve us now" (busy, loading, replica without master,
#: missing permission or authentication): the store is down for us, with that reason, until it passes.
UNAVAILABLE_CODES = frozenset(
    {"BUSY", "MASTERDOWN", "LOADING", "NOPERM", "WRONGPASS", "NOAUTH", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS"}
)


class ReasonError(RuntimeError):
    """An error whose message is the whole reason, as logged and shown by /readyz."""


class BeaconError(ReasonError):
    """Beacon could not tell the data Redis URL."""


class DataStoreError(ReasonError):
    """The data store answered, but is not a usable blissdata data store."""


class KeyReadError(ReasonError):
    """A read of several keys at once failed because one of them is not what the data model expects
    (e.g. not a stream): a problem of that key, not of the store; described as the store's error reply."""

    def __init__(self, reply: BaseException):
        super().__init__(describe_error(reply))


class DataStoreUnavailable(ReasonError):
    """The data store cannot serve us now: unreachable, or an error reply that says so (see UNAVAILABLE_CODES)."""


class DataStoreReadError(ReasonError):
    """A read failed with an error of the whole data store that does not mean it is down (an error reply
    the exporter does not expect): the reader fails, the store stays up."""


#: redis-py's wrapping of an error reply inside a pipeline: "Command # 2 (EXISTS k) of pipeline caused error: BUSY ..."
_PIPELINE_ERROR = re.compile(r"^Command # \d+ \(.*\) of pipeline caused error: (?P<reply>.*)$", re.DOTALL)


def error_reply(exc: BaseException) -> str:
    """The error reply's own text (`BUSY Redis is busy...`), unwrapped from redis-py's pipeline message."""
    text = str(exc)
    found = _PIPELINE_ERROR.match(text)
    return found.group("reply") if found else text


def error_code(exc: BaseException) -> str | None:
    """The Redis error code of an error reply (`NOPERM`, `BUSY`...), None for other errors."""
    if not isinstance(exc, redis.RedisError):
        return None
    code = getattr(exc, "status_code", None)  # set by recent redis-py only
    if isinstance(code, str) and code:
        return code
    word = error_reply(exc).split(" ", 1)[0]
    return word if word.isupper() else None


def raise_store_error(reply: object) -> None:
    """Raise a reply that is an error of the whole data store (unavailable, denied, connection lost...);
    return if it is not an error, or an error reply about one key only (wrong type...), the caller's to
    report for that key."""
    if isinstance(reply, Exception) and (is_unavailable(reply) or not isinstance(reply, redis.ResponseError)):
        raise reply


def key_reply(reply: T) -> T | None:
    """The reply of a read of one key, or None if it is an error about that key only (a key of another
    type...): read as a key not there. An error of the whole store is raised (raise_store_error)."""
    raise_store_error(reply)
    return None if isinstance(reply, Exception) else reply


def describe_error(exc: BaseException) -> str:
    """One line naming an error: the Redis error code and message, else the exception type and message."""
    code = error_code(exc)
    text = error_reply(exc).strip()
    text = text.splitlines()[0] if text else ""
    if isinstance(exc, ReasonError):
        return text
    if code:
        return text if text.startswith(code) else f"{code} {text}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_unavailable(exc: BaseException) -> bool:
    """Whether an error means the data store cannot serve us now (down, with this error as the reason)."""
    if isinstance(exc, (DataStoreError, DataStoreUnavailable, *CONNECTION_ERRORS)):
        return True
    return error_code(exc) in UNAVAILABLE_CODES


def store_error(exc: BaseException) -> ReasonError:
    """The store's own exception for an error of the whole data store: DataStoreUnavailable if it means
    the store cannot serve us now, else DataStoreReadError; described (and classified) as `exc` is."""
    if is_unavailable(exc):
        return DataStoreUnavailable(describe_error(exc))
    return DataStoreReadError(describe_error(exc))


#: What redis-py raises: its own errors, and the socket's when a connection breaks.
REDIS_ERRORS = (redis.RedisError, OSError)


def raises_store_errors(read: Callable[P, R]) -> Callable[P, R]:
    """A data store read (a Source method) that raises the store's own exceptions, never redis-py's:
    a Redis error that reaches it is one of the whole store (store_error), with that error as its cause."""

    @functools.wraps(read)
    def store_read(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return read(*args, **kwargs)
        except REDIS_ERRORS as exc:
            raise store_error(exc) from exc

    return store_read


class ScanGone(Exception):
    """The scan was deleted (or is about to expire) and cannot be read."""


class ScanInvalid(Exception):
    """The scan exists but its JSON document does not validate."""
