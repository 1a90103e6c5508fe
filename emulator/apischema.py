"""The Generative Language API's published schema, as the emulator's front end reads it.

A dated copy per API version lives in ``emulator/data/api_schema/{v1,v1beta}.json``:
written by ``scripts/refresh_gemini_schema.py`` from the protobuf descriptors that PyPI's
``google-ai-generativelanguage`` ships, plus a hand-kept, sourced supplement for what the
live API has and the package lacks (fields marked ``supplement``). It lists, per version,
the methods (request and response messages, HTTP routes), the messages (fields with their
proto and JSON names, types, oneofs) and the enums. The emulator loads it with
importlib.resources, so it works from an installed wheel too.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

SCHEMA_FILES = ("data", "api_schema")
TYPE_URL_PREFIX = "type.googleapis.com/"
# The JSON body every REST error carries ({"error": {code, message, status, details}}).
ERROR_BODY = "google.apis.design.Error"


@dataclass(frozen=True)
class FieldSpec:
    """One field of a message (or the value type of a map field)."""

    name: str
    json_name: str
    type: str  # a protobuf scalar type ("int32", "bytes"...), "message", "enum" or "map"
    ref: str | None = None  # the message or enum type's full name
    repeated: bool = False
    oneof: str | None = None
    map_key: str | None = None
    map_value: FieldSpec | None = None


@dataclass(frozen=True)
class MessageSpec:
    """A message: its fields in declaration order, found by either of their names."""

    name: str
    fields: tuple[FieldSpec, ...]
    by_key: Mapping[str, FieldSpec] = field(repr=False)

    def field(self, key: str) -> FieldSpec | None:
        """The field named ``key`` in its proto (snake_case) or JSON (camelCase) name."""
        return self.by_key.get(key)

    def oneof_members(self, oneof: str) -> tuple[FieldSpec, ...]:
        """The fields of one oneof."""
        return tuple(f for f in self.fields if f.oneof == oneof)


@dataclass(frozen=True)
class MethodSpec:
    """An API method: its request and response messages and the routes it answers."""

    name: str
    request: str
    response: str
    routes: tuple[tuple[str, re.Pattern[str]], ...]


@dataclass(frozen=True)
class ApiSchema:
    """The schema of one API version."""

    version: str
    source: str
    generated: str
    messages: Mapping[str, MessageSpec]
    enums: Mapping[str, Mapping[str, int | None]]
    methods: Mapping[str, MethodSpec]

    def message(self, name: str) -> MessageSpec:
        """A message by full name; KeyError when the schema has none."""
        return self.messages[name]

    def method(self, name: str) -> MethodSpec | None:
        """A method by name ("GenerateContent", "CreateFile"...), None if absent."""
        return self.methods.get(name)

    def route(self, http_method: str, path: str) -> MethodSpec | None:
        """The method answering ``http_method path`` (no query string), None if none does.

        Media uploads (``/upload/{version}/...``) are routed like the method's own path.
        """
        path = path.removeprefix("/upload")
        verb = http_method.lower()
        for method in self.methods.values():
            if any(v == verb and p.fullmatch(path) for v, p in method.routes):
                return method
        return None


def _field_spec(name: str, raw: Mapping[str, Any]) -> FieldSpec:
    value = raw.get("value")
    return FieldSpec(
        name=name,
        json_name=str(raw.get("json", name)),
        type=str(raw["type"]),
        ref=raw.get("ref"),
        repeated=bool(raw.get("repeated", False)),
        oneof=raw.get("oneof"),
        map_key=raw.get("key"),
        map_value=_field_spec("value", value) if isinstance(value, Mapping) else None,
    )


def _message_spec(name: str, raw: Mapping[str, Any]) -> MessageSpec:
    fields = tuple(_field_spec(key, spec) for key, spec in raw["fields"].items())
    by_key = {f.name: f for f in fields} | {f.json_name: f for f in fields}
    return MessageSpec(name=name, fields=fields, by_key=by_key)


def route_pattern(template: str) -> re.Pattern[str]:
    """A regex for an HTTP rule's path template ("/v1beta/{name=files/*}")."""
    out = []
    for piece in re.split(r"(\{[^}]*\})", template):
        if not piece.startswith("{"):
            out.append(re.escape(piece))
            continue
        _, _, pattern = piece[1:-1].partition("=")
        segments = (pattern or "*").split("/")
        out.append(
            "/".join(".+" if s == "**" else "[^/]+" if s == "*" else re.escape(s) for s in segments)
        )
    return re.compile("".join(out))


def parse_schema(raw: Mapping[str, Any]) -> ApiSchema:
    """An ApiSchema from the stored JSON."""
    methods = {
        name: MethodSpec(
            name=name,
            request=spec["request"],
            response=spec["response"],
            routes=tuple(
                (rule["method"].lower(), route_pattern(rule["uri"])) for rule in spec["http"]
            ),
        )
        for name, spec in raw["methods"].items()
    }
    return ApiSchema(
        version=str(raw["version"]),
        source=str(raw["source"]),
        generated=str(raw["generated"]),
        messages={name: _message_spec(name, spec) for name, spec in raw["messages"].items()},
        enums={name: dict(spec["values"]) for name, spec in raw["enums"].items()},
        methods=methods,
    )


@functools.cache
def load_schema(version: str) -> ApiSchema:
    """The stored schema of ``version`` ("v1", "v1beta"); FileNotFoundError for others."""
    path = resources.files("visionq.emulator").joinpath(*SCHEMA_FILES, f"{version}.json")
    return parse_schema(json.loads(path.read_text(encoding="utf-8")))
