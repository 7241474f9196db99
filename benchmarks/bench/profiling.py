"""Optional profiles of the exporter, one per phase: cProfile (--profile) and py-spy (--py-spy)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import wait_until

from .processes import Child


class Profiler:
    """Starts and stops the profiles of the exporter around each phase, as the flags ask."""

    def __init__(self, args, workdir: Path, log):
        self.a = args
        self.workdir = workdir
        self.log = log
        self.written = 0  # profiles the exporter wrote (it numbers them)
        self.spy: subprocess.Popen | None = None

    def start(self, phase: str, exporter: Child) -> None:
        if self.a.py_spy:
            self.start_py_spy(phase, exporter)
        if self.a.profile:
            exporter.proc.send_signal(signal.SIGUSR1)
            time.sleep(0.2)

    def stop(self, phase: str, exporter: Child) -> None:
        if self.a.py_spy:
            self.stop_py_spy(phase)
        if not self.a.profile:
            return
        self.written += 1
        exporter.proc.send_signal(signal.SIGUSR2)
        written = Path(f"{self.a.profile}.{self.written}")
        wait_until(written.exists, 30, 0.1, f"profile {written}")
        time.sleep(0.5)
        target = Path(f"{self.a.profile}.{phase}.prof")
        written.replace(target)
        self.log(f"exporter profile of phase {phase}: {target}")

    def start_py_spy(self, phase: str, exporter: Child) -> None:
        """py-spy record --gil (raw collapsed stacks; only samples holding the GIL, i.e. not idle in the gevent hub)."""
        out = Path(f"{self.a.py_spy}.{phase}.txt")
        spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if spy is None:
            raise RuntimeError("--py-spy: no py-spy next to the interpreter nor on PATH")
        self.spy = subprocess.Popen([spy, "record", "--gil", "--pid", str(exporter.pid), "--rate", "1000", "--nonblocking",
                                     "--format", "raw", "--output", str(out)],
                                    stdout=subprocess.DEVNULL, stderr=open(self.workdir / "py-spy.err", "a"))
        time.sleep(1.0)  # attached

    def stop_py_spy(self, phase: str) -> None:
        self.spy.send_signal(signal.SIGINT)  # writes the file and exits
        self.spy.wait(30)
        self.log(f"py-spy samples of the exporter, phase {phase}: {self.a.py_spy}.{phase}.txt")
