"""``check_body_depth``: the bracket count only skips a check that could not fail."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaygate.core.errors import InvalidRequestError
from relaygate.core.json_depth import MAX_DEPTH, check_body_depth, check_depth


def _nested(depth: int, inner: object = 1) -> object:
    value = inner
    for level in range(depth - 1):
        value = [value] if level % 2 else {"a": value}
    return {"model": "m", "x": value}


def _outcome(check: object, *args: object) -> str | None:
    try:
        check(*args)  # type: ignore[operator]
    except InvalidRequestError as err:
        return err.message
    return None


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 10])
def test_the_same_answer_as_check_depth_at_the_limit(depth: int) -> None:
    value = _nested(depth)
    body = orjson.dumps(value)
    assert _outcome(check_body_depth, body, value) == _outcome(check_depth, value)
    assert (_outcome(check_depth, value) is None) == (depth <= MAX_DEPTH)


def test_brackets_inside_strings_only_make_it_check() -> None:
    value = {"model": "m", "text": "[{" * 300}
    assert _outcome(check_body_depth, orjson.dumps(value), value) is None
    deep = _nested(MAX_DEPTH + 1, "[{" * 300)
    assert _outcome(check_body_depth, orjson.dumps(deep), deep) is not None


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text(alphabet='[]{}ab\\"', max_size=5),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=2), inner, max_size=2)
    ),
    max_leaves=400,
)


@given(_json, st.integers(min_value=MAX_DEPTH - 3, max_value=MAX_DEPTH + 3))
def test_any_value_wrapped_near_the_limit(inner: object, depth: int) -> None:
    value = _nested(depth, inner)
    body = orjson.dumps(value)
    assert _outcome(check_body_depth, body, value) == _outcome(check_depth, value)
