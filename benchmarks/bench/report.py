"""The report of a run: a Markdown table per phase, then every target with PASS or FAIL."""

from __future__ import annotations

from .counts import EVENT_TYPES, exact

#: the scan watcher remembers up to this many ended scan keys (to ignore duplicates): RSS grows until then
ENDED_KEYS_CAP = 20000


def report(r: dict, args) -> bool:
    """Print the report of a run's results; True when every target passed."""
    lines = []
    out = lines.append
    verdicts = []
    for phase, section in (("throughput", report_throughput), ("short", report_short), ("memory", report_memory)):
        if r.get(phase):
            section(r[phase], args, out, verdicts)
    if r.get("latency"):
        report_latency(r["latency"], args, out, verdicts, r["memory"]["scans"] if r.get("memory") else None)
    if r.get("delay"):
        report_delay(r["delay"], args, out, verdicts)
    side = r.get("side_checks")
    if side:
        for sess, v in side.items():
            out(f"   {sess}: exporter counts exact: {exact(v['truth'], v['exporter'])}")
    errs = r.get("exporter_errors")
    if errs:
        out(f"   exporter watcher errors {errs['watcher_errors']:.0f}, scans lost {errs['scans_lost']:.0f}, "
            f"skipped {errs['scans_skipped']:.0f}")
    out("")
    out("| target | result | measured |")
    out("|---|---|---|")
    for name, ok, measured in verdicts:
        out(f"| {name} | {'PASS' if ok else 'FAIL'} | {measured} |")
    print("\n".join(lines), flush=True)
    return all(ok for _, ok, _ in verdicts)


def counts_table(out, truth: dict, exp: dict, base: dict | None) -> None:
    """Events by type and points: the publisher's truth, the exporter's and the baseline's counts."""
    out("| event_type | truth | exporter | baseline (seed port) | baseline error |")
    out("|---|---:|---:|---:|---:|")
    for t in EVENT_TYPES + ("points",):
        tv = truth["points"] if t == "points" else truth["events"].get(t, 0)
        ev = exp["points"] if t == "points" else exp["events"].get(t, 0)
        bv = "-" if base is None else (base["points"] if t == "points" else base["events"].get(t, 0))
        be = "-" if base is None else pct(bv, tv)
        out(f"| {t} | {tv} | {ev} | {bv} | {be} |")


def pct(seen: float, truth: float) -> str:
    """A count against its truth: "exact", the relative error, or nothing when both are 0."""
    if truth == 0:
        return "" if seen == 0 else "+inf"
    d = (seen - truth) / truth * 100
    return "exact" if seen == truth else f"{d:+.1f} %"


def cpu_and_counts(res: dict, out, verdicts: list, workload: str, exact_target: str, max_percent: int, max_fraction: int) -> None:
    """A workload's exporter CPU against the publisher's (at most `max_percent` %) and the baseline's (at
    most 1/`max_fraction`), and its counts against the truth: the ratios printed, the targets judged."""
    truth, exp, base = res["truth"], res["exporter"], res["baseline"]
    r_pub = res["exporter_cpu"] / res["publisher_cpu"] if res["publisher_cpu"] else float("inf")
    out(f"exporter CPU / publisher CPU = {r_pub * 100:.2f} %")
    verdicts.append((f"{workload}: {exact_target}", exact(truth, exp),
                     "exporter exact" if exact(truth, exp) else "exporter counts differ"))
    verdicts.append((f"{workload}: exporter CPU <= {max_percent} % of publisher CPU", r_pub <= max_percent / 100,
                     f"{r_pub * 100:.2f} %"))
    if res["baseline_cpu"]:
        r_base = res["exporter_cpu"] / res["baseline_cpu"]
        out(f"exporter CPU / baseline CPU = {r_base:.3f} (1/{1 / r_base if r_base else float('inf'):.1f})")
        verdicts.append((f"{workload}: exporter CPU <= 1/{max_fraction} of baseline CPU", r_base <= 1 / max_fraction,
                         f"1/{1 / r_base:.1f}" if r_base else "0"))
        if base is not None:
            out(f"baseline exact: {exact(truth, base)}")


