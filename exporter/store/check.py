"""The self-test every data model runs before reading: one harmless probe per read command, in one round
trip, and what a failed probe means, in one line (a denied command names itself)."""

from __future__ import annotations

from typing import Collection, Iterable, Mapping

import redis

from .batch import Command, Reply, run_batch
from .errors import CONNECTION_ERRORS, DataStoreError, DataStoreUnavailable, describe_error, error_code

#: Probes of a key that may not exist yet (XINFO STREAM of a missing key is an error reply).
MAY_BE_MISSING = frozenset({"xinfo|stream"})


def acl_rules(commands: Iterable[str]) -> tuple[str, ...]:
    """The Redis ACL rules that allow exactly these commands (as ACL names them: `xinfo|stream`), on every key."""
    return ("resetkeys", "~*", "resetchannels", "-@all", *(f"+{command}" for command in commands))


def probe_commands(client: redis.Redis[bytes], probes: Mapping[str, Command], *, wrong_type: str,
                   unknown_means: str | None = None, unavailable: Collection[str] = ("NOPERM",),
                   signs: Mapping[str, tuple[Command, str]] | None = None) -> dict[str, Reply]:
    """Run every probe ({command as ACL names it: its probe}) in one round trip; their replies, or the
    first failure raised as one line.

    `signs` ({command: (probe, why the server is not one we can read if it does not know the command)})
    are run first; only their being unknown counts. A probe fails with DataStoreError when the server
    does not know its command (`{COMMAND} is an unknown command: <unknown_means, else the reply>`) or
    when a probed key has the wrong type (`{wrong_type} has the wrong type: <reply>`); with
    DataStoreUnavailable (`{COMMAND} failed: <reply>`) when its error code is one of `unavailable`
    (the store cannot serve that command to us now: denied, busy...). A connection error, or any
    other error reply, is raised as it is.
    """
    signs = signs or {}
    commands = [*signs, *probes]
    replies = run_batch(client, [*(probe for probe, _ in signs.values()), *probes.values()])
    for command, reply in zip(commands, replies):
        if not isinstance(reply, Exception):
            continue
        if isinstance(reply, CONNECTION_ERRORS):
            raise reply
        unknown = "unknown command" in str(reply).lower()
        if command in signs:
            if unknown:
                raise DataStoreError(signs[command][1])
            continue
        code = error_code(reply)
        if unknown:
            raise DataStoreError(f"{command.upper()} is an unknown command: {unknown_means or describe_error(reply)}")
        if code == "WRONGTYPE":
            raise DataStoreError(f"{wrong_type} has the wrong type: {describe_error(reply)}")
        if code == "ERR" and command in MAY_BE_MISSING and "no such key" in str(reply).lower():
            continue
        if code in unavailable:
            raise DataStoreUnavailable(f"{command.upper()} failed: {describe_error(reply)}")
        raise reply
    return dict(zip(commands[len(signs):], replies[len(signs):]))
