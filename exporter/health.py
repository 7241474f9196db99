"""Health: whether the exporter can do its job, as bliss_datastore_up and /readyz tell it."""

from __future__ import annotations

import structlog
from prometheus_client import Gauge

from .store import describe_error

log = structlog.get_logger("bliss_exporter")


class Health:
    """Whether the exporter can do its job: drives bliss_datastore_up and /readyz; logs transitions once.

    Ready when the data store passed its self-test and no part of the exporter keeps failing
    (two failures in a row without a healthy run in between).
    """

    FAILURES_BEFORE_UNREADY = 2

    def __init__(self, registry):
        self.up_gauge = Gauge(
            "bliss_datastore_up",
            "1 while the data store passes the self-test (reachable, blissdata, every command allowed), else 0.",
            registry=registry,
        )
        self.datastore_ok = False
        self.datastore_reason = "starting"
        self._reported: bool | None = None
        self._failures: dict[str, tuple[int, str]] = {}  # part -> (failures in a row, last error)
        self.up_gauge.set(0)

    @property
    def ready(self) -> bool:
        return self.datastore_ok and not self._failing()

    @property
    def reason(self) -> str:
        if not self.datastore_ok:
            return self.datastore_reason
        failing = self._failing()
        return "; ".join(f"{part} keeps failing: {error}" for part, error in failing.items())

    def _failing(self) -> dict[str, str]:
        return {part: error for part, (n, error) in self._failures.items() if n >= self.FAILURES_BEFORE_UNREADY}

    def up(self, where: str) -> None:
        self.datastore_ok, self.datastore_reason = True, ""
        self.up_gauge.set(1)
        if self._reported is not True:
            log.info("datastore_up", datastore=where)
        self._reported = True

    def down(self, where: str, error: BaseException | str) -> None:
        reason = error if isinstance(error, str) else describe_error(error)
        self.datastore_ok, self.datastore_reason = False, reason
        self.up_gauge.set(0)
        if self._reported is not False:
            log.warning("datastore_down", datastore=where, error=reason)
        self._reported = False

    def part_failed(self, part: str, error: str) -> None:
        n, _ = self._failures.get(part, (0, ""))
        self._failures[part] = (n + 1, error)

    def part_ok(self, part: str) -> None:
        self._failures.pop(part, None)
