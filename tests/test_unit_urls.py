"""Data store URLs in-process: normalize_redis_url (checked, RESP2 forced, what redis-py makes of it) and
redact_url (no password in logs)."""

from __future__ import annotations

import pytest
import redis

from exporter.store.urls import normalize_redis_url, redact_url

VALID_URLS = [
    # (given, normalised)
    ("redis://h:6380", "redis://h:6380?protocol=2"),
    ("redis://h", "redis://h?protocol=2"),
    ("redis://h:6380/3", "redis://h:6380/3?protocol=2"),
    ("redis://h:6380/", "redis://h:6380/?protocol=2"),
    ("redis://:pw@h:6380/0", "redis://:pw@h:6380/0?protocol=2"),
    ("redis://user:pw@h:6380/2?protocol=3", "redis://user:pw@h:6380/2?protocol=3"),  # an explicit protocol stays
    ("redis://[::1]:6380", "redis://[::1]:6380?protocol=2"),
    ("rediss://h:6380", "rediss://h:6380?protocol=2"),
    ("rediss://u:p%40ss@h:6380/1?ssl_cert_reqs=none", "rediss://u:p%40ss@h:6380/1?ssl_cert_reqs=none&protocol=2"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock?protocol=2"),
    ("unix:///run/redis.sock?db=2", "unix:///run/redis.sock?db=2&protocol=2"),
    ("unix://:pw@/run/redis.sock?db=2", "unix://:pw@/run/redis.sock?db=2&protocol=2"),
    ("unix://user:pw@/run/redis.sock", "unix://user:pw@/run/redis.sock?protocol=2"),
]


@pytest.mark.parametrize("url, normalised", VALID_URLS, ids=[u for u, _ in VALID_URLS])
def test_valid_url_is_normalised_with_resp2(url, normalised):
    assert normalize_redis_url(url) == normalised
    assert normalize_redis_url(normalised) == normalised  # idempotent


def test_redis_py_reads_the_normalised_urls_as_meant():
    def kwargs(url):
        pool = redis.ConnectionPool.from_url(normalize_redis_url(url))
        return pool.connection_class, pool.connection_kwargs

    cls, kw = kwargs("redis://h:6380/3")
    assert cls is redis.Connection and kw == {"host": "h", "port": 6380, "db": 3, "protocol": "2"}
    cls, kw = kwargs("rediss://u:p%40ss@h:6380/1")
    assert cls is redis.SSLConnection
    assert kw == {"host": "h", "port": 6380, "db": 1, "username": "u", "password": "p@ss", "protocol": "2"}
    cls, kw = kwargs("redis://[::1]:6380")
    assert kw == {"host": "::1", "port": 6380, "protocol": "2"}
    # unix:///path keeps its `//` (redis-py refuses unix:/path), the db and the password go through
    cls, kw = kwargs("unix://:pw@/run/redis.sock?db=2")
    assert cls is redis.UnixDomainSocketConnection
    assert kw == {"path": "/run/redis.sock", "db": 2, "password": "pw", "protocol": "2"}
    assert kwargs("unix:///run/redis.sock")[1] == {"path": "/run/redis.sock", "protocol": "2"}


INVALID_URLS = [
    # (given, message): the message quotes the URL without its password
    ("http://h:1", "invalid Redis URL 'http://h:1': scheme must be redis://, rediss:// or unix://"),
    ("h:6380", "invalid Redis URL 'h:6380': scheme must be redis://, rediss:// or unix://"),
    ("", "invalid Redis URL '': scheme must be redis://, rediss:// or unix://"),
    ("redis://:6380", "invalid Redis URL 'redis://:6380': no host"),
    ("redis://host:notaport", "invalid Redis URL 'redis://host:notaport': bad port"),
    ("redis://h:70000", "invalid Redis URL 'redis://h:70000': bad port"),
    ("redis://h:-1", "invalid Redis URL 'redis://h:-1': bad port"),
    ("redis://u:s3cret@h:99999", "invalid Redis URL 'redis://u:***@h:99999': bad port"),
    ("redis://h:1/abc", "invalid Redis URL 'redis://h:1/abc': bad database number 'abc'"),
    ("redis://h:1/1/2", "invalid Redis URL 'redis://h:1/1/2': bad database number '1/2'"),
    ("rediss://:s3cret@h:1/x", "invalid Redis URL 'rediss://:***@h:1/x': bad database number 'x'"),
    ("unix://", "invalid Redis URL 'unix://': no socket path"),
    ("unix:///", "invalid Redis URL 'unix:///': no socket path"),
    ("unix:///s.sock?db=x", "invalid Redis URL 'unix:///s.sock?db=x': bad database number 'x'"),
    ("unix://:s3cret@/s.sock?db=-1", "invalid Redis URL 'unix://:***@/s.sock?db=-1': bad database number '-1'"),
]


@pytest.mark.parametrize("url, message", INVALID_URLS, ids=[u or "<empty>" for u, _ in INVALID_URLS])
def test_invalid_url_is_refused_with_a_redacted_message(url, message):
    with pytest.raises(ValueError) as raised:
        normalize_redis_url(url)
    assert str(raised.value) == message
    assert "s3cret" not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


REDACTED = [
    ("redis://h:6380/0", "redis://h:6380/0"),
    ("redis://:s3cret@h:6380/0", "redis://:***@h:6380/0"),
    ("redis://reader:s3cret@127.0.0.1:6380", "redis://reader:***@127.0.0.1:6380"),
    ("rediss://u:p%40s3cret@h:6380/1?ssl_cert_reqs=none", "rediss://u:***@h:6380/1"),
    ("redis://u:s3cret@h:1/0?protocol=2", "redis://u:***@h:1/0"),  # the query keeps only db
    ("redis://h:1/0?password=s3cret&protocol=2", "redis://h:1/0"),  # a password in the query goes too
    ("redis://user@h:1", "redis://user@h:1"),  # a user without password stays
    ("redis://s3cret:s3cret@h:1", "redis://s3cret:***@h:1"),  # only the password part
    ("unix:///run/redis.sock?db=2&protocol=2", "unix:///run/redis.sock?db=2"),
    ("unix://:s3cret@/run/redis.sock?db=2", "unix://:***@/run/redis.sock?db=2"),
    ("redis://[bad", "<unparsable URL>"),
]


@pytest.mark.parametrize("url, redacted", REDACTED, ids=[u for u, _ in REDACTED])
def test_redacted_url_has_no_password(url, redacted):
    assert redact_url(url) == redacted
