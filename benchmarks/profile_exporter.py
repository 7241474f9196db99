"""Run the exporter (same arguments as `python -m exporter`) under cProfile, timed in CPU seconds.

    python -m benchmarks.profile_exporter PREFIX --redis-url ... --listen-address ...

The profiler is off at start. SIGUSR1 starts it, SIGUSR2 stops it and writes the profile to
PREFIX.<n> (n = 1, 2, ...), in pstats format with process CPU time as timer (idle waits cost
nothing). `python -m benchmarks.bench --profile PREFIX` does this around each phase and renames
the files to PREFIX.<phase>.prof. Read them with `python -m pstats FILE` (sort tottime). Greenlet
switches make the call tree approximate; the per-function own times (tottime) are reliable. The
profiler's own overhead inflates the exporter's CPU figures of a profiled run.
"""

import cProfile
import signal
import sys
import time


def main() -> int:
    prefix = sys.argv[1]
    sys.argv = ["bliss-exporter", *sys.argv[2:]]
    from exporter import runtime
    from exporter.cli import main as exporter_main

    runtime.IGNORED_SIGNALS = ("SIGHUP",)  # SIGUSR1 and SIGUSR2 drive the profiler here

    state = {"profiler": None, "n": 0}

    def start(*_):
        if state["profiler"] is None:
            state["profiler"] = cProfile.Profile(time.process_time)
            state["profiler"].enable()

    def stop(*_):
        profiler = state["profiler"]
        if profiler is not None:
            profiler.disable()
            state["n"] += 1
            profiler.dump_stats(f"{prefix}.{state['n']}")
            state["profiler"] = None

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    try:
        return exporter_main()
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
