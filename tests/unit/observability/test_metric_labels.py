from __future__ import annotations

from relaygate.core.context import AttemptRecord, RequestContext
from relaygate.observability.metrics import Metrics


def observed(metrics: Metrics, **fields: object) -> None:
    ctx = RequestContext("req_1", "openai.chat", "openai")
    for name, value in fields.items():
        setattr(ctx, name, value)
    metrics.observe(ctx)


def label_sets(metrics: Metrics, name: str) -> set[tuple[str, ...]]:
    return {
        tuple(sample.labels.values())
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name
    }


def test_labels_are_configured_names_or_one_fixed_value() -> None:
    metrics = Metrics({"served": "served", "alias": "served"})
    observed(metrics, model_requested="alias", status=403)
    observed(metrics, model_requested="x" * 50_000, status=404)
    observed(metrics, model_requested="y" * 50_000, status=404)
    observed(metrics, status=401)
    observed(metrics, model_requested="nope", model_used="served", status=999)
    observed(metrics, model_used="served", attempts=[AttemptRecord("dep", "ok", 200, 0.1)])
    assert label_sets(metrics, "relaygate_requests_total") == {
        ("openai.chat", "served", "403"),
        ("openai.chat", "unknown", "404"),
        ("openai.chat", "-", "401"),
        ("openai.chat", "served", "other"),
        ("openai.chat", "served", "200"),
    }


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_repeated_requests_count_into_the_same_children() -> None:
    metrics = Metrics({"served": "served"})
    attempt = AttemptRecord("dep", "ok", 200, 0.1)
    for _ in range(3):
        observed(metrics, model_used="served", status=200, attempts=[attempt])
    observed(metrics, model_used="served", status=500)
    labels = {"route": "openai.chat", "model": "served"}
    assert sample(metrics, "relaygate_requests_total", **labels, status="200") == 3
    assert sample(metrics, "relaygate_requests_total", **labels, status="500") == 1
    assert sample(metrics, "relaygate_request_duration_seconds_count", **labels) == 4
    assert sample(metrics, "relaygate_overhead_seconds_count", route="openai.chat") == 4
    attempts = {"deployment": "dep", "outcome": "ok"}
    assert sample(metrics, "relaygate_upstream_attempts_total", **attempts) == 3
