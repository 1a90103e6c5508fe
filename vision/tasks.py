"""The vision tasks: what each accepts, the prompt it sends, and how its answer is read."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vision.parsing import AnswerParseError, parse_detections, parse_label


class TaskKind(enum.StrEnum):
    CAPTION = "caption"
    ASK = "ask"
    CLASSIFY = "classify"
    DETECT = "detect"


# Tasks whose single job looks at several images together; the others take one image.
MULTI_IMAGE_TASKS = frozenset({TaskKind.ASK})
MAX_LABELS = 200
MAX_PROMPT_CHARS = 20_000


class JobOptions(BaseModel):
    """Per-job generation options; unknown keys are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_output_tokens: int | None = Field(default=None, ge=1, le=65_536)
    thinking_budget: int | None = Field(default=None, ge=-1, le=32_768)
    max_objects: int = Field(default=50, ge=1, le=500)


class JobSpecError(ValueError):
    """A job request that cannot be run as given; ``code`` is for the API's error body."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ImageSize:
    width: int
    height: int


def validate_job(
    task: TaskKind, *, prompt: str | None, labels: list[str] | None, images: int
) -> None:
    """Refuse a request that the task cannot run, with a message saying what to fix."""
    if images < 1:
        raise JobSpecError("missing_image", "Send at least one image.")
    if task not in MULTI_IMAGE_TASKS and images != 1:
        raise JobSpecError("too_many_images", f"Task {task} takes exactly one image; got {images}.")
    if task is TaskKind.ASK and not (prompt and prompt.strip()):
        raise JobSpecError("missing_prompt", "Task ask needs a question in 'prompt'.")
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        raise JobSpecError(
            "prompt_too_long",
            f"The prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARS}.",
        )
    if task is TaskKind.CLASSIFY:
        _validate_labels(labels)
    elif labels:
        raise JobSpecError("unexpected_labels", f"Task {task} takes no labels; only classify does.")


def _validate_labels(labels: list[str] | None) -> None:
    cleaned = [label.strip() for label in labels or []]
    if len(cleaned) < 2 or any(not label for label in cleaned):
        raise JobSpecError(
            "missing_labels", "Task classify needs at least two non-empty labels in 'labels'."
        )
    if len(cleaned) > MAX_LABELS:
        raise JobSpecError("too_many_labels", f"At most {MAX_LABELS} labels; got {len(cleaned)}.")
    if len({label.casefold() for label in cleaned}) != len(cleaned):
        raise JobSpecError("duplicate_labels", "The labels must be distinct.")


def build_prompt(
    task: TaskKind, *, prompt: str | None, labels: list[str] | None, options: JobOptions
) -> str:
    """The text part sent with the image(s)."""
    extra = (prompt or "").strip()
    if task is TaskKind.CAPTION:
        base = "Write a concise, factual one-sentence caption for this image."
        return f"{base} {extra}" if extra else base
    if task is TaskKind.ASK:
        return extra
    if task is TaskKind.CLASSIFY:
        text = (
            "Classify this image. Reply with exactly one label from this JSON list, "
            f"copied verbatim, and nothing else: {json.dumps(labels, ensure_ascii=False)}"
        )
        return f"{text}\nContext: {extra}" if extra else text
    subject = extra or "all prominent objects"
    return (
        f"Detect {subject} in the image. Return a JSON list with at most {options.max_objects} "
        'entries; each entry has "box_2d" as [ymin, xmin, ymax, xmax] normalized to 0-1000 '
        'and "label" as a short description.'
    )


def generation_config(task: TaskKind, model: str, options: JobOptions) -> dict[str, Any]:
    """Keyword arguments for google.genai.types.GenerateContentConfig."""
    config: dict[str, Any] = {}
    if options.temperature is not None:
        config["temperature"] = options.temperature
    if options.max_output_tokens is not None:
        config["max_output_tokens"] = options.max_output_tokens
    thinking_budget = options.thinking_budget
    if task is TaskKind.DETECT:
        config["response_mime_type"] = "application/json"
        # Google's guide: detection is better without thinking; Pro models cannot turn it off.
        if thinking_budget is None and "flash" in model:
            thinking_budget = 0
    if thinking_budget is not None:
        config["thinking_config"] = {"thinking_budget": thinking_budget}
    return config


def parse_answer(
    task: TaskKind, text: str, *, images: list[ImageSize], labels: list[str] | None
) -> dict[str, Any]:
    """The job result for the model's answer text; raises AnswerParseError."""
    if task is TaskKind.DETECT:
        size = images[0]
        return parse_detections(text, size.width, size.height)
    if task is TaskKind.CLASSIFY:
        return {"label": parse_label(text, labels or []), "text": text}
    if not text.strip():
        raise AnswerParseError("the model returned an empty answer")
    return {"text": text.strip()}
