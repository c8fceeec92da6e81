"""A model's answer -> the JSON value it holds: plain, fenced, inside prose, or repaired.

Models asked for JSON answer with prose around it, a fenced block, single quotes, trailing commas,
unquoted keys or a tail cut off at ``max_tokens``. Strict parses are tried first (they are exact),
then the well-kept ``json-repair`` library mends what is left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import json_repair
import orjson

HowParsed = Literal["plain", "fenced", "embedded", "repaired"]

_FENCE = re.compile(r"```[ \t]*(?:json[ \t]*)?\r?\n?(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE)


class NoJSONError(ValueError):
    """The answer holds no JSON object or array, even after repair."""


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    value: Any
    how: HowParsed


def parse_answer(text: str) -> ParsedAnswer:
    """The first JSON object or array in ``text``; raises ``NoJSONError`` when there is none."""
    stripped = text.strip()
    strict = _strict(stripped)
    if strict is not None:
        return ParsedAnswer(strict, "plain")
    for block in _FENCE.findall(stripped):
        fenced = _strict(block.strip())
        if fenced is not None:
            return ParsedAnswer(fenced, "fenced")
    embedded = _embedded(stripped)
    if embedded is not None:
        return ParsedAnswer(embedded, "embedded")
    repaired = _repaired(stripped)
    if repaired is not None:
        return ParsedAnswer(repaired, "repaired")
    raise NoJSONError("the answer holds no JSON object or array")


def _strict(text: str) -> Any:
    if not text or text[0] not in "{[":
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict | list) else None


def _embedded(text: str) -> Any:
    """A strictly valid object or array between the first opening and its last closing bracket."""
    for opening, closing in (("{", "}"), ("[", "]")):
        start, end = text.find(opening), text.rfind(closing)
        if start != -1 and end > start:
            value = _strict(text[start : end + 1])
            if value is not None:
                return value
    return None


def _repaired(text: str) -> Any:
    fenced = _FENCE.search(text)
    candidate = fenced.group(1) if fenced else text
    starts = [i for i in (candidate.find("{"), candidate.find("[")) if i != -1]
    if not starts:
        return None
    try:
        value = json_repair.repair_json(candidate[min(starts) :], return_objects=True)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict | list) and value else None
