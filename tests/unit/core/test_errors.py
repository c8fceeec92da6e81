"""``GatewayError`` sets ``args`` itself (no ``super().__init__`` call): an error reads and
prints as ``Exception(message)`` would, however it was built."""

from __future__ import annotations

import pickle

import pytest

from relaygate.core.errors import (
    GatewayError,
    ModelNotFoundError,
    NoRouteError,
    RateLimitedError,
    UpstreamTimeoutError,
)


@pytest.mark.parametrize(
    "error",
    [
        GatewayError("boom"),
        GatewayError(message="boom"),
        RateLimitedError("boom", retry_after=2.0),
        NoRouteError("boom", ["a", "b"], status=503),
        UpstreamTimeoutError("boom"),
    ],
)
def test_an_error_has_its_message_as_its_only_argument(error: GatewayError) -> None:
    assert error.args == ("boom",)
    assert str(error) == "boom"
    assert error.message == "boom"


def test_a_subclass_building_its_message_keeps_it_as_the_argument() -> None:
    error = ModelNotFoundError("nope", ["a"])
    assert error.args == (error.message,)
    assert str(error) == error.message


def test_an_error_survives_a_pickle_round_trip() -> None:
    error = pickle.loads(pickle.dumps(RateLimitedError("boom", retry_after=2.0)))
    assert (error.args, error.retry_after, error.status) == (("boom",), 2.0, 429)
