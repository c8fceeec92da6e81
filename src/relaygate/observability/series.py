"""Counters, histograms and gauges of the request path: plain Python numbers, exported at scrape
time in exactly the samples prometheus_client's own ``Counter``, ``Histogram`` and ``Gauge``
would give for the same observations (tests/unit/observability/test_series.py compares them).

prometheus_client guards every value with a ``threading.Lock``: each ``inc``/``observe`` takes
one (a histogram observation two), about eleven a relayed request. The request path runs on the
event loop's one thread and every scrape is answered on it too, so the lock buys nothing there:
these series are plain attributes a request adds to. Only for code that runs on the event loop;
``collect`` iterates a ``dict.copy()`` of each family's series (one C call that no other thread
can interleave, where ``list(d.items())`` allocates a tuple per item and a collection it
triggers may switch threads), so a scrape from another thread (embedding) sees a series created
meanwhile at its next scrape instead of failing.

What they do not do (nothing in relaygate uses it): exemplars, ``reset``/``remove``/``clear``,
prometheus_client's multi-process mode (``serve --workers N`` merges snapshots of the registry,
observability/all_workers.py, which reads these as it read prometheus_client's).
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Iterator, Sequence

from prometheus_client import metrics as _client_metrics
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString


def _created_series() -> bool:
    """Whether ``_created`` samples are exported (prometheus_client's switch, read at scrape:
    ``PROMETHEUS_DISABLE_CREATED_SERIES`` or ``disable_created_metrics()``)."""
    return bool(_client_metrics._use_created)


class CounterValue:
    """One label set of a counter."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount


class GaugeValue:
    """An unlabelled gauge (``inc``/``dec``/``set``)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)


class HistogramValue:
    """One label set of a histogram: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("bounds", "buckets", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds  # finite upper bounds, ascending; +Inf is the last bucket
        self.buckets = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        self.sum += amount
        if amount == amount:  # NaN is in no bucket (it is not <= any bound), only in the sum
            self.buckets[bisect.bisect_left(self.bounds, amount)] += 1


class _Family:
    __slots__ = ("documentation", "labelnames", "name")
    kind = ""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)

    def _check(self, values: tuple[str, ...]) -> None:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: {len(self.labelnames)} label values, not {values!r}")

    def describe(self) -> Metric:
        return Metric(self.name, self.documentation, self.kind)

    def collect(self) -> Metric:  # pragma: no cover - each family's own
        raise NotImplementedError


class CounterFamily(_Family):
    """A counter's label sets, in the order they were first used (as prometheus_client's)."""

    __slots__ = ("series",)
    kind = "counter"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        super().__init__(name, documentation, labelnames)
        self.series: dict[tuple[str, ...], CounterValue] = {}

    def labels(self, *values: str) -> CounterValue:
        """The label set's value, created at its first use (label values are never a caller's
        own text: each set lives as long as the process)."""
        series = self.series.get(values)
        if series is None:
            self._check(values)
            series = self.series[values] = CounterValue()
        return series

    def collect(self) -> Metric:
        metric = self.describe()
        created = _created_series()
        total, created_name = self.name + "_total", self.name + "_created"
        for values, series in self.series.copy().items():
            labels = dict(zip(self.labelnames, values, strict=True))
            metric.samples.append(Sample(total, labels, series.value, None, None))
            if created:
                metric.samples.append(
                    Sample(created_name, dict(labels), series.created, None, None)
                )
        return metric


class HistogramFamily(_Family):
    """A histogram's label sets, in the order they were first used."""

    __slots__ = ("_le", "bounds", "series")
    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
    ) -> None:
        super().__init__(name, documentation, labelnames)
        bounds = [float(bound) for bound in buckets]
        if bounds and bounds[-1] == math.inf:
            bounds.pop()
        if not bounds or bounds != sorted(bounds):
            raise ValueError(f"{name}: buckets must be finite bounds in ascending order")
        self.bounds = tuple(bounds)
        self._le = [floatToGoString(bound) for bound in (*bounds, math.inf)]  # type: ignore[no-untyped-call]
        self.series: dict[tuple[str, ...], HistogramValue] = {}

    def labels(self, *values: str) -> HistogramValue:
        series = self.series.get(values)
        if series is None:
            self._check(values)
            series = self.series[values] = HistogramValue(self.bounds)
        return series

    def collect(self) -> Metric:
        metric = self.describe()
        created = _created_series()
        samples = metric.samples
        name = self.name
        bucket, count, total, created_name = (
            name + "_bucket",
            name + "_count",
            name + "_sum",
            name + "_created",
        )
        with_sum = self.bounds[0] >= 0  # prometheus_client omits it when a bound is negative
        for values, series in self.series.copy().items():
            labels = list(zip(self.labelnames, values, strict=True))
            seen = 0.0
            for le, in_bucket in zip(self._le, series.buckets.copy(), strict=True):
                seen += in_bucket
                samples.append(Sample(bucket, dict([*labels, ("le", le)]), seen, None, None))
            samples.append(Sample(count, dict(labels), seen, None, None))
            if with_sum:
                samples.append(Sample(total, dict(labels), series.sum, None, None))
            if created:
                samples.append(Sample(created_name, dict(labels), series.created, None, None))
        return metric


class GaugeFamily(_Family):
    """An unlabelled gauge."""

    __slots__ = ("value",)
    kind = "gauge"

    def __init__(self, name: str, documentation: str) -> None:
        super().__init__(name, documentation, ())
        self.value = GaugeValue()

    def collect(self) -> Metric:
        metric = self.describe()
        metric.samples.append(Sample(self.name, {}, self.value.value, None, None))
        return metric


class Families(Collector):
    """The families, exported in the order given (register it where prometheus_client's metrics
    were registered, to keep the scrape's order)."""

    def __init__(self, *families: _Family) -> None:
        self._families = families

    def describe(self) -> list[Metric]:
        # The registry reserves each family's names, as it did for prometheus_client's metrics.
        return [family.describe() for family in self._families]

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.collect()
