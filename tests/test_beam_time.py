"""Beam time (issue 18): scanning time per session and proposal, overhead per scan type, ETA, exemplars.

In-process first (exact arithmetic on the exporter's own sinks and collectors, read as Prometheus reads
them), then end to end: real blissdata 2.x and 0.3.1 publishers, a real exporter, a real Prometheus
storing exemplars.
"""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from exporter.devtools.simulator import ScanSpec, publish_scan
from exporter.model import ROLE_SEQUENCE, ROLE_SUBSCAN, ScanRecord, State, StreamCursor
from exporter.sinks.beam_time import OVERHEAD_BUCKETS, ScanningTime, ScanOverhead, overhead_ratio
from exporter.sinks.events import ScanDiscovered, ScanEnded, ScanLost
from exporter.sinks.histograms import fit_exemplar
from exporter.sinks.metrics import ScanEnds

from . import legacy_fixtures
from .builders import new_scan
from .helpers import parse_metrics, wait_until
from .prometheus import needs_prometheus

legacy_redis = legacy_fixtures.legacy_redis
legacy_publish = legacy_fixtures.legacy_publish


def scan(key, created, closed=None, session="s", proposal="", role="scan", counted_from=None, **kw) -> ScanRecord:
    record = ScanRecord(key=key, session=session, name="loopscan", number=int(key[1:]) if key[1:].isdigit() else 1,
                        scan_type="loopscan", uris=[], proposal=proposal, role=role, created_at=created,
                        closed_at=closed, counted_from=counted_from, watched_at=created, **kw)
    return record


class Clock:
    def __init__(self, now=0.0):
        self.now = now

    def __call__(self):
        return self.now


def seconds(registry) -> dict:
    samples = parse_metrics(generate_latest(registry).decode())
    return {dict(labels)["proposal"] if dict(labels)["session"] == "s" else (dict(labels)["session"], dict(labels)["proposal"]): v
            for (name, labels), v in samples.items() if name == "bliss_session_scanning_seconds_total"}


def scanning(events, read_until: float):
    """A ScanningTime fed with `events` ([(event, scan)]), scraped once at 0 then at `read_until`."""
    clock = Clock(float("-inf"))
    time_ = ScanningTime(clock)
    registry = CollectorRegistry()
    registry.register(time_)
    generate_latest(registry)  # the first scrape shows the new series at 0
    for kind, record in events:
        if kind is ScanDiscovered:
            time_.started(record)
        else:
            time_.ended(record, lost=kind is ScanLost)
    clock.now = read_until
    seconds(registry)  # series new since the last scrape show 0 in this one
    return seconds(registry)


def test_overlapping_top_level_scans_count_once_and_a_sequences_children_add_nothing():
    a, b = scan("k1", 100.0), scan("k2", 105.0)  # overlapping: [100, 110] and [105, 120]
    seq = scan("k3", 200.0, role=ROLE_SEQUENCE)
    child1, child2 = scan("k4", 201.0, role=ROLE_SUBSCAN), scan("k5", 212.0, role=ROLE_SUBSCAN)
    events = [(ScanDiscovered, a), (ScanDiscovered, b)]
    a.closed_at = 110.0
    events.append((ScanEnded, a))
    b.closed_at = 120.0
    events.append((ScanEnded, b))
    events += [(ScanDiscovered, seq), (ScanDiscovered, child1)]
    child1.closed_at = 210.0
    events += [(ScanEnded, child1), (ScanDiscovered, child2)]
    child2.closed_at = 225.0
    events.append((ScanEnded, child2))
    seq.closed_at = 230.0
    events.append((ScanEnded, seq))
    assert scanning(events, 1000.0) == {"": 20.0 + 30.0}


def test_scanning_time_advances_at_scrape_up_to_what_the_watchers_have_read():
    clock = Clock(float("-inf"))
    time_ = ScanningTime(clock)
    registry = CollectorRegistry()
    registry.register(time_)
    running = scan("k1", 100.0)
    time_.started(running)
    assert seconds(registry) == {"": 0.0}  # a new series: 0 in its first scrape
    clock.now = 107.5  # every state change up to 107.5 is read: still running then
    assert seconds(registry) == {"": 7.5}
    running.closed_at = 109.0  # its end, read later: no time past it is ever counted
    time_.ended(running)
    clock.now = 150.0
    assert seconds(registry) == {"": 9.0}
    assert seconds(registry) == {"": 9.0}  # idle: nothing more


