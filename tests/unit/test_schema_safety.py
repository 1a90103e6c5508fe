"""Untrusted schemas: RE2 patterns, $ref loops, expansion and answer bounds (issue 16)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from visionq.vision.schema_safety import MAX_IN_PLACE_CHAIN, MAX_PATTERN_CHARS
from visionq.vision.structured import (
    MAX_ANSWER_CHARS,
    MAX_ANSWER_DEPTH,
    InvalidSchemaError,
    SchemaMismatchError,
    SchemaUnverifiableError,
    check_schema,
    parse_structured,
)

HOSTILE = "^(.|.)*X$"


def _string_with(pattern: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"a": {"type": "string", "pattern": pattern}},
        "required": ["a"],
    }


def test_a_backtracking_pattern_is_admitted_and_matched_in_linear_time() -> None:
    # Python's re takes ~1 s on 24 characters of this and doubles per character; RE2 reads
    # 100 KB in well under a second. (A generous bound: no timing flakiness on a busy CI.)
    schema = check_schema(_string_with(HOSTILE))
    answer = json.dumps({"a": "a" * 100_000})
    started = time.perf_counter()
    with pytest.raises(SchemaMismatchError, match="does not match"):
        parse_structured(answer, schema)
    assert time.perf_counter() - started < 5
    assert parse_structured(json.dumps({"a": "a" * 100_000 + "X"}), schema)


@pytest.mark.parametrize(
    ("schema", "named"),
    [
        (_string_with("^(?=a)b"), "(?="),
        (_string_with("(?<!a)b"), "(?<!"),
        (_string_with(r"(a)\1"), r"\1"),
        ({"type": "object", "patternProperties": {r"^(x)\1$": {}}}, "patternProperties"),
        ({"$defs": {"p": {"pattern": "(?!x)"}}, "$ref": "#/$defs/p"}, "#/$defs/p/pattern"),
        # A $ref into a keyword jsonschema does not know still has its pattern checked.
        ({"x-extra": {"pattern": "(?=y)"}, "$ref": "#/x-extra"}, "(?="),
    ],
)
def test_a_pattern_re2_cannot_compile_is_refused_naming_it(schema: object, named: str) -> None:
    with pytest.raises(InvalidSchemaError, match="RE2") as info:
        check_schema(schema)
    assert named in str(info.value)


def test_a_pattern_over_the_length_limit_is_refused() -> None:
    with pytest.raises(InvalidSchemaError, match="at most"):
        check_schema(_string_with("a" * (MAX_PATTERN_CHARS + 1)))


_A = "#/$defs/a"


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        {"$defs": {"a": {"allOf": [{"$ref": _A}]}}, "properties": {"x": {"$ref": _A}}},
        {"$defs": {"a": {"anyOf": [{"type": "string"}, {"not": {"$ref": _A}}]}}, "$ref": _A},
        {"$defs": {"a": {"$anchor": "me", "$ref": "#me"}}, "$ref": "#/$defs/a"},
    ],
)  # fmt: skip
def test_a_ref_loop_is_refused(schema: object) -> None:
    with pytest.raises(InvalidSchemaError, match=r"\$ref loop"):
        check_schema(schema)


def test_a_recursive_schema_through_items_is_allowed() -> None:
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
            }
        },
        "$ref": "#/$defs/node",
    }
    schema = check_schema(tree)
    assert parse_structured('{"kids": [{"kids": []}]}', schema) == {"kids": [{"kids": []}]}


def test_refs_that_multiply_at_one_place_are_refused() -> None:
    # 30 levels of anyOf[$ref next, $ref next]: a 2 KB schema that expands to 2**30.
    defs: dict[str, Any] = {
        f"a{i}": {"anyOf": [{"$ref": f"#/$defs/a{i + 1}"}, {"$ref": f"#/$defs/a{i + 1}"}]}
        for i in range(30)
    }
    defs["a30"] = {"type": "string"}
    with pytest.raises(InvalidSchemaError, match="subschemas at one place"):
        check_schema({"$defs": defs, "$ref": "#/$defs/a0"})


def test_a_long_in_place_chain_is_refused() -> None:
    defs: dict[str, Any] = {f"a{i}": {"$ref": f"#/$defs/a{i + 1}"} for i in range(40)}
    defs["a40"] = {"type": "string"}
    with pytest.raises(InvalidSchemaError, match=f"at most {MAX_IN_PLACE_CHAIN}"):
        check_schema({"$defs": defs, "$ref": "#/$defs/a0"})


def test_dynamic_refs_and_nested_ids_are_refused() -> None:
    with pytest.raises(InvalidSchemaError, match="dynamicRef"):
        check_schema({"$dynamicAnchor": "n", "properties": {"x": {"$dynamicRef": "#n"}}})
    with pytest.raises(InvalidSchemaError, match=r"\$id is allowed only"):
        check_schema({"properties": {"x": {"$id": "urn:x", "type": "string"}}})


def test_additional_properties_with_pattern_properties_uses_re2() -> None:
    schema = check_schema(
        {
            "type": "object",
            "patternProperties": {HOSTILE: {"type": "integer"}},
            "additionalProperties": False,
        }
    )
    key = "b" * 50_000
    started = time.perf_counter()
    with pytest.raises(SchemaMismatchError, match="additional properties"):
        parse_structured(json.dumps({key: 1}), schema)
    assert time.perf_counter() - started < 5
    assert parse_structured('{"aX": 1}', schema) == {"aX": 1}


def test_unique_items_is_linear_and_json_equal() -> None:
    schema = check_schema({"type": "array", "uniqueItems": True})
    many = [{"i": i} for i in range(50_000)]
    assert parse_structured(json.dumps(many), schema) == many
    with pytest.raises(SchemaMismatchError, match="non-unique"):
        parse_structured("[1, 1.0]", schema)
    assert parse_structured("[1, true]", schema) == [1, True]


def test_an_answer_over_the_size_bound_is_not_validated() -> None:
    schema = check_schema({"type": "string"})
    with pytest.raises(SchemaUnverifiableError, match="characters"):
        parse_structured(json.dumps("a" * MAX_ANSWER_CHARS), schema)


@pytest.mark.parametrize("depth", [MAX_ANSWER_DEPTH + 1, 100_000])
def test_an_answer_over_the_depth_bound_is_not_validated(depth: int) -> None:
    # 100,000 levels make json.loads itself raise RecursionError: still a clear refusal.
    schema = check_schema({"type": "array"})
    with pytest.raises(SchemaUnverifiableError, match="nested"):
        parse_structured("[" * depth + "]" * depth, schema)


def test_validation_that_multiplies_across_levels_ends_at_the_time_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # anyOf of two failing branches that each descend into the same item: 2**depth work.
    import visionq.vision.structured as structured

    monkeypatch.setattr(structured, "VALIDATION_BUDGET_S", 0.2)
    node = {
        "anyOf": [
            {"type": "array", "items": {"$ref": "#"}},
            {"type": "array", "items": {"$ref": "#"}, "minItems": 2},
        ]
    }
    schema = check_schema(node)
    answer = "[" * 40 + "7" + "]" * 40
    started = time.perf_counter()
    with pytest.raises(SchemaUnverifiableError, match="took over"):
        parse_structured(answer, schema)
    assert time.perf_counter() - started < 5


def test_a_recursion_error_while_validating_is_a_schema_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import visionq.vision.structured as structured

    def deep(*_: object) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(structured, "best_match", deep)
    with pytest.raises(SchemaUnverifiableError, match="nested too deeply"):
        parse_structured("[]", check_schema({"type": "array"}))


def test_a_stored_schema_with_a_pattern_re2_refuses_fails_the_answer_clearly() -> None:
    # A job admitted before patterns were checked at submit: no internal_error after the call.
    with pytest.raises(SchemaUnverifiableError, match="RE2"):
        parse_structured('{"a": "b"}', _string_with("(?=b)b"))


def test_unevaluated_properties_with_pattern_properties_is_refused() -> None:
    # jsonschema matches patternProperties keys with Python's re for unevaluatedProperties.
    with pytest.raises(InvalidSchemaError, match="unevaluatedProperties cannot"):
        check_schema(
            {
                "allOf": [{"patternProperties": {HOSTILE: {}}}],
                "unevaluatedProperties": False,
            }
        )
    assert check_schema({"properties": {"a": {}}, "unevaluatedProperties": False})


@pytest.mark.parametrize(
    ("schema", "named", "why"),
    [
        # Issue 17: these passed at submit, were billed, then failed "unparseable_answer".
        ({"$defs": {"x": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/x/"}}},
         "'#/$defs/x/'", "cannot be resolved"),
        ({"$defs": {"x": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs//x"}}},
         "'#/$defs//x'", "cannot be resolved"),
        # Under a keyword 2020-12 does not apply (draft-7 dependencies): still checked.
        ({"dependencies": {"a": {"$ref": "#/$defs/missing"}}}, "#/dependencies/a/$ref",
         "cannot be resolved"),
        # Resolvable, but not to a subschema: Gemini and a reader would take it otherwise.
        ({"$defs": {"x": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs"}}},
         "'#/$defs'", "not a subschema"),
        ({"properties": {"a": {"enum": [{"type": "integer"}]},
                         "b": {"$ref": "#/properties/a/enum/0"}}},
         "'#/properties/a/enum/0'", "not a subschema"),
    ],
)  # fmt: skip
def test_every_ref_is_resolved_at_submit(schema: dict[str, Any], named: str, why: str) -> None:
    with pytest.raises(InvalidSchemaError) as refused:
        check_schema(schema)
    assert named in str(refused.value) and why in str(refused.value)
    assert "#/$defs/name" in str(refused.value)  # what to write instead


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"a b": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/a%20b"}}},
        {"$defs": {"n": {"$anchor": "node", "type": "integer"}},
         "properties": {"a": {"$ref": "#node"}}},
        {"properties": {"a": {"anyOf": [{"type": "integer"}]},
                        "b": {"$ref": "#/properties/a/anyOf/0"}}},
        {"$id": "urn:example:s", "$defs": {"x": {"type": "integer"}},
         "properties": {"a": {"$ref": "#/$defs/x"}}},
        {"const": {"$ref": "#/not/a/reference"}},  # data, not a schema
    ],
)  # fmt: skip
def test_refs_the_validator_resolves_are_accepted(schema: dict[str, Any]) -> None:
    assert check_schema(schema) is schema
    parse_structured('{"a": 1, "b": 1}', schema) if "const" not in schema else None
