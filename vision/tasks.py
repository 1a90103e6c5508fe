"""The vision tasks: what each accepts, the prompt it sends, and how its answer is read."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from visionq.vision.errors import CodedError
from visionq.vision.levels import MediaLevelOption, ThinkingLevelOption, normalise_level
from visionq.vision.structured import parse_structured
from visionq.vision.task_registry import TASKS, ImageSize, TaskDefaults, TaskKind, kinds_with
from visionq.vision.tiers import Tier

# TaskKind, TaskDefaults and ImageSize are declared with the registry and re-exported here,
# where their readers import them from.
__all__ = [
    "JSON_TASKS", "MAX_DEADLINE_S", "MAX_LABELS", "MAX_PROMPT_CHARS", "MULTI_IMAGE_TASKS",
    "NOT_IN_CACHE_KEY", "TASK_DEFAULTS",
    "ImageSize", "JobOptions", "JobSpecError", "RequestMediaLevel", "TaskDefaults", "TaskKind",
    "build_prompt", "cache_key", "parse_answer", "validate_job",
]  # fmt: skip

# Derived from the registry (vision.task_registry), kept for their readers.
MULTI_IMAGE_TASKS = frozenset(kind for kind, spec in TASKS.items() if spec.multi_image)
JSON_TASKS = frozenset(kind for kind, spec in TASKS.items() if spec.json_answer)
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
# Longest deadline a job may ask for: a week (a Gemini batch has 48 h before it expires).
MAX_DEADLINE_S = 7 * 86_400
# Options that say how and when a question is answered, not what it is: the cache key leaves
# them out (the same question has the same answer whatever the tier or deadline).
NOT_IN_CACHE_KEY = frozenset({"cache", "tier", "deadline_s"})


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
    tier: Tier | None = Field(
        default=None,
        description="Gemini service tier: standard, flex (half price, minutes), priority "
        "(costs more), batch (half price, hours) or auto (the cheapest tier whose measured "
        "turnaround meets the deadline); unset = the server's VISIONQ_TIER_DEFAULT.",
    )
    # Strict: true is not 1 s and 1.5e3 is not 1500 s; a whole number of seconds is asked for.
    deadline_s: int | None = Field(
        default=None,
        strict=True,
        ge=60,
        le=MAX_DEADLINE_S,
        description="Seconds from submission by which the job should end; unset = the "
        "tier's default (VISIONQ_TIER_DEADLINES_S). Drives auto's choice and flex fallback.",
    )

    def stored(self) -> dict[str, Any]:
        """The options as a job's row stores them and the API shows them: JSON, only the
        options that differ from their defaults (what the cache key hashes, too)."""
        return self.model_dump(mode="json", exclude_defaults=True)


# Each task's output defaults (vision.task_registry.TaskDefaults, declared in its TaskSpec).
TASK_DEFAULTS: dict[TaskKind, TaskDefaults] = {kind: spec.defaults for kind, spec in TASKS.items()}


class JobSpecError(CodedError, ValueError):
    """A job request that cannot be run as given, found at submit before anything is stored
    (validate_job here, the model checks of vision/model_fit.py); the API answers 422."""

    codes = frozenset({
        "missing_image", "too_many_images", "too_few_images", "missing_prompt",
        "prompt_too_long", "unexpected_schema", "unexpected_labels", "missing_labels",
        "too_many_labels", "duplicate_labels", "invalid_options", "unknown_model",
        "model_retired", "task_not_supported",
    })  # fmt: skip


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
    """Identity of a job's question: same images, task, prompt, schema, model and options
    (leaving out those of NOT_IN_CACHE_KEY: cache, tier, deadline)."""
    relevant = {
        key: value for key, value in options.stored().items() if key not in NOT_IN_CACHE_KEY
    }
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
    spec = TASKS[task]
    if spec.max_images == 1 and images != 1:
        raise JobSpecError("too_many_images", f"Task {task} takes exactly one image; got {images}.")
    if images < spec.min_images:
        raise JobSpecError(
            "too_few_images", f"Task {task} needs {spec.min_images} or more images; got {images}."
        )
    if spec.prompt_needs is not None and not (prompt and prompt.strip()):
        raise JobSpecError("missing_prompt", f"Task {task} needs {spec.prompt_needs} in 'prompt'.")
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        raise JobSpecError(
            "prompt_too_long",
            f"The prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARS}.",
        )
    if schema is not None and not spec.takes_schema:
        only = " and ".join(kinds_with(lambda spec: spec.takes_schema))
        raise JobSpecError("unexpected_schema", f"Only task {only} takes a JSON 'schema'.")
    if spec.takes_labels:
        _validate_labels(task, labels)
    elif labels:
        only = " and ".join(kinds_with(lambda spec: spec.takes_labels))
        raise JobSpecError("unexpected_labels", f"Task {task} takes no labels; only {only} does.")


def _validate_labels(task: TaskKind, labels: list[str] | None) -> None:
    cleaned = [label.strip() for label in labels or []]
    if len(cleaned) < 2 or any(not label for label in cleaned):
        raise JobSpecError(
            "missing_labels", f"Task {task} needs at least two non-empty labels in 'labels'."
        )
    if len(cleaned) > MAX_LABELS:
        raise JobSpecError("too_many_labels", f"At most {MAX_LABELS} labels; got {len(cleaned)}.")
    if len({label.casefold() for label in cleaned}) != len(cleaned):
        raise JobSpecError("duplicate_labels", "The labels must be distinct.")


def build_prompt(
    task: TaskKind, *, prompt: str | None, labels: list[str] | None, options: JobOptions
) -> str:
    """The text part sent after the image(s)."""
    return TASKS[task].prompt((prompt or "").strip(), labels, options)


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
    if TASKS[task].takes_schema and schema is not None:
        return {"json": parse_structured(text, schema)}
    parse = TASKS[task].parse
    if parse is None:
        raise ValueError(f"task {task} is parsed by its own module (see its TaskSpec)")
    return parse(text, images, labels)
