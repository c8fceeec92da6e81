"""Minimal JSON Schema instances: what the mock answers when asked for structured output.

Only the parts of JSON Schema that LLM structured-output APIs accept are understood: types,
``properties``/``required``, ``items``/``minItems``, ``enum``/``const``, ``anyOf``/``oneOf``/
``allOf``, local ``$ref``, string/number bounds and a few formats. Anything else yields ``None``.
"""

from __future__ import annotations

from typing import Any

JSONSchema = dict[str, Any]

_MAX_DEPTH = 32
_STRING_BY_FORMAT = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "email": "mock@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "hostname": "example.com",
}


def schema_instance(schema: JSONSchema) -> Any:
    """A small value that satisfies ``schema``: required properties only, enums take the first."""
    return _instance(schema, schema, 0)


def _instance(schema: Any, root: JSONSchema, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _instance(_resolve(ref, root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return _instance(_first_non_null(options), root, depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        return _instance(_merge(all_of, root), root, depth + 1)
    return _typed(schema, _schema_type(schema), root, depth)


def _typed(schema: JSONSchema, kind: str | None, root: JSONSchema, depth: int) -> Any:
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        item = _instance(schema.get("items", {}), root, depth + 1)
        return [item] * _int(schema.get("minItems"), 0)
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return False
    return None


def _object(schema: JSONSchema, root: JSONSchema, depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        properties = {}
    required = schema.get("required")
    if not isinstance(required, list):
        return {}
    return {
        name: _instance(properties.get(name, {}), root, depth + 1)
        for name in required
        if isinstance(name, str)
    }


def _string(schema: JSONSchema) -> str:
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _STRING_BY_FORMAT:
        return _STRING_BY_FORMAT[fmt]
    min_length = _int(schema.get("minLength"), 0)
    text = "mock"
    if min_length > len(text):
        text = text + "x" * (min_length - len(text))
    max_length = schema.get("maxLength")
    if isinstance(max_length, int) and max_length < len(text):
        text = text[:max_length]
    return text


def _number(schema: JSONSchema, *, integer: bool) -> int | float:
    low = schema.get("minimum")
    exclusive = schema.get("exclusiveMinimum")
    value: float = 0
    if isinstance(low, int | float):
        value = max(value, low)
    if isinstance(exclusive, int | float) and value <= exclusive:
        value = exclusive + 1 if integer else exclusive + 0.5
    high = schema.get("maximum")
    if isinstance(high, int | float) and value > high:
        value = high
    if integer:
        return int(value) if float(value).is_integer() else int(value) + 1
    return value


def _schema_type(schema: JSONSchema) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if isinstance(k, str) and k != "null"]
        return kinds[0] if kinds else None
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def _first_non_null(options: list[Any]) -> Any:
    for option in options:
        if isinstance(option, dict) and option.get("type") != "null":
            return option
    return options[0]


def _merge(parts: list[Any], root: JSONSchema) -> JSONSchema:
    merged: JSONSchema = {"type": "object", "properties": {}, "required": []}
    for part in parts:
        if isinstance(part, dict) and isinstance(part.get("$ref"), str):
            part = _resolve(part["$ref"], root)
        if not isinstance(part, dict):
            continue
        if part.get("type") not in (None, "object") or "properties" not in part:
            return part
        merged["properties"].update(part.get("properties") or {})
        merged["required"].extend(part.get("required") or [])
    return merged


def _resolve(ref: str, root: JSONSchema) -> Any:
    if not ref.startswith("#"):
        return {}
    node: Any = root
    for token in ref.lstrip("#").strip("/").split("/"):
        if not token:
            continue
        token = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or token not in node:
            return {}
        node = node[token]
    return node


def _int(value: Any, fallback: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else fallback
