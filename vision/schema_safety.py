"""What makes an untrusted JSON Schema safe to validate answers against, checked at submit.

A caller's schema runs inside the worker, after a paid call. Python's ``re`` backtracks
(``^(.|.)*X$`` takes exponential time on a 30-character string), so every regular
expression is compiled and matched with RE2, whose matching time is linear in the text;
a pattern RE2 cannot compile (backreferences, lookaround) is refused. ``$ref`` chains
that loop without descending into the answer would recurse forever, and chains of
combinators can multiply the subschemas applied at one place exponentially with a small
schema (``a: anyOf[$ref b, $ref b]``, ``b: anyOf[$ref c, $ref c]``, ...): both are refused.

Every ``$ref`` of the whole schema is resolved at submit with the resolver that checks the
answers (``referencing``), and must name a subschema (``#/$defs/name``, ``#/properties/a``,
an ``$anchor``): one that resolves to nothing, or to something that is not a schema (an
``enum`` value, the ``$defs`` map itself), is refused before the job is billed, instead of
failing after Gemini answered (issue 17).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import re2  # type: ignore[import-untyped]
from referencing import Registry
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

# A pattern longer than this is refused: RE2's matching time grows with the pattern's size.
MAX_PATTERN_CHARS = 1_000
# Subschemas that may apply at one place of an answer ($refs, allOf/anyOf/oneOf/not,
# if/then/else and dependentSchemas expanded, with multiplicity).
MAX_SCHEMAS_AT_ONE_PLACE = 2_000
# The longest chain of in-place subschemas ($ref to $ref to allOf ...): each link is a few
# Python frames when jsonschema validates.
MAX_IN_PLACE_CHAIN = 32
# RE2's memory budget per compiled pattern (its default is 8 MiB).
_RE2_MAX_MEM = 8 << 20

# Keywords whose subschemas apply to the same instance (no progress into the answer).
_IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_MAPS = ("dependentSchemas",)
# Keywords whose subschemas apply to a part of the instance (one level down).
_DESCENDING_ONE = (
    "items",
    "additionalItems",
    "contains",
    "unevaluatedItems",
    "additionalProperties",
    "unevaluatedProperties",
    "propertyNames",
)
_DESCENDING_LISTS = ("prefixItems",)
_DESCENDING_MAPS = ("properties", "patternProperties")
_CONTAINERS = ("$defs", "definitions")
# Keywords whose values are data, not schemas: a "$ref" key inside them is not a reference.
_DATA = ("enum", "const", "examples", "default")
# Keywords whose values are not schemas (a $ref to them names no subschema).
_VALUES = frozenset({
    "type", "required", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "minLength", "maxLength", "pattern", "format", "minItems", "maxItems",
    "uniqueItems", "minProperties", "maxProperties", "dependentRequired", "title",
    "description", "minContains", "maxContains", "readOnly", "writeOnly", "deprecated",
    "contentEncoding", "contentMediaType",
})  # fmt: skip


class UnsafeSchemaError(ValueError):
    """The schema is valid JSON Schema but cannot be validated in bounded time."""


class PatternError(UnsafeSchemaError):
    """A regular expression RE2 cannot compile."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    options.max_mem = _RE2_MAX_MEM
    return options


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Any:
    """``pattern`` compiled with RE2 (cached); raise PatternError naming it and why."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(
            f"the pattern {pattern[:60]!r}... has {len(pattern):,} characters; at most "
            f"{MAX_PATTERN_CHARS:,}"
        )
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(
            f"the pattern {pattern!r} is not RE2 syntax ({reason}); patterns are matched "
            "with RE2 (https://github.com/google/re2/wiki/Syntax), which has no "
            "backreferences or lookaround: rewrite it without them"
        ) from exc


def pattern_search(pattern: str, text: str) -> bool:
    """True if RE2 finds ``pattern`` in ``text`` (JSON Schema's unanchored ``pattern``)."""
    return compile_pattern(pattern).search(text) is not None


def is_regex(value: object) -> bool:
    """The ``regex`` format, checked with RE2 (jsonschema's own check compiles with ``re``)."""
    if not isinstance(value, str):
        return True
    try:
        compile_pattern(value)
    except PatternError:
        return False
    return True


def check_safety(schema: dict[str, Any]) -> None:
    """Raise UnsafeSchemaError if ``schema`` (already a valid JSON Schema) has a pattern RE2
    refuses, a ``$ref`` loop, too many subschemas at one place, or a keyword whose
    matching cannot be bounded."""
    check_refs(schema)
    graph = _Graph(schema)
    graph.check_in_place()  # first: it registers what $refs reach outside the usual places
    for node, where in graph.nodes():
        _check_node(node, where, node is schema)
    nodes = [node for node, _ in graph.nodes()]
    if any("unevaluatedProperties" in n for n in nodes) and any(
        "patternProperties" in n for n in nodes
    ):
        # jsonschema finds the keys unevaluatedProperties applies to with Python's re.
        raise UnsafeSchemaError(
            "unevaluatedProperties cannot be combined with patternProperties; use "
            "additionalProperties next to patternProperties instead"
        )


def _refuse_retrieval(uri: str) -> Any:
    # Only this schema's own subschemas: a reference never makes us fetch anything.
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]


