"""HTTP side: /metrics, landing page, /healthz, /readyz, served by gevent's WSGI server."""

from __future__ import annotations

import errno
import resource
import socket
import time
from urllib.parse import urlsplit

import gevent
import structlog
from gevent.pywsgi import WSGIHandler, WSGIServer
from prometheus_client import make_wsgi_app

log = structlog.get_logger("bliss_exporter")


class Routes:
    """The exporter's WSGI application."""

    def __init__(self, registry, health, telemetry_path: str, status_page):
        self.metrics_app = make_wsgi_app(registry)
        self.health = health  # object with .ready (bool) and .reason (str)
        self.telemetry_path = telemetry_path
        self.status_page = status_page  # callable(telemetry_path) -> html str

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") == "HEAD":  # GET's status and headers, no body (gevent would send it)
            answer = []
            body = self._route({**environ, "REQUEST_METHOD": "GET"}, lambda *a: answer.append(a[:2]))
            length = sum(len(chunk) for chunk in body)
            if hasattr(body, "close"):
                body.close()
            status, headers = answer[-1]
            if not any(name.lower() == "content-length" for name, _ in headers):
                headers = [*headers, ("Content-Length", str(length))]
            start_response(status, headers)
            return []
        return self._route(environ, start_response)

    def _route(self, environ, start_response):
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        if path not in ("/", "/healthz", "/readyz", self.telemetry_path):
            return _text(start_response, "404 Not Found", "not found\n")
        if method not in ("GET", "HEAD"):
            return _text(start_response, "405 Method Not Allowed", "method not allowed\n", [("Allow", "GET, HEAD")])
        # Let the hub run what is queued first: a log line written in this turn is flushed before a
        # scrape or the status page can show the change it reports.
        gevent.sleep(0)
        if path == self.telemetry_path:
            return self.metrics_app(environ, start_response)
        if path == "/healthz":
            return _text(start_response, "200 OK", "ok\n")
        if path == "/readyz":
            if self.health.ready:
                return _text(start_response, "200 OK", "ready\n")
            return _text(start_response, "503 Service Unavailable", f"not ready: {self.health.reason}\n")
        body = self.status_page(self.telemetry_path)
        return _send(start_response, "200 OK", body.encode(), "text/html; charset=utf-8")


def _text(start_response, status, text, headers=()):
    return _send(start_response, status, text.encode(), "text/plain; charset=utf-8", headers)


def _send(start_response, status, body: bytes, content_type: str, headers=()):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers])
    return [body]


class _Evicted(BaseException):
    """Thrown into a connection's greenlet to close it and make room for a newer one."""


class _Connection:
    """One client connection: its greenlet's header deadline and whether it was evicted."""

    __slots__ = ("deadline", "requests", "evicted")

    def __init__(self, header_timeout: float):
        self.deadline = gevent.Timeout(header_timeout)
        self.requests = 0
        self.evicted = False


#: What gevent answers to unparsable requests (a copy of its private pywsgi._BAD_REQUEST_RESPONSE: docs/dependencies.md).
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-length: 0\r\n\r\n"


class _Handler(WSGIHandler):
    """gevent's handler: no traceback for bad input, a deadline for each request's line and headers,
    absolute-form targets routed by their path, request bodies never read."""

    def _handle_client_error(self, ex):  # any client could flood the log
        return ("400", BAD_REQUEST)

    def read_requestline(self):
        conn = self.server.connection()
        if conn is not None and conn.requests:  # kept alive: idle (IDLE_TIMEOUT) until the next request starts
            self.server.waiting(conn)
            self.rfile.peek(1)
            conn.deadline.start()
        return super().read_requestline()

    def read_request(self, raw_requestline):
        ok = super().read_request(raw_requestline)
        conn = self.server.connection()
        if conn is not None:
            self.server.busy(conn)
        if not self.path.startswith("/"):  # absolute-form (RFC 9112 §3.2.2): route by the path
            target = urlsplit(self.path)
            if target.scheme.lower() in ("http", "https") and target.netloc:
                self.path = (target.path or "/") + (f"?{target.query}" if target.query else "")
        return ok

    def get_environ(self):
        env = super().get_environ()
        if self.wsgi_input.content_length or self.wsgi_input.chunked_input:
            # no route reads a body: answer, then close rather than read (a body can trickle forever)
            self.wsgi_input.content_length, self.wsgi_input.chunked_input = 0, False
            self.close_connection = True
        return env

    def start_response(self, status, headers, exc_info=None):
        if self.close_connection and not any(name.lower() == "connection" for name, _ in headers):
            headers = [*headers, ("Connection", "close")]
        return super().start_response(status, headers, exc_info)


