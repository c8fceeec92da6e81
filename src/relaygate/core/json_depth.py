"""JSON the gateway could parse but not serialize again.

orjson parses up to 1,024 levels of nesting but serializes at most 254, so a request nested deeper
(a tool schema 300 levels deep, an unknown field relayed as is) would decode and then fail in a
request builder as an internal error. The decoders refuse it up front with a 400 naming the field.
Upstream answers are held to the same limit (``nests_too_deep``): the provider parsers refuse a
tool input nested deeper as a malformed answer (a 502), before a caller's encoder meets it.
``MAX_DEPTH`` stays below orjson's limit because translation re-embeds caller values a few levels
deeper than they came (an Anthropic ``input_schema`` becomes an OpenAI ``function.parameters``).
"""

from __future__ import annotations

import orjson

from relaygate.core.errors import InvalidRequestError

MAX_DEPTH = 240
"""Levels of nesting a caller's JSON may have (the body object itself is level 1)."""

_SERIALIZABLE_DEPTH = 254  # orjson.dumps refuses containers nested deeper than this
_SHOWN_SEGMENTS = 6


def check_depth(value: object, path: str = "") -> None:
    """Raise ``InvalidRequestError`` naming where ``value`` nests deeper than ``MAX_DEPTH``.

    ``path`` is where ``value`` sits in the request ("" for the whole body).
    """
    if nests_too_deep(value):
        field = _too_deep(value, path)
        raise InvalidRequestError(
            f"{field}: JSON nested more than {MAX_DEPTH} levels deep", param=field
        ) from None


def check_body_depth(body: bytes, parsed: object) -> None:
    """``check_depth(parsed)`` of the whole body ``parsed`` from the JSON ``body``.

    Every container of the parsed value opens with a literal ``[`` or ``{`` byte in the body
    (an escaped one inside a string is not a bracket), so a body with at most ``MAX_DEPTH`` of
    them cannot nest deeper: the check is skipped, as for most requests (re-serializing the
    body cost ~10% of a refusal that read it)."""
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH:
        check_depth(parsed)


def nests_too_deep(value: object) -> bool:
    """Whether ``value`` has containers nested more than ``MAX_DEPTH`` levels deep."""
    wrapped = value
    for _ in range(_SERIALIZABLE_DEPTH - MAX_DEPTH):
        wrapped = [wrapped]
    try:
        # orjson in C costs a fraction of the parse; a Python walk of every request would not.
        orjson.dumps(wrapped)
    except orjson.JSONEncodeError:
        return True
    return False


def too_deep(where: str) -> str:
    """What to say of an upstream value at ``where`` that ``nests_too_deep``."""
    return f"{where} nested more than {MAX_DEPTH} levels deep"


def _too_deep(value: object, path: str) -> str:
    """The path to the first container past ``MAX_DEPTH``, shortened to its first segments."""
    stack: list[tuple[object, list[str]]] = [(value, [path] if path else [])]
    while stack:
        node, segments = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if len(segments) - (1 if path else 0) >= MAX_DEPTH:
            shown = _join(segments[:_SHOWN_SEGMENTS])
            return shown + "..." if len(segments) > _SHOWN_SEGMENTS else shown
        if isinstance(node, dict):
            stack.extend((child, [*segments, f".{key}"]) for key, child in node.items())
        else:
            stack.extend((child, [*segments, f"[{i}]"]) for i, child in enumerate(node))
    return path or "body"


def _join(segments: list[str]) -> str:
    return "".join(segments).removeprefix(".")
