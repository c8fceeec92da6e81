"""A metric's children by label values, cached for the request path."""

from __future__ import annotations

from prometheus_client import Counter


class LabelCache:
    """A metric's children by label values, so the request path does not call ``labels()``
    (~5 us) each time. Only for labels whose values are bounded (configuration, code)."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Counter) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Counter] = {}

    def __call__(self, *values: str) -> Counter:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child