def check_refs(schema: dict[str, Any]) -> None:
    """Raise UnsafeSchemaError naming the first ``$ref`` (anywhere in ``schema``, data
    keywords aside) that does not resolve to one of its subschemas."""
    given = schema.get("$id")
    base = given if isinstance(given, str) else ""
    resource = DRAFT202012.create_resource(schema)
    registry: Registry[Any] = Registry(retrieve=_refuse_retrieval).with_resource(base, resource)  # type: ignore[call-arg]
    resolver = registry.resolver(base_uri=base)
    stack: list[tuple[object, str]] = [(schema, "#")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, list):
            stack.extend((item, f"{where}/{index}") for index, item in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        ref = node.get("$ref")
        if isinstance(ref, str):
            _check_ref(resolver, ref, f"{where}/$ref", schema)
        stack.extend(
            (value, f"{where}/{_escape(str(key))}")
            for key, value in node.items()
            if key not in _DATA
        )


def _check_ref(resolver: Any, ref: str, where: str, root: dict[str, Any]) -> None:
    try:
        target = resolver.lookup(ref).contents
    except Unresolvable as exc:
        raise UnsafeSchemaError(
            f"{where}: {ref!r} cannot be resolved ({type(exc).__name__}: nothing of this "
            "schema has that name or JSON pointer); refer to a subschema of this schema, "
            "such as '#/$defs/name'"
        ) from exc
    fragment = ref.partition("#")[2]
    if not isinstance(target, dict | bool) or (
        fragment.startswith("/") and not _schema_position(fragment, root)
    ):
        raise UnsafeSchemaError(
            f"{where}: {ref!r} names something that is not a subschema; refer to a "
            "subschema of this schema, such as '#/$defs/name'"
        )


def _schema_position(pointer: str, root: dict[str, Any]) -> bool:
    """Whether a JSON pointer into the schema ends at a subschema (a schema keyword's
    value, an entry of a schema list or map, or anything under a keyword JSON Schema does
    not know: the author's own container), not at data (enum, const, ...) or at a map or
    list of subschemas itself."""
    one = {*_IN_PLACE_ONE, *_DESCENDING_ONE}
    lists = {*_IN_PLACE_LISTS, *_DESCENDING_LISTS}
    maps = {*_IN_PLACE_MAPS, *_DESCENDING_MAPS, *_CONTAINERS}
    expect = "schema"  # what the next token steps into: a schema, a list or a map entry
    for token in pointer.split("/")[1:]:
        name = token.replace("~1", "/").replace("~0", "~")
        if expect in ("list", "map") or name in one:
            expect = "schema"
        elif name in lists:
            expect = "list"
        elif name in maps:
            expect = "map"
        else:
            return name not in _DATA and not name.startswith("$") and name not in _VALUES
    return expect == "schema"


def _check_node(node: dict[str, Any], where: str, root: bool) -> None:
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        _compile_at(pattern, f"{where}/pattern")
    patterns = node.get("patternProperties")
    if isinstance(patterns, dict):
        for key in patterns:
            _compile_at(key, f"{where}/patternProperties")
    if "$dynamicRef" in node or "$recursiveRef" in node:
        raise UnsafeSchemaError(
            f"{where}: $dynamicRef is not supported; use a local $ref (#/$defs/...) instead"
        )
    if "$id" in node and not root:
        raise UnsafeSchemaError(
            f"{where}: $id is allowed only at the schema's root; refer to subschemas with "
            "#/$defs/... instead"
        )


def _compile_at(pattern: str, where: str) -> None:
    try:
        compile_pattern(pattern)
    except PatternError as exc:
        raise PatternError(f"{where}: {exc}") from exc


def _subschemas(
    node: dict[str, Any],
    keywords_one: tuple[str, ...],
    lists: tuple[str, ...],
    maps: tuple[str, ...],
) -> Iterator[tuple[str, object]]:
    for key in keywords_one:
        if key in node:
            yield key, node[key]
    for key in lists:
        value = node.get(key)
        if isinstance(value, list):
            yield from ((f"{key}/{index}", item) for index, item in enumerate(value))
    for key in maps:
        value = node.get(key)
        if isinstance(value, dict):
            yield from ((f"{key}/{_escape(name)}", item) for name, item in value.items())


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


class _Graph:
    """The schema's subschemas as a graph: in-place edges (same instance, $refs followed)
    and descending edges (a part of the instance)."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.where: dict[int, str] = {}
        self.by_id: dict[int, dict[str, Any]] = {}
        self.anchors: dict[str, dict[str, Any]] = {}
        self._add(root, "#")

    def _add(self, start: dict[str, Any], where: str) -> None:
        """Register ``start`` and its subschemas (iteratively: schemas come from users)."""
        stack: list[tuple[object, str]] = [(start, where)]
        while stack:
            node, where = stack.pop()
            if not isinstance(node, dict) or id(node) in self.by_id:
                continue
            self.by_id[id(node)] = node
            self.where[id(node)] = where
            anchor = node.get("$anchor")
            if isinstance(anchor, str):
                self.anchors[anchor] = node
            for path, child in self._children(node):
                stack.append((child, f"{where}/{path}"))

    @staticmethod
    def _children(node: dict[str, Any]) -> Iterator[tuple[str, object]]:
        yield from _subschemas(node, _IN_PLACE_ONE, _IN_PLACE_LISTS, _IN_PLACE_MAPS)
        yield from _subschemas(node, _DESCENDING_ONE, _DESCENDING_LISTS, _DESCENDING_MAPS)
        yield from _subschemas(node, (), (), _CONTAINERS)

    def nodes(self) -> Iterator[tuple[dict[str, Any], str]]:
        """Every subschema with its JSON pointer."""
        for key, node in list(self.by_id.items()):
            yield node, self.where[key]

    def _resolve(self, ref: str, where: str) -> dict[str, Any] | None:
        """The local subschema ``ref`` names; None for a boolean schema."""
        fragment = ref.partition("#")[2]
        if fragment and not fragment.startswith("/"):
            target: object = self.anchors.get(fragment)
        else:
            target = self.root
            # As the validator's resolver reads it: percent-decoded (check_refs has refused
            # pointers that name nothing, so no token is empty here).
            for token in filter(None, unquote(fragment).split("/")):
                name = token.replace("~1", "/").replace("~0", "~")
                if isinstance(target, dict):
                    target = target.get(name)
                elif isinstance(target, list) and name.isdigit() and int(name) < len(target):
                    target = target[int(name)]
                else:
                    target = None
        if isinstance(target, bool):
            return None
        if not isinstance(target, dict):
            raise UnsafeSchemaError(f"{where}/$ref: {ref!r} names no subschema of this schema")
        if id(target) not in self.by_id:  # a $ref into a keyword jsonschema does not apply
            self._add(target, ref)
        return target

    def in_place(self, node: dict[str, Any]) -> list[dict[str, Any]]:
        """The subschemas that apply to the same instance as ``node`` ($ref resolved)."""
        found = [
            child
            for _, child in _subschemas(node, _IN_PLACE_ONE, _IN_PLACE_LISTS, _IN_PLACE_MAPS)
            if isinstance(child, dict)
        ]
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = self._resolve(ref, self.where.get(id(node), "#"))
            if target is not None:
                found.append(target)
        return found

    def check_in_place(self) -> None:
        """Refuse loops, long chains and exponential expansion among in-place subschemas."""
        # Per node: subschemas applied with it at one place (itself included), and the
        # longest in-place chain from it. Iterative post-order: schemas come from users.
        count: dict[int, int] = {}
        chain: dict[int, int] = {}
        on_path: dict[int, dict[str, Any]] = {}
        for start in list(self.by_id.values()):
            stack: list[tuple[dict[str, Any], bool]] = [(start, False)]
            while stack:
                node, expanded = stack.pop()
                key = id(node)
                if key in count:
                    continue
                children = self.in_place(node)
                if expanded:
                    on_path.pop(key, None)
                    count[key] = min(1 + sum(count[id(c)] for c in children), 1 << 40)
                    chain[key] = 1 + max((chain[id(c)] for c in children), default=0)
                    self._bounded(node, count[key], chain[key])
                    continue
                if key in on_path:
                    continue
                on_path[key] = node
                stack.append((node, True))
                for child in children:
                    if id(child) in on_path:
                        raise UnsafeSchemaError(self._loop(child, on_path))
                    if id(child) not in count:
                        stack.append((child, False))

    def _bounded(self, node: dict[str, Any], count: int, chain: int) -> None:
        where = self.where.get(id(node), "#")
        if count > MAX_SCHEMAS_AT_ONE_PLACE:
            raise UnsafeSchemaError(
                f"{where}: its $refs and combinators (allOf/anyOf/oneOf/...) expand to "
                f"{count:,} subschemas at one place of the answer; at most "
                f"{MAX_SCHEMAS_AT_ONE_PLACE:,}: share fewer $refs between branches"
            )
        if chain > MAX_IN_PLACE_CHAIN:
            raise UnsafeSchemaError(
                f"{where}: a chain of {chain} $refs/combinators applies at one place of the "
                f"answer; at most {MAX_IN_PLACE_CHAIN}: flatten the chain"
            )

    def _loop(self, child: dict[str, Any], on_path: dict[int, dict[str, Any]]) -> str:
        names = [self.where.get(key, "#") for key in on_path]
        start = names.index(self.where.get(id(child), "#")) if id(child) in on_path else 0
        cycle = " -> ".join([*names[start:], self.where.get(id(child), "#")])
        return (
            f"$ref loop: {cycle} refers back to itself without descending into the answer "
            "(through properties or items), so validating would never end; break the loop"
        )
