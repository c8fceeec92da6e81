from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from relaygate.extraction import (
    ExtractionFailedError,
    InvalidSchemaError,
    PromptTemplate,
    SchemaCheck,
    TemplateRenderError,
    Turn,
    extract,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["order_id", "items"],
    "properties": {
        "order_id": {"type": "string"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["qty"],
                "properties": {"qty": {"type": "integer"}},
            },
        },
    },
}


class ScriptedModel:
    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.conversations: list[list[Turn]] = []

    async def __call__(self, conversation: Sequence[Turn]) -> str:
        self.conversations.append(list(conversation))
        return self.answers.pop(0)


async def test_a_valid_first_answer_needs_no_reask() -> None:
    model = ScriptedModel('Here: {"order_id": "A1", "items": []}')
    result = await extract("prompt", SchemaCheck(SCHEMA), model)
    assert result.value == {"order_id": "A1", "items": []}
    assert result.validity == "first_try"
    assert len(model.conversations) == 1


async def test_a_schema_invalid_answer_is_reasked_with_the_validation_error() -> None:
    model = ScriptedModel(
        '{"order_id": "A1", "items": [{"qty": "two"}]}',
        '{"order_id": "A1", "items": [{"qty": 2}]}',
    )
    result = await extract("prompt", SchemaCheck(SCHEMA), model)
    assert result.validity == "after_reask"
    assert result.value["items"] == [{"qty": 2}]
    reask = model.conversations[1]
    assert [t.role for t in reask] == ["user", "assistant", "user"]
    assert reask[1].text == '{"order_id": "A1", "items": [{"qty": "two"}]}'
    assert "$.items[0].qty" in reask[2].text
    assert "'two' is not of type 'integer'" in reask[2].text
    assert '"required":["order_id","items"]' in reask[2].text


async def test_two_bad_answers_fail_the_attempt_with_both_problems() -> None:
    model = ScriptedModel("no idea", '{"items": []}')
    with pytest.raises(ExtractionFailedError) as caught:
        await extract("prompt", SchemaCheck(SCHEMA), model)
    first, second = caught.value.problems
    assert "holds no JSON" in first
    assert "'order_id' is a required property" in second


def test_an_invalid_schema_is_refused() -> None:
    with pytest.raises(InvalidSchemaError, match="invalid JSON Schema"):
        SchemaCheck({"type": "objekt"})


def test_templates_render_event_data_in_a_sandbox() -> None:
    template = PromptTemplate("Extract: {{ content }} ({{ meta.lang | default('en') }})")
    assert template.render({"content": "2 apples", "meta": {}}) == "Extract: 2 apples (en)"
    hostile = PromptTemplate("{{ content.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateRenderError):
        hostile.render({"content": "x"})


def test_a_template_syntax_error_names_the_line() -> None:
    with pytest.raises(ValueError, match="template syntax error at line 2"):
        PromptTemplate("ok\n{{ content }")
