"""Many read commands in one round trip, their replies as Redis sent them: the watchers' hot path.

redis-py's Pipeline costs ~4-9 µs per command on top of the round trip (command stack, response
callbacks, per-reply bookkeeping); a short scan needs 5-8 commands. Here the commands are packed by
hiredis and sent on redis-py's own connection; each reply is read raw by that connection's parser
(hiredis, RESP2), below the connection's per-reply wrapper, and decoded by the caller, which knows
what it asked for. Connection errors are retried by the client's own Retry policy, as a pipeline
would; an error reply is returned in its command's place, as `raise_on_error=False` does. A read cut
short (error, timeout, greenlet killed) disconnects, as redis-py does, so no reply is left unread.
"""

from __future__ import annotations

from typing import Any, Sequence

import hiredis
import redis
from redis.connection import Connection

#: One command's arguments, as sent: ("XRANGE", key, "-", "+", "COUNT", 16).
Command = tuple[str | bytes | int | float, ...]
#: One reply as Redis sent it (RESP2): bytes, an int, None, a list of replies, or the error reply's
#: ResponseError. Its shape depends on the command: the caller, which knows what it asked, decodes it.
Reply = Any

# The type: ignore below are gaps of the annotations, not of the APIs: types-redis (redis-py 4.6's stubs)
# lacks the client's `connection` and `single_connection_lock` (redis-py >= 5) and types a packed command
# as str; hiredis types a command as a 1-tuple.


def run_batch(client: redis.Redis[bytes], commands: Sequence[Command]) -> list[Reply]:
    """Replies of `commands` (argument tuples), in order; an error reply is its ResponseError."""
    if not commands:
        return []
    # single_connection_client: kept by the client, shared by greenlets
    connection: Connection | None = client.connection  # type: ignore[attr-defined]
    if connection is None:
        connection = client.connection_pool.get_connection()
        try:
            return _run(connection, commands)
        finally:
            client.connection_pool.release(connection)
    with client.single_connection_lock:  # type: ignore[attr-defined]  # as redis-py's own commands on it
        return _run(connection, commands)


def _run(connection: Connection, commands: Sequence[Command]) -> list[Reply]:
    return connection.retry.call_with_retry(
        lambda: _send_and_read(connection, commands), lambda _error: connection.disconnect()
    )


def _send_and_read(connection: Connection, commands: Sequence[Command]) -> list[Reply]:
    pack = hiredis.pack_command
    packed: bytes = b"".join([pack(command) for command in commands])  # type: ignore[arg-type]
    connection.send_packed_command([packed])  # type: ignore[list-item]
    # the parser gives an error reply as its exception, not raised; the connection's read_response
    # would raise it, and compute its error message's host name, per reply (private, stable since 3.x)
    read = connection._parser.read_response  # type: ignore[attr-defined]  # private: docs/dependencies.md
    try:
        return [read() for _ in commands]
    except BaseException:
        connection.disconnect()
        raise
