"""Histograms kept as plain numbers (one writer, the watchers' greenlets), exposed at scrape time.

A prometheus_client Histogram child costs a lock and a loop per observation; here an observation is a
bisection and two additions. Each bucket keeps the exemplar of its latest observation (shown only in
the OpenMetrics exposition; the classic text format has no exemplars and stays as it was).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Hashable

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

#: OpenMetrics: an exemplar's label names and values, together, have at most 128 UTF-8 characters.
EXEMPLAR_CHARACTERS = 128


class Histograms:
    """The series of one histogram family: bucket counts, sum, and each bucket's latest exemplar."""

    def __init__(self, buckets):
        self.bounds = tuple(float(b) for b in buckets) + (float("inf"),)
        self._le = [floatToGoString(b) for b in self.bounds]
        self.series: dict[Hashable, list] = {}  # labels -> [count per bucket..., sum]
        self.exemplars: dict[Hashable, dict[int, Exemplar]] = {}  # labels -> {bucket index: latest exemplar}

    def add_series(self, labels) -> bool:
        """The series at 0; whether it is new."""
        if labels in self.series:
            return False
        self.series[labels] = [0] * len(self.bounds) + [0.0]
        return True

    def observe(self, labels, value: float, exemplar: tuple | None = None) -> None:
        """One observation; `exemplar`: (scan label, scan key, timestamp or None) of what was observed
        (kept as given, made an Exemplar at scrape time: one per bucket is shown, many are observed)."""
        by_bucket = self.series.get(labels)
        if by_bucket is None:
            self.add_series(labels)
            by_bucket = self.series[labels]
        bucket = bisect_left(self.bounds, value)  # the first bucket whose `le` >= value
        by_bucket[bucket] += 1
        by_bucket[-1] += value
        if exemplar is not None:
            exemplars = self.exemplars.get(labels)
            if exemplars is None:
                exemplars = self.exemplars[labels] = {}
            exemplars[bucket] = (exemplar, value)

    def family(self, name: str, documentation: str, labelnames: list[str], zero=frozenset()) -> HistogramMetricFamily:
        """The family as a collector yields it; the series in `zero` shown empty (their first scrape)."""
        histogram = HistogramMetricFamily(name, documentation, labels=labelnames)
        for labels, by_bucket in list(self.series.items()):
            if labels in zero:
                histogram.add_metric(labels, [(le, 0) for le in self._le], 0.0)
                continue
            exemplars = self.exemplars.get(labels, {})
            cumulative, buckets = 0, []
            for i, (le, n) in enumerate(zip(self._le, by_bucket)):
                cumulative += n
                seen = exemplars.get(i)
                if seen is None:
                    buckets.append((le, cumulative))
                else:
                    (scan, key, timestamp), value = seen
                    buckets.append((le, cumulative, Exemplar(fit_exemplar({"scan": scan, "key": key}), value, timestamp)))
            histogram.add_metric(labels, buckets, by_bucket[-1])
        return histogram


def fit_exemplar(labels: dict[str, str]) -> dict[str, str]:
    """Exemplar labels within OpenMetrics' 128 characters: the later ones are cut first, from their start
    (a scan key's end is what tells it apart), then dropped."""
    if sum(len(k) + len(v) for k, v in labels.items()) <= EXEMPLAR_CHARACTERS:
        return labels
    fitted = dict(labels)
    for name in reversed(list(fitted)):
        excess = sum(len(k) + len(v) for k, v in fitted.items()) - EXEMPLAR_CHARACTERS
        if excess <= 0:
            break
        value = fitted[name]
        if len(value) > excess:
            fitted[name] = value[excess:]
        else:
            del fitted[name]
    return fitted
