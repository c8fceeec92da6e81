"""JSON Schema validation with readable problems, via the ``jsonschema`` library."""

from __future__ import annotations

from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError, ValidationError

MAX_PROBLEMS = 5


class InvalidSchemaError(ValueError):
    """The schema itself is not a valid JSON Schema."""


class SchemaCheck:
    """A compiled schema; ``problems`` lists what is wrong with a value, best match first."""

    def __init__(self, schema: dict[str, Any]) -> None:
        validator_class = jsonschema.validators.validator_for(schema)
        try:
            validator_class.check_schema(schema)
        except SchemaError as exc:
            raise InvalidSchemaError(f"invalid JSON Schema: {exc.message}") from None
        self.schema = schema
        self._validator = validator_class(self.schema)

    def problems(self, value: Any) -> list[str]:
        errors = sorted(self._validator.iter_errors(value), key=jsonschema.exceptions.relevance)
        return [describe(error) for error in errors[:MAX_PROBLEMS]]


def describe(error: ValidationError) -> str:
    """``at $.items[0].qty: 'x' is not of type 'integer'``."""
    return f"at {error.json_path}: {error.message}"
