"""Structured output validates against its JSON Schema; invalid_json_every breaks it on purpose.

jsonschema is not installed, so ``problems`` below checks the subset the emulator claims
to honour (type, properties, required, items, enum, const, bounds, $ref, allOf, anyOf).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from google import genai
from google.genai import types

from tests.emulator.conftest import MODEL, make_client
from tests.emulator.helpers import image_part, parts, reset, stats
from visionq.emulator.shapes import Shape, draw_scene, encode

SCENE = encode(
    draw_scene(
        500,
        400,
        [
            Shape("rectangle", "red", (30, 30, 150, 120)),
            Shape("ellipse", "blue", (250, 40, 400, 160)),
            Shape("triangle", "green", (60, 200, 220, 360)),
        ],
    )
)
BLANK = encode(draw_scene(200, 200, []))

TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is(value: Any, kind: str) -> bool:
    kind = kind.lower()
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, TYPES[kind])


def _deref(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        node: Any = root
        for token in schema["$ref"].removeprefix("#/").split("/"):
            node = node[token]
        schema = node
    return schema


def _scalar_problems(value: Any, schema: Mapping[str, Any], at: str) -> list[str]:
    found = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{at}: {value!r} not in enum")
    if "const" in schema and value != schema["const"]:
        found.append(f"{at}: {value!r} != const")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{at}: below minimum")
        if "maximum" in schema and value > schema["maximum"]:
            found.append(f"{at}: above maximum")
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", len(value)):
            found.append(f"{at}: too long")
        if len(value) < schema.get("minLength", 0):
            found.append(f"{at}: too short")
    return found


def problems(
    value: Any, schema: Mapping[str, Any], root: Mapping[str, Any], at: str = "$"
) -> list[str]:
    """Every way ``value`` violates ``schema`` (empty list = valid)."""
    schema = _deref(schema, root)
    found: list[str] = []
    for part in schema.get("allOf", []):
        found += problems(value, part, root, at)
    if "anyOf" in schema and all(problems(value, o, root, at) for o in schema["anyOf"]):
        found.append(f"{at}: matches no anyOf option")
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    if kinds and not any(_is(value, k) for k in kinds):
        return [*found, f"{at}: {value!r} is not {kinds}"]
    found += _scalar_problems(value, schema, at)
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                found.append(f"{at}: missing required {key!r}")
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                found += problems(value[key], sub, root, f"{at}.{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{at}: fewer than minItems")
        if len(value) > schema.get("maxItems", len(value)):
            found.append(f"{at}: more than maxItems")
        for index, item in enumerate(value):
            found += problems(item, schema.get("items", {}), root, f"{at}[{index}]")
    return found


def test_the_checker_can_fail() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert problems({"n": 1}, schema, schema) == []
    assert problems({}, schema, schema) == ["$: missing required 'n'"]
    assert problems({"n": "1"}, schema, schema) == ["$.n: '1' is not ['integer']"]


REPORT = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "maxLength": 40},
        "count": {"type": "integer", "minimum": 0, "maximum": 2},
        "ratio": {"type": "number", "exclusiveMinimum": 0},
        "has_shapes": {"type": "boolean"},
        "mood": {"type": "string", "enum": ["dark", "bright"]},
        "kind": {"const": "report"},
        "nullable_note": {"type": ["string", "null"]},
        "objects": {
            "type": "array",
            "minItems": 1,
            "maxItems": 2,
            "items": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "color": {"type": "string"},
                    "area": {"type": "integer"},
                    "box": {"type": "array", "items": {"type": "integer"}},
                    "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                },
                "required": ["label", "color", "area", "box"],
            },
        },
        "size": {"$ref": "#/$defs/size"},
        "extra": {"allOf": [{"$ref": "#/$defs/size"}, {"required": ["unit"]}]},
        "either": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
    },
    "required": ["summary", "count", "objects", "size", "extra", "mood"],
    "$defs": {
        "size": {
            "type": "object",
            "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}},
            "required": ["width", "height"],
        }
    },
}


def _structured(client: genai.Client, data: bytes | None, schema: dict[str, Any]) -> Any:
    contents = parts(image_part(data), "Report.") if data is not None else parts("Report.")
    reply = client.models.generate_content(
        model=MODEL,
        contents=contents,
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_json_schema=schema
        ),
    )
    return json.loads(reply.text or "")


@pytest.mark.parametrize("data", [SCENE, BLANK, None], ids=["shapes", "blank", "no-image"])
def test_answers_validate_against_the_schema(client: genai.Client, data: bytes | None) -> None:
    value = _structured(client, data, REPORT)
    assert problems(value, REPORT, REPORT) == [], value


def test_values_come_from_the_scene(client: genai.Client) -> None:
    value = _structured(client, SCENE, REPORT)
    assert value["count"] == 2  # 3 shapes, clamped to the maximum
    assert value["size"] == {"width": 500, "height": 400}
    assert [o["label"] for o in value["objects"]] == ["red rectangle", "blue ellipse"]
    assert value["has_shapes"] is True


def test_top_level_array_and_scalar_schemas(client: genai.Client) -> None:
    for schema in (
        {"type": "array", "items": {"type": "string"}, "minItems": 4},
        {"type": "integer", "minimum": 10},
        {"type": "string", "enum": ["three shapes", "no shapes"]},
        {"type": "boolean"},
    ):
        value = _structured(client, SCENE, schema)
        assert problems(value, schema, schema) == [], (schema, value)


# --- invalid_json_every ------------------------------------------------------------------


SMALL = {
    "type": "object",
    "properties": {"caption": {"type": "string"}, "count": {"type": "integer"}},
    "required": ["caption", "count"],
}


def test_every_third_structured_answer_is_invalid(flaky_json_url: str) -> None:
    reset(flaky_json_url)
    sdk = make_client(flaky_json_url)
    verdicts = []
    for index in range(7):
        value = _structured(sdk, SCENE, SMALL)
        verdicts.append(problems(value, SMALL, SMALL) == [])
        if index == 0:
            # Plain answers neither count nor break.
            reply = sdk.models.generate_content(
                model=MODEL, contents=parts(image_part(SCENE), "Write a caption.")
            )
            assert "3 shapes" in (reply.text or "")
    assert verdicts == [True, True, False, True, True, False, True]
    counters = stats(flaky_json_url)
    assert (counters["structured_answers"], counters["invalid_structured_answers"]) == (7, 2)
    sdk.close()


def test_broken_answer_misses_a_required_key(flaky_json_url: str) -> None:
    reset(flaky_json_url)
    sdk = make_client(flaky_json_url)
    answers = [_structured(sdk, SCENE, SMALL) for _ in range(3)]
    assert set(answers[0]) == {"caption", "count"}
    assert set(answers[2]) == {"count"}  # the first required key is dropped
    sdk.close()
