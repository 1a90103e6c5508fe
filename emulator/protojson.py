"""Check a JSON body against a message of the API schema, as Google's ProtoJSON front end does.

What is accepted, as on the real API:

- a field by its proto name (``generation_config``) or its JSON name (``generationConfig``);
- ``null`` for any field (it means "not set");
- a single value where a list is expected (taken as a list of one: Google's own docs send
  ``"parts": {"text": ...}``); the body is rewritten in place to the list form;
- integers as JSON numbers (integral) or strings, within their type's range; floats as
  numbers, numeric strings, "NaN", "Infinity", "-Infinity";
- enums by name (case-sensitive) or by a number the enum defines;
- bytes as standard or URL-safe base64, padded or not;
- google.protobuf.Struct / Value / ListValue as any JSON object / value / array;
  Duration ("1.5s") and Timestamp (RFC 3339) as strings; Any with an "@type" the schema
  knows.

What is refused, each as one violation: unknown names, a list on a field that is not
repeated, an object on a scalar field, a value of the wrong JSON type or out of range, a
bad enum value, undecodable base64, a oneof set twice, a field given twice (both casings).
The wording of the first five follows the messages Google sends (``Invalid JSON payload
received. Unknown name "x" at 'generation_config': Cannot find field.``, ``Invalid value
at 'generation_config.max_output_tokens' (TYPE_INT32), "abc"``); the last two are the
emulator's own wording. Paths use proto names and list indexes (``contents[0].parts[1]``),
map entries are ``field[i].value`` like Google's.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from visionq.emulator.apischema import TYPE_URL_PREFIX, ApiSchema, FieldSpec, MessageSpec

PROTOBUF = "google.protobuf."
_INT_RANGES: dict[str, tuple[int, int]] = {
    "int32": (-(2**31), 2**31 - 1),
    "sint32": (-(2**31), 2**31 - 1),
    "sfixed32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "fixed32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "sint64": (-(2**63), 2**63 - 1),
    "sfixed64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
    "fixed64": (0, 2**64 - 1),
}
_WRAPPERS: dict[str, str] = {
    "DoubleValue": "double",
    "FloatValue": "float",
    "Int64Value": "int64",
    "UInt64Value": "uint64",
    "Int32Value": "int32",
    "UInt32Value": "uint32",
    "BoolValue": "bool",
    "StringValue": "string",
    "BytesValue": "bytes",
}
FLOAT_MAX = 3.4028234663852886e38
_SPECIAL_FLOATS = frozenset({"NaN", "Infinity", "-Infinity"})
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INTEGER = re.compile(r"-?\d+")
# Standard and URL-safe alphabets (Google's decoder takes either), optional padding.
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")
_DURATION = re.compile(r"-?\d+(\.\d{1,9})?s")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
SHOWN_CHARS = 100


@dataclass(frozen=True)
class Violation:
    """One refused piece of the body: where (proto-name path, "" for the top) and why."""

    field: str
    description: str


def render(value: Any) -> str:
    """A value as Google quotes it in "Invalid value" messages (long ones shortened)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _as_integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        number = float(value)
        return int(number) if number.is_integer() else None
    return None


def _integer_ok(kind: str, value: Any) -> bool:
    number = _as_integer(value)
    low, high = _INT_RANGES[kind]
    return number is not None and low <= number <= high


def _float_ok(kind: str, value: Any) -> bool:
    if isinstance(value, str):
        return value in _SPECIAL_FLOATS or bool(_NUMBER.fullmatch(value))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return kind == "double" or not math.isfinite(value) or abs(value) <= FLOAT_MAX


_SCALARS: dict[str, Callable[[str, Any], bool]] = {
    **dict.fromkeys(_INT_RANGES, _integer_ok),
    "double": _float_ok,
    "float": _float_ok,
    "bool": lambda _, value: isinstance(value, bool),
    "string": lambda _, value: isinstance(value, str),
    "bytes": lambda _, value: isinstance(value, str) and _base64_ok(value),
}


def _scalar_ok(kind: str, value: Any) -> bool:
    """Whether ``value`` is a valid ProtoJSON value of the scalar type ``kind``."""
    return _SCALARS[kind](kind, value)


def _base64_ok(text: str) -> bool:
    if not _BASE64.fullmatch(text):
        return False
    # A lone 6-bit character at the end cannot encode a byte.
    return len(text.rstrip("=")) % 4 != 1


