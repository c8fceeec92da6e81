"""Nearly valid bodies: a valid body with exactly one field broken.

A field anywhere in the body (the top level, a message, a content block, a tool, a schema) is
removed, given a value of the wrong type, pushed out of range, or given an unknown enum value.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
from hypothesis import strategies as st

Container = dict[str, Any] | list[Any]
Slot = tuple[Container, str | int]

WRONG_TYPES: tuple[Any, ...] = (None, True, 0, -1, 1.5, "", "x", [], {}, [None], {"": None})
OUT_OF_RANGE: tuple[Any, ...] = (
    -1,
    0,
    -(2**63),
    2**63,
    2**64 + 1,
    10**30,
    1e308,
    -1e308,
    5e-324,
)
UNKNOWN_ENUMS = ("", "bogus", "USER", "function ", "tool_use\x00", "😀")


def slots(value: Any) -> list[Slot]:
    """Every (container, key) pair in a JSON value, depth first."""
    found: list[Slot] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((value, key))
            found.extend(slots(item))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((value, index))
            found.extend(slots(item))
    return found


def _replacement(draw: st.DrawFn, old: Any) -> Any:
    if isinstance(old, str):
        pool = (*WRONG_TYPES, *UNKNOWN_ENUMS)
    elif isinstance(old, int | float) and not isinstance(old, bool):
        pool = (*WRONG_TYPES, *OUT_OF_RANGE)
    else:
        pool = WRONG_TYPES
    return draw(st.sampled_from(pool))


@st.composite
def nearly_valid(draw: st.DrawFn, bodies: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """One valid body from ``bodies`` with one field removed or replaced."""
    body = copy.deepcopy(draw(bodies))
    container, key = draw(st.sampled_from(slots(body)))
    if draw(st.booleans()):
        if isinstance(container, dict):
            del container[key]
        else:
            container.pop(key)  # type: ignore[call-overload]
    else:
        container[key] = _replacement(draw, container[key])  # type: ignore[index]
    return body


def encode(body: dict[str, Any]) -> bytes:
    """JSON bytes; integers past 64 bits (which orjson refuses) through the standard library."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, ensure_ascii=False).encode()
