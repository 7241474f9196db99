"""Shared builders: scans published with blissdata's own API, a test PKI, fake exporters for in-process
rendering, and views of the exporter's counts (events by type, scans ended by reason, watcher errors).

Test modules import these from here, never from one another.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from exporter.model import EventType
from exporter.sinks.events import ScanDiscovered
from exporter.view import ExporterView

from .helpers import require_tool

H5 = "/tmp/scans/inhouse/id002106/id00/sample/sample_0001/sample_0001.h5"

#: The event types of `bliss_scan_events_total` (model.EventType's values, in its order).
EVENT_TYPES = tuple(event.value for event in EventType)


# -- publisher side (blissdata's API) ---------------------------------------------------------------
def new_scan(data_store, session, number, name="loopscan", filename=H5, masters=("timer",), proposal=None, **info):
    """A blissdata scan, created (not prepared), with the scan.info BLISS 2.4 gives a loopscan (`proposal`:
    the identity the ESRF data policy gives it)."""
    identity = {"name": name, "number": number, "data_policy": "None", "session": session}
    if proposal:
        identity.update(data_policy="ESRF", proposal=proposal, collection="sample", dataset="0001")
    scan_info = {
        "type": name, "title": f"{name} 10 0.1", "npoints": 10, "count_time": 0.1, "filename": filename,
        "scan_nb": number, "acquisition_chain": {m: {} for m in masters},
        "start_time": "2026-12-01T08:00:00+00:00", **info,
    }
    return data_store.create_scan(identity, info=scan_info)


# -- TLS ------------------------------------------------------------------------------------------
def openssl(*args) -> None:
    subprocess.run([shutil.which("openssl"), *map(str, args)], check=True, capture_output=True, timeout=60)


EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def make_pki(d: Path) -> dict[str, Path]:
    """A test CA; a server certificate for 127.0.0.1/localhost and a client certificate it signed; a rogue
    self-signed client certificate."""
    require_tool("openssl")
    openssl("req", "-x509", *EC_KEY, "-days", "2", "-subj", "/CN=bliss-exporter test CA",
            "-keyout", d / "ca.key", "-out", d / "ca.crt")
    extensions = {
        "server": "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        "client": "extendedKeyUsage=clientAuth\n",
    }
    for serial, (name, ext) in enumerate(extensions.items(), start=2):
        (d / f"{name}.ext").write_text(ext + "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n")
        openssl("req", *EC_KEY, "-subj", f"/CN={name}", "-keyout", d / f"{name}.key", "-out", d / f"{name}.csr")
        openssl("x509", "-req", "-in", d / f"{name}.csr", "-CA", d / "ca.crt", "-CAkey", d / "ca.key",
                "-set_serial", serial, "-days", "2", "-extfile", d / f"{name}.ext", "-out", d / f"{name}.crt")
    openssl("req", "-x509", *EC_KEY, "-days", "2", "-subj", "/CN=rogue", "-keyout", d / "rogue.key",
            "-out", d / "rogue.crt")
    return {name: d / name for name in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key",
                                         "rogue.crt", "rogue.key")}


# -- in-process fakes -------------------------------------------------------------------------------
def status_view(records, ready=True, reason="", threshold=1.0, recent_limit=50, clock=time.time):
    """The read model the status page renders: these records active, the given health, filter id00_*."""
    view = ExporterView(SimpleNamespace(ready=ready, reason=reason), datastore=lambda: "redis://bliss-data:6380",
                        session_filter="id00_*", stall_threshold=threshold, stall_factor=10.0,
                        recent_limit=recent_limit, clock=clock)
    view.attach(lambda: records)
    for r in records:
        view(ScanDiscovered(r))
    return view


# -- views of the exporter's counts -----------------------------------------------------------------
def events(exporter, session) -> dict:
    """{event_type: value} of `bliss_scan_events_total` for one session."""
    m = exporter.metrics()
    return {k[1] and dict(k[1])["event_type"]: v for k, v in m.items()
            if k[0] == "bliss_scan_events_total" and dict(k[1]).get("session") == session}


def ended_by_reason(metrics: dict, session: str) -> dict:
    """{end_reason: scans} of `bliss_scans_ended_total` for one session (every role), zeros left out."""
    out = Counter()
    for (name, labels), value in metrics.items():
        labels = dict(labels)
        if name == "bliss_scans_ended_total" and labels["session"] == session and value:
            out[labels["end_reason"]] += int(value)
    return dict(out)


def watcher_errors(metrics: dict) -> dict:
    """{watcher: value} of `bliss_exporter_watcher_errors_total`."""
    return {dict(labels)["watcher"]: value for (name, labels), value in metrics.items()
            if name == "bliss_exporter_watcher_errors_total"}


def assert_no_watcher_errors(exporter) -> None:
    """The watcher error series exist, are all 0, and no watcher_error line was logged."""
    errors = watcher_errors(exporter.metrics())
    assert errors and all(v == 0 for v in errors.values()), errors
    assert not exporter.logs("watcher_error")


# -- detectors (blissdata's own stream definitions) ------------------------------------------------
def lima_definition(name="lima_simulator:image", saving: bool = False):
    """blissdata's LimaStream definition; `saving`: the detector saves (a `file_path`, as BLISS gives it
    unless its saving mode is NOSAVING)."""
    from blissdata.streams.lima.stream import LimaStream

    files = {"file_path": "/data/visitor/ihch1234/id00/sample/sample_0001/scan0001/lima_simulator_{file_index:04d}.h5",
             "data_path": "/entry_0000/instrument/lima_simulator/data", "file_format": "hdf5",
             "file_offset": 0, "frames_per_file": 100} if saving else {}
    return LimaStream.make_definition(name, "uint16", (64, 64), server_url="id00/limaccds/simulator1",
                                      buffer_max_number=100, frames_per_acquisition=1000, acquisition_offset=0,
                                      saving=files)


def mosca_definition(name="mosca_simulator:spectrum_det00", saving_enabled: bool = True):
    """blissdata-mosca's MoscaStream definition, as bliss-mosca gives it (the saving dict always there;
    `saving_enabled`: the server's remote saving)."""
    import blissdata_mosca as mosca
    import numpy as np

    return mosca.MoscaStream.make_definition(
        name, detector=0, data_index=0, dtype=np.uint32, shape=(1, 4096),
        tango_url="id00/mosca/simulator", acq_id=1,
        saving={"file_path": "/tmp/scans/id00/mosca", "data_path": "entry_0000/mosca", "file_format": "hdf5",
                "file_prefix": "sample_0001_mosca", "points_per_file": 1000, "saving_enabled": saving_enabled,
                "enabled_detectors": [0]},
    )