def report_throughput(tp: dict, args, out, verdicts: list) -> None:
    """A: counts against the truth, CPU of each process, the data-heavy targets."""
    truth, exp, base = tp["truth"], tp["exporter"], tp["baseline"]
    out(f"A. Throughput: {truth['scans']} scans, {args.streams} streams/scan, {args.events} sends/stream, "
        f"{args.points} points/send, {args.concurrent} concurrent/publisher, {args.publishers} publisher(s)")
    out("")
    counts_table(out, truth, exp, base)
    out("")
    out("| process | CPU s | wall s (from publish start to done) |")
    out("|---|---:|---:|")
    out(f"| publisher(s) | {tp['publisher_cpu']:.2f} | {tp['publisher_wall']:.1f} |")
    out(f"| exporter | {tp['exporter_cpu']:.2f} | {tp['exporter_wall']:.1f} |")
    if tp["baseline_cpu"] is not None:
        out(f"| baseline (seed port) | {tp['baseline_cpu']:.2f} | {tp['baseline_wall']:.1f} |")
    out(f"| redis-server (all clients) | {tp['redis_cpu']:.2f} | |")
    out("")
    cpu_and_counts(tp, out, verdicts, "data-heavy", "counts exact at the publisher's full rate", 1, 30)
    out("")


def report_short(sh: dict, args, out, verdicts: list) -> None:
    """S: counts against the truth, CPU per scan of each process, round trips and end visibility, the short-scan targets."""
    truth, exp, base = sh["truth"], sh["exporter"], sh["baseline"]
    n = sh["scans"]
    out(f"S. Short scans: {n} scans = {args.short_scans} plain ({args.short_streams} channels x "
        f"{args.short_events} points, 1 point per send, {args.short_concurrent} at a time) + "
        f"{args.short_sequences} sequences ({args.short_children} children each, one after the other, "
        f"SUBSCANS references), published at full rate")
    out("")
    counts_table(out, truth, exp, base)
    out("")
    out("| process | CPU s | CPU ms/scan | wall s (from publish start to done) |")
    out("|---|---:|---:|---:|")
    out(f"| publisher | {sh['publisher_cpu']:.2f} | {sh['publisher_cpu'] / n * 1000:.2f} | {sh['publisher_wall']:.1f} |")
    out(f"| exporter | {sh['exporter_cpu']:.2f} | {sh['exporter_cpu'] / n * 1000:.2f} | {sh['exporter_wall']:.1f} |")
    if sh["baseline_cpu"] is not None:
        out(f"| baseline (seed port) | {sh['baseline_cpu']:.2f} | {sh['baseline_cpu'] / n * 1000:.2f} | "
            f"{sh['baseline_wall']:.1f} |")
    out(f"| redis-server (all clients) | {sh['redis_cpu']:.2f} | {sh['redis_cpu'] / n * 1000:.2f} | |")
    out("")
    cpu_and_counts(sh, out, verdicts, "short scans", "counts exact", 3, 20)
    rt = sh.get("round_trips")
    if rt:
        out("")
        out(f"Round trips of a second, instrumented exporter over the same workload ({rt['scans']} scans; "
            f"its counts exact: {rt['exact']}):")
        out("")
        out("| exporter call | round trips / scan | commands / scan |")
        out("|---|---:|---:|")
        trips, cmds = rt["round_trips"], rt["commands"]
        for where in sorted(trips, key=lambda w: -trips[w]):
            if trips[where] or cmds.get(where):
                out(f"| `{where}` | {trips[where] / rt['scans']:.2f} | {cmds.get(where, 0) / rt['scans']:.2f} |")
        out(f"| **total** | **{sum(trips.values()) / rt['scans']:.2f}** | **{sum(cmds.values()) / rt['scans']:.2f}** |")
        out("")
        v = rt["visibility"]
        if v["p99"] is not None:
            out(f"scan end -> visible in the second exporter's /metrics (scraped every {args.scrape_interval * 1000:.0f} ms, "
                f"k-th close matched with the first scrape showing k ended; that exporter is instrumented and "
                f"shares the 2 cores): p50 {v['p50'] * 1000:.0f} ms, p99 {v['p99'] * 1000:.0f} ms, "
                f"max {v['max'] * 1000:.0f} ms over {v['scans']} scans")
            verdicts.append(("short scans: scan end visible within 1 s (p99, full-rate workload)",
                             v["p99"] <= 1.0 and not v["missing"], f"{v['p99'] * 1000:.0f} ms"))
    out("")


