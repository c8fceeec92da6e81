"""The shipped Prometheus rules and Grafana dashboard reference only metrics a running gateway
exports (and the rules parse with promtool when it is installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.accounting_support import openai_call, write_config
from tests.e2e.server import Gateway, start_gateway, stop

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "relaygate-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "relaygate-dashboard.json"
METRIC_NAME = re.compile(r"\brelaygate_[A-Za-z0-9_:]+")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "gauge": ("",),
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("deploy-home")
    gw = start_gateway(home, write_config(home))
    yield gw
    stop(gw.process)


def exported_names(gw: Gateway) -> set[str]:
    """Every series name ``/metrics`` answers with, and every name a family it declares (with
    no sample yet, e.g. a labelled gauge never set) would have."""
    assert openai_call(gw, "mock-gpt", "hello", stream=False).status == 200
    text = httpx.get(f"{gw.base_url}/metrics").text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def rule_expressions() -> dict[str, str]:
    data = yaml.safe_load(RULES.read_text())
    rules = [rule for group in data["groups"] for rule in group["rules"]]
    assert rules and all("alert" in r and "expr" in r for r in rules)
    return {r["alert"]: r["expr"] for r in rules}


def dashboard_expressions() -> dict[str, str]:
    data = json.loads(DASHBOARD.read_text())
    found = {
        f"{panel['title']} / {target['refId']}": target["expr"]
        for panel in data["panels"]
        for target in panel.get("targets", [])
    }
    assert found
    return found


@pytest.mark.parametrize("source", [rule_expressions, dashboard_expressions])
def test_every_referenced_metric_is_exported(gateway: Gateway, source: object) -> None:
    exported = exported_names(gateway)
    assert callable(source)
    missing = {}
    for name, expr in source().items():
        referenced = set(METRIC_NAME.findall(expr))
        assert referenced, f"{name}: no relaygate metric in {expr!r}"
        if referenced - exported:
            missing[name] = sorted(referenced - exported)
    assert not missing, f"not exported by /metrics: {missing}"


def test_the_rules_cover_every_built_in_alert_rule() -> None:
    alerts = " ".join(rule_expressions().values())
    for metric in (
        "relaygate_request_duration_seconds_bucket",
        "relaygate_requests_total",
        "relaygate_key_budget_used_ratio",
        "relaygate_breaker_state",
        "relaygate_degradation_level",
        "relaygate_ledger_spill_bytes",
    ):
        assert metric in alerts


def test_promtool_accepts_the_rules_when_installed() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        # Without promtool the metric check above is the check (issue 12); parse the YAML at least.
        assert rule_expressions()
        return
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
