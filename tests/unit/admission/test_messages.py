"""What a refused request is told: the texts, worked out once per bucket and whole seconds."""

from __future__ import annotations

import pytest

from relaygate.admission import messages
from relaygate.admission.messages import MAX_REFUSAL_TEXTS, refusal
from relaygate.core.errors import RateLimitedError
from relaygate.limits.limiter import Admission
from relaygate.limits.resilient import SHARED_DOWN


@pytest.mark.parametrize(
    ("refused", "retry", "result", "message"),
    [
        (
            "k:abc:rps",
            0.2,
            "key_limit",
            "This API key exceeded its request rate limit (requests per second): retry in 1 s",
        ),
        (
            "k:abc:rpm",
            12.01,
            "key_limit",
            "This API key exceeded its requests-per-minute limit: retry in 13 s",
        ),
        (
            "k:abc:tpm",
            3.0,
            "key_limit",
            "This API key exceeded its tokens-per-minute limit: retry in 3 s",
        ),
        (
            "k:abc:conc",
            1.0,
            "key_limit",
            "This API key exceeded its limit of concurrent requests: retry in 1 s",
        ),
        ("k:abc:other", 2.5, "key_limit", "This API key exceeded its rate limit: retry in 3 s"),
        (
            SHARED_DOWN,
            0.5,
            "shared_unavailable",
            "relaygate is busy: shared rate limits are unavailable; retry in 1 s",
        ),
        ("d:dep-1", 4.2, "busy", "relaygate is busy: retry in 5 s"),
        (None, 0.0, "busy", "relaygate is busy: retry in 1 s"),
    ],
)
def test_each_refusal_is_told_why_and_when(
    refused: str | None, retry: float, result: str, message: str
) -> None:
    for _ in range(2):  # worked out, then remembered: the same
        counted, error = refusal(Admission(False, retry, refused))
        assert (counted, error.message, error.retry_after) == (result, message, retry)
        assert isinstance(error, RateLimitedError) and error.status == 429


def test_every_refusal_gets_its_own_error_and_its_own_seconds() -> None:
    _, first = refusal(Admission(False, 0.4, "k:abc:rps"))
    _, again = refusal(Admission(False, 0.9, "k:abc:rps"))
    _, later = refusal(Admission(False, 1.5, "k:abc:rps"))
    assert first is not again  # the redactor and the handler may change an error in place
    assert (first.retry_after, again.retry_after) == (0.4, 0.9)
    assert first.message == again.message != later.message
    assert later.message.endswith("retry in 2 s")


def test_the_remembered_texts_are_bounded() -> None:
    for n in range(2 * MAX_REFUSAL_TEXTS):
        refusal(Admission(False, float(n), "k:abc:rps"))
    assert len(messages._REFUSAL_TEXTS) <= MAX_REFUSAL_TEXTS
