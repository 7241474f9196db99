"""Instrument: the exporter, unchanged, counting its Redis round trips by the exporter function that made them.

Every `send_packed_command` of redis-py (one per command, one per pipeline) is one round trip; it
is attributed to the innermost `exporter/` frame on the stack (e.g. DataStoreSource.read_states)
and the commands it carried are counted too. The counts are written as JSON to $ROUND_TRIPS_FILE
every second (and at exit). Divide by the scans of a run to get round trips per scan:

    ROUND_TRIPS_FILE=/tmp/rt.json python -m benchmarks.bench --skip memory --skip latency \\
        --no-baseline --scans 200 --exporter-command "python -m benchmarks.experiments.count_round_trips"

The instrumentation costs CPU: do not read the exporter's CPU figures of such a run.
"""

from gevent import monkey

monkey.patch_all()  # as exporter.cli.main does, before redis is imported

import atexit  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import redis.connection  # noqa: E402

OUT = Path(os.environ.get("ROUND_TRIPS_FILE", "round_trips.json"))
trips: Counter = Counter()
commands: Counter = Counter()
_send = redis.connection.AbstractConnection.send_packed_command


def caller() -> str:
    f = sys._getframe(2)
    while f is not None:
        name = f.f_code.co_filename
        if "/exporter/" in name and "/benchmarks/" not in name and not name.endswith("/store/batch.py"):
            return f"{f.f_code.co_qualname} ({name.rsplit('/exporter/', 1)[1]})"
        f = f.f_back
    return "(no exporter frame)"


def send_packed_command(self, command, check_health=True):
    where = caller()
    trips[where] += 1
    # a packed command is bytes or a list of chunks; count the commands by their RESP headers
    chunks = [command] if isinstance(command, (bytes, bytearray, memoryview, str)) else command
    data = b"".join(bytes(c) if not isinstance(c, str) else c.encode() for c in chunks)
    commands[where] += data.count(b"\r\n*") + data.startswith(b"*")  # "*<n>" starts each command
    return _send(self, command, check_health)


def dump() -> None:
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps({"round_trips": dict(trips), "commands": dict(commands)}, indent=1))
    tmp.replace(OUT)


def writer() -> None:
    while True:
        gevent.sleep(1.0)
        dump()


redis.connection.AbstractConnection.send_packed_command = send_packed_command
atexit.register(dump)

if __name__ == "__main__":
    from exporter.cli import main

    gevent.spawn(writer)
    sys.argv = ["bliss-exporter", *sys.argv[1:]]
    sys.exit(main())