def test_an_adopted_scan_counts_from_the_start_and_a_proposal_change_splits_the_time():
    adopted = scan("k1", 50.0, counted_from=100.0, proposal="ihch1234")  # created before the exporter started
    later = scan("k2", 130.0, proposal="blc5678")
    adopted_end, later_end = 120.0, 135.0
    events = [(ScanDiscovered, adopted)]
    adopted.closed_at = adopted_end
    events += [(ScanEnded, adopted), (ScanDiscovered, later)]
    later.closed_at = later_end
    events.append((ScanEnded, later))
    assert scanning(events, 500.0) == {"ihch1234": 20.0, "blc5678": 5.0}


def test_a_lost_scan_stops_counting_where_it_was_last_counted():
    running = scan("k1", 10.0)
    assert scanning([(ScanDiscovered, running), (ScanLost, running)], 100.0) == {"": 0.0}


@pytest.mark.parametrize("npoints, count_time, end_reason, role, expected", [
    (10, 0.1, "SUCCESS", "scan", 1.5),  # 1.5 s for 10 x 0.1 s
    (1, 0.5, "SUCCESS", "scan", 3.0),  # a ct: one point of count_time
    (10, 0.1, "SUCCESS", "subscan", 1.5),
    (10, 0.1, "FAILURE", "scan", None),
    (10, 0.1, "USER_ABORT", "scan", None),
    (10, 0.0, "SUCCESS", "scan", None),
    (10, None, "SUCCESS", "scan", None),
    (0, 0.1, "SUCCESS", "scan", None),
    (None, 0.1, "SUCCESS", "scan", None),
    (10, 0.1, "SUCCESS", "sequence", None),
])
def test_overhead_ratio_only_where_npoints_and_count_time_mean_the_scan_time(npoints, count_time, end_reason, role,
                                                                           expected):
    record = scan("k1", 0.0, npoints=npoints, count_time=count_time, end_reason=end_reason, role=role,
                  started_at=10.0)
    record.closed_at = 11.5
    assert overhead_ratio(record) == expected


def test_overhead_buckets_separate_the_figures_staff_argue_about():
    for bound in (1.05, 1.25, 1.5, 2, 3, 5, 10):
        assert bound in OVERHEAD_BUCKETS


def test_eta_at_the_recent_point_rate_absent_until_known_never_negative_growing_while_stalled():
    """Progress is sampled when an ETA is asked for (each scrape, each status page)."""
    record = scan("k1", 0.0, npoints=100)
    record.streams["s1"] = StreamCursor("s1", "timer:epoch", "numeric")
    record.streams["s1"].points = 10
    assert record.eta(10.0) is None  # one sample: no rate yet
    record.streams["s1"].points = 30
    assert record.eta(20.0) == pytest.approx(70 / 2.0)  # 20 points in 10 s: 2 points/s
    assert record.eta(30.0) == pytest.approx(70 / 1.0)  # no point for 10 s more: the rate halves
    record.streams["s1"].points = 120  # more points than npoints: 0, never negative
    assert record.eta(31.0) == 0.0
    assert scan("k2", 0.0, npoints=None).eta(5.0) is None


def test_exemplars_in_the_openmetrics_exposition_only_and_the_classic_text_unchanged():
    ends_registry, reference = CollectorRegistry(), CollectorRegistry()
    ends = ScanEnds((1, 2, 5))
    ends_registry.register(ends)
    duration = Histogram("bliss_scan_duration_seconds",
                         "Scan duration from STARTED (or creation) to CLOSED, observed when the scan closes.",
                         ["session", "scan_type", "role"], buckets=(1, 2, 5), registry=reference)
    ends.add_series("s", "ct", "scan", ("SUCCESS",))
    duration.labels("s", "ct", "scan")
    generate_latest(ends_registry)
    for seconds_, label in ((0.5, "1_ct"), (4.0, "2_ct"), (3.0, "3_ct")):
        ends.add(("s", "ct", "scan", "SUCCESS"), seconds_, (label, f"esrf:scan:K{label}", 1800000000.0))
        duration.labels("s", "ct", "scan").observe(seconds_)
    classic = generate_latest(ends_registry).decode()
    reference_text = "\n".join(line for line in generate_latest(reference).decode().splitlines() if "_created" not in line)
    assert [line for line in classic.splitlines() if "duration" in line] == [
        line for line in reference_text.splitlines() if "duration" in line]
    assert "#" not in "".join(line for line in classic.splitlines() if not line.startswith("#"))
    om = openmetrics_latest(ends_registry).decode()
    bucket_5 = [line for line in om.splitlines() if line.startswith('bliss_scan_duration_seconds_bucket{le="5.0"')]
    assert len(bucket_5) == 1 and ' # {key="esrf:scan:K3_ct",scan="3_ct"} 3.0 ' in bucket_5[0], bucket_5
    overhead = ScanOverhead()
    registry = CollectorRegistry()
    registry.register(overhead)
    record = scan("k9", 0.0, npoints=10, count_time=0.1, end_reason="SUCCESS", started_at=0.0)
    record.closed_at = 2.5
    overhead.observe(("s", "loopscan"), record, ("9_loopscan", "esrf:scan:K9", 1800000000.0))
    openmetrics_latest(registry)  # the first scrape shows the new series at 0
    om = openmetrics_latest(registry).decode()
    (line,) = [x for x in om.splitlines() if x.startswith('bliss_scan_overhead_ratio_bucket{le="3.0"')]
    assert line.startswith('bliss_scan_overhead_ratio_bucket{le="3.0",scan_type="loopscan",session="s"} 1.0 # '
                           '{key="esrf:scan:K9",scan="9_loopscan"} 2.5 1800000000.0')


