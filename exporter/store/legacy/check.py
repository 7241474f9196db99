"""The self-test of a BLISS 1.x store: every read command allowed and known, and a legacy layout to read."""

from __future__ import annotations

import redis

from ..check import acl_rules, probe_commands
from ..documents import PROTOCOL_KEY
from ..errors import UNAVAILABLE_CODES, DataStoreError, DataStoreUnavailable, describe_error, error_code
from .detect import is_legacy
from .layout import CHILDREN

SELF_TEST_KEY = "bliss-exporter-self-test"

#: Read-only commands LegacySource uses, each with a harmless probe run by `check()`.
READ_COMMANDS = {
    "exists": ("EXISTS", PROTOCOL_KEY),
    "type": ("TYPE", SELF_TEST_KEY),
    "hget": ("HGET", SELF_TEST_KEY, "node_type"),
    "hmget": ("HMGET", SELF_TEST_KEY, "node_type", "version"),
    "hgetall": ("HGETALL", SELF_TEST_KEY),
    "xrange": ("XRANGE", SELF_TEST_KEY + CHILDREN, "+", "+"),
    "xread": ("XREAD", "COUNT", "1", "STREAMS", SELF_TEST_KEY + CHILDREN, "0-0"),
    "xinfo|stream": ("XINFO", "STREAM", SELF_TEST_KEY + CHILDREN),
    "scan": ("SCAN", "0", "MATCH", SELF_TEST_KEY + CHILDREN, "COUNT", "1", "TYPE", "stream"),
    "time": ("TIME",),
}

#: The Redis ACL rules LegacySource needs, exactly: READ_COMMANDS and SELECT (BLISS 1.x writes in
#: database 1: redis-py selects it on connecting). Not CLIENT SETINFO: Redis 7.0 (BLISS 1.x's data
#: Redis) does not know it, and ACL SETUSER would refuse the rule; redis-py ignores its refusal.
ACL_RULES = acl_rules((*READ_COMMANDS, "select"))


def check_store(client: redis.Redis[bytes], sessions: tuple[str, ...]) -> None:
    """Raise unless this is a legacy store we can read with every command we use (one round trip
    for the probes; a denied command names itself, so does one the store cannot serve now:
    DataStoreUnavailable), then unless it holds a session node to read."""
    replies = probe_commands(client, READ_COMMANDS, wrong_type=SELF_TEST_KEY, unavailable=UNAVAILABLE_CODES)
    if replies["exists"]:
        raise DataStoreError(f"{PROTOCOL_KEY} exists: a blissdata 2.x data store, not a BLISS 1.x one")
    try:
        legacy = is_legacy(client, sessions)
    except redis.ResponseError as exc:
        if error_code(exc) == "NOPERM":
            raise DataStoreUnavailable(describe_error(exc)) from None
        raise
    if not legacy:
        db = int(client.connection_pool.connection_kwargs.get("db") or 0)
        hint = " (BLISS 1.x writes in database 1 of the data Redis: the URL must end with /1)" if db != 1 else ""
        raise DataStoreError(f"no BLISS 1.x session node (node_type container, version v1.x) in database {db}{hint}")
