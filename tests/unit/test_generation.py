"""The generation config a job sends and the thinking it may cost (vision.generation): every
thinking choice comes from the model's catalogue entry, never from its name."""

from typing import Any

import pytest

from visionq.vision.catalogue import ModelEntry, load_catalogue
from visionq.vision.generation import (
    generation_config,
    least_thinking,
    output_cap,
    thinking_allowance,
)
from visionq.vision.tasks import JobOptions, TaskKind

LEVELS_RULE = {
    "image_rule": "media_resolution",
    "media_resolution": {"LOW": 280, "HIGH": 1120},
    "default_level": "HIGH",
}
# Budget-only models, like Gemini 2.5: one whose thinking turns off with budget 0, one that
# only thinks, and one that thinks only when asked.
CATALOGUE = load_catalogue(
    {
        "models": {
            name: {
                "status": "stable",
                "image_tokens": LEVELS_RULE,
                "thinking": thinking,
                "tasks": ["caption", "detect", "segment"],
                "mask_format": "png",
            }
            for name, thinking in {
                "budget-off": {
                    "budget": {"min": 1, "max": 24576, "off": True},
                    "max_tokens": 24576,
                },
                "budget-on": {
                    "budget": {"min": 128, "max": 32768, "off": False},
                    "max_tokens": 32768,
                },
                "budget-lazy": {
                    "budget": {"min": 512, "max": 24576, "off": True},
                    "default_on": False,
                    "max_tokens": 24576,
                },
            }.items()
        }
    }
)


def entry(model: str) -> ModelEntry:
    found = CATALOGUE.entry(model)
    assert found is not None, model
    return found


def config(model: str | None, task: TaskKind = TaskKind.DETECT, **options: Any) -> dict[str, Any]:
    return generation_config(
        task,
        JobOptions.model_validate(options),
        entry=entry(model) if model is not None else None,
    )


@pytest.mark.parametrize("task", [TaskKind.DETECT, TaskKind.SEGMENT])
@pytest.mark.parametrize(
    ("model", "thinking"),
    [
        # Models that only work in thinking mode get their lowest level, never budget 0.
        ("gemini-3.8-flash", {"thinking_level": "LOW"}),
        ("gemini-3.6-flash", {"thinking_level": "MINIMAL"}),
        ("gemini-3.5-flash-lite", {"thinking_level": "MINIMAL"}),
        ("gemini-3.1-pro-preview", {"thinking_level": "LOW"}),
        ("budget-off", {"thinking_budget": 0}),
        ("budget-on", {"thinking_budget": 128}),
    ],
)
def test_detect_and_segment_ask_for_the_least_thinking(
    task: TaskKind, model: str, thinking: dict[str, Any]
) -> None:
    sent = config(model, task)
    assert sent["thinking_config"] == thinking
    assert sent["response_mime_type"] == "application/json"


def test_no_thinking_config_where_none_is_needed() -> None:
    # A model that does not think by default is left alone.
    assert "thinking_config" not in config("budget-lazy", TaskKind.DETECT)
    assert "thinking_config" not in config("budget-lazy", TaskKind.ASK)
    assert least_thinking(entry("budget-lazy")) is None
    # An unknown model (entry None) gets only what the job asks for.
    assert least_thinking(None) is None
    assert config(None, TaskKind.DETECT) == {"response_mime_type": "application/json"}


@pytest.mark.parametrize(
    ("model", "task", "thinking"),
    [
        # caption and classify think the least, like detect and segment.
        ("gemini-3.8-flash", TaskKind.CAPTION, {"thinking_level": "LOW"}),
        ("gemini-3.5-flash-lite", TaskKind.CLASSIFY, {"thinking_level": "MINIMAL"}),
        ("budget-off", TaskKind.CAPTION, {"thinking_budget": 0}),
        # The open questions think at LOW, never above the model's own default level.
        ("gemini-3.6-flash", TaskKind.ASK, {"thinking_level": "LOW"}),
        ("gemini-3.1-pro-preview", TaskKind.COMPARE, {"thinking_level": "LOW"}),
        ("gemini-3.5-flash-lite", TaskKind.CUSTOM, {"thinking_level": "MINIMAL"}),
        ("budget-on", TaskKind.ASK, {"thinking_budget": 2048}),
    ],
)
def test_each_task_has_its_own_thinking(
    model: str, task: TaskKind, thinking: dict[str, Any]
) -> None:
    assert config(model, task)["thinking_config"] == thinking


@pytest.mark.parametrize(
    ("task", "options", "cap"),
    [
        # The answer's room plus the task's thinking room (issue 17: 32,768 before).
        (TaskKind.CAPTION, {}, 256 + 1024),
        (TaskKind.CLASSIFY, {}, 256 + 1024),
        (TaskKind.ASK, {}, 1024 + 2048),
        (TaskKind.COMPARE, {}, 1536 + 2048),
        (TaskKind.CUSTOM, {}, 4096 + 2048),
        (TaskKind.DETECT, {}, 64 + 40 * 50 + 1024),
        (TaskKind.DETECT, {"max_objects": 5}, 64 + 40 * 5 + 1024),
        (TaskKind.SEGMENT, {"max_objects": 10}, 64 + 600 * 10 + 1024),
        (TaskKind.CAPTION, {"max_output_tokens": 77}, 77),
    ],
)
def test_each_task_sends_its_own_cap(task: TaskKind, options: dict[str, Any], cap: int) -> None:
    assert config("gemini-3.6-flash", task, **options)["max_output_tokens"] == cap


