"""sinks.logs: where and when log lines are written."""

from __future__ import annotations

import gevent

from exporter.sinks.logs import CoalescingBytesLogger


def test_a_greenlets_lines_go_out_together_as_soon_as_it_waits_and_others_at_once(tmp_path):
    path = tmp_path / "log"
    seen = []
    with open(path, "wb") as file:  # buffered, as sys.stdout.buffer
        logger = CoalescingBytesLogger(file)

        def cycle():
            logger.info(b'{"event":"scan_start"}')
            logger.info(b'{"event":"scan_end"}')
            seen.append(path.read_bytes())  # the cycle is still running: not written yet
            gevent.sleep(0)  # waits (as on its next Redis read): the hub writes them
            seen.append(path.read_bytes())

        gevent.spawn(cycle).join()
        logger.warning(b'{"event":"not_in_a_greenlet"}')
        seen.append(path.read_bytes())
    assert seen == [
        b"",
        b'{"event":"scan_start"}\n{"event":"scan_end"}\n',
        b'{"event":"scan_start"}\n{"event":"scan_end"}\n{"event":"not_in_a_greenlet"}\n',
    ]


def test_a_scrape_in_the_same_hub_turn_as_a_log_line_sees_the_line_written_first(tmp_path):
    """What /metrics (or the status page) shows is already in the log: the HTTP side lets the flush run first."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import GaugeMetricFamily

    from exporter.web.http import Routes

    path = tmp_path / "log"
    written_at_scrape = []

    class LogSize:
        def collect(self):
            written_at_scrape.append(path.read_bytes())
            yield GaugeMetricFamily("log_bytes", "bytes written when scraped", value=path.stat().st_size)

    registry = CollectorRegistry()
    registry.register(LogSize())
    routes = Routes(registry, health=None, telemetry_path="/metrics", status_page=lambda _: "")
    with open(path, "wb") as file:
        logger = CoalescingBytesLogger(file)

        def cycle_then_scrape():  # a scrape whose request the hub saw in the same turn as the cycle's end
            logger.info(b'{"event":"scan_end"}')
            answer = []
            body = b"".join(routes({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics"},
                                   lambda status, headers: answer.append(status)))
            return answer, body

        answer, body = gevent.spawn(cycle_then_scrape).get()
    assert answer == ["200 OK"]
    assert written_at_scrape == [b'{"event":"scan_end"}\n']
    assert b"log_bytes 21.0" in body
