from __future__ import annotations

import pytest

from relaygate.extraction import NoJSONError, parse_answer


@pytest.mark.parametrize(
    ("answer", "value", "how"),
    [
        ('{"a": 1}', {"a": 1}, "plain"),
        ("  [1, 2]\n", [1, 2], "plain"),
        ('Sure:\n```json\n{"a": 1}\n```\nDone.', {"a": 1}, "fenced"),
        ('```\n{"a": 1}\n```', {"a": 1}, "fenced"),
        ('Here is the order: {"a": {"b": [1]}} as asked.', {"a": {"b": [1]}}, "embedded"),
        ('{"a": 1, "b": [1, 2,],}', {"a": 1, "b": [1, 2]}, "repaired"),
        ("{'a': 'x'}", {"a": "x"}, "repaired"),
        ('{a: 1, b: "two"}', {"a": 1, "b": "two"}, "repaired"),
        (
            '{"order_id": "A1", "items": [{"sku": "x"',
            {"order_id": "A1", "items": [{"sku": "x"}]},
            "repaired",
        ),
        ('The JSON: ```json\n{"a": 1,}\n```', {"a": 1}, "repaired"),
    ],
)
def test_answers_yield_their_json(answer: str, value: object, how: str) -> None:
    parsed = parse_answer(answer)
    assert parsed.value == value
    assert parsed.how == how


@pytest.mark.parametrize("answer", ["", "I cannot help with that.", "42", '"just a string"'])
def test_an_answer_without_an_object_or_array_is_refused(answer: str) -> None:
    with pytest.raises(NoJSONError):
        parse_answer(answer)