def test_exemplar_labels_fit_openmetrics_128_characters():
    long_key = "id00_session:data:visitor:ihch1234:sample_with_a_long_name:sample_with_a_long_name_0001:" + "x" * 60
    fitted = fit_exemplar({"scan": "12_loopscan", "key": long_key})
    assert sum(len(k) + len(v) for k, v in fitted.items()) <= 128
    assert fitted["scan"] == "12_loopscan" and long_key.endswith(fitted["key"])


# -- end to end -------------------------------------------------------------------------------------
def state_times(raw_redis, data_store, key) -> dict:
    """{State: Redis time (s)} of a scan's state stream entries."""
    doc = raw_redis.json().get(key)
    entries = raw_redis.xrange("esrf:stream:" + doc["state_stream"]["pk"])
    return {State(int(fields[b"state"])): int(entry_id.decode().split("-")[0]) / 1000 for entry_id, fields in entries}


def test_beam_time_figures_of_real_scans(start_exporter, data_store, raw_redis):
    exporter = start_exporter()
    keys = []
    for number, (npoints, count_time, end_reason) in enumerate([(5, 0.1, "SUCCESS"), (1, 0.2, "SUCCESS"),
                                                                (6, 0.05, "FAILURE")], start=1):
        scan_type = "ct" if npoints == 1 else "loopscan"
        publish_scan(data_store, ScanSpec(session="bt", number=number, scan_type=scan_type, npoints=npoints,
                                          count_time=count_time, end_reason=end_reason, fail_after=3,
                                          proposal="ihch1234"))
        keys.append(raw_redis.xrevrange("_SCAN_HISTORY_", count=1)[0][1][b"key"].decode())
    # two overlapping scans of another proposal: their union, counted once
    first = new_scan(data_store, "bt", 10, npoints=3, count_time=0.01, proposal="blc5678")
    second = new_scan(data_store, "bt", 11, npoints=3, count_time=0.01, proposal="blc5678")
    for s in (first, second):
        s.prepare()
        s.start()
    time.sleep(0.2)
    for s in (first, second):
        s.stop()
        s.info["end_reason"] = "SUCCESS"
        s.close()
    exporter.wait_value(3, "bliss_scans_ended_total", session="bt", scan_type="loopscan", end_reason="SUCCESS")
    exporter.barrier(data_store)

    times = {key: state_times(raw_redis, data_store, key) for key in [*keys, first.key, second.key]}
    expected_ihch = sum(t[State.CLOSED] - t[State.CREATED] for key, t in times.items() if key in keys)
    union = (max(times[first.key][State.CLOSED], times[second.key][State.CLOSED])
             - min(times[first.key][State.CREATED], times[second.key][State.CREATED]))
    assert exporter.value("bliss_session_scanning_seconds_total", session="bt", proposal="ihch1234") == pytest.approx(
        expected_ihch, abs=1e-6)
    assert exporter.value("bliss_session_scanning_seconds_total", session="bt", proposal="blc5678") == pytest.approx(
        union, abs=1e-6)
    # overhead: the two successful scans of ihch1234 (loopscan, ct) and the two short ones; not the failed one
    for scan_type, keys_, npoints, count_time in (("loopscan", [keys[0]], 5, 0.1), ("ct", [keys[1]], 1, 0.2)):
        t = times[keys_[0]]
        ratio = (t[State.CLOSED] - t[State.STARTED]) / (npoints * count_time)
        assert exporter.value("bliss_scan_overhead_ratio_count", session="bt", scan_type=scan_type) == (
            1 if scan_type == "ct" else 3)  # + the two overlapping loopscans
        if scan_type == "ct":
            assert exporter.value("bliss_scan_overhead_ratio_sum", session="bt", scan_type="ct") == pytest.approx(ratio)
            assert ratio >= 1
    om = exporter.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}).text
    assert f'key="{keys[1]}",scan="2_ct"' in om  # the ct's exemplar on its overhead and duration buckets
    assert 'key="' not in exporter.metrics_text()  # never in the classic text format


