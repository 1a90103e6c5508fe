"""Structured output (task=custom): check the caller's JSON Schema, validate answers."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from referencing import Registry
from referencing.exceptions import NoSuchResource, Unresolvable

from vision.parsing import AnswerParseError, extract_json

MAX_SCHEMA_CHARS = 50_000


class InvalidSchemaError(ValueError):
    """The JSON Schema given with a job is not a valid schema."""


class SchemaMismatchError(AnswerParseError):
    """The model's JSON answer does not satisfy the job's schema."""


def _refuse_retrieval(uri: str) -> Any:
    # A schema must never make us fetch a URL (SSRF): only local "#..." references resolve.
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


def _validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, registry=Registry(retrieve=_refuse_retrieval))  # type: ignore[call-arg]


def _remote_refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [
            str(value)
            for key, value in node.items()
            if key in ("$ref", "$dynamicRef") and not str(value).startswith("#")
        ]
        return found + [ref for value in node.values() for ref in _remote_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _remote_refs(value)]
    return []


def check_schema(schema: object) -> dict[str, Any]:
    """Return ``schema`` if it is a valid, self-contained JSON Schema; raise InvalidSchemaError."""
    if not isinstance(schema, dict):
        raise InvalidSchemaError("the schema must be a JSON object")
    remote = _remote_refs(schema)
    if remote:
        raise InvalidSchemaError(
            f"only local references (#/...) are allowed, not {remote[0]!r}; inline that schema"
        )
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidSchemaError(f"not a valid JSON Schema: {exc.message}") from exc
    return schema


def parse_structured(text: str, schema: dict[str, Any]) -> Any:
    """The answer's JSON value, validated against ``schema``."""
    value = extract_json(text)
    try:
        error: ValidationError | None = best_match(_validator(schema).iter_errors(value))
    except Unresolvable as exc:
        raise AnswerParseError(
            f"the schema has a reference that cannot be resolved: {exc}"
        ) from exc
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        raise SchemaMismatchError(
            f"the answer does not match the schema at {where}: {error.message}"
        )
    return value