def report_memory(mem: dict, args, out, verdicts: list) -> None:
    """B: the resources sampled after each step, the targets that they stay bounded."""
    out(f"B. Memory and bounded resources: {mem['scans']} short scans in steps of {mem['step']} "
        f"({mem['scans'] / mem['publisher_wall']:.0f} scans/s while publishing, publishers "
        f"{mem['publisher_cpu']:.1f} s CPU); exporter {mem['exporter_cpu']:.2f} s CPU "
        f"({mem['exporter_cpu'] / mem['scans'] * 1000:.2f} ms/scan), counts exact: "
        f"{exact(mem['truth'], mem['exporter'])}")
    out("   sampled after each step, every scan ended (no scan of the session active):")
    out("")
    out("| scans ended | RSS MiB | growth MiB | open fds | process_open_fds | TCP to Redis | HTTP conns "
        "| series in /metrics | per-scan series | counts exact |")
    out("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    smp = mem["samples"]
    for s in smp:
        out(f"| {s['ended']} | {s['rss'] / 2**20:.2f} | {(s['rss'] - smp[0]['rss']) / 2**20:+.2f} | {s['fds']} | "
            f"{s['process_open_fds']:.0f} | {s['redis_conns']} | {s['http_conns']} | {s['series']} | "
            f"{s['per_scan_series']} | {s.get('exact', '')} |")
    out("")
    # the target is for 10,000 scans: a longer soak is judged at 10,000, and by its plateau
    at = next((s for s in smp if s["ended"] >= 10000), smp[-1])
    g10 = (at["rss"] - smp[0]["rss"]) / 2**20
    verdicts.append((f"RSS growth <= 5 MB over {at['ended']} scans", g10 * 2**20 <= 5e6, f"{g10:+.2f} MiB"))
    plateau = [s for s in smp if s["ended"] >= ENDED_KEYS_CAP + mem["step"]]
    if len(plateau) >= 2:
        g = (plateau[-1]["rss"] - plateau[0]["rss"]) / 2**20
        verdicts.append((f"RSS flat past the {ENDED_KEYS_CAP}-key cap (<= 0.5 MiB from {plateau[0]['ended']} "
                         f"to {plateau[-1]['ended']} scans)", g <= 0.5, f"{g:+.2f} MiB"))
    later = smp[1:]
    if later:
        flat = lambda k: max(s[k] for s in later) - later[0][k]  # noqa: E731
        verdicts.append(("no per-scan series left once every scan ended",
                         all(s["per_scan_series"] == 0 for s in later),
                         f"max {max(s['per_scan_series'] for s in later)} (last_event series: "
                         f"max {max(s['last_event_series'] for s in later)})"))
        verdicts.append((f"fds, Redis connections, series flat after the first {mem['step']} scans",
                         flat("fds") <= 2 and flat("redis_conns") <= 1 and flat("series") == 0,
                         f"growth: fds {flat('fds'):+d}, Redis connections {flat('redis_conns'):+d}, "
                         f"series {flat('series'):+d}"))


def report_latency(lat: dict, args, out, verdicts: list, bulk_scans: int | None) -> None:
    """C: /metrics latency in each client mode, the latency target."""
    after = f" after {bulk_scans} bulk scans ended" if bulk_scans is not None else ""
    out(f"C. /metrics latency, {lat['active_scans']} active scans{after}, "
        f"{lat['requests']} requests per client mode (exporter RSS {lat['rss'] / 2**20:.1f} MiB; "
        f"{lat.get('series', 0)} series, {lat.get('per_scan_series', 0)} of them per-scan):")
    out("")
    out("| client mode | body bytes | p50 ms | p99 ms | max ms | exporter CPU ms/scrape |")
    out("|---|---:|---:|---:|---:|---:|")
    names = {"keepalive": "keep-alive, back to back", "spaced": f"keep-alive, {args.spaced_gap * 1000:.0f} ms apart",
             "newconn": "new connection each"}
    for mode, m in lat["modes"].items():
        out(f"| {names[mode]} | {m['body_bytes']} | {m['p50'] * 1000:.1f} | {m['p99'] * 1000:.1f} | "
            f"{m['max'] * 1000:.1f} | {m['cpu_per_scrape'] * 1000:.1f} |")
    out("")
    worst = max(lat["modes"].items(), key=lambda kv: kv[1]["p99"])
    verdicts.append(("/metrics p99 <= 20 ms (every client mode)", worst[1]["p99"] <= 0.020,
                     f"{worst[1]['p99'] * 1000:.1f} ms ({names[worst[0]]})"))


def report_delay(dl: dict, args, out, verdicts: list) -> None:
    """D: the delay until a scan's end shows in /metrics, the visibility target."""
    out(f"D. Scan close -> end visible in /metrics (scraped every {args.scrape_interval * 1000:.0f} ms; "
        f"each close after a random pause of 0-{args.delay_jitter * 1000:.0f} ms):")
    out("")
    out("| scans | n | p50 ms | p99 ms | max ms |")
    out("|---|---:|---:|---:|---:|")
    names = {"close": "open (watched) scans closed one at a time", "short": "short scans, created then closed at once"}
    for kind, d in dl.items():
        out(f"| {names[kind]} | {d['scans']} | {d['p50'] * 1000:.0f} | {d['p99'] * 1000:.0f} | {d['max'] * 1000:.0f} |")
    out("")
    worst = max(d["p99"] for d in dl.values())
    verdicts.append(("scan end visible within 1 s (p99)", worst <= 1.0, f"{worst * 1000:.0f} ms"))
