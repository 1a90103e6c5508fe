"""The vision tasks: what each accepts, the prompt it sends, and how its answer is read."""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from vision.errors import CodedError
from vision.levels import MediaLevelOption, ThinkingLevel, ThinkingLevelOption, normalise_level
from vision.parsing import AnswerParseError, parse_detections, parse_label
from vision.structured import parse_structured


class TaskKind(enum.StrEnum):
    CAPTION = "caption"
    ASK = "ask"
    CLASSIFY = "classify"
    DETECT = "detect"
    SEGMENT = "segment"
    COMPARE = "compare"
    CUSTOM = "custom"


# Tasks whose single job looks at several images together; the others take one image.
MULTI_IMAGE_TASKS = frozenset({TaskKind.ASK, TaskKind.COMPARE, TaskKind.CUSTOM})
# Tasks whose answer is JSON the model is asked to produce (response_mime_type JSON).
JSON_TASKS = frozenset({TaskKind.DETECT, TaskKind.SEGMENT})
MAX_LABELS = 200


def _request_media_input(value: object) -> object:
    level = normalise_level(value) if isinstance(value, str) else value
    if level == "ULTRA_HIGH":
        # Gemini takes ULTRA_HIGH only on a part (Gemini 3), never for the whole request.
        raise ValueError(
            "ULTRA_HIGH can only be set per image (options.image_media_resolution); "
            "send LOW, MEDIUM or HIGH here"
        )
    return level


RequestMediaLevel = Annotated[
    Literal["LOW", "MEDIUM", "HIGH"] | None, BeforeValidator(_request_media_input)
]
MAX_PROMPT_CHARS = 20_000


