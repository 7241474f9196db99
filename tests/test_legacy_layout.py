"""The legacy publisher (tests/legacy/publish.py, blissdata 0.3.1 alone) writes the key layout genuine
BLISS 1.11.4 writes: compared, structure not values, with the reference dumps of 8 genuine scans
(tests/legacy/reference-bliss-1.11.4, a copy of shared/reference/bliss-1.11.4-scans).

What cannot be the same without BLISS: times, stream ids that are server times, object ids in
`devices`/`channels`/`acquisition_chain`, data values, TTL seconds (only their class: 600 s or a day).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from .legacy_fixtures import LEGACY_PYTHON, ROOT

REFERENCE = Path(__file__).parent / "legacy" / "reference-bliss-1.11.4"
SESSION = "demo_session"
SCANS = "demo_session:tmp:scans"

# The reference session, scan for scan (names and numbers come out the same)
WORKLOAD = {"scans": [
    {"type": "loopscan", "npoints": 10, "count_time": 0.01, "counters": ["diode1", "diode2"]},
    {"type": "ct", "npoints": 1, "count_time": 0.01, "counters": ["diode1"], "save": False, "title": "ct 0.01 1"},
    {"type": "loopscan", "npoints": 100, "count_time": 0.01, "counters": ["diode1", "diode2"]},
    {"type": "loopscan", "npoints": 10, "counters": ["diode1"], "outcome": "FAILURE", "fail_after": 3},
    {"type": "loopscan", "npoints": 1000, "counters": ["diode1"], "outcome": "USER_ABORT", "fail_after": 79},
    {"sequence": "myseq", "children": [{"type": "loopscan", "npoints": 5, "counters": ["diode1"]},
                                       {"type": "loopscan", "npoints": 5, "counters": ["diode1"]}]},
]}
REFERENCE_SCANS = {"1_loopscan": "SUCCESS", "_1_ct": "SUCCESS", "2_loopscan": "SUCCESS", "3_loopscan": "FAILURE",
                   "4_loopscan": "USER_ABORT", "5_myseq": "SUCCESS", "6_loopscan": "SUCCESS",
                   "7_loopscan": "SUCCESS"}
# scan.info fields whose values are the same for the same scan whoever publishes it
INFO_EXACT = {"title", "type", "npoints", "count_time", "scan_nb", "save", "shadow_scan_number", "state",
              "data_policy", "data_writer", "filename", "publisher", "publisher_version", "session_name",
              "is-scan-sequence", "group", "_display_extra", "scan_meta_categories", "technique", "instrument",
              "positioners", "plots", "writer_options", "node_name", "images_path"}
INFO_IDS = {"devices", "channels", "acquisition_chain"}  # the same once object ids are masked
TIMES = {"start_time", "end_time", "start_timestamp", "end_timestamp", "start_time_str", "end_time_str"}
TIME_ID = re.compile(r"^\d{13}-\d+$")
OBJ_ID = re.compile(r"\d{12,}:")


def reference(name: str) -> dict:
    return json.loads((REFERENCE / name).read_text())


def dump(url: str, *patterns: str) -> dict:
    out = subprocess.run([str(LEGACY_PYTHON), str(ROOT / "tests" / "legacy" / "dump.py"), url, *patterns],
                         check=True, capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout)


def tag(shown) -> str:
    """The kind of a dumped value: plain string, or the type of a pickled value from its repr."""
    if not isinstance(shown, dict):
        return "str"
    r = shown["pickle"]
    for prefix, kind in (("datetime.datetime(", "datetime"), ("<class ", "class"), ("'", "str"), ('"', "str"),
                         ("{", "dict"), ("[", "list"), ("(", "tuple"), ("True", "bool"), ("False", "bool"),
                         ("None", "None"), ("array(", "ndarray")):
        if r.startswith(prefix):
            return kind
    return "float" if re.fullmatch(r"-?[\d.]+(e-?\d+)?", r) and ("." in r or "e" in r) else "int"


def ttl_class(ttl: int) -> str:
    return "data" if 0 < ttl <= 600 else "parent" if ttl > 600 else str(ttl)


def id_kind(entry_id: str, key: str) -> str:
    if TIME_ID.match(entry_id):
        return "time"
    return entry_id if key.endswith("_data") else "other"


def compare_key(key: str, ref: dict, got: dict) -> list[str]:
    diffs = []
    if ref["type"] != got["type"]:
        return [f"{key}: type {got['type']} != {ref['type']}"]
    if ttl_class(ref["ttl"]) != ttl_class(got["ttl"]):
        diffs.append(f"{key}: ttl {got['ttl']} vs {ref['ttl']}")
    if ref["type"] == "hash":
        rf, gf = ref["fields"], got["fields"]
        if set(rf) != set(gf):
            diffs.append(f"{key}: fields +{sorted(set(gf) - set(rf))} -{sorted(set(rf) - set(gf))}")
        scan_info = key.endswith("_info") and ":" not in key[len(SCANS) + 1:]
        for f in sorted(set(rf) & set(gf)):
            if tag(rf[f]) != tag(gf[f]):
                diffs.append(f"{key}.{f}: {tag(gf[f])} != {tag(rf[f])}")
            elif f in TIMES:
                continue
            elif scan_info and f in INFO_IDS:
                if OBJ_ID.sub("ID:", rf[f]["pickle"]) != OBJ_ID.sub("ID:", gf[f]["pickle"]):
                    diffs.append(f"{key}.{f}: {gf[f]} != {rf[f]}")
            elif scan_info and f not in INFO_EXACT:
                continue
            elif rf[f] != gf[f]:
                diffs.append(f"{key}.{f}: {gf[f]} != {rf[f]}")
    elif ref["type"] == "stream":
        rx, gx = ref["xinfo"], got["xinfo"]
        if gx["entries-added"] != gx["length"] + 1 or gx["max-deleted-entry-id"] != "0-1":
            diffs.append(f"{key}: xinfo {gx} (phantom 0-1 entry missing)")
        if rx["length"] != gx["length"]:
            diffs.append(f"{key}: length {gx['length']} != {rx['length']}")
        if id_kind(rx["last-generated-id"], key) != id_kind(gx["last-generated-id"], key):
            diffs.append(f"{key}: last id {gx['last-generated-id']} vs {rx['last-generated-id']}")
        for part in ("first", "last"):
            for (rid, re_), (gid, ge) in zip(ref[part], got[part], strict=True):
                if id_kind(rid, key) != id_kind(gid, key):
                    diffs.append(f"{key}.{part}: id {gid} vs {rid}")
                if list(re_) != list(ge):
                    diffs.append(f"{key}.{part}: fields {list(ge)} != {list(re_)}")
                for f in re_:
                    if f in ("__TIMESTAMP__", "__STRTIME__"):
                        continue
                    if f == "__DATA__" and not key.endswith(":scans_data"):
                        same = tag(re_[f]) == tag(ge.get(f))
                    else:
                        same = re_[f] == ge.get(f)
                    if not same:
                        diffs.append(f"{key}.{part}[{rid}].{f}: {ge.get(f)} != {re_[f]}")
    return diffs


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The reference workload published once into a fresh plain Redis, dumped like the reference."""
    from .legacy_fixtures import LegacyPublisher, LegacyRedis, _require

    _require()
    tmp = tmp_path_factory.mktemp("legacy-layout")
    server = LegacyRedis(workdir=tmp).start()
    try:
        pub = LegacyPublisher({"redis_url": server.url, "session": SESSION, **WORKLOAD}, tmp).finish()
        dumps = {name: dump(server.url, f"{SCANS}:{name}", f"{SCANS}:{name}[:_]*") for name in REFERENCE_SCANS}
        dumps["session_containers"] = dump(server.url, SESSION, f"{SESSION}_*", f"{SESSION}:tmp", f"{SESSION}:tmp_*",
                                           SCANS, f"{SCANS}_*")
        yield pub, dumps, server.client()
    finally:
        pub.kill() if "pub" in locals() else None
        server.stop()


