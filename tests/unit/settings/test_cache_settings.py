"""The ``cache:`` block: defaults, per-model and per-key overrides (a key's wins), validation."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from relaygate.core.errors import InvalidRequestError
from relaygate.dialects.openai import OpenAIDialect
from relaygate.relay.cache_plan import CachePlan, CachePlanner
from relaygate.settings import ConfigError, Settings, load_settings

MODELS = """
models:
  - name: a
    deployments: [{provider: mock}]
  - name: b
    deployments: [{provider: mock}]
"""


def load(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "relaygate.yaml"
    path.write_text(text + MODELS)
    return load_settings(path, env={})


def test_off_by_default_and_nothing_is_built(tmp_path: Path) -> None:
    settings = load(tmp_path, "")
    assert not settings.cache.used
    assert settings.cache.max_bytes == 256 * 1024 * 1024


def test_a_keys_override_wins_over_its_models(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        """
cache:
  ttl_seconds: 100
  models: {a: {enabled: true, ttl_seconds: 50, scope: global}}
  keys: {batch: {ttl_seconds: 10, nondeterministic: true}, quiet: {enabled: false}}
""",
    )
    cache = settings.cache
    assert cache.used
    assert not cache.policy("b").enabled and cache.policy("b").ttl_seconds == 100
    a = cache.policy("a")
    assert a.enabled and a.ttl_seconds == 50 and a.scope == "global" and not a.nondeterministic
    batch = cache.policy("a", "batch")
    assert batch.enabled and batch.ttl_seconds == 10 and batch.nondeterministic
    assert not cache.policy("a", "quiet").enabled
    planner = CachePlanner(cache)
    warm = OpenAIDialect().decode_request(
        orjson.dumps(
            {"model": "a", "temperature": 0.9, "messages": [{"role": "user", "content": "x"}]}
        ),
        {},
    )
    assert planner.plan("someone", "a", warm, {}) is None  # not deterministic
    plan = planner.plan("batch", "a", warm, {})
    assert plan is not None and plan.ttl_seconds == 10 and plan.key.scope == "*"
    assert planner.plan("quiet", "a", warm, {}) is None


def test_a_memo_holds_a_plan_per_model_and_key_for_requests_without_cache_headers(
    tmp_path: Path,
) -> None:
    settings = load(
        tmp_path,
        "cache: {models: {a: {enabled: true}}, keys: {short: {ttl_seconds: 10}}}",
    )
    planner = CachePlanner(settings.cache)
    req = OpenAIDialect().decode_request(
        orjson.dumps(
            {"model": "a", "temperature": 0, "messages": [{"role": "user", "content": "x"}]}
        ),
        {},
    )
    plans: dict[tuple[str, str], CachePlan] = {}
    first = planner.plan("someone", "a", req, {}, plans)
    assert first is not None and planner.plan("someone", "a", req, {}, plans) is first
    short = planner.plan("short", "a", req, {}, plans)  # another key: its own scope and TTL
    assert short is not None and short.ttl_seconds == 10 and short.key.scope == "short"
    assert set(plans) == {("a", "someone"), ("a", "short")}
    # Cache headers are read every time, never answered from the memo nor kept in it.
    refresh = planner.plan("someone", "a", req, {"x-relaygate-cache": "refresh"}, plans)
    assert refresh is not None and refresh.mode == "refresh" and refresh.key == first.key
    ttl = planner.plan("someone", "a", req, {"x-relaygate-cache-ttl": "5"}, plans)
    assert ttl is not None and ttl.ttl_seconds == 5
    assert planner.plan("someone", "a", req, {"x-relaygate-cache": "skip"}, plans) is None
    with pytest.raises(InvalidRequestError):
        planner.plan("someone", "a", req, {"x-relaygate-cache": "bogus"}, plans)
    assert set(plans) == {("a", "someone"), ("a", "short")}
    # A model the cache is not on for is planned (to None) and not kept.
    assert planner.plan("someone", "b", req, {}, plans) is None
    assert ("b", "someone") not in plans


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cache: {models: {nope: {enabled: true}}}", "unknown model 'nope'"),
        ("cache: {backend: redis, enabled: true}", "redis_url is not set"),
        ("cache: {ttl_seconds: 0}", "ttl_seconds"),
        ("cache: {scope: everyone}", "scope"),
        ("cache: {keys: {k: {colour: red}}}", "colour"),
    ],
)
def test_bad_cache_config_names_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, text + "\n")
