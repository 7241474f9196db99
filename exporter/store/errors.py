"""Errors of the data store and how to tell them apart: unreachable, unavailable, not blissdata, bad scans."""

from __future__ import annotations

import re

import redis

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


class KeyReadError(Exception):
    """A read of several keys at once failed because one of them is not what the data model expects
    (e.g. not a stream): a problem of that key, not of the store; `reply` is the store's error reply."""

    def __init__(self, reply: BaseException):
        super().__init__(str(reply))
        self.reply = reply


class DataStoreUnavailable(ReasonError):
    """The data store answered with an error reply that means it cannot serve us now (see UNAVAILABLE_CODES)."""


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


def describe_error(exc: BaseException) -> str:
    """One line naming an error: the Redis error code and message, else the exception type and message."""
    if isinstance(exc, KeyReadError):
        exc = exc.reply
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


class ScanGone(Exception):
    """The scan was deleted (or is about to expire) and cannot be read."""


class ScanInvalid(Exception):
    """The scan exists but its JSON document does not validate."""
