import pytest

from api.queue import JOBS_QUEUE, PROCESS_JOB
from vision.tasks import (
    JobOptions,
    JobSpecError,
    TaskKind,
    build_prompt,
    generation_config,
    validate_job,
)


def test_api_enqueues_the_task_the_worker_registers() -> None:
    from worker import celery_app, tasks

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


def test_detect_prompt_and_config() -> None:
    text = build_prompt(TaskKind.DETECT, prompt="the red shapes", labels=None, options=JobOptions())
    assert "the red shapes" in text and "box_2d" in text and "0-1000" in text
    config = generation_config(TaskKind.DETECT, "gemini-2.5-flash", JobOptions())
    assert config["response_mime_type"] == "application/json"
    assert config["thinking_config"] == {"thinking_budget": 0}
    # Pro models cannot turn thinking off, so no budget is forced on them.
    assert "thinking_config" not in generation_config(
        TaskKind.DETECT, "gemini-2.5-pro", JobOptions()
    )


def test_options_refuse_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        JobOptions.model_validate({"temprature": 0.2})
