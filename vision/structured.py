"""Structured output (task=custom): check the caller's JSON Schema, validate answers.

Validating an answer takes bounded time: regular expressions are matched with RE2 (linear
time, see vision/schema_safety.py), the answer's size and nesting are bounded before
validation, ``uniqueItems`` is checked by hashing (jsonschema compares every pair), and
every keyword checks a time budget, so a schema whose combinators multiply across the
answer's levels ends with SchemaUnverifiableError instead of running on.
"""

from __future__ import annotations

import contextvars
import json
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.exceptions import NoSuchResource, Unresolvable

from visionq.vision.parsing import AnswerParseError, extract_json
from visionq.vision.schema_safety import (
    PatternError,
    UnsafeSchemaError,
    check_safety,
    compile_pattern,
    is_regex,
    pattern_search,
)

MAX_SCHEMA_CHARS = 50_000
# An answer longer than this is not validated (Gemini's largest output, 65,536 tokens, is
# ~260,000 characters of JSON).
MAX_ANSWER_CHARS = 1_000_000
# JSON containers nested deeper than this in an answer are not validated: jsonschema
# recurses a few frames per level.
MAX_ANSWER_DEPTH = 64
# Wall-clock seconds one validation may take; checked before every keyword.
VALIDATION_BUDGET_S = 2.0
_PREVIEW = 80

_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("schema_deadline")


class InvalidSchemaError(ValueError):
    """The JSON Schema given with a job is not a valid schema."""


class SchemaMismatchError(AnswerParseError):
    """The model's JSON answer does not satisfy the job's schema: asked for once more, then
    the job fails."""

    codes = frozenset({"schema_mismatch"})


class SchemaUnverifiableError(AnswerParseError):
    """The answer could not be checked against the schema within the bounds (size, nesting,
    time); asking again would not help, so the job fails."""

    codes = frozenset({"schema_unverifiable"})


class _OverBudget(Exception):
    pass


