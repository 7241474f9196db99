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
