"""Summarise a `py-spy record --format raw` file (benchmarks.bench --py-spy): where the exporter's CPU goes.

    python -m benchmarks.spy_summary PREFIX.throughput.txt [--top 25]

Prints the share of samples (1) inclusive, by the exporter function that is on the stack
(innermost exporter frame: what the exporter was doing), (2) inclusive, by library (any frame of
it on the stack), (3) exclusive, by leaf function. py-spy only records samples of a thread that is
running (not waiting in epoll), so shares are of the exporter's CPU time.

`--matrix` adds (4): each exporter function's share split by what runs under it (JSON parsing,
JSON rendering, the structlog pipeline, prometheus_client, Redis I/O through redis-py and gevent, the
exporter's own code); `--per-unit-ms X` also prints each share as CPU ms per unit (e.g. the
exporter's CPU ms per scan of the run).
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


#: what runs under the innermost exporter frame, first match wins (checked from the leaf up)
CATEGORIES = (
    ("JSON parse", ("json/decoder.py", "json/__init__.py:loads", "redis/commands/json/")),
    ("JSON render", ("json/encoder.py",)),
    ("structlog", ("structlog/",)),
    ("prometheus", ("prometheus_client/",)),
    ("redis-py+gevent", ("redis/", "gevent/", "hiredis")),
)


def category(fs: list[tuple[str, str]], inner_at: int) -> str:
    below = fs[inner_at + 1:] if inner_at >= 0 else fs
    for func, file in reversed(below):
        for name, marks in CATEGORIES:
            if any(mark in file or mark in f"{file}:{func}" for mark in marks):
                return name
    return "own code" if inner_at >= 0 else "other"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file")
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--matrix", action="store_true", help="split each exporter function by what runs under it")
    p.add_argument("--per-unit-ms", type=float, metavar="X",
                   help="with --matrix: also print CPU ms per unit, a share times X (e.g. exporter CPU ms per scan)")
    a = p.parse_args(argv)
    matrix: dict[str, Counter] = {}
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
        inner_at = max((i for i, (_, file) in enumerate(fs) if file.startswith("exporter/")), default=-1)
        matrix.setdefault(inner, Counter())[category(fs, inner_at)] += n
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
    if a.matrix:
        cats = [name for name, _ in CATEGORIES] + ["own code", "other"]
        unit = f" (ms per unit: share x {a.per_unit_ms})" if a.per_unit_ms else ""
        print(f"\nby exporter function and what runs under it, % of samples{unit}:\n")
        print("| exporter function | total | " + " | ".join(cats) + " |")
        print("|---|---:|" + "---:|" * len(cats))
        fmt = (lambda n: f"{n / total * a.per_unit_ms:.3f}") if a.per_unit_ms else (lambda n: f"{n / total * 100:.1f}")
        for name, n in by_exporter.most_common(a.top):
            row = matrix[name]
            print(f"| {name} | {fmt(n)} | " + " | ".join(fmt(row[c]) if row[c] else "" for c in cats) + " |")
        col = Counter()
        for row in matrix.values():
            col.update(row)
        print(f"| **all** | {fmt(total)} | " + " | ".join(fmt(col[c]) for c in cats) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
