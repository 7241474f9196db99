"""Test helpers: a real exporter process (paused at will), metrics and status-page parsing, waiting for
exact values."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.devtools.redis_stack import free_port

ROOT = Path(__file__).resolve().parent.parent
#: Metrics with a `role` label (scan, sequence, subscan): ExporterProcess.value() defaults it to "scan".
ROLE_LABELLED = ("bliss_scans_ended_total", "bliss_scan_duration_seconds", "bliss_active_scans")
#: The session of ExporterProcess.barrier()'s scans, apart from the sessions a test asserts on.
BARRIER_SESSION = "barrier"
_barrier_numbers = itertools.count(1)  # unique scan numbers, across exporters and tests of one run


def parse_metrics(text: str) -> dict:
    """{(sample name, frozenset(labels.items())): value} of an exposition text."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


class Page(HTMLParser):
    """Rows (attributes + text) and links of a rendered page."""

    def __init__(self, text: str):
        super().__init__()
        self.rows: list[dict] = []
        self.links: list[str] = []
        self.title = ""
        self.refresh = None
        self.ids: dict[str, str] = {}
        self._row = None
        self._in_title = False
        self._open_ids: list[tuple[str, str]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self._row = {"class": attrs.get("class") or "", "scan": attrs.get("data-scan"),
                         "session": attrs.get("data-session"), "text": ""}
            self.rows.append(self._row)
        elif tag == "br" and self._row is not None:
            self._row["text"] += " "
        elif tag == "a":
            self.links.append(attrs.get("href"))
        elif tag == "title":
            self._in_title = True
        elif tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh":
            self.refresh = attrs.get("content")
        if attrs.get("id"):
            self._open_ids.append((tag, attrs["id"]))
            self.ids.setdefault(attrs["id"], "")

    def handle_endtag(self, tag):
        if self._row is not None and tag in ("td", "th", "br"):
            self._row["text"] += " "
        if tag == "tr":
            self._row = None
        elif tag == "title":
            self._in_title = False
        if self._open_ids and self._open_ids[-1][0] == tag:
            self._open_ids.pop()

    def handle_data(self, data):
        if self._row is not None:
            self._row["text"] += data
        if self._in_title:
            self.title += data
        for _, ident in self._open_ids:
            self.ids[ident] += data

    def row(self, scan: str, kind: str) -> dict:
        (found,) = [r for r in self.rows if r["scan"] == scan and kind in r["class"].split()]
        return found


def require_tool(name: str, *alternatives: str) -> str:
    """Path of a command (beside the interpreter, e.g. pip-installed hadolint, or on PATH).

    Missing, the test is skipped on a developer's machine but fails under CI=true: CI must not pass
    by skipping what scripts/bootstrap.sh --test should have installed.
    """
    import shutil

    import pytest

    for candidate in (name, *alternatives):
        local = Path(sys.executable).parent / candidate
        found = str(local) if local.exists() else shutil.which(candidate)
        if found:
            return found
    message = f"{name} is not installed (scripts/bootstrap.sh --test installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


class ExporterProcess:
    """`python -m exporter ...` as a child process on a free port, JSON logs captured."""

    def __init__(self, args: list[str], tmp_path: Path, env: dict | None = None, preexec_fn=None,
                 port: int | None = None):
        self.port = port or free_port()
        self.log_path = tmp_path / f"exporter-{self.port}.log"
        self.err_path = tmp_path / f"exporter-{self.port}.err"
        full_env = dict(os.environ)
        full_env.pop("BEACON_HOST", None)
        full_env.update(env or {})
        cmd = [sys.executable, "-m", "exporter", "--listen-address", f"127.0.0.1:{self.port}",
               "--log-format", "json", *args]
        self.proc = subprocess.Popen(cmd, stdout=open(self.log_path, "wb"), stderr=open(self.err_path, "wb"),
                                     env=full_env, cwd=ROOT, preexec_fn=preexec_fn)
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, path: str = "/readyz", timeout: float = 30.0) -> "ExporterProcess":
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"exporter exited {self.proc.returncode}: {self.stderr()}{self.stdout()}")
            try:
                return requests.get(self.base + path, timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_until(ready, timeout, what=f"exporter {path}")
        return self

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.base + path, timeout=10, **kw)

    def metrics_text(self, path: str = "/metrics") -> str:
        r = self.get(path)
        r.raise_for_status()
        return r.text

    def metrics(self) -> dict:
        return parse_metrics(self.metrics_text())

    def value(self, name: str, **labels) -> float | None:
        """The sample with exactly these labels; `role` defaults to "scan" on the role-labelled metrics."""
        if name.startswith(ROLE_LABELLED) and "role" not in labels:
            labels["role"] = "scan"
        return self.metrics().get((name, frozenset(labels.items())))

    def wait_value(self, expected: float, name: str, timeout: float = 20.0, **labels) -> None:
        """Wait until the sample equals expected.

        It returns as soon as the value is reached: it does not check that the value stays. To assert
        that nothing more is counted later (no over-count), call barrier() and assert after it.
        """
        wait_until(lambda: self.value(name, **labels) == expected, timeout,
                   what=f"{name}{labels} == {expected} (now {self.value(name, **labels)})")

    def barrier(self, data_store, session: str = BARRIER_SESSION, timeout: float = 20.0) -> dict:
        """Publish a barrier scan and wait until the exporter counted its end; returns its scan_end line.

        The barrier is a small scan without data streams (`<n>_barrier`, type "barrier", end_reason
        SUCCESS), published with blissdata's API through `data_store` in `session`, which must pass the
        exporter's --session filter. The exporter handles scans in order: the scan history is read in
        order (so every scan created before the barrier is watched before it), and the state streams of
        all watched scans are read in one multiplexed XREAD, a CLOSED scan being closed (final stream
        counts, end, scan_end line) in the step that read it, in the order the scans were watched. So
        once the barrier's end is counted:
        - every scan that was closed before the barrier was published is fully counted, and never
          counted again: the values asserted after the barrier are final, an over-count shows;
        - every scan created before it was discovered (or skipped, or filtered out).
        It says nothing of data still arriving on scans that are active (polled on their own schedule).
        It then scrapes once: a series new since the last scrape shows 0 in that scrape, its first counts
        in the next ones (exporter/sinks/first_scrape.py), so the values read after it are final.

        The barrier adds a scan_start and a scan_end line and series of its own session: assert on
        logs(event, session=...) and on metrics of the test's sessions.
        """
        number = next(_barrier_numbers)
        identity = {"name": "barrier", "number": number, "data_policy": "None", "session": session}
        scan = data_store.create_scan(identity, info={"type": "barrier", "title": "barrier", "npoints": 0,
                                                      "scan_nb": number, "acquisition_chain": {}})
        scan.prepare()
        scan.start()
        scan.stop()
        scan.info["end_reason"] = "SUCCESS"
        scan.close()

        def ended():
            if self.proc.poll() is not None:
                raise AssertionError(f"exporter exited {self.proc.returncode}: {self.stderr()}")
            return [e for e in self.logs("scan_end") if e.get("key") == scan.key]

        (end,) = wait_until(ended, timeout, what=f"the end of barrier scan {number}_barrier ({scan.key})")
        assert end["session"] == session and end["end_reason"] == "SUCCESS", end
        self.metrics_text()
        return end

    def stdout(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def logs(self, event: str | None = None, session: str | None = None) -> list[dict]:
        """The JSON log lines, of one event and one session if given."""
        lines = []
        for line in self.stdout().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                raise AssertionError(f"log line is not JSON: {line!r}") from None
            if (event is None or entry.get("event") == event) and (session is None or entry.get("session") == session):
                lines.append(entry)
        return lines

    def stop(self, sig=signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("exporter did not stop on signal")
        return self.proc.returncode


def paused(exporter: ExporterProcess):
    """Context: the exporter process is frozen (SIGSTOP) meanwhile, as if it could not read."""
    class _Paused:
        def __enter__(self):
            os.kill(exporter.proc.pid, signal.SIGSTOP)

        def __exit__(self, *exc):
            os.kill(exporter.proc.pid, signal.SIGCONT)
    return _Paused()


def run_cli(args: list[str], env: dict | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.pop("BEACON_HOST", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=ROOT)


class BeaconPeer:
    """A TCP peer speaking Beacon's wire protocol for the data-Redis query (type 32 -> 34 or 33)."""

    def __init__(self, host: str, port: int | str, fail: str | None = None):
        self.answer = (host, port)  # port: a number, or a socket path (a client on Beacon's own host)
        self.fail = fail
        self.requests = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            data = b""
            while True:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
                while len(data) >= 8:
                    mtype, length = struct.unpack("<ii", data[:8])
                    if len(data) < 8 + length:
                        break
                    payload, data = data[8:8 + length], data[8 + length:]
                    key = payload.split(b"|")[0]
                    self.requests += 1
                    if mtype != 32:
                        continue
                    if self.fail:
                        body, rtype = key + b"|" + self.fail.encode(), 33
                    else:
                        body, rtype = key + f"|{self.answer[0]}|{self.answer[1]}".encode(), 34
                    conn.sendall(struct.pack("<ii", rtype, len(body)) + body)

    def close(self):
        self.sock.close()
