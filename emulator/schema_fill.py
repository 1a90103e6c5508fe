"""Structured output: build a JSON value that validates against a response schema.

Accepts both JSON Schema (``responseJsonSchema``, lower-case types) and the OpenAPI subset
(``responseSchema``, upper-case types). Values come from the scene facts: strings get a
description (or a label/colour when the property name asks for one), numbers get counts
or sizes, arrays get one item per detected shape.

Validity is the point (callers validate with jsonschema): every property is filled (so
``required`` holds), types match, enums and ``const`` are honoured, numbers are clamped to
``minimum``/``maximum``, strings to ``minLength``/``maxLength`` and arrays to
``minItems``/``maxItems``; local ``$ref``s and ``allOf`` are resolved. Not honoured:
``pattern``, ``format``, ``multipleOf`` and schemas recursing deeper than ``MAX_DEPTH``.

``break_schema`` does the opposite on purpose, for ``EmulatorConfig.invalid_json_every``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from visionq.emulator.scene import DetectedShape, SceneFacts

Describe = Callable[[SceneFacts], str]
Choose = Callable[[Sequence[str], SceneFacts | None], str]
Schema = Mapping[str, Any]
MAX_DEPTH = 16
COMBINERS = ("anyOf", "any_of", "oneOf", "one_of")


def _type_of(schema: Schema) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    if kind is None:
        if "properties" in schema or "required" in schema:
            return "object"
        return "array" if "items" in schema else "string"
    return str(kind).lower()


def _lookup(root: Schema, ref: str) -> Schema:
    """A local ``#/...`` JSON pointer into ``root``; unknown refs become ``{}``."""
    node: Any = root
    for token in ref.removeprefix("#").strip("/").split("/"):
        if not token:
            continue
        key = token.replace("~1", "/").replace("~0", "~")
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def _merge(parts: Sequence[Schema]) -> dict[str, Any]:
    """``allOf``: union of properties and required keys, other keys from the first part."""
    merged: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for part in parts:
        for key, value in part.items():
            merged.setdefault(key, value)
        properties.update(part.get("properties") or {})
        required.extend(k for k in part.get("required") or [] if k not in required)
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged


def resolve(schema: Schema, root: Schema, hops: int = 0) -> Schema:
    """``schema`` with ``$ref``, ``allOf`` and ``anyOf``/``oneOf`` (first non-null) applied."""
    if hops > MAX_DEPTH:
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return resolve({**_lookup(root, ref), **rest}, root, hops + 1)
    all_of = schema.get("allOf") or schema.get("all_of")
    if isinstance(all_of, list) and all_of:
        parts = [resolve(p, root, hops + 1) for p in all_of if isinstance(p, Mapping)]
        rest = {k: v for k, v in schema.items() if k not in ("allOf", "all_of")}
        return resolve(_merge([rest, *parts]), root, hops + 1)
    for combiner in COMBINERS:
        options = schema.get(combiner)
        if isinstance(options, list) and options:
            usable = [o for o in options if isinstance(o, Mapping) and _type_of(o) != "null"]
            if usable:
                rest = {k: v for k, v in schema.items() if k != combiner}
                return resolve({**rest, **usable[0]}, root, hops + 1)
    return schema


def _bound(value: Any) -> float | None:
    # bool is an int to Python, but draft-4 uses booleans for exclusiveMinimum/Maximum.
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _clamp_number(value: float, schema: Schema, integer: bool) -> float:
    low, high = _bound(schema.get("minimum")), _bound(schema.get("maximum"))
    step = 1 if integer else 0.5
    exclusive_low, exclusive_high = (
        _bound(schema.get("exclusiveMinimum")),
        _bound(schema.get("exclusiveMaximum")),
    )
    if exclusive_low is not None:
        low = exclusive_low + step if low is None else max(low, exclusive_low + step)
    if exclusive_high is not None:
        high = exclusive_high - step if high is None else min(high, exclusive_high - step)
    if low is not None and value < low:
        value = math.ceil(low) if integer else low
    if high is not None and value > high:
        value = math.floor(high) if integer else high
    return int(value) if integer else value


def _clamp_string(text: str, schema: Schema) -> str:
    longest, shortest = schema.get("maxLength"), schema.get("minLength")
    if isinstance(longest, int) and len(text) > longest:
        text = text[:longest]
    if isinstance(shortest, int) and len(text) < shortest:
        text = text.ljust(shortest, ".")
    return text


def _minimal(schema: Schema) -> Any:
    """The smallest value of ``schema``'s type (used past the depth limit)."""
    kind = _type_of(schema)
    if kind in ("integer", "number"):
        return _clamp_number(0, schema, kind == "integer")
    empty: dict[str, Any] = {"object": {}, "array": [], "boolean": False, "null": None}
    return empty.get(kind, _clamp_string("", schema))


