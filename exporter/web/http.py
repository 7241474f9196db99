"""HTTP side: /metrics, landing page, /healthz, /readyz, served by gevent's WSGI server."""

from __future__ import annotations

import html
import socket

from gevent import pywsgi
from gevent.pywsgi import WSGIHandler, WSGIServer
from prometheus_client import make_wsgi_app

from .. import __version__


class Routes:
    """The exporter's WSGI application."""

    def __init__(self, registry, health, telemetry_path: str = "/metrics", status_page=None):
        self.metrics_app = make_wsgi_app(registry)
        self.health = health  # object with .ready (bool) and .reason (str)
        self.telemetry_path = telemetry_path
        self.status_page = status_page  # callable(telemetry_path) -> html str, or None

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
        if path == self.telemetry_path:
            return self.metrics_app(environ, start_response)
        if path == "/healthz":
            return _text(start_response, "200 OK", "ok\n")
        if path == "/readyz":
            if self.health.ready:
                return _text(start_response, "200 OK", "ready\n")
            return _text(start_response, "503 Service Unavailable", f"not ready: {self.health.reason}\n")
        body = self.status_page(self.telemetry_path) if self.status_page else landing_page(self.telemetry_path)
        return _send(start_response, "200 OK", body.encode(), "text/html; charset=utf-8")


def landing_page(telemetry_path: str) -> str:
    path = html.escape(telemetry_path)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>bliss-exporter</title></head>"
        f"<body><h1>bliss-exporter {__version__}</h1>"
        f"<p><a href='{path}'>Metrics</a> · <a href='/healthz'>healthz</a> · <a href='/readyz'>readyz</a></p>"
        "</body></html>"
    )


def _text(start_response, status, text, headers=()):
    return _send(start_response, status, text.encode(), "text/plain; charset=utf-8", headers)


def _send(start_response, status, body: bytes, content_type: str, headers=()):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers])
    return [body]


class _Handler(WSGIHandler):
    """Bad client input gets its 400 without gevent printing a traceback (any client could flood the log)."""

    def _handle_client_error(self, ex):
        return ("400", pywsgi._BAD_REQUEST_RESPONSE)


class _Server(WSGIServer):
    """gevent's WSGI server with TCP_NODELAY and an idle timeout.

    Headers and body go out in two writes: Nagle's algorithm would hold the body for the client's
    delayed ACK (~40 ms per keep-alive scrape). A connection idle for `IDLE_TIMEOUT` is closed, so
    half-open connections cannot pile up and exhaust file descriptors.
    """

    IDLE_TIMEOUT = 60.0
    handler_class = _Handler

    def handle(self, sock, address):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        sock.settimeout(self.IDLE_TIMEOUT)
        return super().handle(sock, address)


def make_server(host: str, port: int, app, ssl_args: dict | None = None) -> WSGIServer:
    """A gevent WSGI server (one greenlet per request, so scrapes never block the watchers)."""
    return _Server((host, port), app, log=None, error_log=None, **(ssl_args or {}))