def test_eta_on_a_running_scan_and_on_the_status_page(start_exporter, data_store):
    from blissdata.streams.default import Stream

    exporter = start_exporter()
    running = new_scan(data_store, "eta", 1, npoints=100, count_time=0.1)
    stream = running.create_stream(Stream.make_definition("timer:epoch", "float64"))
    running.prepare()
    running.start()
    for n in range(1, 6):
        stream.send(float(n))
        stream.join()
        exporter.wait_value(n / 100, "bliss_scan_progress_ratio", session="eta", scan="1_loopscan")
    eta = exporter.value("bliss_scan_eta_seconds", session="eta", scan="1_loopscan")
    assert eta is not None and eta > 0
    page = exporter.get("/").text
    assert "ETA " in page
    running.stop()
    running.close()
    wait_until(lambda: exporter.value("bliss_scan_eta_seconds", session="eta", scan="1_loopscan") is None,
               what="no ETA once ended")


def test_bliss_1_scans_give_the_same_figures_with_the_proposal_of_their_data_policy(
        legacy_redis, legacy_publish, start_exporter):
    first = legacy_publish({"proposal": "ihch1234", "scans": [{"type": "ct", "npoints": 1, "counters": ["diode1"]}]})
    exporter = start_exporter(url=f"redis://127.0.0.1:{legacy_redis.port}")
    run = legacy_publish({"proposal": "ihch1234", "scans": [
        {"type": "loopscan", "npoints": 10, "counters": ["diode1"], "count_time": 0.02, "point_delay": 0.02},
        {"type": "loopscan", "npoints": 10, "counters": ["diode1"], "outcome": "FAILURE", "fail_after": 3}]})
    exporter.wait_value(2, "bliss_scan_events_total", session="demo_session", event_type="end_scan", timeout=60)
    exporter.metrics_text()
    seconds_ = exporter.value("bliss_session_scanning_seconds_total", session="demo_session", proposal="ihch1234")
    assert seconds_ is not None and seconds_ > 0
    assert exporter.value("bliss_session_scanning_seconds_total", session="demo_session", proposal="") is None
    assert exporter.value("bliss_scan_overhead_ratio_count", session="demo_session", scan_type="loopscan") == 1
    assert first.truths and run.truths


@needs_prometheus
def test_prometheus_stores_the_exemplar_of_a_slow_scans_bucket(start_exporter, tmp_path, data_store):
    from .prometheus import Prometheus

    exporter = start_exporter("--duration-buckets", "1,2,5")
    prom = Prometheus(tmp_path, [f"127.0.0.1:{exporter.port}"], [], extra_args=["--enable-feature=exemplar-storage"])
    try:
        prom.wait_ready()
        wait_until(lambda: prom.query("up") and prom.query("up")[0]["value"][1] == "1", 30, 0.2, "first scrape")
        publish_scan(data_store, ScanSpec(session="ex", number=1, npoints=2, count_time=0.01))
        publish_scan(data_store, ScanSpec(session="ex", number=2, npoints=12, count_time=0.1))  # ~1.2 s: slow
        exporter.wait_value(2, "bliss_scans_ended_total", session="ex", scan_type="loopscan", end_reason="SUCCESS")
        slow = [e for e in exporter.logs("scan_end", session="ex") if e["scan"] == "2_loopscan"][0]

        def exemplars():
            data = prom.api("query_exemplars", query='bliss_scan_duration_seconds_bucket{session="ex"}',
                            start=str(time.time() - 600), end=str(time.time() + 60))
            return [(series["seriesLabels"]["le"], e["labels"], float(e["value"]))
                    for series in data for e in series["exemplars"]]
        found = wait_until(lambda: [x for x in exemplars() if x[1].get("scan") == "2_loopscan"], 30, 0.5,
                           "the slow scan's exemplar stored by Prometheus")
        (le, labels, value), = found
        assert labels == {"scan": "2_loopscan", "key": slow["key"]}
        assert value == pytest.approx(slow["duration_seconds"], abs=0.002)
        assert float(le) >= value and (float(le) == 2.0 or value > 2.0)
    finally:
        prom.stop()
