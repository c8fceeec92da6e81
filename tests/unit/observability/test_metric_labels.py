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