def _short(text: str) -> str:
    return repr(text) if len(text) <= _PREVIEW else repr(text[:_PREVIEW]) + "..."


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not pattern_search(pattern, instance):
        yield ValidationError(f"{_short(instance)} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if pattern_search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional(schema: dict[str, Any], instance: dict[str, Any]) -> list[str]:
    """The keys ``properties`` and ``patternProperties`` leave to ``additionalProperties``."""
    named = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    return [
        key
        for key in instance
        if key not in named and not any(pattern_search(p, key) for p in patterns)
    ]


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    extras = _additional(schema, instance)
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        names = ", ".join(_short(extra) for extra in sorted(extras)[:10])
        yield ValidationError(f"additional properties are not allowed ({names})")


def _canonical(value: Any) -> Any:
    """A hashable form equal for JSON-equal values (1 == 1.0, but true != 1)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, int | float):
        number = int(value) if isinstance(value, float) and value.is_integer() else value
        return ("number", number)
    if isinstance(value, list):
        return ("array", tuple(_canonical(item) for item in value))
    if isinstance(value, dict):
        return ("object", frozenset((key, _canonical(item)) for key, item in value.items()))
    return ("other", repr(value))


def _unique_items(
    validator: Any, unique: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for item in instance:
        key = _canonical(item)
        if key in seen:
            yield ValidationError(f"the array has non-unique elements ({_short(json.dumps(item))})")
            return
        seen.add(key)


_Keyword = Callable[[Any, Any, Any, Any], Any]


def _budgeted(keyword: _Keyword) -> _Keyword:
    def check(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        if time.monotonic() > _deadline.get(math.inf):
            raise _OverBudget
        return keyword(validator, value, instance, schema)

    return check


_OWN: dict[str, _Keyword] = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
}
_KEYWORDS = {**Draft202012Validator.VALIDATORS, **_OWN}
SafeValidator: type[Validator] = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    validators={name: _budgeted(keyword) for name, keyword in _KEYWORDS.items()},
)
# The metaschema's "regex" format (on pattern and patternProperties) checked with RE2.
_SCHEMA_FORMATS = FormatChecker()
_SCHEMA_FORMATS.checks("regex")(is_regex)


def _refuse_retrieval(uri: str) -> Any:
    # A schema must never make us fetch a URL (SSRF): only local "#..." references resolve.
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


def _validator(schema: dict[str, Any]) -> Validator:
    return SafeValidator(schema, registry=Registry(retrieve=_refuse_retrieval))  # type: ignore[call-arg]


def _remote_refs(node: object) -> list[str]:
    found: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.extend(
                str(value)
                for key, value in item.items()
                if key in ("$ref", "$dynamicRef") and not str(value).startswith("#")
            )
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def check_schema(schema: object) -> dict[str, Any]:
    """Return ``schema`` if it is a valid, self-contained JSON Schema whose validation is
    bounded (RE2 patterns, no $ref loops, see vision/schema_safety.py); raise
    InvalidSchemaError."""
    if not isinstance(schema, dict):
        raise InvalidSchemaError("the schema must be a JSON object")
    remote = _remote_refs(schema)
    if remote:
        raise InvalidSchemaError(
            f"only local references (#/...) are allowed, not {remote[0]!r}; inline that schema"
        )
    try:
        Draft202012Validator.check_schema(schema, format_checker=_SCHEMA_FORMATS)
        check_safety(schema)
    except SchemaError as exc:
        if exc.validator == "format" and exc.validator_value == "regex":
            _explain_pattern(exc)
        raise InvalidSchemaError(f"not a valid JSON Schema: {exc.message}") from exc
    except UnsafeSchemaError as exc:
        raise InvalidSchemaError(str(exc)) from exc
    return schema


def _explain_pattern(exc: SchemaError) -> None:
    """Raise InvalidSchemaError saying where a pattern is and why RE2 refuses it."""
    where = "/".join(["#", *(str(part) for part in exc.absolute_path)])
    try:
        compile_pattern(str(exc.instance))
    except PatternError as refused:
        raise InvalidSchemaError(f"{where}: {refused}") from exc


def _depth(value: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_ANSWER_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _bounded_answer(text: str) -> Any:
    if len(text) > MAX_ANSWER_CHARS:
        raise SchemaUnverifiableError(
            f"the answer has {len(text):,} characters; answers over {MAX_ANSWER_CHARS:,} are "
            "not validated: lower options.max_output_tokens or ask for less"
        )
    try:
        value = extract_json(text)
    except RecursionError as exc:
        raise SchemaUnverifiableError("the answer's JSON is nested too deeply to read") from exc
    if _depth(value) > MAX_ANSWER_DEPTH:
        raise SchemaUnverifiableError(
            f"the answer's JSON is nested more than {MAX_ANSWER_DEPTH} levels deep; answers "
            "that deep are not validated: ask for a flatter structure"
        )
    return value


def parse_structured(text: str, schema: dict[str, Any]) -> Any:
    """The answer's JSON value, validated against ``schema`` in bounded time."""
    value = _bounded_answer(text)
    token = _deadline.set(time.monotonic() + VALIDATION_BUDGET_S)
    try:
        error: ValidationError | None = best_match(_validator(schema).iter_errors(value))
    except Unresolvable as exc:
        raise AnswerParseError(
            f"the schema has a reference that cannot be resolved: {exc}"
        ) from exc
    except _OverBudget as exc:
        raise SchemaUnverifiableError(
            f"checking the answer against the schema took over {VALIDATION_BUDGET_S:g} s; "
            "simplify the schema (fewer anyOf/oneOf branches applying to the same values)"
        ) from exc
    except PatternError as exc:
        # A job stored before patterns were checked at submit.
        raise SchemaUnverifiableError(f"the schema cannot be used: {exc}") from exc
    except RecursionError as exc:
        raise SchemaUnverifiableError(
            "checking the answer against the schema nested too deeply (its $refs and the "
            "answer's levels together); simplify the schema or ask for a flatter answer"
        ) from exc
    finally:
        _deadline.reset(token)
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path) or "(root)"
        raise SchemaMismatchError(
            f"the answer does not match the schema at {where}: {error.message}"
        )
    return value
