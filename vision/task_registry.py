"""The task registry: one declaration (TaskSpec) per task kind, read by the API, the
worker, the estimate and the CLI instead of each branching on the kind.

Adding a task kind: a TaskKind member and its TaskSpec in TASKS below (an import-time
check refuses a kind without one), plus its tests.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from visionq.vision.levels import ThinkingLevel
from visionq.vision.parsing import AnswerParseError, parse_detections, parse_label

if TYPE_CHECKING:
    # Type-only: vision.tasks imports this module (JobOptions lives there).
    from visionq.vision.tasks import JobOptions


class TaskKind(enum.StrEnum):
    CAPTION = "caption"
    ASK = "ask"
    CLASSIFY = "classify"
    DETECT = "detect"
    SEGMENT = "segment"
    COMPARE = "compare"
    CUSTOM = "custom"


@dataclass(frozen=True)
class ImageSize:
    width: int
    height: int


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


PromptBuilder = Callable[[str, "list[str] | None", "JobOptions"], str]
AnswerParser = Callable[[str, "list[ImageSize]", "list[str] | None"], dict[str, Any]]
# How `visionq` shows a finished job's answer in one line: its text (or custom JSON),
# its label, or its objects (count and labels; a table in `visionq job`).
Rendering = Literal["text", "label", "objects"]


@dataclass(frozen=True)
class TaskSpec:
    """Everything that differs between task kinds, declared once.

    ``max_images`` None: any number (at least ``min_images``). ``prompt_needs``: what the
    prompt must hold ("a question"), None when it is optional. ``parse`` None: the answer
    is parsed elsewhere (segment: vision.masks, whose masks become files). ``json_answer``:
    the model is asked for JSON (response_mime_type). ``boxes``/``masks``: the result has
    objects with boxes / masks, so the job has an annotated PNG / mask PNGs. ``economy``:
    the task tolerates the cheapest image tier (options.economy).
    """

    kind: TaskKind
    defaults: TaskDefaults
    prompt: PromptBuilder
    parse: AnswerParser | None
    min_images: int = 1
    max_images: int | None = 1
    prompt_needs: str | None = None
    takes_labels: bool = False
    takes_schema: bool = False
    json_answer: bool = False
    boxes: bool = False
    masks: bool = False
    economy: bool = False
    rendering: Rendering = "text"

    @property
    def multi_image(self) -> bool:
        """One job looks at several images together (else: one image per job)."""
        return self.max_images != 1


def _with(base: str, extra: str) -> str:
    return f"{base} {extra}" if extra else base


def _caption_prompt(extra: str, labels: list[str] | None, options: JobOptions) -> str:
    return _with("Write a concise, factual one-sentence caption for this image.", extra)


def _verbatim_prompt(extra: str, labels: list[str] | None, options: JobOptions) -> str:
    return extra


def _compare_prompt(extra: str, labels: list[str] | None, options: JobOptions) -> str:
    base = "Compare these images: say what they have in common and how they differ."
    return _with(base, extra)


def _classify_prompt(extra: str, labels: list[str] | None, options: JobOptions) -> str:
    text = (
        "Classify this image. Reply with exactly one label from this JSON list, "
        f"copied verbatim, and nothing else: {json.dumps(labels, ensure_ascii=False)}"
    )
    return f"{text}\nContext: {extra}" if extra else text


def _detect_prompt(extra: str, labels: list[str] | None, options: JobOptions) -> str:
    subject = extra or "all prominent objects"
    return (
        f"Detect {subject} in the image. Return a JSON list with at most {options.max_objects} "
        'entries; each entry has "box_2d" as [ymin, xmin, ymax, xmax] normalized to 0-1000 '
        'and "label" as a short description.'
    )


def _segment_prompt(extra: str, labels: list[str] | None, options: JobOptions) -> str:
    subject = extra or "all prominent objects"
    # Google's segmentation prompt, with our cap on the number of items.
    return (
        f"Give the segmentation masks for {subject}. Output a JSON list of at most "
        f"{options.max_objects} segmentation masks where each entry contains the 2D "
        'bounding box in the key "box_2d", the segmentation mask in key "mask", and the '
        'text label in the key "label". Use descriptive labels.'
    )


def _text_answer(text: str, images: list[ImageSize], labels: list[str] | None) -> dict[str, Any]:
    if not text.strip():
        raise AnswerParseError("the model returned an empty answer")
    return {"text": text.strip()}


def _label_answer(text: str, images: list[ImageSize], labels: list[str] | None) -> dict[str, Any]:
    return {"label": parse_label(text, labels or []), "text": text}


def _detect_answer(text: str, images: list[ImageSize], labels: list[str] | None) -> dict[str, Any]:
    return parse_detections(text, images[0].width, images[0].height)


# Why these output numbers: a caption is one sentence (~30-60 tokens) and a classify
# answer one label (labels are short; 256 leaves room for long ones); an ask answer is a
# few paragraphs at most, a comparison somewhat longer, and a custom schema's JSON can be
# larger still. detect needs ~30 tokens per box and label (40 with margin); segment ~600
# per mask (a 512-token mask or a polygon, with its box and label). Thinking: the least
# for caption, classify, detect and segment (Google: boxes and masks come out better
# without it, and a caption or a label gains nothing), LOW for the open questions. 1-2k
# thinking tokens cover those levels' usual use; more hits the cap, which is raised once.
# Economy: caption, classify and ask read a smaller image as well; detect and segment
# need the resolution, and compare/custom are left alone (their needs are not known).
TASKS: dict[TaskKind, TaskSpec] = {
    spec.kind: spec
    for spec in (
        TaskSpec(
            TaskKind.CAPTION, TaskDefaults(256, ThinkingLevel.MINIMAL, 1024),
            _caption_prompt, _text_answer, economy=True,
        ),
        TaskSpec(
            TaskKind.ASK, TaskDefaults(1024, ThinkingLevel.LOW, 2048),
            _verbatim_prompt, _text_answer, max_images=None, prompt_needs="a question",
            economy=True,
        ),
        TaskSpec(
            TaskKind.CLASSIFY, TaskDefaults(256, ThinkingLevel.MINIMAL, 1024),
            _classify_prompt, _label_answer, takes_labels=True, economy=True,
            rendering="label",
        ),
        TaskSpec(
            TaskKind.DETECT,
            TaskDefaults(64, ThinkingLevel.MINIMAL, 1024, per_object_tokens=40),
            _detect_prompt, _detect_answer, json_answer=True, boxes=True,
            rendering="objects",
        ),
        TaskSpec(
            TaskKind.SEGMENT,
            TaskDefaults(64, ThinkingLevel.MINIMAL, 1024, per_object_tokens=600),
            _segment_prompt, None, json_answer=True, boxes=True, masks=True,
            rendering="objects",
        ),
        TaskSpec(
            TaskKind.COMPARE, TaskDefaults(1536, ThinkingLevel.LOW, 2048),
            _compare_prompt, _text_answer, min_images=2, max_images=None,
        ),
        TaskSpec(
            TaskKind.CUSTOM, TaskDefaults(4096, ThinkingLevel.LOW, 2048),
            _verbatim_prompt, _text_answer, max_images=None,
            prompt_needs="the instructions", takes_schema=True,
        ),
    )
}  # fmt: skip
if set(TASKS) != set(TaskKind):  # pragma: no cover - a declaration error, caught on import
    raise RuntimeError(f"no TaskSpec for {sorted(set(TaskKind) - set(TASKS))}")


def task_spec(task: str) -> TaskSpec:
    """The declaration of a task kind, by kind or by its stored name ("detect")."""
    return TASKS[TaskKind(task)]


def kinds_with(flag: Callable[[TaskSpec], bool]) -> tuple[str, ...]:
    """The names of the task kinds whose spec has ``flag``, in declaration order."""
    return tuple(kind.value for kind in TaskKind if flag(TASKS[kind]))


def _known(task: str) -> TaskSpec | None:
    # A client may meet a task name a newer server added: it is then shown as text.
    return TASKS.get(TaskKind(task)) if task in TaskKind.__members__.values() else None


def rendering(task: str) -> Rendering:
    """How the CLI shows a job of this task in one line ("text" for a name it does not know)."""
    spec = _known(task)
    return spec.rendering if spec is not None else "text"


def has_boxes(task: str) -> bool:
    """Whether a job of this task has objects with boxes (an annotated PNG)."""
    spec = _known(task)
    return spec is not None and spec.boxes


def has_masks(task: str) -> bool:
    """Whether a job of this task has mask PNGs."""
    spec = _known(task)
    return spec is not None and spec.masks
