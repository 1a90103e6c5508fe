"""`visionq batch run`'s inputs: folders walked (keys are relative paths), manifests checked
line by line before anything is sent, and items streamed."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.unit.pngbytes import png
from visionq.cli import batch_inputs
from visionq.cli.batch_inputs import BatchInputs, Source, default_name, key_problem, walk
from visionq.cli.inputs import InputError
from visionq.vision.tasks import TaskKind


def _png() -> bytes:
    header = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return png([(b"IHDR", header), (b"IEND", b"")])


def _tree(root: Path, files: list[str]) -> None:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_png())


def _keys(inputs: BatchInputs) -> list[str]:
    return [source.key for source in inputs]


def test_a_folder_is_walked_recursively_in_name_order_with_relative_keys(tmp_path: Path) -> None:
    _tree(tmp_path / "photos", ["b.png", "a.png", "sub/c.png", "sub/deeper/d.png", "z.txt"])
    inputs = BatchInputs([tmp_path / "photos"], TaskKind.CAPTION)
    # Every regular file is a candidate: its bytes decide later (z.txt is skipped then).
    assert inputs.count() == 5
    assert _keys(inputs) == ["a.png", "b.png", "sub/c.png", "sub/deeper/d.png", "z.txt"]
    first = next(iter(inputs))
    assert first.images == (tmp_path / "photos" / "a.png",) and first.overrides == {}


def test_dot_folders_and_symlinked_folders_are_not_walked(tmp_path: Path) -> None:
    _tree(tmp_path / "photos", ["a.png", ".git/objects/x.png", ".hidden.png"])
    _tree(tmp_path / "elsewhere", ["far.png"])
    (tmp_path / "photos" / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert _keys(BatchInputs([tmp_path / "photos"], TaskKind.CAPTION)) == [".hidden.png", "a.png"]


def test_keys_are_relative_to_the_common_parent_of_the_paths(tmp_path: Path) -> None:
    _tree(tmp_path / "photos", ["2023/a.png", "2024/a.png", "2024/b.png"])
    inputs = BatchInputs(
        [tmp_path / "photos" / "2023", tmp_path / "photos" / "2024"], TaskKind.CAPTION
    )
    assert _keys(inputs) == ["2023/a.png", "2024/a.png", "2024/b.png"]
    one_file = BatchInputs([tmp_path / "photos" / "2024" / "b.png"], TaskKind.CAPTION)
    assert _keys(one_file) == ["b.png"]


def test_keys_do_not_depend_on_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(tmp_path / "photos", ["a.png", "sub/b.png"])
    monkeypatch.chdir(tmp_path)
    relative = _keys(BatchInputs([Path("photos")], TaskKind.CAPTION))
    monkeypatch.chdir(tmp_path / "photos" / "sub")
    assert _keys(BatchInputs([Path("..")], TaskKind.CAPTION)) == relative == ["a.png", "sub/b.png"]


def test_a_file_reached_twice_is_one_item(tmp_path: Path) -> None:
    _tree(tmp_path / "photos", ["a.png", "sub/b.png"])
    inputs = BatchInputs([tmp_path / "photos", tmp_path / "photos" / "sub"], TaskKind.CAPTION)
    assert inputs.count() == 2 and _keys(inputs) == ["a.png", "sub/b.png"]


def test_iteration_streams(tmp_path: Path) -> None:
    _tree(tmp_path, [f"{i:03}.png" for i in range(50)])
    items = iter(BatchInputs([tmp_path], TaskKind.CAPTION))
    assert next(items).key == "000.png"  # the first item comes before the walk ends


def test_missing_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        BatchInputs([tmp_path / "nope"], TaskKind.CAPTION)


def test_a_task_of_several_images_needs_a_manifest(tmp_path: Path) -> None:
    _tree(tmp_path, ["a.png"])
    with pytest.raises(InputError, match="manifest"):
        BatchInputs([tmp_path], TaskKind.COMPARE)


def test_jsonl_manifest_items_with_overrides(tmp_path: Path) -> None:
    _tree(tmp_path / "imgs", ["a.png", "b.png"])
    manifest = tmp_path / "items.jsonl"
    lines = [
        {"image": "imgs/a.png"},
        {"key": "second", "image": str(tmp_path / "imgs" / "b.png"), "prompt": "what?",
         "labels": "cat, dog", "model": "m", "options": {"temperature": 0.1}},
        {"key": "remote", "image": "https://example.test/x.jpg"},
    ]  # fmt: skip
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    inputs = BatchInputs([manifest], TaskKind.CLASSIFY, defaults={"labels": ["a", "b"]})
    assert inputs.count() == 3
    items = list(inputs)
    assert items[0] == Source(
        key="imgs/a.png", images=(tmp_path / "imgs" / "a.png",), origin=f"{manifest}:1"
    )
    assert items[1].overrides == {
        "prompt": "what?", "labels": ["cat", "dog"], "model": "m",
        "options": {"temperature": 0.1},
    }  # fmt: skip
    assert items[2].images == ("https://example.test/x.jpg",)


def test_jsonl_items_of_several_images(tmp_path: Path) -> None:
    _tree(tmp_path, ["a.png", "b.png"])
    manifest = tmp_path / "pairs.jsonl"
    manifest.write_text(json.dumps({"key": "pair", "images": ["a.png", "b.png"]}) + "\n")
    (only,) = BatchInputs([manifest], TaskKind.COMPARE)
    assert only.images == (tmp_path / "a.png", tmp_path / "b.png")


def test_manifest_errors_are_all_named_by_line_before_anything_is_sent(tmp_path: Path) -> None:
    _tree(tmp_path, ["a.png"])
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text(
        "\n".join(
            [
                json.dumps({"image": "a.png"}),
                "{not json",
                json.dumps(["a list"]),
                json.dumps({"image": "missing.png"}),
                json.dumps({"image": "a.png", "colour": "red"}),
                json.dumps({"key": "x", "image": "a.png", "options": {"speed": 1}}),
                json.dumps({"key": "a.png", "image": "a.png"}),
                json.dumps({"key": "bad\nkey", "image": "a.png"}),
                json.dumps({"key": "two", "images": ["a.png", "a.png"]}),
            ]
        )
    )
    with pytest.raises(InputError) as raised:
        BatchInputs([manifest], TaskKind.CAPTION).count()
    message = str(raised.value)
    for line, words in [
        (2, "not a JSON object ("),
        (3, "a line is a JSON object, not a list"),
        (4, "missing.png: no such file"),
        (5, "unknown field colour;"),
        (6, "unknown option speed;"),
        (7, "the key 'a.png' is given twice"),
        (8, "the key holds control characters"),
        (9, "2 image(s) for a task that takes 1"),
    ]:
        assert f"{manifest}:{line}: {words}" in message, line
    assert f"{manifest}:1:" not in message


def test_csv_manifest(tmp_path: Path) -> None:
    _tree(tmp_path, ["a.png", "b.png"])
    manifest = tmp_path / "items.csv"
    manifest.write_text(
        '\ufeffkey,image,labels,options\nk1,a.png,"cat,dog","{""temperature"": 0.5}"\n,b.png,,\n'
    )
    items = list(BatchInputs([manifest], TaskKind.CLASSIFY))
    assert [item.key for item in items] == ["k1", "b.png"]
    assert items[0].overrides == {"labels": ["cat", "dog"], "options": {"temperature": 0.5}}
    assert items[1].overrides == {} and items[1].origin == f"{manifest}:3"


@pytest.mark.parametrize(
    ("task", "option", "holds"),
    [
        (TaskKind.CLASSIFY, "--labels", "two or more, comma-separated"),
        (TaskKind.ASK, "--prompt", "a question"),
        (TaskKind.CUSTOM, "--prompt", "the instructions"),
    ],
)
def test_files_cannot_give_a_field_the_task_needs(
    tmp_path: Path, task: TaskKind, option: str, holds: str
) -> None:
    _tree(tmp_path / "photos", ["a.png"])
    folder, one_file = tmp_path / "photos", tmp_path / "photos" / "a.png"
    for paths in ([folder], [one_file]):
        # Refused before the folder is even walked: no item of it could give the field.
        with pytest.raises(batch_inputs.MissingFields) as raised:
            BatchInputs(paths, task)
        field = option.removeprefix("--")
        assert str(raised.value) == (
            f"--task {task.value} needs {option} ({holds}), or a manifest giving {field} on "
            "every line: a file or folder gives none"
        )
        assert raised.value.options == option
    # Given by the run's options: every item has it. A blank one is none.
    given = {"labels": ["cat", "dog"], "prompt": "what is it?"}
    assert BatchInputs([folder], task, defaults=given).count() == 1
    with pytest.raises(batch_inputs.MissingFields):
        BatchInputs([folder], task, defaults={"labels": [], "prompt": "  "})
    # A task that needs neither takes files alone.
    assert BatchInputs([folder], TaskKind.CAPTION).count() == 1


def test_manifest_lines_lacking_a_needed_field_are_named(tmp_path: Path) -> None:
    _tree(tmp_path, ["a.png"])
    jsonl = tmp_path / "items.jsonl"
    lines = [{"key": f"k{n}", "image": "a.png"} for n in range(8)]
    lines[1]["labels"] = ["cat", "dog"]
    jsonl.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    inputs = BatchInputs([jsonl], TaskKind.CLASSIFY)
    with pytest.raises(batch_inputs.MissingFields) as raised:
        inputs.count()
    shown = ", ".join(f"{jsonl}:{line}" for line in (1, 3, 4, 5, 6))
    assert str(raised.value).endswith(f"labels on every line: {shown} and 2 more give none")
    # A manifest giving the field on every line needs no option; nor one with the option.
    everywhere = tmp_path / "all.csv"
    everywhere.write_text('key,image,labels\nk1,a.png,"cat,dog"\nk2,a.png,"x,y"\n')
    assert BatchInputs([everywhere], TaskKind.CLASSIFY).count() == 2
    given = BatchInputs([jsonl], TaskKind.CLASSIFY, defaults={"labels": ["cat", "dog"]})
    assert given.count() == 8
    # A CSV without the column: every line lacks it.
    no_column = tmp_path / "plain.csv"
    no_column.write_text("key,image\nk1,a.png\n")
    with pytest.raises(batch_inputs.MissingFields) as raised:
        BatchInputs([no_column], TaskKind.ASK).count()
    assert str(raised.value).endswith(f"prompt on every line: {no_column}:2 gives none")


def test_csv_manifest_errors(tmp_path: Path) -> None:
    _tree(tmp_path, ["a.png"])
    no_image = tmp_path / "no_image.csv"
    no_image.write_text("key,picture\nk,a.png\n")
    with pytest.raises(InputError, match=r"no_image.csv:1: unknown columns picture"):
        BatchInputs([no_image], TaskKind.CAPTION).count()
    bad_cells = tmp_path / "bad.csv"
    bad_cells.write_text('image,options\na.png,{nope\n"a.png",[1]\na.png,{},extra\n')
    with pytest.raises(InputError) as raised:
        BatchInputs([bad_cells], TaskKind.CAPTION).count()
    message = str(raised.value)
    assert f"{bad_cells}:2: options is not JSON" in message
    assert f"{bad_cells}:3: options must be a JSON object, not a list" in message
    assert f"{bad_cells}:4: more cells than columns" in message


def test_folders_and_manifests_together_must_not_share_keys(tmp_path: Path) -> None:
    _tree(tmp_path / "photos", ["a.png"])
    manifest = tmp_path / "more.jsonl"
    manifest.write_text(json.dumps({"key": "a.png", "image": "photos/a.png"}) + "\n")
    with pytest.raises(InputError, match="given twice"):
        BatchInputs([tmp_path / "photos", manifest], TaskKind.CAPTION).count()


def test_errors_shown_are_capped(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text("nope\n" * 30)
    with pytest.raises(InputError, match=r"and 10 more$"):
        BatchInputs([manifest], TaskKind.CAPTION).count()


def test_walk_lists_regular_files_only(tmp_path: Path) -> None:
    _tree(tmp_path, ["a.png", "b/c.png"])
    assert list(walk(str(tmp_path))) == [str(tmp_path / "a.png"), str(tmp_path / "b" / "c.png")]


def test_key_problems() -> None:
    assert key_problem("a/b.png") is None
    assert key_problem("") and key_problem("x" * 1025) and key_problem("tab\there")
    assert key_problem(os.fsdecode(b"caf\xe9.png"))  # a Latin-1 file name on a UTF-8 system


def test_keys_are_bounded_in_utf8_bytes_as_the_api_bounds_them() -> None:
    assert key_problem("x" * 1024) is None
    assert key_problem("\u00e9" * 512) is None  # 1,024 bytes
    problem = key_problem("\u00e9" * 513)  # 513 characters, 1,026 bytes
    assert problem and "1,026 bytes of UTF-8" in problem
    assert key_problem("\U0001f600" * 300)  # 300 characters, 1,200 bytes


def test_default_name_is_stable_and_depends_on_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def name(paths: list[Path], **changes: object) -> str:
        fields: dict[str, Any] = {"task": "caption", "prompt": None, "labels": None, "model": None,
                        "options": {}, "schema": None} | changes  # fmt: skip
        return default_name(paths, **fields)

    monkeypatch.chdir(tmp_path)
    first = name([Path("photos")])
    assert first.startswith("photos-caption-") and len(first) == len("photos-caption-") + 8
    assert name([tmp_path / "photos"]) == first  # the same folder, written another way
    assert name([Path("photos")], options={"temperature": 0.2}) != first
    assert name([Path("photos")], model="other") != first
    assert name([Path("other")]) != first


def test_count_tells_files_that_are_no_images_by_their_first_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(_png())
    (tmp_path / "fake.jpg").write_text("not a JPEG")
    (tmp_path / "empty.png").write_bytes(b"")
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"key": "u", "image": "https://example.test/x.png"}) + "\n"
        + json.dumps({"key": "t", "image": "fake.jpg"}) + "\n"
    )  # fmt: skip
    inputs = BatchInputs([tmp_path / "a.png", tmp_path / "fake.jpg", tmp_path / "empty.png",
                          manifest], TaskKind.CAPTION)  # fmt: skip
    assert inputs.count() == 5 and inputs.not_images == 3


def test_one_folder_is_walked_without_keeping_its_keys(tmp_path: Path) -> None:
    import tracemalloc

    for folder in range(50):
        (tmp_path / f"d{folder:02}").mkdir()
        for index in range(100):
            (tmp_path / f"d{folder:02}" / f"photo-{index:03}.jpg").touch()
    inputs = BatchInputs([tmp_path], TaskKind.CAPTION)
    items = iter(inputs)
    tracemalloc.start()
    try:
        assert sum(1 for _ in itertools.islice(items, 4999)) == 4999  # the walk still open
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    # What the input pass holds, by this module's lines (other threads' allocations aside).
    held = snapshot.filter_traces([tracemalloc.Filter(True, batch_inputs.__file__)])
    size = sum(stat.size for stat in held.statistics("filename"))
    # Keeping every key seen held ~145 KB here (~42 KB without it); 15 MB at 100,000 files.
    assert size < 80_000, held.statistics("lineno")[:3]


def test_count_leaves_out_files_whose_key_the_api_would_refuse(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(_png())
    deep = tmp_path.joinpath(*["\u5199" * 80] * 5)  # a key of 1,210 UTF-8 bytes
    deep.mkdir(parents=True)
    (deep / "x.png").write_bytes(_png())
    inputs = BatchInputs([tmp_path], TaskKind.CAPTION)
    assert inputs.count() == 2 and inputs.not_images == 1
