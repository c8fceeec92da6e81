"""Response-cache metrics: lookups by result, tokens and USD saved, and the backend's state.

Labels take only configured model names (the resolved model of a cacheable request).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relaygate.cache import CacheStats
from relaygate.observability.label_cache import LabelCache

RESULTS = ("hit", "stale", "miss", "coalesced")
HIT_RATIO = "relaygate_cache_hit_ratio"


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry, stats: Callable[[], CacheStats]) -> None:
        self.requests = Counter(
            "relaygate_cache_requests",
            "Cacheable requests by model and result (hit, stale, miss, coalesced)",
            ("model", "result"),
            registry=registry,
        )
        self.tokens_saved = Counter(
            "relaygate_cache_tokens_saved",
            "Tokens answered from the cache or a shared in-flight call instead of an upstream",
            ("model",),
            registry=registry,
        )
        self.usd_saved = Counter(
            "relaygate_cache_saved_usd",
            "Upstream cost avoided by cache hits and coalesced requests (USD)",
            ("model",),
            registry=registry,
        )
        self._counts: dict[str, dict[str, int]] = {}
        self._requests_of = LabelCache(self.requests)
        self._tokens_of = LabelCache(self.tokens_saved)
        self._usd_of = LabelCache(self.usd_saved)
        registry.register(_CacheCollector(stats, self._counts))

    def record(self, model: str, result: str, tokens: int = 0, usd: float = 0.0) -> None:
        self._requests_of(model, result).inc()
        counts = self._counts.get(model)
        if counts is None:
            counts = self._counts[model] = dict.fromkeys(RESULTS, 0)
        counts[result] += 1
        if tokens:
            self._tokens_of(model).inc(tokens)
        if usd:
            self._usd_of(model).inc(usd)


class _CacheCollector(Collector):
    """The backend's bytes, entries, evictions and errors, and each model's hit ratio, read only
    when scraped."""

    def __init__(self, stats: Callable[[], CacheStats], counts: dict[str, dict[str, int]]) -> None:
        self._stats = stats
        self._counts = counts

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield GaugeMetricFamily(
            "relaygate_cache_bytes", "Bytes held by the in-process cache", value=stats.bytes
        )
        yield GaugeMetricFamily(
            "relaygate_cache_entries", "Entries held by the in-process cache", value=stats.entries
        )
        yield CounterMetricFamily(
            "relaygate_cache_evictions",
            "Entries evicted to stay within the cache's byte bound",
            value=stats.evictions,
        )
        yield CounterMetricFamily(
            "relaygate_cache_backend_errors",
            "Cache backend failures (each one served as a miss)",
            value=stats.errors,
        )
        yield hit_ratios(self._counts)


def hit_ratios(counts: Mapping[str, Mapping[str, float]]) -> GaugeMetricFamily:
    """Each model's hit ratio from its lookups by result (model -> result -> count)."""
    ratio = GaugeMetricFamily(
        HIT_RATIO,
        "Share of cacheable requests answered without an upstream call of their own",
        labels=("model",),
    )
    for model, by_result in counts.items():
        total = sum(by_result.values())
        if total:
            saved = sum(by_result.get(result, 0) for result in ("hit", "stale", "coalesced"))
            ratio.add_metric((model,), saved / total)
    return ratio
