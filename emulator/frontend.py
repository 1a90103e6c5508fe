"""The checks Google's front end makes before a model sees a request.

1. The route: a path the API version's schema has no method for is a 404 (v1 has no File
   API: ``/v1/files`` and ``/upload/v1/files`` are 404s there, served on v1beta).
2. The body, against the request message of the method in the version of the URL
   (``protojson``): any violation is a 400 INVALID_ARGUMENT listing them all, with a
   ``google.rpc.BadRequest`` detail. v1 takes only what the v1 schema has (no
   thinkingConfig, responseMimeType, fileData...), v1beta all of its own.
3. Required fields the schema cannot express: contents, non-empty parts, one data field
   per part. Google words these ``* GenerateContentRequest.contents[0].parts: ...``, one
   line per problem, without details.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from visionq.emulator import errors
from visionq.emulator.apischema import ApiSchema, load_schema
from visionq.emulator.protojson import check

# The URL's method name -> the schema's.
URL_METHODS = {
    "generateContent": "GenerateContent",
    "streamGenerateContent": "StreamGenerateContent",
    "countTokens": "CountTokens",
}
DATA_ONEOF = "data"


def schema_for(version: str, path: str) -> ApiSchema:
    """The schema of an API version the emulator serves, else the 404 for ``path``."""
    try:
        return load_schema(version)
    except FileNotFoundError as exc:
        raise errors.method_not_found(path) from exc


def check_route(version: str, http_method: str, path: str) -> None:
    """404 (Google's JSON NOT_FOUND) when ``version``'s schema has no method for the path."""
    if schema_for(version, path).route(http_method, path) is None:
        raise errors.method_not_found(path)


def check_body(body: dict[str, Any], version: str, method: str, path: str = "") -> None:
    """Refuse ``body`` as the front end would for ``method`` ("generateContent",
    "countTokens", or a schema method name such as "CreateFile") on ``version``.

    Single values given for repeated fields are turned into lists in ``body``.
    """
    schema = schema_for(version, path)
    spec = schema.method(URL_METHODS.get(method, method))
    if spec is None:
        raise errors.method_not_found(path or method)
    violations = check(body, schema, spec.request)
    if violations:
        raise errors.bad_request([(v.field, v.description) for v in violations])
    problems = required_fields(body, schema, spec.request)
    if problems:
        raise errors.invalid_argument("".join(f"* {line}\n" for line in problems))


def required_fields(body: Mapping[str, Any], schema: ApiSchema, message: str) -> list[str]:
    """The missing contents, empty parts and data-less parts of a request (checked body)."""
    short = message.rsplit(".", 1)[-1]
    if short == "CountTokensRequest":
        inner = _get(body, "generate_content_request", "generateContentRequest")
        if isinstance(inner, Mapping):
            package = message.rsplit(".", 1)[0]
            return required_fields(inner, schema, f"{package}.GenerateContentRequest")
    elif short != "GenerateContentRequest":
        return []
    part_spec = schema.message(message.rsplit(".", 1)[0] + ".Part")
    data_fields = part_spec.oneof_members(DATA_ONEOF)
    problems: list[str] = []
    contents = _get(body, "contents", "contents")
    if not contents:
        problems.append(f"{short}.contents: contents is not specified")
    for index, content in enumerate(contents or []):
        parts = _get(content, "parts", "parts")
        if not parts:
            problems.append(f"{short}.contents[{index}].parts: contents.parts must not be empty.")
        problems += _data_less(parts or [], data_fields, f"{short}.contents[{index}].parts")
    system = _get(body, "system_instruction", "systemInstruction")
    if isinstance(system, Mapping):
        parts = _get(system, "parts", "parts") or []
        problems += _data_less(parts, data_fields, f"{short}.system_instruction.parts")
    return problems


def _data_less(parts: list[Any], data_fields: tuple[Any, ...], where: str) -> list[str]:
    return [
        f"{where}[{index}].{DATA_ONEOF}: required oneof field '{DATA_ONEOF}' must have one"
        " initialized field"
        for index, part in enumerate(parts)
        if not any(_get(part, f.name, f.json_name) is not None for f in data_fields)
    ]


def _get(obj: Any, name: str, json_name: str) -> Any:
    if not isinstance(obj, Mapping):
        return None
    value = obj.get(name)
    return obj.get(json_name) if value is None else value
