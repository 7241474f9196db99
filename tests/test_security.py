"""Reliability, bad input and security: a read-only Redis user is enough (and nothing is written),
TLS and basic auth from --web.config.file (and bad web configs), HTTP abuse (bursts, bad requests,
half-open connections), all against a real Redis Stack and the real exporter process."""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import bcrypt
import numpy as np
import pytest
import redis
import requests
import yaml
from blissdata.streams.default import Stream
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families

from exporter.devtools.redis_stack import RedisStackServer
from exporter.devtools.simulator import ScanSpec, Truth, publish_scan
from exporter.store import ACL_RULES, HISTORY_STREAM, PROTOCOL_KEY, READ_COMMANDS

from .builders import EVENT_TYPES, assert_no_watcher_errors, ended_by_reason, events, new_scan
from .helpers import ROOT, ExporterProcess, parse_metrics, run_cli, wait_until


# -- raw HTTP -------------------------------------------------------------------------------------
def raw_request(port: int, data: bytes, timeout: float = 5.0, context: ssl.SSLContext | None = None) -> bytes:
    """Send bytes on a fresh connection, return what comes back until the server closes (or resets)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
    out = b""
    with sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed on us mid-request: fine, whatever it answered is read below
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except (ConnectionResetError, socket.timeout, ssl.SSLError):
            pass
    return out


def status_of(reply: bytes) -> int | None:
    """The status code of a raw HTTP reply, None if there is none (connection closed or garbage)."""
    if not reply.startswith(b"HTTP/1."):
        return None
    return int(reply.split(b" ", 2)[1])


# == 1. the exporter only reads ===================================================================
READER_PASSWORD = "r34d-0nly-pw"
READER_ACL = ["on", f">{READER_PASSWORD}", *ACL_RULES]


def test_readme_gives_exactly_the_acl_the_suite_uses():
    readme = (ROOT / "README.md").read_text()
    line = "ACL SETUSER bliss-exporter on >PASSWORD " + " ".join(ACL_RULES)
    assert line in readme.splitlines()
    commands = {rule[1:] for rule in ACL_RULES if rule.startswith("+")}
    assert commands == {*READ_COMMANDS, "ft._list", "client|setinfo"}


def test_exporter_counts_exactly_with_a_read_only_redis_user(start_exporter, data_store, raw_redis, redis_server):
    """A Redis user allowed only read commands is enough: exact counts, no error, no denied command."""
    raw_redis.execute_command("ACL", "SETUSER", "reader", *READER_ACL)
    port = urlsplit(redis_server.url).port
    reader_url = f"redis://reader:{READER_PASSWORD}@127.0.0.1:{port}"
    reader = redis.Redis.from_url(reader_url + "?protocol=2")
    # the user really cannot write, not even through blissdata's server-side function
    for command in (("SET", "x", "1"), ("XADD", HISTORY_STREAM, "*", "key", "esrf:scan:x"),
                    ("JSON.SET", "esrf:scan:x", "$", "{}"), ("DEL", PROTOCOL_KEY), ("EXPIRE", PROTOCOL_KEY, "1"),
                    ("XTRIM", HISTORY_STREAM, "MAXLEN", "0"), ("FLUSHALL",), ("FUNCTION", "FLUSH"),
                    ("CONFIG", "SET", "maxmemory", "1")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            reader.execute_command(*command)
    assert reader.get(PROTOCOL_KEY) == b"1" and reader.execute_command("FT._LIST") is not None
    reader.close()
    raw_redis.execute_command("ACL", "LOG", "RESET")

    # adopted: active with data before the exporter starts (only what happens after its start is counted)
    adopted = new_scan(data_store, "ro", 1)
    adopted_stream = adopted.create_stream(Stream.make_definition("timer:epoch", "float64"))
    adopted.prepare()
    adopted.start()
    adopted_stream.send(np.arange(5.0))
    adopted_stream.send(np.arange(5.0))
    adopted_stream.join()

    exporter = start_exporter(url=reader_url)
    exporter.wait_value(1, "bliss_active_scans", session="ro", state="started")
    (start,) = exporter.logs("exporter_start")
    assert start["datastore"] == f"redis://reader:***@127.0.0.1:{port}"
    assert READER_PASSWORD not in exporter.stdout() + exporter.stderr()
    users = {c["user"] for c in raw_redis.client_list()}
    assert "reader" in users  # the exporter really connects as the read-only user

    # deleted while active (closed with end_reason DELETION, keys expire in 10 s)
    deleted = new_scan(data_store, "ro", 2)
    deleted_stream = deleted.create_stream(Stream.make_definition("timer:epoch", "float64"))
    deleted.prepare()
    deleted.start()
    deleted_stream.send(np.arange(4.0))
    deleted_stream.join()
    exporter.wait_value(2, "bliss_active_scans", session="ro", state="started")
    exporter.wait_value(1, "bliss_scan_events_total", session="ro", event_type="new_data")
    data_store.delete_scan(deleted.key, force=True)
    exporter.wait_value(1, "bliss_scans_ended_total", session="ro", scan_type="loopscan", end_reason="DELETION")

    adopted_stream.send(1.0)
    adopted.stop()
    adopted.info["end_reason"] = "SUCCESS"
    adopted.close()

    # several streams, batched sends
    batched = new_scan(data_store, "ro", 3)
    epoch = batched.create_stream(Stream.make_definition("timer:epoch", "float64"))
    diode = batched.create_stream(Stream.make_definition("diode", "float64"))
    spectrum = batched.create_stream(Stream.make_definition("mca:spectrum", "uint32", shape=(16,)))
    batched.prepare()
    batched.start()
    epoch.send(1.0)
    epoch.send(np.arange(9.0))
    for i in range(10):
        diode.send(float(i))
    spectrum.send(np.zeros((4, 16), dtype=np.uint32))
    spectrum.send(np.zeros(16, dtype=np.uint32))
    batched.stop()
    batched.info["end_reason"] = "SUCCESS"
    batched.close()

    # failed: closed without STOPPED
    failed = new_scan(data_store, "ro", 4)
    failed_stream = failed.create_stream(Stream.make_definition("timer:epoch", "float64"))
    failed.prepare()
    failed.start()
    for i in range(3):
        failed_stream.send(float(i))
    failed.info["end_reason"] = "FAILURE"
    failed.close()

    truth = Truth(scans=4, points=1 + 4 + 25 + 3, ended=Counter(SUCCESS=2, DELETION=1, FAILURE=1))
    truth.events.update({"new_node": 0 + 2 + 4 + 2, "new_data": 1 + 1 + 14 + 3, "prepared_scan": 3,
                         "start_scan": 3, "stop_scan": 2, "end_scan": 4})
    for spec in (ScanSpec(session="ro", number=5, npoints=20, count_time=0, batch=5, mca=True),
                 ScanSpec(session="ro", number=6, scan_type="ascan", npoints=30, count_time=0, batch=3,
                          end_reason="USER_ABORT", fail_after=11),
                 ScanSpec(session="ro", number=7, npoints=12, count_time=0, lima=True, batch=4,
                          end_reason="FAILURE", fail_after=8)):
        truth.add(publish_scan(data_store, spec))

    exporter.wait_value(truth.scans, "bliss_scan_events_total", session="ro", event_type="end_scan")
    exporter.barrier(data_store)  # from here on, an over-count would show
    metrics = exporter.metrics()
    assert events(exporter, "ro") == {e: truth.events[e] for e in EVENT_TYPES}
    assert exporter.value("bliss_scan_points_total", session="ro") == truth.points
    assert ended_by_reason(metrics, "ro") == dict(truth.ended)
    assert metrics[("bliss_datastore_up", frozenset())] == 1
    assert exporter.get("/readyz").status_code == 200
    assert_no_watcher_errors(exporter)
    assert not [k for k, v in metrics.items() if k[0] == "bliss_exporter_scans_lost_total" and v]
    logs = exporter.stdout() + exporter.stderr()
    assert "NOPERM" not in logs and "no permissions" not in logs.lower() and "Traceback" not in logs
    # Redis's own record: the read-only user never attempted a denied command (nor failed to log in)
    denied = [(e["reason"], e["object"]) for e in raw_redis.acl_log() if e["username"] == "reader"]
    assert denied == []
    assert exporter.stop() == 0


# == 2. TLS and basic auth ========================================================================
# users of the TLS exporter: a bcrypt $2b$ hash (cost 10, as deploy/ documents) and an htpasswd-style $2y$
# one of a password with a colon and non-ASCII characters
USERS = {"alice": "wonderland", "bob": "pä:ss wörd"}


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class TLSExporter:
    def __init__(self, proc: ExporterProcess, ca: Path):
        self.proc, self.ca, self.port = proc, str(ca), proc.port
        self.base = f"https://127.0.0.1:{proc.port}"

    def get(self, path: str, method: str = "GET", **kw) -> requests.Response:
        return requests.request(method, self.base + path, verify=self.ca, timeout=10, **kw)

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)  # trusts only the test CA


@pytest.fixture(scope="module")
def tls_exporter(pki, tmp_path_factory):
    """One exporter with TLS and basic auth, on its own Redis Stack, for the module's TLS tests."""
    tmp = tmp_path_factory.mktemp("tls-exporter")
    alice = bcrypt.hashpw(USERS["alice"].encode(), bcrypt.gensalt(10)).decode()
    bob = bcrypt.hashpw(USERS["bob"].encode(), bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$", 1)
    config = tmp / "web-config.yml"
    config.write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": str(pki["server.crt"]), "key_file": str(pki["server.key"])},
        "basic_auth_users": {"alice": alice, "bob": bob},
    }, allow_unicode=True))
    server = RedisStackServer().start()
    proc = None
    try:
        server.init_blissdata()
        proc = ExporterProcess(["--redis-url", server.url, "--poll-interval", "0.1", "--web.config.file", str(config)],
                               tmp)
        exporter = TLSExporter(proc, pki["ca.crt"])

        def ready():
            assert proc.proc.poll() is None, proc.stderr()
            try:
                return exporter.get("/readyz", headers=basic("alice", USERS["alice"])).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, 30, what="the TLS exporter to be ready")
        yield exporter
    finally:
        if proc is not None:
            assert proc.stop() == 0
        server.cleanup()