class HttpServer(WSGIServer):
    """gevent's WSGI server, hardened against slow, idle and too many clients.

    - TCP_NODELAY: headers and body go out in two writes, and Nagle's algorithm would hold the body
      for the client's delayed ACK (~40 ms per keep-alive scrape).
    - A request's line and headers (and the TLS handshake) must arrive within `HEADER_TIMEOUT` of
      the connection (or, kept alive, of the request's first byte); a kept-alive connection may
      idle `IDLE_TIMEOUT` between requests.
    - At most `max_connections` connections: `MAX_CONNECTIONS`, and never more than the soft
      RLIMIT_NOFILE less `FD_RESERVE` descriptors (Redis, logs, the accept batch). A new
      connection beyond it closes the one waiting longest for a request, so slow clients cannot
      lock scrapes out, and accept() never runs out of descriptors because of HTTP.
    - accept() failures for lack of resources (EMFILE...) are logged once a minute, not printed
      per connection, and accepting pauses for `ACCEPT_BACKOFF`.
    """

    HEADER_TIMEOUT = 10.0
    IDLE_TIMEOUT = 60.0
    MAX_CONNECTIONS = 512
    FD_RESERVE = 64
    ACCEPT_BACKOFF = 0.5
    WARNING_INTERVAL = 60.0
    max_accept = 16  # connections accepted per loop iteration (part of FD_RESERVE)
    handler_class = _Handler

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.header_timeout = self.HEADER_TIMEOUT
        self.max_connections = connection_limit(self.MAX_CONNECTIONS, self.FD_RESERVE)
        self._connections: dict[gevent.Greenlet, _Connection] = {}
        self._waiting: dict[gevent.Greenlet, _Connection] = {}  # waiting for a request, longest first
        self._open = 0  # accepted and not yet closed
        self._closing = 0  # evicted, not yet closed
        self._warned: dict[str, float] = {}

    @property
    def listen_address(self) -> str:
        """The bound HOST:PORT as a client writes it ([::1]:9811 for IPv6)."""
        return format_address(self.server_host, self.server_port)

    def do_read(self):
        try:
            accepted = super().do_read()
        except OSError as exc:
            if exc.errno not in _OUT_OF_RESOURCES:
                raise
            self._warn("http_accept_failed", error=f"{type(exc).__name__}: {exc}", open_connections=self._open)
            self._evict()  # frees a descriptor for the next try
            self.stop_accepting()
            gevent.spawn_later(self.ACCEPT_BACKOFF, self._start_accepting_if_started)  # private: docs/dependencies.md
            return None
        if accepted and self._open - self._closing >= self.max_connections and not self._evict():
            accepted[0].close()  # every connection is busy with a request: refuse this one
            return None
        return accepted

    def do_handle(self, sock, address):
        self._open += 1
        try:
            self._spawn(self._serve, self._handle, sock, address)  # private (_handle wraps TLS): docs/dependencies.md
        except BaseException:
            self._open -= 1
            sock.close()
            raise

    def _serve(self, handle, sock, address) -> None:
        """One connection, tracked from accept to close; its end is never a traceback."""
        me = gevent.getcurrent()
        conn = self._connections[me] = self._waiting[me] = _Connection(self.header_timeout)
        conn.deadline.start()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(self.IDLE_TIMEOUT)
            handle(sock, address)
        except (OSError, _Evicted):
            pass  # the client went away, or its connection made room for a newer one
        except gevent.Timeout as exc:
            if exc is not conn.deadline:
                raise
        finally:
            conn.deadline.cancel()
            self._connections.pop(me, None)
            self._waiting.pop(me, None)
            self._open -= 1
            if conn.evicted:
                self._closing -= 1
            sock.close()

    def connection(self) -> _Connection | None:
        """The connection of the calling greenlet."""
        return self._connections.get(gevent.getcurrent())

    def waiting(self, conn: _Connection) -> None:
        self._waiting[gevent.getcurrent()] = conn

    def busy(self, conn: _Connection) -> None:
        conn.deadline.cancel()
        conn.requests += 1
        self._waiting.pop(gevent.getcurrent(), None)

    def _evict(self) -> bool:
        """Close the connection waiting longest for a request; False if none is waiting."""
        greenlet = next(iter(self._waiting), None)
        if greenlet is None:
            return False
        self._waiting.pop(greenlet).evicted = True
        self._closing += 1
        greenlet.kill(_Evicted, block=False)
        self._warn("http_connections_limited", max_connections=self.max_connections)
        return True

    def _warn(self, event: str, **fields) -> None:
        now = time.monotonic()
        if now - self._warned.get(event, float("-inf")) >= self.WARNING_INTERVAL:
            self._warned[event] = now
            log.warning(event, **fields)


_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def connection_limit(cap: int, reserve: int) -> int:
    """HTTP connections allowed: `cap`, and never more than the soft RLIMIT_NOFILE less `reserve`."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return cap
    return max(1, min(cap, soft - reserve))


def format_address(host: str, port: int) -> str:
    """HOST:PORT, an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def make_server(host: str, port: int, app, ssl_args: dict | None = None,
                header_timeout: float | None = None) -> HttpServer:
    """A gevent WSGI server (one greenlet per connection, so scrapes never block the watchers)."""
    server = HttpServer((host, port), app, log=None, error_log=None, **(ssl_args or {}))
    if header_timeout:
        server.header_timeout = header_timeout
    return server
