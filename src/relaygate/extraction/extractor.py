"""One extraction attempt: ask, parse, validate; on a bad answer, one corrective re-ask.

The model is reached through ``ask`` (a conversation in, the answer's text out), so this module
knows nothing of routing or HTTP; the worker passes a function that goes through the relay.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from relaygate.extraction.parse import NoJSONError, ParsedAnswer, parse_answer
from relaygate.extraction.schema import SchemaCheck

Validity = Literal["first_try", "after_reask"]


@dataclass(frozen=True, slots=True)
class Turn:
    role: Literal["user", "assistant"]
    text: str


Ask = Callable[[Sequence[Turn]], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Extraction:
    value: Any
    validity: Validity


class ExtractionFailedError(Exception):
    """Neither the answer nor the corrected one was valid; ``problems`` says why, in order."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


async def extract(prompt: str, check: SchemaCheck, ask: Ask) -> Extraction:
    """Ask ``prompt``; return the schema-valid JSON, re-asking once with the problem found."""
    conversation = [Turn("user", prompt)]
    answer = await ask(conversation)
    value, problem = judge(answer, check)
    if problem is None:
        return Extraction(value, "first_try")
    conversation += [Turn("assistant", answer), Turn("user", corrective_prompt(problem, check))]
    second = await ask(conversation)
    value, second_problem = judge(second, check)
    if second_problem is None:
        return Extraction(value, "after_reask")
    raise ExtractionFailedError(
        [f"first answer: {problem}", f"after the corrective re-ask: {second_problem}"]
    )


def judge(answer: str, check: SchemaCheck) -> tuple[Any, str | None]:
    """(value, None) when ``answer`` holds schema-valid JSON, else (None, the problem)."""
    try:
        parsed: ParsedAnswer = parse_answer(answer)
    except NoJSONError as exc:
        return None, str(exc)
    problems = check.problems(parsed.value)
    if problems:
        return None, "the JSON does not match the schema: " + "; ".join(problems)
    return parsed.value, None


def corrective_prompt(problem: str, check: SchemaCheck) -> str:
    schema = orjson.dumps(check.schema).decode()
    return (
        f"Your previous answer could not be used: {problem}.\n"
        "Answer again with only one JSON value that matches this JSON Schema, "
        f"with no prose and no code fence:\n{schema}"
    )
