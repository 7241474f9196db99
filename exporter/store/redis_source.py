"""What every data model's Source does the same way on its Redis: the client, the store's clock, one
document out of several, state streams of the wrong type, and the store's own exceptions."""

from __future__ import annotations

from typing import Callable

import redis

from ..bounded import BoundedDict
from .documents import ScanDocument
from .errors import ScanGone, ScanInvalid, raises_store_errors
from .streams import StreamStatsReader, parse_xinfo_stream, unreadable_streams
from .urls import normalize_redis_url


class RedisSource(StreamStatsReader):
    """The part of a Source (store.base) every data model reading one Redis database shares.

    Every method of the protocol is a `raises_store_errors` read: a Redis error of the whole store
    comes out as DataStoreUnavailable or DataStoreReadError, never as redis-py's own.
    """

    def __init__(self, url: str, socket_timeout: float = 10.0, single_connection: bool = False,
                 on_stream_error: Callable[[str], None] | None = None, protocol: int | None = None):
        """`single_connection`: for one greenlet's sequential reads (saves the pool's checkout per call).

        `on_stream_error(reason)`: called once per data stream whose entries stop giving points
        (reasons in STREAM_ERROR_REASONS), when it is also logged (`stream_error`).
        `protocol`: the RESP version to speak (None: redis-py's default).
        """
        self.url = normalize_redis_url(url)
        self.on_stream_error = on_stream_error
        self._streams_in_error = BoundedDict(10000)  # reported once each
        options = {} if protocol is None else {"protocol": protocol}
        self.redis: redis.Redis[bytes] = redis.Redis.from_url(  # type: ignore[call-overload]  # types-redis 4.6: no `protocol`
            self.url, socket_timeout=socket_timeout, socket_connect_timeout=3.0, health_check_interval=0,
            single_connection_client=single_connection, **options,
        )
        self.redis.set_response_callback("XINFO STREAM", parse_xinfo_stream)

    def load_scans(self, keys: list[str], deleted_ok: bool = False) -> dict[str, ScanDocument | ScanGone | ScanInvalid]:
        raise NotImplementedError

    @raises_store_errors
    def load_scan(self, key: str, deleted_ok: bool = False) -> ScanDocument:
        """One scan's document (a sequence parent named by a child); raise ScanGone or ScanInvalid."""
        found = self.load_scans([key], deleted_ok)[key]
        if isinstance(found, Exception):
            raise found
        return found

    @raises_store_errors
    def server_time(self) -> float:
        """Redis TIME, in seconds."""
        seconds: int
        microseconds: int
        seconds, microseconds = self.redis.time()
        return seconds + microseconds / 1e6

    @raises_store_errors
    def unreadable_state_streams(self, keys: list[str]) -> list[str]:
        """The keys among these that exist but are not streams (a blocking XREAD on them fails)."""
        return unreadable_streams(self.redis, keys)