class _Filler:
    """Fills one schema for one request; ``shape`` is set while filling a per-shape item."""

    def __init__(
        self, root: Schema, scenes: Sequence[SceneFacts], describe: Describe, choose: Choose
    ) -> None:
        self.root = root
        self.scenes = scenes
        self.describe = describe
        self.choose = choose

    @property
    def scene(self) -> SceneFacts | None:
        return self.scenes[0] if self.scenes else None

    def fill(self, schema: Any, name: str, shape: DetectedShape | None, depth: int) -> Any:
        if not isinstance(schema, Mapping):
            return None
        schema = resolve(schema, self.root)
        enum = [schema["const"]] if "const" in schema else schema.get("enum")
        if isinstance(enum, list) and enum:
            return self._enum(enum, shape)
        if depth > MAX_DEPTH:
            return _minimal(schema)
        kind = _type_of(schema)
        if kind == "object":
            return self._object(schema, shape, depth)
        if kind == "array":
            return self._array(schema, name, shape, depth)
        return self._scalar(schema, kind, name, shape)

    def _scalar(self, schema: Schema, kind: str, name: str, shape: DetectedShape | None) -> Any:
        if kind in ("integer", "number"):
            return _clamp_number(self._number(name, shape), schema, kind == "integer")
        if kind == "boolean":
            return bool(self.scene and self.scene.shapes)
        if kind == "null":
            return None
        return _clamp_string(self._string(name, shape), schema)

    def _enum(self, values: list[Any], shape: DetectedShape | None) -> Any:
        strings = [str(v) for v in values]
        if shape is not None:
            for value in strings:
                if shape.color in value.lower() or shape.kind in value.lower():
                    return values[strings.index(value)]
        return values[strings.index(self.choose(strings, self.scene))]

    def _object(self, schema: Schema, shape: DetectedShape | None, depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        value = {key: self.fill(sub, key, shape, depth + 1) for key, sub in properties.items()}
        # A required key without a property schema may hold anything; a string will do.
        for key in schema.get("required") or []:
            if isinstance(key, str) and key not in value:
                value[key] = self._string(key, shape)
        return value

    def _array(self, schema: Schema, name: str, shape: DetectedShape | None, depth: int) -> Any:
        items = schema.get("items", {})
        items = items if isinstance(items, Mapping) else {}
        shapes = list(self.scene.shapes) if self.scene is not None else []
        per_shape = _type_of(resolve(items, self.root)) in ("object", "string")
        if shape is None and shapes and per_shape:
            values = [self.fill(items, name, s, depth + 1) for s in shapes]
        else:
            values = [self.fill(items, name, shape, depth + 1)]
        longest, shortest = schema.get("maxItems"), schema.get("minItems")
        if isinstance(longest, int):
            values = values[:longest]
        if isinstance(shortest, int):
            while len(values) < shortest:
                values.append(self.fill(items, name, None, depth + 1))
        return values

    def _number(self, name: str, shape: DetectedShape | None) -> int:
        lowered = name.lower()
        scene = self.scene
        if scene is None:
            return 0
        if "width" in lowered:
            return shape.box[2] - shape.box[0] if shape else scene.width
        if "height" in lowered:
            return shape.box[3] - shape.box[1] if shape else scene.height
        if "area" in lowered and shape is not None:
            return shape.area
        return len(scene.shapes)

    def _string(self, name: str, shape: DetectedShape | None) -> str:
        lowered = name.lower()
        if shape is not None:
            if "colo" in lowered:
                return shape.color
            if any(k in lowered for k in ("kind", "type", "shape")):
                return shape.kind
            return shape.label
        scene = self.scene
        if scene is None:
            return "[synthetic value, emulator] no image."
        if "colo" in lowered and scene.shapes:
            return ", ".join(s.color for s in scene.shapes)
        return "[synthetic value, emulator] " + self.describe(scene)


def fill_schema(
    schema: Schema, scenes: Sequence[SceneFacts], describe: Describe, choose: Choose
) -> Any:
    """A JSON value that validates against ``schema``, filled from the first image's facts.

    ``describe`` writes a sentence about a scene; ``choose`` picks the best enum value.
    """
    return _Filler(schema, scenes, describe, choose).fill(schema, "", None, 0)


def _wrong_type(schema: Schema) -> Any:
    kind = _type_of(schema)
    return 12345 if kind == "string" else f"not a valid {kind}"


def break_schema(schema: Schema, value: Any) -> Any:
    """``value`` made invalid against ``schema`` (still well-formed JSON).

    Drops the first required property of an object, else gives its first property the
    wrong type; other values are replaced by a value of the wrong type.
    """
    resolved = resolve(schema, schema)
    if _type_of(resolved) != "object" or not isinstance(value, dict):
        return _wrong_type(resolved)
    broken = dict(value)
    required = [k for k in resolved.get("required") or [] if k in broken]
    if required:
        del broken[required[0]]
        return broken
    properties = resolved.get("properties")
    if isinstance(properties, Mapping) and properties:
        key = next(iter(properties))
        broken[key] = _wrong_type(resolve(properties[key], schema))
        return broken
    return [broken]
