"""Many read commands in one round trip, their replies as Redis sent them: the watchers' hot path.

redis-py's Pipeline costs ~4-9 µs per command on top of the round trip (command stack, response
callbacks, per-reply bookkeeping); a short scan needs 6-8 commands. Here the commands are packed and
sent by redis-py's own connection, each reply read raw (hiredis, RESP2) and decoded by the caller,
which knows what it asked for. Connection errors are retried by the client's own Retry policy, as a
pipeline would; an error reply is returned in its command's place, as `raise_on_error=False` does.
"""

from __future__ import annotations

from typing import Sequence

import redis
from redis.exceptions import ResponseError


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
    connection.send_packed_command(connection.pack_commands(commands))
    replies = []
    read = connection.read_response
    for _ in commands:
        try:
            replies.append(read())
        except ResponseError as exc:
            replies.append(exc)
    return replies