def test_the_jobs_own_thinking_wins() -> None:
    assert config("gemini-3.8-flash", thinking_level="high")["thinking_config"] == {
        "thinking_level": "HIGH"
    }
    assert config("gemini-3.8-flash", thinking_budget=2048)["thinking_config"] == {
        "thinking_budget": 2048
    }
    assert config("budget-off", TaskKind.CAPTION, thinking_budget=0)["thinking_config"] == {
        "thinking_budget": 0
    }
    assert config(None, TaskKind.CAPTION, thinking_level="THINKING_LEVEL_LOW")[
        "thinking_config"
    ] == {"thinking_level": "LOW"}


def test_sampling_and_output_options() -> None:
    # gemini-3.6-flash ignores temperature (the catalogue says so): it is not sent.
    assert "temperature" not in config("gemini-3.6-flash", TaskKind.CAPTION, temperature=0.2)
    assert config("gemini-3.5-flash-lite", TaskKind.CAPTION, temperature=0.2) == {
        "temperature": 0.2,
        "max_output_tokens": 256 + 1024,
        "thinking_config": {"thinking_level": "MINIMAL"},
    }
    assert config(None, TaskKind.CAPTION, temperature=0.0) == {"temperature": 0.0}
    sent = config(
        "gemini-3.5-flash-lite",
        TaskKind.CAPTION,
        max_output_tokens=500,
        media_resolution="media_resolution_low",
    )
    assert sent == {
        "max_output_tokens": 500,
        "media_resolution": "MEDIA_RESOLUTION_LOW",
        "thinking_config": {"thinking_level": "MINIMAL"},
    }


def test_custom_schema() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    sent = generation_config(
        TaskKind.CUSTOM, JobOptions(), schema, entry=entry("gemini-3.5-flash-lite")
    )
    minimal = {"thinking_level": "MINIMAL"}
    assert sent == {
        "response_mime_type": "application/json",
        "response_json_schema": schema,
        "max_output_tokens": 4096 + 2048,
        "thinking_config": minimal,
    }
    plain = generation_config(TaskKind.CUSTOM, JobOptions(), entry=entry("gemini-3.5-flash-lite"))
    assert plain == {"max_output_tokens": 4096 + 2048, "thinking_config": minimal}


def test_a_cap_is_always_sent_within_the_model_limit() -> None:
    """Without a cap Gemini's own limit (65,536) applies, past what the estimate holds."""
    lite = entry("gemini-3.5-flash-lite")
    assert output_cap(TaskKind.CAPTION, JobOptions(), lite) == 256 + 1024
    assert output_cap(TaskKind.CAPTION, JobOptions(max_output_tokens=300), lite) == 300
    assert output_cap(TaskKind.CAPTION, JobOptions(), lite, answer_tokens=65_000) == 65_536
    assert output_cap(TaskKind.CAPTION, JobOptions(), None) is None


@pytest.mark.parametrize(
    ("model", "task", "options", "tokens", "note"),
    [
        ("gemini-3.8-flash", TaskKind.CAPTION, {}, 1024, "thinks at LOW"),
        ("gemini-3.8-flash", TaskKind.ASK, {}, 2048, "thinks at LOW"),
        (
            "gemini-3.8-flash",
            TaskKind.DETECT,
            {"thinking_level": "low"},
            24576,
            "at the model's most",
        ),
        ("gemini-3.5-flash-lite", TaskKind.CAPTION, {"thinking_budget": 1024}, 1024, None),
        ("gemini-3.5-flash-lite", TaskKind.CAPTION, {"thinking_budget": -1}, 24576, "dynamic"),
        ("budget-off", TaskKind.DETECT, {}, 0, None),
        ("budget-on", TaskKind.SEGMENT, {}, 128, None),
        ("budget-lazy", TaskKind.CAPTION, {}, 0, None),
        ("budget-lazy", TaskKind.CAPTION, {"thinking_budget": -1}, 24576, "dynamic"),
        ("budget-on", TaskKind.ASK, {}, 2048, None),
    ],
)
def test_thinking_allowance(
    model: str, task: TaskKind, options: dict[str, Any], tokens: int, note: str | None
) -> None:
    allowance, notes = thinking_allowance(task, JobOptions.model_validate(options), entry(model))
    assert allowance == tokens
    if note is None:
        assert notes == []
    else:
        assert any(note in text for text in notes)


def test_thinking_allowance_of_an_unknown_model() -> None:
    assert thinking_allowance(TaskKind.CAPTION, JobOptions(), None) == (0, [])
    assert thinking_allowance(TaskKind.CAPTION, JobOptions(thinking_budget=300), None) == (300, [])