@pytest.mark.parametrize("scan", sorted(REFERENCE_SCANS))
def test_scan_layout_matches_bliss_1_11_4(published, scan):
    _, dumps, _ = published
    ref = reference(f"{scan}_{REFERENCE_SCANS[scan]}.json")
    got = dumps[scan]
    assert sorted(got) == sorted(ref)
    diffs = [d for key in ref for d in compare_key(key, ref[key], got[key])]
    assert not diffs, "\n".join(diffs)


def test_session_containers_match(published):
    _, dumps, _ = published
    ref = reference("session_containers.json")
    got = dumps["session_containers"]
    assert sorted(got) == sorted(ref)
    diffs = [d for key in ref for d in compare_key(key, ref[key], got[key])]
    assert not diffs, "\n".join(diffs)


def test_end_exceptions_and_final_states(published):
    """`_end`'s __EXCEPTION__ is the pickled str BLISS 1.11.4 writes; the final state follows it."""
    pub, dumps, _ = published
    want = {"SUCCESS": ("''", "'DONE'"), "FAILURE": ("\"<class 'RuntimeError'>\"", "'KILLED'"),
            "USER_ABORT": ("\"<class 'bliss.scanning.scan.ScanAbort'>\"", "'USER_ABORTED'")}
    for scan, outcome in REFERENCE_SCANS.items():
        key = f"{SCANS}:{scan}"
        (entry_id, end), = dumps[scan][f"{key}_end"]["first"]
        assert end["__EXCEPTION__"]["pickle"] == want[outcome][0]
        assert dumps[scan][f"{key}_info"]["fields"]["state"]["pickle"] == want[outcome][1]
        assert pub.truth(scan)["end_reason"] == outcome


