"""Minimal JSON Schema instances for structured-output answers."""

from __future__ import annotations

from typing import Any

import pytest

from relaygate.mock.schema import schema_instance


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, "mock"),
        ({"type": "string", "minLength": 6}, "mockxx"),
        ({"type": "string", "maxLength": 2}, "mo"),
        ({"type": "string", "format": "date-time"}, "2024-01-01T00:00:00Z"),
        ({"type": "string", "format": "email"}, "mock@example.com"),
        ({"type": "integer"}, 0),
        ({"type": "integer", "minimum": 5}, 5),
        ({"type": "integer", "exclusiveMinimum": 5}, 6),
        ({"type": "number", "exclusiveMinimum": 1}, 1.5),
        ({"type": "integer", "maximum": -3}, -3),
        ({"type": "number", "minimum": 0.25}, 0.25),
        ({"type": "boolean"}, False),
        ({"type": "null"}, None),
        ({"type": ["null", "integer"]}, 0),
        ({"enum": ["b", "a"]}, "b"),
        ({"const": 42}, 42),
        ({"type": "string", "default": "dflt"}, "dflt"),
        ({"anyOf": [{"type": "null"}, {"type": "boolean"}]}, False),
        ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, 0),
        ({"type": "array", "items": {"type": "integer"}}, []),
        ({"type": "array", "items": {"type": "string"}, "minItems": 2}, ["mock", "mock"]),
        ({"type": "object", "properties": {"a": {"type": "string"}}}, {}),
        ({}, None),
    ],
)
def test_instances(schema: dict[str, Any], expected: Any) -> None:
    assert schema_instance(schema) == expected


def test_object_fills_required_properties_only_and_recurses() -> None:
    schema = {
        "type": "object",
        "properties": {
            "order": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "lines": {"type": "array"}},
                "required": ["id", "lines"],
            },
            "optional": {"type": "string"},
            "status": {"type": "string", "enum": ["open", "closed"]},
        },
        "required": ["order", "status"],
        "additionalProperties": False,
    }
    assert schema_instance(schema) == {"order": {"id": 0, "lines": []}, "status": "open"}


def test_required_property_without_a_definition_is_null() -> None:
    assert schema_instance({"type": "object", "required": ["x"]}) == {"x": None}


def test_local_refs_resolve() -> None:
    schema = {
        "$defs": {
            "Item": {
                "type": "object",
                "properties": {"sku": {"type": "string"}},
                "required": ["sku"],
            }
        },
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 1}
        },
        "required": ["items"],
    }
    assert schema_instance(schema) == {"items": [{"sku": "mock"}]}


def test_unresolvable_ref_is_null() -> None:
    assert schema_instance({"$ref": "https://example.com/other.json"}) is None
    assert schema_instance({"$ref": "#/definitions/missing"}) is None


def test_all_of_merges_object_parts() -> None:
    schema = {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"type": "object", "properties": {"b": {"type": "boolean"}}, "required": ["b"]},
        ]
    }
    assert schema_instance(schema) == {"a": 0, "b": False}


def test_recursive_schema_terminates() -> None:
    schema = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"next": {"$ref": "#/$defs/Node"}},
                "required": ["next"],
            }
        },
        "$ref": "#/$defs/Node",
    }
    value = schema_instance(schema)
    depth = 0
    while isinstance(value, dict):
        value = value["next"]
        depth += 1
    assert value is None
    assert depth > 3
