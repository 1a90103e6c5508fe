"""The task registry: one TaskSpec per task kind, and what the other modules derive from it."""

from __future__ import annotations

import pytest

from visionq.vision.task_registry import (
    TASKS,
    TaskKind,
    has_boxes,
    has_masks,
    kinds_with,
    rendering,
    task_spec,
)  # fmt: skip
from visionq.vision.tasks import (
    JSON_TASKS,
    MULTI_IMAGE_TASKS,
    TASK_DEFAULTS,
    JobOptions,
    build_prompt,
)


def test_every_kind_has_one_spec_under_its_own_kind() -> None:
    assert set(TASKS) == set(TaskKind)
    assert all(spec.kind is kind for kind, spec in TASKS.items())


def test_task_spec_takes_the_stored_name() -> None:
    assert task_spec("detect") is TASKS[TaskKind.DETECT]
    with pytest.raises(ValueError):
        task_spec("paint")


def test_the_derived_sets_are_what_each_kind_declares() -> None:
    assert {TaskKind.ASK, TaskKind.COMPARE, TaskKind.CUSTOM} == MULTI_IMAGE_TASKS
    assert {TaskKind.DETECT, TaskKind.SEGMENT} == JSON_TASKS
    assert kinds_with(lambda spec: spec.boxes) == ("detect", "segment")
    assert kinds_with(lambda spec: spec.masks) == ("segment",)
    assert kinds_with(lambda spec: spec.economy) == ("caption", "ask", "classify")
    assert kinds_with(lambda spec: spec.takes_labels) == ("classify",)
    assert kinds_with(lambda spec: spec.takes_schema) == ("custom",)
    assert {kind: spec.defaults for kind, spec in TASKS.items()} == TASK_DEFAULTS


def test_only_segment_is_parsed_outside_the_registry() -> None:
    assert [kind for kind, spec in TASKS.items() if spec.parse is None] == [TaskKind.SEGMENT]


@pytest.mark.parametrize("kind", list(TaskKind))
def test_each_prompt_comes_from_its_spec(kind: TaskKind) -> None:
    options = JobOptions()
    expected = TASKS[kind].prompt("red", ["a", "b"], options)
    assert build_prompt(kind, prompt=" red ", labels=["a", "b"], options=options) == expected


def test_a_task_name_the_cli_does_not_know_is_shown_as_text() -> None:
    assert (rendering("detect"), rendering("classify"), rendering("paint")) == (
        "objects", "label", "text",
    )  # fmt: skip
    assert (has_boxes("segment"), has_masks("segment"), has_masks("detect")) == (True, True, False)
    assert not has_boxes("paint") and not has_masks("paint")
