"""The exporter's /metrics and probes, read over HTTP as Prometheus does."""

from __future__ import annotations

import http.client

from tests.helpers import parse_metrics


class Scraper:
    """GET /metrics on one keep-alive connection (as Prometheus does)."""

    def __init__(self, port: int, fresh: bool = False):
        self.port = port
        self.fresh = fresh  # a new connection per request
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def get(self, path: str = "/metrics") -> tuple[int, bytes]:
        if self.fresh:
            self.conn.close()
        for attempt in (1, 2):
            try:
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                if attempt == 2:
                    raise
        raise AssertionError

    def samples(self) -> dict:
        status, body = self.get()
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return parse_metrics(body.decode())


def ended_count(scraper: Scraper, session: str) -> int:
    """bliss_scans_ended_total of a session, from a scrape of that metric only (cheap for the exporter)."""
    status, body = scraper.get("/metrics?name[]=bliss_scans_ended_total")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    return int(sum(v for (name, labels), v in parse_metrics(body.decode()).items()
                   if name == "bliss_scans_ended_total" and dict(labels).get("session") == session))