class _Checker:
    """Walks one body, collecting violations."""

    def __init__(self, schema: ApiSchema) -> None:
        self.schema = schema
        self.violations: list[Violation] = []

    def unknown_name(self, key: str, path: str, why: str) -> None:
        at = f" at '{path}'" if path else ""
        self.violations.append(
            Violation(path, f'Invalid JSON payload received. Unknown name "{key}"{at}: {why}')
        )

    def invalid(self, path: str, type_label: str, value: Any, suffix: str = "") -> None:
        shown = f"{suffix} {render(value)}" if suffix else render(value)
        self.violations.append(
            Violation(path, f"Invalid value at '{path}' ({type_label}), {shown}")
        )

    def message(self, body: dict[str, Any], spec: MessageSpec, path: str) -> None:
        """Check the fields of one JSON object against ``spec``."""
        seen: set[str] = set()
        oneofs: dict[str, str] = {}
        for key in list(body):
            field = spec.field(key)
            if field is None:
                self.unknown_name(key, path, "Cannot find field.")
                continue
            if field.name in seen:
                self.unknown_name(key, path, f"field '{field.name}' is given twice.")
                continue
            seen.add(field.name)
            if body[key] is None:
                continue
            if field.oneof is not None:
                if field.oneof in oneofs:
                    self.unknown_name(
                        key, path, f"oneof field '{field.oneof}' is already set. Cannot set '{key}'"
                    )
                    continue
                oneofs[field.oneof] = key
            self.field(body, key, field, path)

    def field(self, body: dict[str, Any], key: str, field: FieldSpec, path: str) -> None:
        value, where = body[key], _join(path, field.name)
        if field.type == "map":
            self.map(value, field, where)
        elif field.repeated:
            if not isinstance(value, list):
                value = body[key] = [value]
            for index, item in enumerate(value):
                self.single(item, field, f"{where}[{index}]", key, path, in_list=True)
        elif isinstance(value, list):
            self.unknown_name(key, path, "Proto field is not repeating, cannot start list.")
        else:
            self.single(value, field, where, key, path)

    def map(self, value: Any, field: FieldSpec, where: str) -> None:
        if not isinstance(value, dict):
            self.invalid(where, "map", value)
            return
        assert field.map_value is not None, f"map field {where} without a value type"
        key_type = field.map_key or "string"
        for index, (entry_key, item) in enumerate(value.items()):
            entry = f"{where}[{index}]"
            # JSON object keys are strings: "12" for an integer key, "true" for a bool one.
            key_ok = (
                entry_key in ("true", "false")
                if key_type == "bool"
                else (key_type == "string" or _scalar_ok(key_type, entry_key))
            )
            if not key_ok:
                self.invalid(f"{entry}.key", f"TYPE_{key_type.upper()}", entry_key)
            self.single(item, field.map_value, f"{entry}.value", str(entry_key), entry)

    def single(
        self,
        value: Any,
        field: FieldSpec,
        where: str,
        key: str,
        parent: str,
        *,
        in_list: bool = False,
    ) -> None:
        """One value of ``field``'s type (an element, for repeated fields)."""
        if value is None and in_list:
            self.invalid(where, self.type_label(field), value)
        elif field.type == "message":
            assert field.ref is not None
            self.message_value(value, field.ref, where)
        elif field.type == "enum":
            self.enum(value, field, where)
        elif isinstance(value, dict):
            self.unknown_name(key, parent, "Starting an object on a scalar field")
        elif not _scalar_ok(field.type, value):
            suffix = "Base64 decoding failed for" if field.type == "bytes" else ""
            self.invalid(where, self.type_label(field), value, suffix)

    def type_label(self, field: FieldSpec) -> str:
        if field.type in ("message", "enum"):
            return f"{TYPE_URL_PREFIX}{field.ref}"
        return f"TYPE_{field.type.upper()}"

    def enum(self, value: Any, field: FieldSpec, where: str) -> None:
        assert field.ref is not None
        values = self.schema.enums[field.ref]
        if isinstance(value, str):
            ok = value in values
        elif isinstance(value, int) and not isinstance(value, bool):
            ok = value in {number for number in values.values() if number is not None}
        else:
            ok = False
        if not ok:
            self.invalid(where, self.type_label(field), value)

    def message_value(self, value: Any, ref: str, where: str) -> None:
        """A value whose type is the message ``ref`` (well-known types included)."""
        if ref.startswith(PROTOBUF):
            self.well_known(value, ref, where)
            return
        if not isinstance(value, dict):
            self.invalid(where, f"{TYPE_URL_PREFIX}{ref}", value)
            return
        self.message(value, self.schema.message(ref), where)

    def well_known(self, value: Any, ref: str, where: str) -> None:
        name = ref.removeprefix(PROTOBUF)
        checks: dict[str, Callable[[Any], bool]] = {
            "Value": lambda _: True,
            "Struct": lambda v: isinstance(v, dict),
            "ListValue": lambda v: isinstance(v, list),
            "Duration": lambda v: isinstance(v, str) and bool(_DURATION.fullmatch(v)),
            "Timestamp": lambda v: isinstance(v, str) and bool(_TIMESTAMP.fullmatch(v)),
            "FieldMask": lambda v: isinstance(v, str),
            "Empty": lambda v: isinstance(v, dict),
            "Any": lambda v: isinstance(v, dict),
        }
        if name in _WRAPPERS:
            ok = not isinstance(value, dict | list) and _scalar_ok(_WRAPPERS[name], value)
        elif name in checks:
            ok = checks[name](value)
        else:
            raise ValueError(f"well-known type {ref} is not supported by the checker")
        if not ok:
            self.invalid(where, f"{TYPE_URL_PREFIX}{ref}", value)
        elif name == "Empty":
            for key in value:
                self.unknown_name(key, where, "Cannot find field.")
        elif name == "Any":
            self.any(value, where)

    def any(self, value: dict[str, Any], where: str) -> None:
        type_url = value.get("@type")
        name = type_url.removeprefix(TYPE_URL_PREFIX) if isinstance(type_url, str) else ""
        if name not in self.schema.messages:
            self.invalid(where, f"{TYPE_URL_PREFIX}{PROTOBUF}Any", type_url, "unknown type URL")
            return
        rest = {key: item for key, item in value.items() if key != "@type"}
        self.message(rest, self.schema.message(name), where)


def check(body: Any, schema: ApiSchema, message: str) -> list[Violation]:
    """Every violation of ``body`` against the message ``message`` (a full name).

    Single values given for repeated fields are turned into lists in ``body`` itself.
    """
    checker = _Checker(schema)
    checker.message_value(body, message, "")
    return checker.violations
