"""New counter series are shown at 0 by one scrape before their first counts, so that increase() sees them.

Prometheus' increase() and rate() cannot see a series' first value: a series that first appears with
a scan's counts already in it (a new session, a new scan type, or any series after a restart whose
first value is above the last one of the process before) loses those counts. So a series created
here is held: counts that would change it wait until a scrape has shown it at 0, and apply from the
next scrape on. Without scrapes nothing waits for ever: a hold ends after `limit` seconds.
"""

from __future__ import annotations

import time
from typing import Callable, Hashable, Iterable

#: The longest a new series' counts wait for a scrape (s): Prometheus treats a series unseen for 5
#: minutes as stale, so a scrape interval longer than that is no setting to wait for.
HOLD_LIMIT = 300.0


class FirstScrape:
    """The series of one collector not yet scraped, and the counts waiting for their first scrape."""

    def __init__(self, limit: float = HOLD_LIMIT, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.clock = clock
        self._unscraped: dict[Hashable, float] = {}  # series key -> when created
        self._oldest = 0.0  # when the oldest of them was created
        self._held: list[tuple[Callable, tuple]] = []

    @property
    def waiting(self) -> bool:
        """Whether some series has not been scraped yet (else nothing is ever held: the common case)."""
        return bool(self._unscraped)

    def created(self, key: Hashable) -> None:
        """A new series, at 0: counts that change it wait for a scrape."""
        if key not in self._unscraped:
            if not self._unscraped:
                self._oldest = self.clock()
            self._unscraped[key] = self._oldest

    def hold(self, keys: Iterable[Hashable], apply: Callable, *args) -> bool:
        """Whether `apply(*args)` (counts changing the series `keys`) waits; it is called once a scrape
        has shown them. False: call it now."""
        unscraped = self._unscraped
        for key in keys:
            if key in unscraped:
                break
        else:
            return False
        if self.clock() - self._oldest >= self.limit:  # no scrape for that long: nothing to wait for
            self.release()
            return False
        self._held.append((apply, args))
        return True

    def scraped(self) -> None:
        """A scrape has just shown every series created so far: the counts they held apply now."""
        self.release()

    def release(self) -> None:
        held, self._held = self._held, []
        self._unscraped.clear()
        for apply, args in held:
            apply(*args)
