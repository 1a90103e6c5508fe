from typing import Any

import pytest
from pydantic import ValidationError

from visionq.api.queue import JOBS_QUEUE, PROCESS_JOB
from visionq.vision.levels import ThinkingLevel, normalise_thinking_level
from visionq.vision.tasks import JobOptions, JobSpecError, TaskKind, build_prompt, validate_job


def test_api_enqueues_the_task_the_worker_registers() -> None:
    from visionq.worker import celery_app, tasks

    assert tasks.PROCESS_JOB == PROCESS_JOB
    assert celery_app.JOBS_QUEUE == JOBS_QUEUE
    assert PROCESS_JOB in celery_app.app.tasks


@pytest.mark.parametrize(
    ("task", "prompt", "labels", "images", "code"),
    [
        (TaskKind.ASK, None, None, 1, "missing_prompt"),
        (TaskKind.ASK, "   ", None, 1, "missing_prompt"),
        (TaskKind.CLASSIFY, None, None, 1, "missing_labels"),
        (TaskKind.CLASSIFY, None, ["only"], 1, "missing_labels"),
        (TaskKind.CLASSIFY, None, ["a", "A"], 1, "duplicate_labels"),
        (TaskKind.CAPTION, None, ["a", "b"], 1, "unexpected_labels"),
        (TaskKind.DETECT, None, None, 2, "too_many_images"),
        (TaskKind.CAPTION, None, None, 0, "missing_image"),
    ],
)
def test_invalid_jobs(
    task: TaskKind, prompt: str | None, labels: list[str] | None, images: int, code: str
) -> None:
    with pytest.raises(JobSpecError) as caught:
        validate_job(task, prompt=prompt, labels=labels, images=images)
    assert caught.value.code == code


def test_ask_accepts_several_images() -> None:
    validate_job(TaskKind.ASK, prompt="Which is bigger?", labels=None, images=3)


def test_classify_prompt_lists_labels_as_json() -> None:
    text = build_prompt(TaskKind.CLASSIFY, prompt=None, labels=["cat", "dog"], options=JobOptions())
    assert '["cat", "dog"]' in text


def test_detect_and_segment_prompts() -> None:
    text = build_prompt(TaskKind.DETECT, prompt="the red shapes", labels=None, options=JobOptions())
    assert "the red shapes" in text and "box_2d" in text and "0-1000" in text
    mask = build_prompt(TaskKind.SEGMENT, prompt=None, labels=None, options=JobOptions())
    assert "segmentation masks for all prominent objects" in mask
    assert "at most 50" in mask


def test_per_image_levels_must_match_the_images() -> None:
    with pytest.raises(JobSpecError) as caught:
        validate_job(
            TaskKind.ASK,
            prompt="?",
            labels=None,
            images=2,
            options=JobOptions(image_media_resolution=["LOW"]),
        )
    assert caught.value.code == "invalid_options"
    assert "1 entries for 2 images" in caught.value.message


@pytest.mark.parametrize(
    "spelling", ["MEDIA_RESOLUTION_LOW", "LOW", "low", " Low ", "media_resolution_low"]
)
def test_media_resolution_in_any_spelling(spelling: str) -> None:
    assert JobOptions.model_validate({"media_resolution": spelling}).media_resolution == "LOW"
    per_image = JobOptions.model_validate({"image_media_resolution": [spelling, None]})
    assert per_image.image_media_resolution == ["LOW", None]


def test_media_resolution_levels() -> None:
    assert JobOptions.model_validate({"media_resolution": "high"}).media_resolution == "HIGH"
    assert JobOptions.model_validate({"media_resolution": "Medium"}).media_resolution == "MEDIUM"
    # Gemini's unspecified spelling means unset.
    unset = JobOptions.model_validate(
        {"media_resolution": "MEDIA_RESOLUTION_UNSPECIFIED", "image_media_resolution": [""]}
    )
    assert unset.media_resolution is None
    assert unset.image_media_resolution == [None]
    # ULTRA_HIGH exists only per image.
    with pytest.raises(ValidationError, match="ULTRA_HIGH can only be set per image"):
        JobOptions.model_validate({"media_resolution": "ULTRA_HIGH"})
    with pytest.raises(ValidationError, match="ULTRA_HIGH can only be set per image"):
        JobOptions.model_validate({"media_resolution": "MEDIA_RESOLUTION_ULTRA_HIGH"})
    per_image = JobOptions.model_validate({"image_media_resolution": ["ultra_high"]})
    assert per_image.image_media_resolution == ["ULTRA_HIGH"]


@pytest.mark.parametrize(
    ("spelling", "level"),
    [
        ("low", ThinkingLevel.LOW),
        ("THINKING_LEVEL_LOW", ThinkingLevel.LOW),
        ("High", ThinkingLevel.HIGH),
        ("MINIMAL", ThinkingLevel.MINIMAL),
        ("thinking_level_medium", ThinkingLevel.MEDIUM),
    ],
)
def test_thinking_level_in_any_spelling(spelling: str, level: ThinkingLevel) -> None:
    assert JobOptions.model_validate({"thinking_level": spelling}).thinking_level is level
    assert normalise_thinking_level(spelling) is level


def test_thinking_level_unspecified_is_unset() -> None:
    unset = JobOptions.model_validate({"thinking_level": "THINKING_LEVEL_UNSPECIFIED"})
    assert unset.thinking_level is None
    assert normalise_thinking_level(None) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"media_resolution": "EXTREME"}, "unknown media_resolution 'EXTREME'"),
        ({"media_resolution": "MEDIA_RESOLUTION_LOWEST"}, "unknown media_resolution"),
        ({"media_resolution": 1}, "media_resolution"),
        ({"image_media_resolution": ["SUPER"]}, "unknown media_resolution 'SUPER'"),
        ({"thinking_level": "ULTRA"}, "unknown thinking_level 'ULTRA'; expected one of MINIMAL"),
        ({"thinking_level": "THINKING_LEVEL_MAX"}, "unknown thinking_level"),
        ({"thinking_level": 2}, "thinking_level"),
        ({"thinking_budget": -2}, "thinking_budget"),
    ],
)
def test_bad_levels_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        JobOptions.model_validate(options)


def test_options_refuse_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        JobOptions.model_validate({"temprature": 0.2})
