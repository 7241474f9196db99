"""Detector saving: frames acquired and frames saved per detector, over all scans (counters).

A 2D detector that acquires but no longer saves (a full disk, a slow file server, a stuck writer)
keeps its scan running and its progress bar moving while no data reaches the files. Counters of
both figures make the saving throughput (`rate()`) and its lag visible; the per-scan figures are
gauges of the active scans (sinks.metrics.ActiveScansCollector).
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily

from .first_scrape import FirstScrape


class DetectorFrames:
    """bliss_detector_frames_acquired_total and bliss_detector_frames_saved_total {session, detector}."""

    def __init__(self):
        self.frames: dict[tuple[str, str], list[int]] = {}  # (session, detector) -> [acquired, saved]
        self.first_scrape = FirstScrape()

    def add(self, session: str, frames: dict) -> None:
        """New frames of a scan's saving detectors ({detector: (acquired, saved)}) since the exporter started."""
        for detector, (acquired, saved) in frames.items():
            key = (session, detector)
            if key not in self.frames:
                self.frames[key] = [0, 0]
                self.first_scrape.created(key)
            counts = self.frames[key]
            counts[0] += acquired
            counts[1] += saved

    def collect(self):
        acquired = CounterMetricFamily("bliss_detector_frames_acquired",
                                       "Frames acquired by detectors that save (lima, mosca), over all scans.",
                                       labels=["session", "detector"])
        saved = CounterMetricFamily("bliss_detector_frames_saved",
                                    "Frames saved by detectors that save (lima, mosca), over all scans: rate() is "
                                    "the saving throughput.", labels=["session", "detector"])
        unscraped = self.first_scrape.unscraped
        for key, (n_acquired, n_saved) in list(self.frames.items()):
            new = key in unscraped  # its first scrape: 0
            acquired.add_metric(key, 0 if new else n_acquired)
            saved.add_metric(key, 0 if new else n_saved)
        self.first_scrape.scraped()
        yield acquired
        yield saved
