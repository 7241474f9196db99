"""Data store URLs: checked and normalised for redis-py (RESP2, unix sockets), redacted for logs."""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit


def normalize_redis_url(url: str) -> str:
    """Check a Redis URL and force RESP2 (blissdata 2.4 breaks on RESP3); raise ValueError if unusable.

    `unix:///path/redis.sock` (what Beacon answers to a client on its own host) keeps its `//`:
    urlunsplit would drop it with the empty host, and redis-py rejects `unix:/path`.
    """
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("scheme must be redis://, rediss:// or unix://")
        if parts.scheme != "unix":
            if not parts.hostname:
                raise ValueError("no host")
            try:
                parts.port
            except ValueError:
                raise ValueError("bad port") from None
        elif not parts.path or parts.path == "/":
            raise ValueError("no socket path")
        query = dict(parse_qsl(parts.query))
        db = parts.path.strip("/") if parts.scheme != "unix" else query.get("db", "0")
        if db and not db.isdigit():
            raise ValueError(f"bad database number {db!r}")
    except ValueError as exc:
        raise ValueError(f"invalid Redis URL {redact_url(url)!r}: {exc}") from None
    query.setdefault("protocol", "2")
    return unsplit_url(parts._replace(query=urlencode(query)))


def unsplit_url(parts: SplitResult) -> str:
    """urlunsplit that keeps `scheme://` even without a host (unix sockets)."""
    text = urlunsplit(parts)
    if parts.scheme == "unix" and not parts.netloc:
        text = "unix://" + text[len("unix:"):]
    return text


def redact_url(url: str) -> str:
    """The URL without its password (its query only keeps `db`), for logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if password:
        netloc = parts.netloc.replace(f":{password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k == "db"]  # never a password, nor protocol noise
    return unsplit_url(parts._replace(query=urlencode(query)))
