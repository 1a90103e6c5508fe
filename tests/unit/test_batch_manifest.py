"""A batch manifest's lines validated into ManifestItem: each problem named by file:line,
in the words cli/batch_inputs.py used before the model (tests/unit/test_batch_inputs.py
covers the common ones through BatchInputs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from visionq.cli.batch_manifest import ManifestItem, manifest_items


def _read(tmp_path: Path, lines: list[Any]) -> tuple[list[ManifestItem], list[str]]:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    errors: list[str] = []
    items = [item for _, item in manifest_items(manifest, errors)]
    return items, [error.removeprefix(f"{manifest}:") for error in errors]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ({"image": "a.png", "prompt": None}, "prompt must be a string"),
        ({"image": "a.png", "key": 5}, "key must be a string"),
        ({"image": ""}, "an image is a path or an http(s) URL (a non-empty string)"),
        ({"images": ["a.png", 3]}, "an image is a path or an http(s) URL (a non-empty string)"),
        ({"images": []}, "images must be a non-empty list of paths or URLs"),
        ({"image": "a.png", "images": ["b.png"]}, 'give "image" (one path or URL) or "images"'),
        ({}, 'give "image" (one path or URL) or "images"'),
        ({"image": "a.png", "labels": ["a", 1]}, "labels must be a list of strings or one"),
        ({"image": "a.png", "options": None}, "options must be a JSON object, not null"),
        ({"image": "a.png", "schema": [1]}, "schema must be a JSON object, not a list"),
        ({"image": "a.png", "json_schema": {}}, "unknown field json_schema; an item has image,"),
        ({"image": "a.png", "zz": 1, "aa": 2}, "unknown field aa, zz;"),
    ],
)
def test_a_bad_line_is_named_with_its_problem(
    tmp_path: Path, line: dict[str, Any], problem: str
) -> None:
    items, errors = _read(tmp_path, [{"image": "ok.png"}, line])
    assert len(items) == 1
    assert len(errors) == 1 and errors[0].startswith(f"2: {problem}"), errors


def test_overrides_are_the_fields_given_by_their_wire_names(tmp_path: Path) -> None:
    line = {"key": "k", "image": "a.png", "labels": "cat, dog,", "schema": {"type": "object"}}
    (item,), errors = _read(tmp_path, [line])
    assert not errors
    assert item.written_images() == ["a.png"]
    assert item.overrides() == {"labels": ["cat", "dog"], "schema": {"type": "object"}}


def test_csv_cells_are_validated_into_the_same_model(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text('key,image,labels,options\nk,a.png,"a,b","{""temperature"": 0}"\n')
    errors: list[str] = []
    ((origin, item),) = manifest_items(manifest, errors)
    assert not errors and origin == f"{manifest}:2"
    assert item == ManifestItem(
        key="k", image="a.png", labels=["a", "b"], options={"temperature": 0}
    )
