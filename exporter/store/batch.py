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

from typing import Sequence

import hiredis
import redis


def run_batch(client: redis.Redis, commands: Sequence[tuple]) -> list:
    """Replies of `commands` (argument tuples), in order; an error reply is its ResponseError."""
    if not commands:
        return []
    connection = client.connection  # single_connection_client: kept by the client, shared by greenlets
    if connection is None:
        connection = client.connection_pool.get_connection()
        try:
            return _run(connection, commands)
        finally:
            client.connection_pool.release(connection)
    with client.single_connection_lock:  # as redis-py's own commands on that connection
        return _run(connection, commands)


def _run(connection, commands: Sequence[tuple]) -> list:
    return connection.retry.call_with_retry(
        lambda: _send_and_read(connection, commands), lambda _error: connection.disconnect()
    )


def _send_and_read(connection, commands: Sequence[tuple]) -> list:
    pack = hiredis.pack_command
    connection.send_packed_command([b"".join([pack(command) for command in commands])])
    # the parser gives an error reply as its exception, not raised; the connection's read_response
    # would raise it, and compute its error message's host name, per reply (private, stable since 3.x)
    read = connection._parser.read_response
    try:
        return [read() for _ in commands]
    except BaseException:
        connection.disconnect()
        raise
