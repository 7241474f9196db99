"""The benchmark's phases in the order a run takes them, by the name --skip gives; each adds to the run's results."""

from . import latency, memory, short, throughput

PHASES = {
    "throughput": throughput.run,
    "short": short.run,
    "memory": memory.run,
    "latency": latency.run,
}
