"""The generation config a job sends, and the thinking it may cost, from the catalogue.

How much a model thinks, and how to make it think less, differs per model (a budget of 0
turns thinking off on some and is a 400 on others; Gemini 3 takes levels with a floor), so
every choice here comes from the model's catalogue entry, never from its name.
"""

from __future__ import annotations

from typing import Any

from visionq.vision.catalogue import ModelEntry
from visionq.vision.levels import ThinkingLevel
from visionq.vision.task_registry import TASKS
from visionq.vision.tasks import JobOptions, TaskKind

ThinkingConfig = dict[str, Any]
_ORDER = list(ThinkingLevel)


def least_thinking(entry: ModelEntry | None) -> ThinkingConfig | None:
    """The request's thinking config for the least thinking ``entry``'s model allows:
    its lowest level, else budget 0 where allowed, else its smallest budget. None when the
    model does not think by default or the catalogue says nothing."""
    return _task_thinking(ThinkingLevel.MINIMAL, 0, entry)


def _task_thinking(
    wanted: ThinkingLevel, tokens: int, entry: ModelEntry | None
) -> ThinkingConfig | None:
    """At most ``wanted`` (and never above the model's default level), as the model takes
    it: the highest of its levels not above that, else its floor; a budget-only model gets
    0 (off) for MINIMAL where it allows it, else ``tokens`` within its budget range."""
    thinking = entry.thinking if entry is not None else None
    if thinking is None or not thinking.default_on:
        return None
    if thinking.levels:
        ceiling = wanted
        if thinking.default_level is not None:
            ceiling = min(wanted, thinking.default_level, key=_ORDER.index)
        below = [lvl for lvl in thinking.levels if _ORDER.index(lvl) <= _ORDER.index(ceiling)]
        return {"thinking_level": (below[-1] if below else thinking.levels[0]).value}
    budget = thinking.budget
    if budget is None:
        return None
    if wanted is ThinkingLevel.MINIMAL:
        return {"thinking_budget": 0 if budget.off else budget.min}
    return {"thinking_budget": min(max(tokens, budget.min), budget.max)}


def thinking_config(
    task: TaskKind, options: JobOptions, entry: ModelEntry | None
) -> ThinkingConfig | None:
    """What the job asks for, else the task's default (TaskSpec.defaults: the least
    thinking for caption, classify, detect and segment, LOW for the open questions), as
    the model's catalogue entry says it takes it; nothing for a model that does not think
    by default or that the catalogue does not know."""
    if options.thinking_level is not None:
        return {"thinking_level": options.thinking_level.value}
    if options.thinking_budget is not None:
        return {"thinking_budget": options.thinking_budget}
    defaults = TASKS[task].defaults
    return _task_thinking(defaults.thinking_level, defaults.thinking_tokens, entry)


def generation_config(
    task: TaskKind,
    options: JobOptions,
    schema: dict[str, Any] | None = None,
    *,
    entry: ModelEntry | None = None,
) -> dict[str, Any]:
    """Keyword arguments for google.genai.types.GenerateContentConfig.

    ``entry`` is the model's catalogue entry (None for an unknown model an operator
    allows: then only what the job asks for is sent).
    """
    config: dict[str, Any] = {}
    ignored = entry.sampling_ignored if entry is not None else frozenset()
    if options.temperature is not None and "temperature" not in ignored:
        config["temperature"] = options.temperature
    cap = output_cap(task, options, entry)
    if cap is not None:
        config["max_output_tokens"] = cap
    if TASKS[task].json_answer:
        config["response_mime_type"] = "application/json"
    if options.media_resolution is not None:
        config["media_resolution"] = f"MEDIA_RESOLUTION_{options.media_resolution}"
    if TASKS[task].takes_schema and schema is not None:
        config["response_mime_type"] = "application/json"
        config["response_json_schema"] = schema
    thinking = thinking_config(task, options, entry)
    if thinking is not None:
        config["thinking_config"] = thinking
    return config


def thinking_allowance(
    task: TaskKind, options: JobOptions, entry: ModelEntry | None
) -> tuple[int, list[str]]:
    """Output tokens thinking may add to a job's answer, and the assumptions made.

    The task's own thinking (no thinking option set) gets the task's room
    (TaskSpec.defaults.thinking_tokens); a budget is what it says; a level or dynamic thinking
    the job asks for itself is counted at the model's most.
    """
    sent = thinking_config(task, options, entry)
    thinking = entry.thinking if entry is not None else None
    most = thinking.max_tokens if thinking is not None else 0
    if sent is None:
        if thinking is not None and thinking.default_on:  # thinks, with no way to lower it
            return most, [
                f"the model thinks by default: counted at its most, {most} thinking tokens"
            ]
        return 0, []
    budget = sent.get("thinking_budget")
    if isinstance(budget, int) and budget >= 0:
        return budget, []
    if options.thinking_level is None and options.thinking_budget is None:
        room = TASKS[task].defaults.thinking_tokens
        return room, [
            f"task {task} thinks at {sent['thinking_level']}: {room} thinking tokens allowed "
            "(an answer that needs more is asked for once more with a larger cap)"
        ]
    what = (
        f"thinking_level {sent['thinking_level']}"
        if "thinking_level" in sent
        else ("dynamic thinking (thinking_budget -1)")
    )
    return most, [f"{what} counted at the model's most, {most} thinking tokens"]


def output_cap(
    task: TaskKind,
    options: JobOptions,
    entry: ModelEntry | None,
    *,
    answer_tokens: int | None = None,
) -> int | None:
    """The max_output_tokens a job's call is sent with: the job's own, else room for the
    task's answer (``answer_tokens``, default TaskSpec.defaults) plus what
    thinking may add, within the model's output limit.

    Always sending a cap makes the estimate's output bound (what a budget holds) the most
    the call can be billed for: without one, Gemini's own limit (65,536) applies. None for
    a model the catalogue does not know and a job that sets no cap.
    """
    if options.max_output_tokens is not None:
        return options.max_output_tokens
    if entry is None:
        return None
    if answer_tokens is None:
        answer_tokens = TASKS[task].defaults.answer_allowance(options)
    thinking, _ = thinking_allowance(task, options, entry)
    cap = answer_tokens + thinking
    limit = entry.output_token_limit
    return min(cap, limit) if limit is not None else cap
