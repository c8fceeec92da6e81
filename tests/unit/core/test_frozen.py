"""``quick_init``: the same instances as the generated ``__init__``, for less."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import FrozenInstanceError, dataclass, field

import pytest

from relaygate.core.frozen import quick_init
from relaygate.core.types import ChatRequest, Usage
from relaygate.limits.limiter import Admission, BucketAsk, BucketKind, BucketSettle, Lease
from relaygate.providers.base import UpstreamRequest
from relaygate.transport.base import Timeouts


@dataclass(slots=True, frozen=True)
class Plain:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: dict[str, int] = field(default_factory=dict)


@quick_init
@dataclass(slots=True, frozen=True)
class Quick:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: dict[str, int] = field(default_factory=dict)


def _as_plain(value: Quick) -> Plain:
    return Plain(**{f.name: getattr(value, f.name) for f in dataclasses.fields(value)})


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((1,), {}), ((1, "x"), {}), ((1,), {"c": [2]}), ((), {"a": 3, "d": {"k": 1}, "b": "y"})],
)
def test_same_fields_as_the_generated_init(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    quick = Quick(*args, **kwargs)  # type: ignore[arg-type]
    assert type(quick) is Quick
    assert _as_plain(quick) == Plain(*args, **kwargs)  # type: ignore[arg-type]


def test_each_instance_gets_its_own_factory_value() -> None:
    first, second = Quick(1), Quick(1)
    assert first.c == [] and first.c is not second.c
    given: list[int] = [5]
    assert Quick(1, c=given).c is given


def test_still_frozen_comparable_and_hashable() -> None:
    quick = Quick(1, "x")
    with pytest.raises(FrozenInstanceError):
        quick.a = 2  # type: ignore[misc]
    assert quick == Quick(1, "x") and quick != Quick(2, "x")
    assert repr(quick) == "Quick(a=1, b='x', c=[], d={})"
    assert dataclasses.replace(quick, a=7) == Quick(7, "x")
    usage = Usage(1, 2)
    assert hash(usage) == hash(Usage(1, 2)) and {usage: 1}[Usage(1, 2)] == 1


def test_signature_as_the_generated_one() -> None:
    assert str(inspect.signature(Quick)) == str(inspect.signature(Plain))
    with pytest.raises(TypeError):
        Quick()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Quick(1, e=2)  # type: ignore[call-arg]


def test_a_subclass_instance_keeps_its_class() -> None:
    class Sub(Quick):
        pass

    sub = Sub(1, "x")
    assert type(sub) is Sub
    assert (sub.a, sub.b, sub.c) == (1, "x", [])


def test_the_gateways_classes_build_as_before() -> None:
    assert ChatRequest("openai", "m", ()).raw == {}
    assert Usage(input_tokens=3).total_tokens == 3
    ask = BucketAsk.per_minute("k", 120, cost=5)
    assert (ask.kind, ask.capacity, ask.rate, ask.cost) == (BucketKind.RATE, 120.0, 2.0, 5.0)
    assert BucketSettle.true_up(ask, 2).refund == 3.0
    lease = Lease("m1", ("a",), "memory")
    assert Admission(True, lease=lease).lease is lease
    assert Timeouts(first_byte=5).total == 600.0
    assert UpstreamRequest("POST", "http://x", {}, b"").stream is False


def test_refuses_what_it_cannot_reproduce() -> None:
    @dataclass(slots=True)
    class Mutable:
        a: int

    @dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclass(slots=True, frozen=True)
    class Post:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(slots=True, frozen=True, kw_only=True)
    class KeywordOnly:
        a: int

    @dataclass(slots=True, frozen=True)
    class NotInInit:
        a: int = field(default=0, init=False)

    @dataclass(slots=True, frozen=True)
    class WithInitVar:
        a: int
        b: dataclasses.InitVar[int]

    for cls in (Mutable, NoSlots, Post, KeywordOnly, NotInInit, WithInitVar):
        with pytest.raises(TypeError):
            quick_init(cls)
