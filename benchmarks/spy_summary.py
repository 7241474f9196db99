"""Summarise a `py-spy record --format raw` file (bench.py --py-spy): where the exporter's CPU goes.

    python benchmarks/spy_summary.py PREFIX.throughput.txt [--top 25]

Prints the share of samples (1) inclusive, by the exporter function that is on the stack
(innermost exporter frame: what the exporter was doing), (2) inclusive, by library (any frame of
it on the stack), (3) exclusive, by leaf function. py-spy only records samples of a thread that is
running (not waiting in epoll), so shares are of the exporter's CPU time.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
LIBRARIES = {
    "redis-py": ("redis/",),
    "structlog (logs)": ("structlog/", "exporter/logs.py"),
    "prometheus_client": ("prometheus_client/",),
    "json": ("json/",),
    "gevent": ("gevent/",),
}


def frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for raw in stack.split(";"):
        m = FRAME.match(raw.strip())
        out.append((m["func"], m["file"]) if m else (raw.strip(), ""))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file")
    p.add_argument("--top", type=int, default=20)
    a = p.parse_args(argv)
    total = 0
    by_exporter, by_lib, by_leaf = Counter(), Counter(), Counter()
    for line in open(a.file):
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        fs = frames(stack)
        inner = next((f"{func} ({file})" for func, file in reversed(fs) if file.startswith("exporter/")),
                     "(no exporter frame)")
        by_exporter[inner] += n
        for lib, marks in LIBRARIES.items():
            if any(any(mark in file for mark in marks) for _, file in fs):
                by_lib[lib] += n
        func, file = fs[-1]
        by_leaf[f"{func} ({file})"] += n
    if not total:
        print("no samples")
        return 1
    print(f"{total} samples")
    for title, counter in (("innermost exporter function on the stack (inclusive)", by_exporter),
                           ("library anywhere on the stack (inclusive; overlaps)", by_lib),
                           ("leaf function (exclusive)", by_leaf)):
        print(f"\n{title}:")
        for name, n in counter.most_common(a.top):
            print(f"  {n / total * 100:5.1f} %  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
