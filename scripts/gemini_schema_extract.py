#!/usr/bin/env python3
"""Print the Generative Language API's descriptors as JSON (for refresh_gemini_schema.py).

Runs inside the throw-away virtualenv where ``google-ai-generativelanguage`` is installed
(it is never a visionq dependency): walks the messages and enums reachable from the
methods in METHODS and the ``google.rpc`` error details, for v1 and v1beta, and prints
``{package_version, common_protos_version, versions: {v: {methods, messages, enums}}}``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import json
import sys
from typing import Any

PACKAGE = "google-ai-generativelanguage"
COMMON_PROTOS = "googleapis-common-protos"
VERSIONS = ("v1", "v1beta")
# The API methods whose messages are kept, by the package's service module.
METHODS: dict[str, tuple[str, ...]] = {
    "generative_service": ("GenerateContent", "StreamGenerateContent", "CountTokens"),
    "model_service": ("GetModel", "ListModels"),
    "file_service": ("CreateFile", "GetFile", "ListFiles", "DeleteFile"),
}
# Types the validator knows by name; their insides are not copied.
WELL_KNOWN = frozenset(
    f"google.protobuf.{name}"
    for name in (
        "Any", "Struct", "Value", "ListValue", "NullValue", "Duration", "Timestamp", "Empty",
        "FieldMask", "DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value",
        "UInt32Value", "BoolValue", "StringValue", "BytesValue",
    )
)  # fmt: skip


class _Walker:
    """Collects the messages and enums reachable from some descriptors."""

    def __init__(self, type_names: dict[int, str]) -> None:
        self.type_names = type_names
        self.messages: dict[str, Any] = {}
        self.enums: dict[str, Any] = {}

    def message(self, desc: Any) -> str:
        """Add ``desc`` (a protobuf Descriptor) and what it refers to; its full name."""
        if desc.full_name in self.messages or desc.full_name in WELL_KNOWN:
            return str(desc.full_name)
        fields: dict[str, Any] = {}
        self.messages[desc.full_name] = {"fields": fields}
        for field in desc.fields:
            name = field.name
            # proto-plus renames fields that clash with Python keywords (type -> type_).
            if name.endswith("_") and field.json_name == _camel(name[:-1]):
                name = name[:-1]
            spec: dict[str, Any] = {"json": field.json_name, "number": field.number}
            entry = field.message_type
            if entry is not None and entry.GetOptions().map_entry:
                spec["type"] = "map"
                spec["key"] = self.type_names[entry.fields_by_name["key"].type]
                spec["value"] = self.kind(entry.fields_by_name["value"])
            else:
                spec |= self.kind(field)
                if field.is_repeated:
                    spec["repeated"] = True
            oneof = field.containing_oneof
            # A proto3 ``optional`` field sits in a synthetic oneof "_<name>": not a choice.
            if oneof is not None and oneof.name != f"_{field.name}":
                spec["oneof"] = oneof.name
            fields[name] = spec
        return str(desc.full_name)

    def kind(self, field: Any) -> dict[str, Any]:
        """The type part of a field's spec."""
        if field.message_type is not None:
            return {"type": "message", "ref": self.message(field.message_type)}
        if field.enum_type is not None:
            return {"type": "enum", "ref": self.enum(field.enum_type)}
        return {"type": self.type_names[field.type]}

    def enum(self, desc: Any) -> str:
        """Add an EnumDescriptor; its full name."""
        self.enums[desc.full_name] = {"values": {v.name: v.number for v in desc.values}}
        return str(desc.full_name)


def extract() -> dict[str, Any]:
    """The descriptors of both API versions as plain JSON (runs where the package is)."""
    # Imported here: these exist only in the throw-away virtualenv.
    from google.protobuf import descriptor  # type: ignore[import-untyped]  # noqa: PLC0415
    from google.rpc import (  # type: ignore[import-untyped]  # noqa: PLC0415
        code_pb2,
        error_details_pb2,
        status_pb2,
    )

    type_names = {
        value: name.removeprefix("TYPE_").lower()
        for name, value in vars(descriptor.FieldDescriptor).items()
        if name.startswith("TYPE_")
    }
    result: dict[str, Any] = {
        "package_version": importlib.metadata.version(PACKAGE),
        "common_protos_version": importlib.metadata.version(COMMON_PROTOS),
        "versions": {},
    }
    for version in VERSIONS:
        walker = _Walker(type_names)
        methods = _methods(version, walker)
        walker.message(status_pb2.Status.DESCRIPTOR)
        # Error bodies carry these in google.rpc.Status.details (as google.protobuf.Any).
        for desc in error_details_pb2.DESCRIPTOR.message_types_by_name.values():
            walker.message(desc)
        walker.enum(code_pb2.Code.DESCRIPTOR)
        result["versions"][version] = {
            "messages": walker.messages,
            "enums": walker.enums,
            "methods": methods,
        }
    return result


def _methods(version: str, walker: _Walker) -> dict[str, Any]:
    """METHODS as this API version has them: request, response and HTTP rules."""
    methods: dict[str, Any] = {}
    for service, names in METHODS.items():
        module = f"google.ai.generativelanguage_{version}.services.{service}.transports.rest"
        try:
            rest = importlib.import_module(module)
        except ModuleNotFoundError:
            continue  # this API version has no such service (v1 has no File API)
        transport = next(
            obj
            for key, obj in vars(rest).items()
            if key.endswith("RestTransport") and not key.startswith("_")
        )
        for name in names:
            stub = getattr(transport, f"_{name}", None)
            if stub is None:
                continue
            signature = inspect.signature(stub.__call__)
            request = walker.message(signature.parameters["request"].annotation.pb().DESCRIPTOR)
            returned = signature.return_annotation
            if callable(getattr(returned, "pb", None)):
                response = walker.message(returned.pb().DESCRIPTOR)
            elif name.startswith("Stream"):
                # The stream carries the unary method's response, chunk by chunk.
                response = methods[name.removeprefix("Stream")]["response"]
            else:
                response = "google.protobuf.Empty"
            methods[name] = {
                "request": request,
                "response": response,
                "http": stub._get_http_options(),
            }
    return methods


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


if __name__ == "__main__":
    json.dump(extract(), sys.stdout)
