"""Experiment: the exporter with TCP_NODELAY on every accepted HTTP connection (exporter/ untouched).

gevent's pywsgi writes the response headers and the body with two send() calls. Without
TCP_NODELAY, Nagle's algorithm holds the body until the client ACKs the headers, and a keep-alive
client delays that ACK (~40 ms on Linux): every back-to-back scrape on a keep-alive connection
takes ~40 ms more. Compare:

    python benchmarks/bench.py --skip throughput --bulk-scans 2000
    python benchmarks/bench.py --skip throughput --bulk-scans 2000 \
        --exporter-command "python benchmarks/experiments/nodelay_exporter.py"

Monkeypatches exporter.http.make_server as the exporter is today; may need updating if it changes.
"""

import socket
import sys

from gevent.pywsgi import WSGIServer

import exporter.app
import exporter.http


class NoDelayWSGIServer(WSGIServer):
    def handle(self, sock, address):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return super().handle(sock, address)


def make_server(host, port, app, ssl_args=None):
    return NoDelayWSGIServer((host, port), app, log=None, error_log=None, **(ssl_args or {}))


exporter.http.make_server = make_server
exporter.app.make_server = make_server

if __name__ == "__main__":
    from exporter.cli import main

    sys.argv = ["bliss-exporter", *sys.argv[1:]]
    sys.exit(main())
