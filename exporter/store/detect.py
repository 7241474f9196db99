"""Which data model a data store holds (`--data-model auto`): blissdata 2.x or BLISS 1.x ("legacy")."""

from __future__ import annotations

from typing import Callable, Iterable, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis

from .documents import PROTOCOL_KEY
from .errors import DataStoreError
from .legacy import is_legacy
from .urls import unsplit_url

#: `--data-model` values.
DATA_MODELS = ("auto", "blissdata2", "legacy")
#: BLISS 1.x writes its scans in this logical database of the data Redis.
LEGACY_DB = 1


def detect_model(redis_client: redis.Redis[bytes], sessions: Iterable[str] = ()) -> Literal["blissdata2", "legacy"] | None:
    """"blissdata2" if `_PROTOCOL_VERSION_` exists, "legacy" if a BLISS 1.x session node does (named
    ones first, else found by SCAN: O(keys), run it once, not per scan), None if neither (an empty
    store, or the wrong database: BLISS 1.x writes in database 1 of the data Redis)."""
    if redis_client.exists(PROTOCOL_KEY):
        return "blissdata2"
    if is_legacy(redis_client, sessions):
        return "legacy"
    return None


def explicit_db(url: str) -> bool:
    """Whether the URL names its database (`redis://host:port/N` or `?db=N`)."""
    parts = urlsplit(url)
    return "db" in dict(parse_qsl(parts.query)) or (parts.scheme != "unix" and parts.path.strip("/") != "")


def with_db(url: str, db: int) -> str:
    """The URL on logical database `db`."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["db"] = str(db)
    path = parts.path if parts.scheme == "unix" else ""
    return unsplit_url(parts._replace(path=path, query=urlencode(query)))


def choose_model(url: str, wanted: str, sessions: Iterable[str] = (),
                 client_factory: Callable[[str], redis.Redis[bytes]] = redis.Redis.from_url) -> tuple[str, str]:
    """(data model, URL to read it at) for `--data-model wanted`; DataStoreError if auto finds neither.

    BLISS 1.x writes in database 1: without a database in the URL (Beacon never gives one), a legacy
    store is looked for there; a database named in the URL always wins.
    """
    named = explicit_db(url)
    if wanted == "blissdata2":
        return wanted, url
    if wanted == "legacy":
        return wanted, url if named else with_db(url, LEGACY_DB)
    candidates = [url] if named else [url, with_db(url, LEGACY_DB)]
    for candidate in candidates:
        client = client_factory(candidate)
        try:
            model = detect_model(client, sessions)
        except redis.exceptions.NoPermissionError:
            if candidate == url:
                raise
            model = None  # a user not allowed to SELECT database 1 reads no BLISS 1.x store there
        finally:
            client.close()
        if model is not None:
            return model, candidate
    where = "its database" if named else f"database 0 nor {LEGACY_DB}"
    raise DataStoreError(f"no blissdata protocol key (_PROTOCOL_VERSION_) and no BLISS 1.x session node in {where}: "
                         "not a blissdata data store (yet?)")
