from __future__ import annotations

import json
import logging
import sys

from relaygate.core.errors import UpstreamError
from relaygate.core.redact import Redactor
from relaygate.observability.logging import JsonFormatter

KEY = 'odd/key"Wd3NKp6Ys1Lr8Tb5'
OTHER = "another-credential-0123456789"


def test_every_form_of_every_secret_is_replaced() -> None:
    redactor = Redactor([KEY, OTHER, ""])
    escaped = json.dumps(KEY)[1:-1]
    text = f"a {KEY} b {escaped} c {escaped.replace('/', chr(92) + '/')} d {OTHER}"
    cleaned = redactor.text(text)
    assert KEY not in cleaned and escaped not in cleaned and OTHER not in cleaned
    assert cleaned.count("[redacted]") == 4
    assert redactor.raw(text.encode()) == cleaned.encode()


def test_a_secret_inside_a_longer_one_does_not_leave_the_rest() -> None:
    redactor = Redactor(["abcdefghij", "abcdefghij-and-more"])
    assert redactor.text("x abcdefghij-and-more y") == "x [redacted] y"


def test_a_message_clipped_in_the_middle_of_a_key_loses_the_part() -> None:
    redactor = Redactor([OTHER])
    clipped = UpstreamError(f"upstream error: echoed {OTHER[:15]}")
    assert redactor.error(clipped).message == "upstream error: echoed [redacted]"
    assert str(clipped) == clipped.message
    short = "upstream error: ends with anot"  # too short a part to say it is the key
    assert redactor.message(short) == short


def test_no_secrets_changes_nothing() -> None:
    redactor = Redactor([])
    assert not redactor
    err = UpstreamError("anything sk-like")
    assert redactor.error(err) is err and err.message == "anything sk-like"


def test_log_lines_lose_the_secrets_wherever_they_are() -> None:
    formatter = JsonFormatter()
    formatter.redactor = Redactor([KEY])
    try:
        raise ValueError(f"upstream said {KEY}")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "relaygate.x", logging.ERROR, __file__, 1, "saw %s", (KEY,), exc_info
    )
    record.fields = {"detail": KEY}
    line = formatter.format(record)
    assert KEY not in line and json.dumps(KEY)[1:-1] not in line
    assert line.count("[redacted]") == 3
