"""Structured output: build a small JSON value that fits a response schema.

Accepts both JSON Schema (``responseJsonSchema``, lower-case types) and the OpenAPI subset
(``responseSchema``, upper-case types). Values come from the scene facts: strings get a
description (or a label/colour when the property name asks for one), numbers get counts
or sizes, arrays get one item per detected shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from emulator.scene import DetectedShape, SceneFacts

Describe = Callable[[SceneFacts], str]
Choose = Callable[[Sequence[str], SceneFacts | None], str]
MAX_DEPTH = 6


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "string")
    if kind is None:
        if "properties" in schema:
            return "object"
        return "array" if "items" in schema else "string"
    return str(kind).lower()


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    for combiner in ("anyOf", "any_of", "oneOf", "one_of", "allOf", "all_of"):
        options = schema.get(combiner)
        if isinstance(options, list) and options and isinstance(options[0], Mapping):
            return options[0]
    return schema


class _Filler:
    """Fills one schema for one request; ``shape`` is set while filling a per-shape item."""

    def __init__(self, scenes: Sequence[SceneFacts], describe: Describe, choose: Choose) -> None:
        self.scenes = scenes
        self.describe = describe
        self.choose = choose

    @property
    def scene(self) -> SceneFacts | None:
        return self.scenes[0] if self.scenes else None

    def fill(self, schema: Any, name: str, shape: DetectedShape | None, depth: int) -> Any:
        if not isinstance(schema, Mapping) or depth > MAX_DEPTH:
            return None
        schema = _resolve(schema)
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return self._enum(enum, shape)
        kind = _type_of(schema)
        if kind == "object":
            return self._object(schema, shape, depth)
        if kind == "array":
            return self._array(schema, name, shape, depth)
        return self._scalar(kind, name, shape)

    def _scalar(self, kind: str, name: str, shape: DetectedShape | None) -> Any:
        if kind in ("integer", "number"):
            return self._number(name, shape)
        if kind == "boolean":
            return bool(self.scene and self.scene.shapes)
        return self._string(name, shape)

    def _enum(self, values: list[Any], shape: DetectedShape | None) -> Any:
        strings = [str(v) for v in values]
        if shape is not None:
            for value in strings:
                if shape.color in value.lower() or shape.kind in value.lower():
                    return values[strings.index(value)]
        return values[strings.index(self.choose(strings, self.scene))]

    def _object(
        self, schema: Mapping[str, Any], shape: DetectedShape | None, depth: int
    ) -> dict[str, Any]:
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return {}
        return {key: self.fill(sub, key, shape, depth + 1) for key, sub in properties.items()}

    def _array(
        self, schema: Mapping[str, Any], name: str, shape: DetectedShape | None, depth: int
    ) -> list[Any]:
        items = schema.get("items", {})
        shapes = list(self.scene.shapes) if self.scene is not None else []
        if shape is None and shapes and _type_of(_resolve(items)) in ("object", "string"):
            return [self.fill(items, name, s, depth + 1) for s in shapes]
        return [self.fill(items, name, shape, depth + 1)]

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
    schema: Mapping[str, Any], scenes: Sequence[SceneFacts], describe: Describe, choose: Choose
) -> Any:
    """A JSON value shaped like ``schema``, filled from the first image's facts.

    ``describe`` writes a sentence about a scene; ``choose`` picks the best enum value.
    """
    return _Filler(scenes, describe, choose).fill(schema, "", None, 0)