def test_sequence_structure(published):
    """A Sequence: a scan_group node whose GroupingMaster `scans` node_ref_channel references its
    children, which are ordinary scans of the same `scans` container (info "group" = the sequence)."""
    pub, dumps, r = published
    seq = f"{SCANS}:5_myseq"
    assert r.hget(seq, "node_type") == b"scan_group"
    assert r.hget(f"{seq}:GroupingMaster:scans", "node_type") == b"node_ref_channel"
    refs = [e[1]["__DATA__"]["pickle"] for e in dumps["5_myseq"][f"{seq}:GroupingMaster:scans_data"]["first"]]
    assert refs == [f"'{SCANS}:6_loopscan'", f"'{SCANS}:7_loopscan'"]
    for child in ("6_loopscan", "7_loopscan"):
        assert r.hget(f"{SCANS}:{child}", "parent") == SCANS.encode()
        assert dumps[child][f"{SCANS}:{child}_info"]["fields"]["group"]["pickle"] == f"'{seq}'"
        assert pub.truth(child)["role"] == "child"
    assert pub.truth("5_myseq")["role"] == "sequence"


def test_truth_matches_the_store(published):
    """The publisher's truth is what the store shows: new_data = sum(entries-added - 1) over the
    scan's data streams, points from the last entry (id - 1 + __NPOINTS__), distinct nodes."""
    pub, _, r = published
    for t in pub.truths:
        new_data = points = 0
        for node in t["channels"]:
            info = r.xinfo_stream(f"{node}_data")
            new_data += info["entries-added"] - 1
            (last_id, last), = r.xrevrange(f"{node}_data", count=1)
            points += int(last_id.split(b"-")[0]) - 1 + int(last[b"__NPOINTS__"])
        assert (new_data, points) == (t["new_data"], t["points"]), t["scan"]
