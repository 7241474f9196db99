"""Facility scale, measured: a long central-store outage, and the figures of the sizing table.

    python -m benchmarks.facility outage [--minutes 10] [--scan-every 2]
    python -m benchmarks.facility sizing [--scans 5000] [--active 1,10,100] [--beamlines 10,50,200]

from the repository root.

Real servers from Debian's packages on 127.0.0.1 (prometheus 2.42, victoria-metrics 1.79), real
exporters (`python -m exporter`) on real Redis Stacks, scans published through blissdata. Prints
Markdown tables (docs/deployment.md, "Facility scale", holds the latest figures).

outage: two beamlines, each with its exporter and a Prometheus agent with the shipped
deploy/facility/beamline-agent.yml (15 s scrapes; only addresses and the beamline changed), writing to
a central Prometheus (remote-write receiver) and a VictoriaMetrics. Both beamlines publish a short scan
every --scan-every seconds throughout. After a minute, both central stores are stopped for --minutes,
then started again. Measured: the agents' WAL on disk during the outage, the time until the central
stores hold the exporters' totals again, and every minute of the outage checked for a gap (4 scrapes of
`up` per minute per beamline, on both stores).

sizing: (1) series one exporter exposes at rest and with N scans active (each with 3 channels and a
saving lima detector); (2) the exporter's CPU and RSS over --scans short scans, and its idle CPU; (3) a
Prometheus agent's RSS and WAL bytes per sample; (4) a central Prometheus and a VictoriaMetrics
receiving B beamlines (one agent scraping B copies of the exporter, each labelled as a beamline, every
max(1, B/50) seconds: 4 to 15 times the default rate), their RSS, CPU per sample and disk per sample.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.procfs import cpu_seconds, rss_bytes
from exporter.devtools.redis_stack import RedisStackServer, free_port
from exporter.devtools.simulator import ScanSpec, open_data_store, publish_scan
from tests.helpers import ExporterProcess, parse_metrics, wait_until
from tests.prometheus import AGENT_FLAGS, RULES, Prometheus, VictoriaMetrics, agent_config, central_config, start_central, value


# -- disk, query results --------------------------------------------------------------------------
def du_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def series_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


# -- outage ---------------------------------------------------------------------------------------
def outage(a, work: Path) -> int:
    beamlines = ["id00", "id01"]
    stacks, stores, exporters = {}, {}, {}
    central_dir, vm_dir = work / "central", work / "vm"
    central_dir.mkdir()
    vm_dir.mkdir()
    central_port, vm_port = free_port(), free_port()

    central = vm = None
    agents = {}
    try:
        for b in beamlines:
            stacks[b] = RedisStackServer().start()
            stacks[b].init_blissdata()
            stores[b] = open_data_store(stacks[b].url)
            exporters[b] = ExporterProcess(["--redis-url", stacks[b].url], work).wait_ready()
        central, vm = start_central(central_dir, central_config([RULES]), central_port), VictoriaMetrics(vm_dir, vm_port)
        for b in beamlines:
            d = work / f"agent-{b}"
            d.mkdir()
            writes = [f"{central.base}/api/v1/write", f"{vm.base}/api/v1/write"]
            agents[b] = (Prometheus(d, [], [], extra_args=AGENT_FLAGS,
                                    config=agent_config(b, [f"127.0.0.1:{exporters[b].port}"], writes)).wait_ready(), d)
        number = [0]

        def scan_for(seconds: float, samples: list | None = None):
            end = time.time() + seconds
            next_sample = time.time()
            while time.time() < end:
                number[0] += 1
                for b in beamlines:
                    publish_scan(stores[b], ScanSpec(session=f"{b}_main", number=number[0], npoints=5, count_time=0.01))
                if samples is not None and time.time() >= next_sample:
                    samples.append((time.time(), {b: du_bytes(agents[b][1] / "wal") for b in beamlines}))
                    next_sample += 30
                time.sleep(max(0.0, a.scan_every - 0.05))

        def totals() -> dict:
            return {b: sum(v for (name, _), v in parse_metrics(exporters[b].metrics_text()).items()
                           if name == "bliss_scan_events_total") for b in beamlines}

        def central_match() -> bool:
            truth = totals()
            for b in beamlines:
                expr = f'sum(bliss_scan_events_total{{beamline="{b}"}})'
                if value(central.query(expr)) != truth[b] or value(vm.query(expr)) != truth[b]:
                    return False
            return True

        print(f"# outage: work in {work}", flush=True)
        scan_for(60)
        wait_until(central_match, 120, 1.0, "central stores hold the totals before the outage")
        wal_before = {b: du_bytes(agents[b][1] / "wal") for b in beamlines}
        central.stop()
        vm.stop()
        down_at = time.time()
        samples: list = []
        scan_for(a.minutes * 60, samples)
        up_at = time.time()
        wal_after = {b: du_bytes(agents[b][1] / "wal") for b in beamlines}
        scanned = number[0]
        central, vm = start_central(central_dir, central_config([RULES]), central_port), VictoriaMetrics(vm_dir, vm_port)
        restarted = time.time()
        wait_until(central_match, 900, 1.0, "central stores caught up after the outage")
        caught_up = time.time() - restarted
        rss = {b: rss_bytes(agents[b][0].proc.pid) / 2**20 for b in beamlines}
        # every minute of the outage: 4 scrapes (15 s) of `up` per beamline, on both stores
        gaps = []
        minute = down_at + 60
        while minute <= up_at:
            for b in beamlines:
                for store in (central, vm):
                    n = value(store.query(f'count_over_time(up{{beamline="{b}"}}[1m])', at=minute))
                    if n is None or n < 4:
                        gaps.append((type(store).__name__, b, round(minute - down_at), n))
            minute += 60
        growth = {b: wal_after[b] - wal_before[b] for b in beamlines}
        per_hour = {b: growth[b] / ((up_at - down_at) / 3600) for b in beamlines}
        print("\n| outage | scans published per beamline | central stores caught up after | minutes checked | gaps |")
        print("|---|---:|---:|---:|---|")
        print(f"| {(up_at - down_at) / 60:.1f} min | {scanned} | {caught_up:.0f} s | "
              f"{int((up_at - down_at) // 60)} x 2 beamlines x 2 stores | {gaps or 'none'} |")
        print("\n| beamline | agent WAL before | after | growth per hour of outage | agent RSS |")
        print("|---|---:|---:|---:|---:|")
        for b in beamlines:
            print(f"| {b} | {mib(wal_before[b])} | {mib(wal_after[b])} | {mib(per_hour[b])} | {rss[b]:.0f} MiB |")
        print("\nWAL size every 30 s of the outage (bytes):",
              ", ".join(f"{t - down_at:.0f}s: {sizes['id00']}" for t, sizes in samples[::4]))
        return 1 if gaps else 0
    finally:
        for agent, _ in agents.values():
            agent.stop()
        for server in (central, vm):
            if server is not None:
                server.stop()
        for proc in exporters.values():
            proc.proc.terminate()
            proc.proc.wait(30)
        for stack in stacks.values():
            stack.cleanup()


# -- sizing ---------------------------------------------------------------------------------------
def sizing(a, work: Path) -> int:
    from blissdata.streams.default import Stream

    from tests.builders import lima_definition, new_scan

    stack = RedisStackServer().start()
    stack.init_blissdata()
    store = open_data_store(stack.url)
    exporter = ExporterProcess(["--redis-url", stack.url], work).wait_ready()
    pid = exporter.proc.pid
    servers = []
    try:
        print(f"# sizing: work in {work}", flush=True)
        # (1) series, at rest (three scan types seen) and with N scans active
        for i, scan_type in enumerate(("loopscan", "ascan", "ct"), 1):
            publish_scan(store, ScanSpec(session="id00_main", number=i, scan_type=scan_type, npoints=5, count_time=0.01))
        time.sleep(2)
        rows = [("at rest (1 session, 3 scan types)", series_lines(exporter.metrics_text()))]
        active, number = [], 100
        for n in a.active:
            while len(active) < n:
                number += 1
                scan = new_scan(store, "id00_main", number, npoints=1000, count_time=0.1)
                streams = [scan.create_stream(Stream.make_definition(f"timer:ch{c}", "float64")) for c in range(3)]
                det = scan.create_stream(lima_definition("eiger1:image", saving=True))
                scan.prepare()
                scan.start()
                for s in streams:
                    s.send(1.0)
                det.send({"last_index": 0, "last_index_saved": 0})
                active.append((scan, streams, det))
            time.sleep(2)
            for scan, streams, det in active:  # progress twice: ETAs known
                for s in streams:
                    s.send(2.0)
                det.send({"last_index": 1, "last_index_saved": 1})
            time.sleep(1)
            exporter.metrics_text()
            time.sleep(1)
            rows.append((f"{n} scans active", series_lines(exporter.metrics_text())))
        for scan, streams, det in active:
            scan.stop()
            scan.info["end_reason"] = "SUCCESS"
            scan.close()
        time.sleep(2)
        rest = series_lines(exporter.metrics_text())
        print("\n| exporter | series | samples/s at 15 s scrapes |")
        print("|---|---:|---:|")
        for what, n in rows:
            print(f"| {what} | {n} | {n / 15:.1f} |")

        # (2) the exporter's CPU and RSS over many short scans, and idle
        cpu0, t0 = cpu_seconds(pid), time.time()
        time.sleep(20)
        idle_ms = (cpu_seconds(pid) - cpu0) / (time.time() - t0) * 1000
        rss0, cpu0, t0 = rss_bytes(pid) / 2**20, cpu_seconds(pid), time.time()
        for i in range(a.scans):
            publish_scan(store, ScanSpec(session="id00_main", number=1000 + i, npoints=5, count_time=0.01, batch=5))
        wait_until(lambda: exporter.value("bliss_scans_ended_total", session="id00_main", scan_type="loopscan",
                                          end_reason="SUCCESS") >= a.scans + 1, 300, 0.5, "every scan ended")
        busy = cpu_seconds(pid) - cpu0 - idle_ms / 1000 * (time.time() - t0)
        rss1 = rss_bytes(pid) / 2**20
        day = busy / a.scans * a.scans_per_day + idle_ms / 1000 * 86400
        print(f"\n| exporter over {a.scans} short scans | figure |")
        print("|---|---:|")
        print(f"| CPU per scan (idle cost removed) | {busy / a.scans * 1000:.2f} ms |")
        print(f"| idle CPU | {idle_ms:.2f} ms/s |")
        print(f"| RSS before / after | {rss0:.0f} / {rss1:.0f} MiB |")
        print(f"| series after (scans ended, none active) | {series_lines(exporter.metrics_text())} (before: {rest}) |")
        print(f"| a day of {a.scans_per_day} short scans | {day:.0f} CPU s ({day / 864:.2f} % of a core) |")

        # (3) + (4) central stores receiving B beamlines; one agent per size, scraping every max(1, B/50) s
        print("\n| beamlines | series | samples/s (scrapes every max(1, beamlines/50) s) | store | RSS | CPU per 1000 samples | "
              "disk per million samples | agent RSS | agent WAL per million samples |")
        print("|---:|---:|---:|---|---:|---:|---:|---:|---:|")
        for count in a.beamlines:
            d = work / f"central-{count}"
            d.mkdir()
            central = start_central(d, central_config([RULES]))
            vm = VictoriaMetrics(d)
            names = [f"bl{i:03d}" for i in range(count)]
            interval = max(1, count // 50)  # the one exporter answers every beamline's scrapes: at most 50/s
            agent_dir = d / "agent"
            agent_dir.mkdir()
            agent = Prometheus(agent_dir, [], [], extra_args=AGENT_FLAGS,
                               config=agent_config("", [f"127.0.0.1:{exporter.port}"],
                                                   [f"{central.base}/api/v1/write", f"{vm.base}/api/v1/write"],
                                                   scrape_interval=f"{interval}s", beamlines=names)).wait_ready()
            servers[:] = [agent, central, vm]
            wait_until(lambda: value(central.query("count(up)")) == count, 120, 1.0, f"{count} beamlines scraped")
            time.sleep(10)  # past the first writes
            start = {central: cpu_seconds(central.proc.pid), vm: cpu_seconds(vm.proc.pid)}
            wal0 = du_bytes(agent_dir / "wal")
            appended0 = _own_metric(agent.base, "prometheus_agent_samples_appended_total")
            t0 = time.time()
            time.sleep(a.seconds)
            elapsed = time.time() - t0
            appended = _own_metric(agent.base, "prometheus_agent_samples_appended_total") - appended0
            wal = du_bytes(agent_dir / "wal") - wal0
            series = value(central.query("count({__name__=~'.+', beamline=~'bl.*'})")) or 0
            # everything each store received since it started, and its disk now
            received = {central: _own_metric(central.base, "prometheus_tsdb_head_samples_appended_total"),
                        vm: _own_metric(vm.base, "vm_rows_added_to_storage_total")}
            for name, server in (("prometheus", central), ("victoria-metrics", vm)):
                cpu = cpu_seconds(server.proc.pid) - start[server]
                disk = du_bytes(d / ("tsdb" if server is central else "data"))
                total_samples = received[server]
                print(f"| {count} | {series:.0f} | {appended / elapsed:.0f} | {name} | {rss_bytes(server.proc.pid) / 2**20:.0f} MiB | "
                      f"{cpu / max(appended, 1) * 1000 * 1000:.2f} ms | {disk / max(total_samples, 1) * 1e6 / 2**20:.1f} MiB | "
                      f"{rss_bytes(agent.proc.pid) / 2**20:.0f} MiB | {wal / max(appended, 1) * 1e6 / 2**20:.1f} MiB |", flush=True)
            for server in servers:
                server.stop()
            servers.clear()
            shutil.rmtree(d, ignore_errors=True)
        return 0
    finally:
        for server in servers:
            server.stop()
        exporter.proc.terminate()
        exporter.proc.wait(30)
        stack.cleanup()


def _own_metric(base: str, name: str) -> float:
    """The sum of a server's own metric's samples (its /metrics)."""
    text = requests.get(base + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    o = sub.add_parser("outage")
    o.add_argument("--minutes", type=float, default=10)
    o.add_argument("--scan-every", type=float, default=2.0)
    s = sub.add_parser("sizing")
    s.add_argument("--scans", type=int, default=5000)
    s.add_argument("--scans-per-day", type=int, default=10000)
    s.add_argument("--active", type=lambda v: [int(x) for x in v.split(",")], default=[1, 10, 100])
    s.add_argument("--beamlines", type=lambda v: [int(x) for x in v.split(",")], default=[10, 50, 200])
    s.add_argument("--seconds", type=float, default=60, help="measuring time per central-store size")
    p.add_argument("--workdir", type=Path)
    a = p.parse_args()
    work = a.workdir or Path(tempfile.mkdtemp(prefix="bliss-facility-"))
    work.mkdir(parents=True, exist_ok=True)
    return outage(a, work) if a.what == "outage" else sizing(a, work)


if __name__ == "__main__":
    sys.exit(main())