class JobOptions(BaseModel):
    """Per-job generation options; unknown keys are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    # Upper bounds are per model (the catalogue's output limit and thinking budget range),
    # checked by vision.model_fit.check_options.
    max_output_tokens: int | None = Field(default=None, ge=1)
    thinking_budget: int | None = Field(
        default=None,
        ge=-1,
        description="Thinking tokens the model may use (0 = off where the model allows it, "
        "-1 = the model decides); the model catalogue says which values each model takes.",
    )
    thinking_level: ThinkingLevelOption = Field(
        default=None,
        description="Gemini 3: MINIMAL, LOW, MEDIUM or HIGH (any case, THINKING_LEVEL_ prefix "
        "allowed); not together with thinking_budget.",
    )
    max_objects: int = Field(default=50, ge=1, le=500)
    max_side: int | None = Field(
        default=None,
        ge=64,
        le=8192,
        description="Downscale images so neither side exceeds this before sending; "
        "boxes still refer to the original pixels.",
    )
    media_resolution: RequestMediaLevel = Field(
        default=None,
        description="Gemini's media_resolution for the images (fewer tokens at LOW): LOW, "
        "MEDIUM or HIGH, in any case, with or without Gemini's MEDIA_RESOLUTION_ prefix.",
    )
    image_media_resolution: list[MediaLevelOption] | None = Field(
        default=None,
        description="Gemini 3: a media_resolution per image (in image order; ULTRA_HIGH "
        "allowed); overrides media_resolution for that image.",
    )
    cache: bool = Field(
        default=True,
        description="Reuse the stored result of an identical earlier job (free); false = run.",
    )
    economy: bool = Field(
        default=False,
        description="Send the images at the cheapest token tier the task tolerates "
        "(caption, classify, ask): downscaled on models billed by size, at the LOW media "
        "resolution on models billed by level (Gemini 3).",
    )

    def stored(self) -> dict[str, Any]:
        """The options as a job's row stores them and the API shows them: JSON, only the
        options that differ from their defaults (what the cache key hashes, too)."""
        return self.model_dump(mode="json", exclude_defaults=True)


@dataclass(frozen=True)
class TaskDefaults:
    """What a task's call may spend on output when the job does not say: the one place
    both the request (vision.generation: max_output_tokens, thinking_config) and the
    estimate (what a budget holds) read, so the hold is the worst case of what is sent.

    ``answer_tokens`` (+ ``per_object_tokens`` times options.max_objects) bounds the answer
    itself; ``thinking_level`` is the most thinking the task asks for (never more than the
    model's own default level); ``thinking_tokens`` is the room left for those thoughts in
    the cap (thoughts and answer share max_output_tokens). An answer that hits the cap is
    asked for once more with it raised (worker/thinking.py), then fails; it is never kept.
    """

    answer_tokens: int
    thinking_level: ThinkingLevel
    thinking_tokens: int
    per_object_tokens: int = 0

    def answer_allowance(self, options: JobOptions) -> int:
        """The output tokens the task's answer needs at most, thinking aside."""
        return self.answer_tokens + self.per_object_tokens * options.max_objects


# Why these numbers: a caption is one sentence (~30-60 tokens) and a classify answer one
# label (labels are short; 256 leaves room for long ones); an ask answer is a few
# paragraphs at most, a comparison somewhat longer, and a custom schema's JSON can be
# larger still. detect needs ~30 tokens per box and label (40 with margin); segment ~600
# per mask (a 512-token mask or a polygon, with its box and label). Thinking: the least
# for caption, classify, detect and segment (Google: boxes and masks come out better
# without it, and a caption or a label gains nothing), LOW for the open questions. 1-2k
# thinking tokens cover those levels' usual use; more hits the cap, which is raised once.
TASK_DEFAULTS: dict[TaskKind, TaskDefaults] = {
    TaskKind.CAPTION: TaskDefaults(256, ThinkingLevel.MINIMAL, 1024),
    TaskKind.CLASSIFY: TaskDefaults(256, ThinkingLevel.MINIMAL, 1024),
    TaskKind.ASK: TaskDefaults(1024, ThinkingLevel.LOW, 2048),
    TaskKind.COMPARE: TaskDefaults(1536, ThinkingLevel.LOW, 2048),
    TaskKind.CUSTOM: TaskDefaults(4096, ThinkingLevel.LOW, 2048),
    TaskKind.DETECT: TaskDefaults(64, ThinkingLevel.MINIMAL, 1024, per_object_tokens=40),
    TaskKind.SEGMENT: TaskDefaults(64, ThinkingLevel.MINIMAL, 1024, per_object_tokens=600),
}


class JobSpecError(CodedError, ValueError):
    """A job request that cannot be run as given, found at submit before anything is stored
    (validate_job here, the model checks of vision/model_fit.py); the API answers 422."""

    codes = frozenset({
        "missing_image", "too_many_images", "too_few_images", "missing_prompt",
        "prompt_too_long", "unexpected_schema", "unexpected_labels", "missing_labels",
        "too_many_labels", "duplicate_labels", "invalid_options", "unknown_model",
        "model_retired", "task_not_supported",
    })  # fmt: skip


@dataclass(frozen=True)
class ImageSize:
    width: int
    height: int


def cache_key(
    *,
    image_sha256s: list[str],
    task: TaskKind,
    prompt: str | None,
    labels: list[str] | None,
    schema: dict[str, Any] | None,
    model: str,
    options: JobOptions,
) -> str:
    """Identity of a job's question: same images, task, prompt, schema, model and options."""
    relevant = {key: value for key, value in options.stored().items() if key != "cache"}
    canonical = json.dumps(
        [image_sha256s, task.value, prompt, labels, schema, model, relevant],
        sort_keys=True, ensure_ascii=True, separators=(",", ":"),
    )  # fmt: skip
    return hashlib.sha256(canonical.encode()).hexdigest()


def validate_job(
    task: TaskKind,
    *,
    prompt: str | None,
    labels: list[str] | None,
    images: int,
    schema: dict[str, Any] | None = None,
    options: JobOptions | None = None,
) -> None:
    """Refuse a request that the task cannot run, with a message saying what to fix."""
    if images < 1:
        raise JobSpecError("missing_image", "Send at least one image.")
    per_image = options.image_media_resolution if options else None
    if per_image is not None and len(per_image) != images:
        raise JobSpecError(
            "invalid_options",
            f"options.image_media_resolution has {len(per_image)} entries for {images} images.",
        )
    if task not in MULTI_IMAGE_TASKS and images != 1:
        raise JobSpecError("too_many_images", f"Task {task} takes exactly one image; got {images}.")
    if task is TaskKind.COMPARE and images < 2:
        raise JobSpecError("too_few_images", f"Task compare needs 2 or more images; got {images}.")
    if task in (TaskKind.ASK, TaskKind.CUSTOM) and not (prompt and prompt.strip()):
        what = "a question" if task is TaskKind.ASK else "the instructions"
        raise JobSpecError("missing_prompt", f"Task {task} needs {what} in 'prompt'.")
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        raise JobSpecError(
            "prompt_too_long",
            f"The prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARS}.",
        )
    if schema is not None and task is not TaskKind.CUSTOM:
        raise JobSpecError("unexpected_schema", "Only task custom takes a JSON 'schema'.")
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
    """The text part sent after the image(s)."""
    extra = (prompt or "").strip()
    if task is TaskKind.CAPTION:
        base = "Write a concise, factual one-sentence caption for this image."
        return f"{base} {extra}" if extra else base
    if task in (TaskKind.ASK, TaskKind.CUSTOM):
        return extra
    if task is TaskKind.COMPARE:
        base = "Compare these images: say what they have in common and how they differ."
        return f"{base} {extra}" if extra else base
    if task is TaskKind.CLASSIFY:
        text = (
            "Classify this image. Reply with exactly one label from this JSON list, "
            f"copied verbatim, and nothing else: {json.dumps(labels, ensure_ascii=False)}"
        )
        return f"{text}\nContext: {extra}" if extra else text
    subject = extra or "all prominent objects"
    if task is TaskKind.SEGMENT:
        # Google's segmentation prompt, with our cap on the number of items.
        return (
            f"Give the segmentation masks for {subject}. Output a JSON list of at most "
            f"{options.max_objects} segmentation masks where each entry contains the 2D "
            'bounding box in the key "box_2d", the segmentation mask in key "mask", and the '
            'text label in the key "label". Use descriptive labels.'
        )
    return (
        f"Detect {subject} in the image. Return a JSON list with at most {options.max_objects} "
        'entries; each entry has "box_2d" as [ymin, xmin, ymax, xmax] normalized to 0-1000 '
        'and "label" as a short description.'
    )


def parse_answer(
    task: TaskKind,
    text: str,
    *,
    images: list[ImageSize],
    labels: list[str] | None,
    schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The job result for the model's answer text; raises AnswerParseError.

    Segmentation is parsed by vision.masks (its masks become files), not here.
    """
    if task is TaskKind.DETECT:
        size = images[0]
        return parse_detections(text, size.width, size.height)
    if task is TaskKind.CLASSIFY:
        return {"label": parse_label(text, labels or []), "text": text}
    if task is TaskKind.CUSTOM and schema is not None:
        return {"json": parse_structured(text, schema)}
    if not text.strip():
        raise AnswerParseError("the model returned an empty answer")
    return {"text": text.strip()}
