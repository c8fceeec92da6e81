"""The fault plan: explicit asks, first_n, seeded rates."""

from __future__ import annotations

import random

import orjson
import pytest

from relaygate.core.errors import InvalidRequestError, RateLimitedError, UpstreamError
from relaygate.core.types import DialectName
from relaygate.mock.faults import (
    FAULT_KINDS,
    FaultPlan,
    fault_error,
    malformed_body,
    malformed_frame,
    parse_fault_kind,
    retry_after_header,
)
from relaygate.settings.model import MockFaultSettings


def plan(seed: int = 1, **fields: object) -> FaultPlan:
    return FaultPlan(MockFaultSettings.model_validate(fields), random.Random(seed))


def test_no_plan_never_fails() -> None:
    faults = plan()
    assert [faults.decide(None) for _ in range(100)] == [None] * 100


def test_kind_without_rate_or_count_never_fails() -> None:
    faults = plan(kind="500")
    assert all(faults.decide(None) is None for _ in range(50))


def test_first_n_fail_then_succeed() -> None:
    faults = plan(kind="529", first_n=3)
    assert [faults.decide(None) for _ in range(6)] == ["529", "529", "529", None, None, None]


def test_rate_is_seeded_and_roughly_right() -> None:
    draws = [plan(seed=7, kind="500", rate=0.3) for _ in range(2)]
    first = [draws[0].decide(None) for _ in range(2000)]
    second = [draws[1].decide(None) for _ in range(2000)]
    assert first == second
    assert 450 < first.count("500") < 750


def test_rate_one_always_fails() -> None:
    faults = plan(kind="hang", rate=1.0)
    assert all(faults.decide(None) == "hang" for _ in range(20))


def test_explicit_ask_wins_and_does_not_count_toward_first_n() -> None:
    faults = plan(kind="500", first_n=1)
    assert faults.decide("drop") == "drop"
    assert faults.decide(None) == "500"
    assert faults.decide(None) is None


def test_explicit_ask_must_be_a_known_kind() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        plan().decide("418", "x-mock-fault")
    assert caught.value.param == "x-mock-fault"
    assert "418" in caught.value.message


def test_replace_restarts_first_n() -> None:
    faults = plan(kind="500", first_n=1)
    assert faults.decide(None) == "500"
    faults.replace(MockFaultSettings(kind="429", first_n=1, retry_after=3))
    assert faults.settings.retry_after == 3
    assert faults.decide(None) == "429"
    assert faults.decide(None) is None


def test_every_kind_parses() -> None:
    assert {parse_fault_kind(k, "h") for k in FAULT_KINDS} == FAULT_KINDS


def test_status_faults_map_to_errors() -> None:
    limited = fault_error("429", 2.5)
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after == 2.5
    server = fault_error("500", 1)
    assert server is not None
    assert server.status == 500
    overloaded = fault_error("529", 1)
    assert isinstance(overloaded, UpstreamError)
    assert (overloaded.status, overloaded.kind) == (529, "overloaded")
    assert fault_error("hang", 1) is None
    assert fault_error("drop", 1) is None


@pytest.mark.parametrize(("seconds", "header"), [(1.0, "1"), (0, "0"), (2.5, "2.5")])
def test_retry_after_header(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_malformed_bodies_do_not_parse(dialect: DialectName) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(malformed_body(dialect))
    frame = malformed_frame(dialect)
    assert frame.endswith(b"\n\n")
    data = frame.split(b"data: ", 1)[1].strip()
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(data)
