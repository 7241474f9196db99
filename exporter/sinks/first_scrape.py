"""New counter series are shown at 0 by the first scrape after they appear, so that increase() sees
the counts they already hold.

Prometheus' increase() and rate() cannot see a series' first value: a series that first appears with
a scan's counts already in it (a new session, a new scan type or end reason, or any series after a
restart whose first value is above the last one of the process before) loses those counts. So the
first scrape after a series appears shows it at 0, and the next ones its real value: counts are
added at once as always (nothing waits in memory, nothing costs more on the watchers' path), only
that one exposition shows 0.
"""

from __future__ import annotations

from typing import Hashable


class FirstScrape:
    """The series of one collector that no scrape has shown yet."""

    def __init__(self):
        self.unscraped: set[Hashable] = set()

    def created(self, key: Hashable) -> None:
        """A new series: the next scrape shows it at 0."""
        self.unscraped.add(key)

    def scraped(self) -> None:
        """A scrape has just shown every series created so far (at 0): from now on their values."""
        self.unscraped.clear()
