"""Start-up under supervision: unix-socket data stores, and a failure at each step before the watchers run.

Every failure between process start and running watchers (Beacon, URL, connection, authentication,
permissions, protocol check) must give one log line with its reason, a count, `/readyz` 503 with that
reason, and recovery without a restart once the cause is gone.
"""

from __future__ import annotations

import pytest

from exporter.devtools.redis_stack import RedisStackServer, free_port
from exporter.devtools.simulator import ScanSpec, publish_scan
from exporter.store import ACL_RULES

from .helpers import BeaconPeer, wait_until

PASSWORD = "s0cket-pw"


def store_of(server):
    from blissdata.redis_engine.store import DataStore

    return DataStore(server.url + "?protocol=2")


def assert_counts_one_scan(exporter, session: str, truth) -> None:
    exporter.wait_value(1, "bliss_scans_ended_total", session=session, scan_type="loopscan", end_reason="SUCCESS")
    for event, n in truth.events.items():
        assert exporter.value("bliss_scan_events_total", session=session, event_type=event) == n, event
    assert exporter.value("bliss_scan_points_total", session=session) == truth.points


def assert_no_traceback(exporter) -> None:
    output = exporter.stdout() + exporter.stderr()
    assert "Traceback" not in output, output[-3000:]
    exporter.logs()  # every stdout line is a JSON log line


def test_unix_socket_data_store_from_flag_environment_and_beacon(start_exporter):
    server = RedisStackServer(unix_socket=True).start()
    try:
        server.init_blissdata()
        server.client().execute_command("ACL", "SETUSER", "reader", "on", f">{PASSWORD}", *ACL_RULES)
        path = server.socket_path
        peer = BeaconPeer("beaconhost", path)  # Beacon answers a socket path to a client on its own host
        try:
            exporters = {
                "flag": start_exporter(url=f"unix://{path}"),
                "env": start_exporter(url=False, env={"BLISS_EXPORTER_REDIS_URL": f"unix://{path}?db=0"}),
                "password": start_exporter(url=f"unix://reader:{PASSWORD}@{path}?db=0"),
                "beacon": start_exporter(url=False, env={"BEACON_HOST": f"127.0.0.1:{peer.port}"}),
            }
            truth = publish_scan(store_of(server), ScanSpec(session="sock", number=1, npoints=7, count_time=0))
            for how, exporter in exporters.items():
                assert_counts_one_scan(exporter, "sock", truth)
                assert exporter.value("bliss_datastore_up") == 1, how
                assert_no_traceback(exporter)
            (resolved,) = exporters["beacon"].logs("beacon_resolved")
            assert resolved["datastore"] == f"unix://{path}"
            (start,) = exporters["password"].logs("exporter_start")
            assert start["datastore"] == f"unix://reader:***@{path}?db=0"
            assert PASSWORD not in exporters["password"].stdout()
        finally:
            peer.close()
    finally:
        server.cleanup()


def test_exporter_started_before_its_data_store_recovers_by_itself(start_exporter):
    port = free_port()
    exporter = start_exporter(url=f"redis://127.0.0.1:{port}", ready=False)
    exporter.wait_ready("/healthz")
    wait_until(lambda: exporter.value("bliss_exporter_watcher_errors_total", watcher="startup") >= 2,
               what="start-up retried")
    readyz = exporter.get("/readyz")
    assert readyz.status_code == 503 and "Connection refused" in readyz.text, readyz.text
    assert exporter.value("bliss_datastore_up") == 0
    (down,) = exporter.logs("datastore_down")
    assert "Connection refused" in down["error"] and down["datastore"] == f"redis://127.0.0.1:{port}"
    server = RedisStackServer(port=port).start()
    try:
        server.init_blissdata()
        exporter.wait_ready(timeout=20)
        truth = publish_scan(store_of(server), ScanSpec(session="late", number=1, npoints=5, count_time=0))
        assert_counts_one_scan(exporter, "late", truth)
        assert len(exporter.logs("datastore_up")) == 1
        assert_no_traceback(exporter)
    finally:
        server.cleanup()


STEPS = {
    # step: (expected reason in /readyz and the log line)
    "beacon refuses": "Beacon 127.0.0.1:{peer}: RuntimeError: no data server configured",
    "beacon nonsense": "invalid Redis URL 'unix://notaport': no socket path",
    "wrong password": "WRONGPASS invalid username-password pair or user is disabled.",
    "no permission": "GET failed: NOPERM User reader has no permissions to run the 'get' command",
    "not blissdata": "no blissdata protocol key (_PROTOCOL_VERSION_) and no BLISS 1.x session node in database 0 "
                     "nor 1: not a blissdata data store",
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_failure_at_each_start_up_step_is_reported_then_recovered(step, start_exporter, redis_server, raw_redis):
    port = int(redis_server.url.rsplit(":", 1)[1])
    peer = BeaconPeer("127.0.0.1", port)
    reader_url = f"redis://reader:{PASSWORD}@127.0.0.1:{port}"
    env, url = None, reader_url
    if step == "beacon refuses":
        peer.fail = "no data server configured"
    if step == "beacon nonsense":
        peer.answer = ("somehost", "notaport")  # blissdata then makes unix://notaport of it
    if step.startswith("beacon"):
        env, url = {"BEACON_HOST": f"127.0.0.1:{peer.port}"}, False
    if step == "no permission":
        raw_redis.execute_command("ACL", "SETUSER", "reader", "on", f">{PASSWORD}", *ACL_RULES, "-get")
    elif step != "wrong password":
        raw_redis.execute_command("ACL", "SETUSER", "reader", "on", f">{PASSWORD}", *ACL_RULES)
    if step == "not blissdata":
        raw_redis.delete("_PROTOCOL_VERSION_")
    try:
        exporter = start_exporter(url=url, env=env, ready=False)
        exporter.wait_ready("/healthz")
        expected = STEPS[step].format(peer=peer.port)
        wait_until(lambda: exporter.value("bliss_exporter_watcher_errors_total", watcher="startup") >= 2,
                   what="start-up failed and was retried")
        readyz = exporter.get("/readyz")
        assert readyz.status_code == 503 and expected in readyz.text, readyz.text
        assert exporter.value("bliss_datastore_up") == 0
        (down,) = exporter.logs("datastore_down")  # one line, with the reason, not one per retry
        assert expected in down["error"], down
        assert_no_traceback(exporter)

        # the cause goes away: the exporter recovers by itself
        peer.fail, peer.answer = None, ("127.0.0.1", port)
        raw_redis.execute_command("ACL", "SETUSER", "reader", "on", f">{PASSWORD}", *ACL_RULES, "+get")
        raw_redis.set("_PROTOCOL_VERSION_", 1)
        exporter.wait_ready(timeout=20)
        truth = publish_scan(store_of(redis_server), ScanSpec(session="fixed", number=1, npoints=3, count_time=0))
        assert_counts_one_scan(exporter, "fixed", truth)
        assert exporter.value("bliss_datastore_up") == 1
        assert_no_traceback(exporter)
    finally:
        peer.close()
