"""Structured output (task=custom): check the caller's JSON Schema, validate answers."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match

from vision.parsing import AnswerParseError, extract_json

MAX_SCHEMA_CHARS = 50_000


class InvalidSchemaError(ValueError):
    """The JSON Schema given with a job is not a valid schema."""


class SchemaMismatchError(AnswerParseError):
    """The model's JSON answer does not satisfy the job's schema."""


def check_schema(schema: object) -> dict[str, Any]:
    """Return ``schema`` if it is a valid JSON Schema object; raise InvalidSchemaError."""
    if not isinstance(schema, dict):
        raise InvalidSchemaError("the schema must be a JSON object")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidSchemaError(f"not a valid JSON Schema: {exc.message}") from exc
    return schema


def parse_structured(text: str, schema: dict[str, Any]) -> Any:
    """The answer's JSON value, validated against ``schema``."""
    value = extract_json(text)
    error: ValidationError | None = best_match(Draft202012Validator(schema).iter_errors(value))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        raise SchemaMismatchError(
            f"the answer does not match the schema at {where}: {error.message}"
        )
    return value