def test_tls_with_basic_auth_serves_only_authorised_clients_but_healthz(tls_exporter, pki):
    e = tls_exporter
    for user, password in USERS.items():
        r = e.get("/metrics", headers=basic(user, password))
        assert r.status_code == 200, user
        assert r.headers["Content-Type"].startswith("text/plain")
        assert parse_metrics(r.text)[("bliss_datastore_up", frozenset())] == 1
        assert e.get("/readyz", headers=basic(user, password)).text == "ready\n"
        assert e.get("/", headers=basic(user, password)).headers["Content-Type"].startswith("text/html")
        assert e.get("/metrics", "HEAD", headers=basic(user, password)).status_code == 200
    assert e.get("/metrics", auth=("alice", USERS["alice"])).status_code == 200  # requests' own encoding

    def refused(response):
        assert response.status_code == 401, response.status_code
        assert response.headers["WWW-Authenticate"] == 'Basic realm="bliss-exporter"'
        assert "bliss_" not in response.text and "ready" not in response.text

    for path in ("/metrics", "/", "/readyz", "/no-such-page", "/%6detrics"):  # %6d: an encoded "m"
        refused(e.get(path))
        refused(e.get(path, "HEAD"))
        refused(e.get(path, headers=basic("alice", "wrong")))
    refused(e.get("/metrics", "POST"))  # authentication comes before anything else
    refused(e.get("/metrics", headers=basic("mallory", USERS["alice"])))  # unknown user
    refused(e.get("/metrics", headers=basic("bob", USERS["alice"])))  # someone else's password
    refused(e.get("/metrics", headers=basic("alice", USERS["alice"] + " ")))
    refused(e.get("/metrics", headers=basic("Alice", USERS["alice"])))  # user names are case-sensitive
    for header in ("Basic !!!not-base64!!!", "Basic " + base64.b64encode(b"alice").decode(),  # no colon
                   "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), "Bearer " + USERS["alice"], "Basic",
                   "Basic " + base64.b64encode(b"alice:wonderland").decode()[:-2]):  # bad padding
        refused(e.get("/metrics", headers={"Authorization": header}))
    # a path that climbs out of /healthz does not get past the check (sent raw: clients normalise it)
    for path in (b"/healthz/../metrics", b"/healthz/%2e%2e/metrics", b"/healthz/%2F..%2Fmetrics",
                 b"/healthz?/../metrics", b"/healthz#/../metrics"):
        reply = raw_request(e.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                            context=e.context())
        assert b"bliss_" not in reply, (path, reply[:200])
        assert status_of(reply) == 401 or reply.endswith(b"\r\n\r\nok\n"), (path, reply[:200])  # or /healthz itself

    # a refused HEAD has no body either (kept-alive connection, over TLS)
    reply = raw_request(e.port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", context=e.context())
    head, second = reply.split(b"\r\n\r\n", 1)
    assert status_of(head) == 401 and status_of(second) == 200 and second.endswith(b"\r\n\r\nok\n"), reply

    # /healthz is open for probes, whatever the credentials
    for headers in ({}, basic("alice", "wrong"), {"Authorization": "garbage"}):
        r = e.get("/healthz", headers=headers)
        assert r.status_code == 200 and r.text == "ok\n"

    # the certificate served is ours, TLS 1.3 by default and TLS 1.2 still accepted
    with socket.create_connection(("127.0.0.1", e.port), timeout=5) as sock:
        with e.context().wrap_socket(sock, server_hostname="127.0.0.1") as tls:
            assert tls.getpeercert(binary_form=True) == ssl.PEM_cert_to_DER_cert(pki["server.crt"].read_text())
            assert tls.version() == "TLSv1.3"
    tls12 = e.context()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    reply = raw_request(e.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", context=tls12)
    assert status_of(reply) == 200
    # a client that does not trust our CA does not get through
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(e.base + "/healthz", timeout=5, verify=str(pki["rogue.crt"]))
    assert e.proc.proc.poll() is None


def test_basic_auth_takes_as_long_for_an_unknown_user_as_for_a_wrong_password(tls_exporter):
    """No user enumeration by timing: both cost a bcrypt check (alice's hash has cost 10, as the dummy)."""
    session = requests.Session()  # one kept-alive connection: the time is the server's

    def took(user, password):
        t0 = time.perf_counter()
        assert session.get(tls_exporter.base + "/metrics", headers=basic(user, password),
                           verify=tls_exporter.ca, timeout=10).status_code == 401
        return time.perf_counter() - t0

    took("alice", "warm-up")
    # alternated, so that a busy spell slows both alike; a busy machine only adds time: the fastest
    # answer of each is the server's own cost
    pairs = [(took("alice", "wrong"), took("mallory", "wrong")) for _ in range(9)]
    wrong_password, unknown_user = min(p[0] for p in pairs), min(p[1] for p in pairs)
    assert wrong_password > 0.01  # bcrypt at cost 10 is slow on purpose
    assert unknown_user > 0.5 * wrong_password, (unknown_user, wrong_password)


def test_tls_port_refuses_plain_http(tls_exporter):
    e = tls_exporter
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{e.port}/healthz", timeout=5)
    reply = raw_request(e.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(reply) is None and b"ok" not in reply, reply[:200]
    assert e.get("/healthz").status_code == 200


def test_tls_1_1_client_is_refused(tls_exporter):
    context = tls_exporter.context()
    try:
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the local OpenSSL offer TLS 1.1 at all
    except (ValueError, ssl.SSLError) as exc:
        pytest.skip(f"this OpenSSL cannot make a TLS 1.1 client: {exc}")
    with socket.create_connection(("127.0.0.1", tls_exporter.port), timeout=5) as sock:
        with pytest.raises(ssl.SSLError) as refused:
            context.wrap_socket(sock, server_hostname="127.0.0.1")
    if refused.value.reason in ("NO_PROTOCOLS_AVAILABLE", "UNSUPPORTED_PROTOCOL", "NO_CIPHERS_AVAILABLE"):
        pytest.skip(f"this OpenSSL refuses to send a TLS 1.1 hello: {refused.value}")
    assert refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION", refused.value  # the server's alert
    assert tls_exporter.get("/healthz").status_code == 200


def test_idle_and_half_handshake_tls_connections_do_not_block_scrapes(tls_exporter):
    e = tls_exporter
    idle = [socket.create_connection(("127.0.0.1", e.port), timeout=5) for _ in range(10)]
    try:
        for sock in idle[:5]:
            sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello
        for _ in range(7):
            assert e.get("/metrics", headers=basic("alice", USERS["alice"])).status_code == 200
    finally:
        for sock in idle:
            sock.close()


def test_mutual_tls_requires_a_client_certificate_of_the_ca(start_exporter, pki, tmp_path):
    config = tmp_path / "web-config.yml"
    config.write_text(yaml.safe_dump({"tls_server_config": {
        "cert_file": str(pki["server.crt"]), "key_file": str(pki["server.key"]), "client_ca_file": str(pki["ca.crt"])}}))
    exporter = start_exporter("--web.config.file", str(config), ready=False)
    base, ca = f"https://127.0.0.1:{exporter.port}", str(pki["ca.crt"])
    client = (str(pki["client.crt"]), str(pki["client.key"]))

    def ready():
        assert exporter.proc.poll() is None, exporter.stderr()
        try:
            return requests.get(base + "/readyz", verify=ca, cert=client, timeout=5).status_code == 200
        except requests.RequestException:
            return False

    wait_until(ready, 30, what="the mutual-TLS exporter to be ready")
    r = requests.get(base + "/metrics", verify=ca, cert=client, timeout=5)
    assert r.status_code == 200 and "bliss_datastore_up 1.0" in r.text
    for cert in (None, (str(pki["rogue.crt"]), str(pki["rogue.key"]))):  # no certificate, or one of another CA
        for path in ("/metrics", "/healthz"):
            with pytest.raises(requests.exceptions.ConnectionError):  # SSLError is one
                requests.get(base + path, verify=ca, cert=cert, timeout=5)
    assert requests.get(base + "/healthz", verify=ca, cert=client, timeout=5).status_code == 200
    assert exporter.stop() == 0




def test_invalid_web_config_is_one_line_and_exit_2(tmp_path):
    """Each bad web config's message: tests/test_unit_webconfig.py; here, what the command line makes of one."""
    path = tmp_path / "web-config.yml"
    path.write_text(yaml.safe_dump({"basic_auth_users": {"alice": "wonderland"}}))
    try:
        result = run_cli(["--redis-url", "redis://127.0.0.1:1", "--listen-address", "127.0.0.1:0",
                          "--web.config.file", str(path)], timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("the exporter accepted the web config and ran")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == f"bliss-exporter: error: web config {path}: password of 'alice' is not a bcrypt hash", lines[0]
    assert "Traceback" not in result.stdout + result.stderr


# == 3. HTTP robustness ===========================================================================
def test_bursts_of_concurrent_scrapes_while_scans_are_published(start_exporter, data_store):
    exporter = start_exporter()
    truth, failures, stop = Truth(), [], threading.Event()

    def publisher():
        number = 0
        try:
            while not stop.is_set():
                number += 1
                spec = ScanSpec(session="burst", number=number, npoints=15, count_time=0, point_delay=0.002,
                                batch=1 + number % 3, mca=number % 2 == 0,
                                end_reason=("SUCCESS", "SUCCESS", "FAILURE", "USER_ABORT")[number % 4],
                                fail_after=None if number % 4 < 2 else number % 7)
                truth.add(publish_scan(data_store, spec))
        except Exception as exc:  # reported by the main thread
            failures.append(exc)

    thread = threading.Thread(target=publisher, daemon=True)
    thread.start()

    def scrape(i):
        openmetrics = i % 10 == 0
        headers = {"Accept": "application/openmetrics-text; version=1.0.0"} if openmetrics else {}
        r = requests.get(exporter.base + "/metrics", headers=headers, timeout=30)
        if openmetrics:
            families = list(openmetrics_families(r.text))  # raises on an invalid exposition
            assert r.text.endswith("# EOF\n")
        else:
            families = parse_metrics(r.text)
        return r.status_code, r.headers["Content-Type"], bool(families), "bliss_datastore_up" in r.text

    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            for _ in range(4):
                results = list(pool.map(scrape, range(50)))
                assert [r[0] for r in results] == [200] * 50
                assert all(r[2] and r[3] for r in results)
                assert {r[1].split(";")[0] for r in results} == {"text/plain", "application/openmetrics-text"}
    finally:
        stop.set()
        thread.join(60)
    assert not failures, failures
    assert truth.scans >= 2, truth  # the bursts really ran while scans were being published

    exporter.wait_value(truth.scans, "bliss_scan_events_total", session="burst", event_type="end_scan")
    exporter.barrier(data_store)  # the values below are final: an over-count would show
    assert events(exporter, "burst") == {e: truth.events[e] for e in EVENT_TYPES}
    assert exporter.value("bliss_scan_points_total", session="burst") == truth.points
    assert ended_by_reason(exporter.metrics(), "burst") == dict(truth.ended)

    # and the exporter still follows new scans promptly
    after = new_scan(data_store, "burst", 999)
    after.prepare()
    after.start()
    after.stop()
    after.info["end_reason"] = "SUCCESS"
    after.close()
    exporter.wait_value(truth.scans + 1, "bliss_scan_events_total", session="burst", event_type="end_scan")
    assert_no_watcher_errors(exporter)
    assert exporter.proc.poll() is None and "Traceback" not in exporter.stdout() + exporter.stderr()


def test_bad_requests_get_4xx_never_5xx_and_leave_the_exporter_serving(start_exporter):
    exporter = start_exporter()
    for path in ("/nope", "/metrics/", "/metricsx", "/healthz/x", "/readyz/", "/index.html", "/favicon.ico",
                 "/%ZZ", "/%00", "/%ff%fe", "/metrics%00"):
        assert exporter.get(path).status_code == 404, path
    for path in ("/metrics", "/", "/healthz", "/readyz"):
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"):
            r = requests.request(method, exporter.base + path, data=b"x" * 100, timeout=10)
            assert r.status_code == 405, (method, path)
            assert r.headers["Allow"] == "GET, HEAD"
        head = requests.head(exporter.base + path, timeout=10)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) > 0
    # HEAD answers carry no body: the next answer on a kept-alive connection is intact
    for path in (b"/metrics", b"/", b"/healthz", b"/readyz", b"/nope"):
        reply = raw_request(exporter.port, b"HEAD " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n"
                            b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, second = reply.split(b"\r\n\r\n", 1)
        assert status_of(head) == (404 if path == b"/nope" else 200), reply[:300]
        assert status_of(second) == 200 and second.endswith(b"\r\n\r\nok\n"), reply[:300]

    def raw(data: bytes) -> int | None:
        return status_of(raw_request(exporter.port, data))

    get = b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
    assert raw(b"GARBAGE\r\n\r\n") == 400
    assert raw(b"GET\r\n\r\n") == 400
    assert raw(b"GET /metrics HTTP/9.9\r\n\r\n") in (400, 505)
    assert raw(b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == 404
    assert raw(b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == 404
    assert raw(get + b"Content-Length: -1\r\nConnection: close\r\n\r\n") == 400
    assert raw(get + b"Content-Length: lots\r\nConnection: close\r\n\r\n") == 400
    assert raw(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") == 414
    for size in (64 * 1024, 1024 * 1024):  # one huge header value
        status = raw(get + b"X-Big: " + b"a" * size + b"\r\nConnection: close\r\n\r\n")
        assert status is None or 400 <= status < 500, (size, status)
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(500))  # too many headers
    status = raw(get + many + b"Connection: close\r\n\r\n")
    assert status is None or 400 <= status < 500, status
    assert raw(b"\x16\x03\x01\x00\x05hello\r\n\r\n") in (None, 400)  # a TLS hello to the plain port
    assert raw(b"\x00" * 1000 + b"\r\n\r\n") in (None, 400)

    assert exporter.proc.poll() is None
    r = exporter.get("/metrics")
    assert r.status_code == 200 and parse_metrics(r.text)[("bliss_datastore_up", frozenset())] == 1
    assert "Traceback" not in exporter.stdout() + exporter.stderr()  # bad input is no log flood
    assert_no_watcher_errors(exporter)


def test_half_finished_requests_do_not_block_other_scrapes(start_exporter):
    exporter = start_exporter()
    slow = [socket.create_connection(("127.0.0.1", exporter.port), timeout=5) for _ in range(30)]
    try:
        for i, sock in enumerate(slow):
            if i % 3 == 1:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaa")  # headers never finish
            elif i % 3 == 2:
                sock.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc")  # body
            # i % 3 == 0: connected, sends nothing
        for _ in range(10):
            r = requests.get(exporter.base + "/metrics", timeout=5)
            assert r.status_code == 200 and "bliss_datastore_up 1.0" in r.text
        slow[1].sendall(b"a\r\n\r\n")  # the slow request, finished at last, is answered too
        slow[1].settimeout(5)
        answer = b""
        while len(answer) < 12:
            answer += slow[1].recv(12 - len(answer)) or pytest.fail(f"closed after {answer!r}")
        assert answer == b"HTTP/1.1 200"
    finally:
        for sock in slow:
            sock.close()
    assert exporter.get("/healthz").status_code == 200
    assert exporter.proc.poll() is None
