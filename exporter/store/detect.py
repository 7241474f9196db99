"""Which data model a data store holds (`--data-model auto`): blissdata 2.x or BLISS 1.x ("legacy")."""

from __future__ import annotations

from typing import Iterable, Literal

import redis

from .legacy import PROTOCOL_KEY, is_legacy


def detect_model(redis_client: redis.Redis, sessions: Iterable[str] = ()) -> Literal["blissdata2", "legacy"] | None:
    """"blissdata2" if `_PROTOCOL_VERSION_` exists, "legacy" if a BLISS 1.x session node does (named
    ones first, else found by SCAN: O(keys), run it once, not per scan), None if neither (an empty
    store, or the wrong database: BLISS 1.x writes in database 1 of the data Redis)."""
    if redis_client.exists(PROTOCOL_KEY):
        return "blissdata2"
    if is_legacy(redis_client, sessions):
        return "legacy"
    return None
