"""The generation config a job sends, and the thinking it may cost, from the catalogue.

How much a model thinks, and how to make it think less, differs per model (a budget of 0
turns thinking off on some and is a 400 on others; Gemini 3 takes levels with a floor), so
every choice here comes from the model's catalogue entry, never from its name.
"""

from __future__ import annotations

from typing import Any

from vision.catalogue import ModelEntry
from vision.tasks import JSON_TASKS, JobOptions, TaskKind

ThinkingConfig = dict[str, Any]
# Output tokens allowed for the answer itself when a job sets no max_output_tokens.
DEFAULT_ANSWER_TOKENS = 8192


def least_thinking(entry: ModelEntry | None) -> ThinkingConfig | None:
    """The request's thinking config for the least thinking ``entry``'s model allows:
    its lowest level, else budget 0 where allowed, else its smallest budget. None when the
    model does not think by default or the catalogue says nothing."""
    thinking = entry.thinking if entry is not None else None
    if thinking is None or not thinking.default_on:
        return None
    if thinking.floor is not None:
        return {"thinking_level": thinking.floor.value}
    if thinking.budget is not None:
        return {"thinking_budget": 0 if thinking.budget.off else thinking.budget.min}
    return None


def thinking_config(
    task: TaskKind, options: JobOptions, entry: ModelEntry | None
) -> ThinkingConfig | None:
    """What the job asks for, else the least thinking for detect/segment (Google's guide:
    boxes and masks come out better without thinking), else nothing (the model's default)."""
    if options.thinking_level is not None:
        return {"thinking_level": options.thinking_level.value}
    if options.thinking_budget is not None:
        return {"thinking_budget": options.thinking_budget}
    if task in JSON_TASKS:
        return least_thinking(entry)
    return None


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
    if task in JSON_TASKS:
        config["response_mime_type"] = "application/json"
    if options.media_resolution is not None:
        config["media_resolution"] = f"MEDIA_RESOLUTION_{options.media_resolution}"
    if task is TaskKind.CUSTOM and schema is not None:
        config["response_mime_type"] = "application/json"
        config["response_json_schema"] = schema
    thinking = thinking_config(task, options, entry)
    if thinking is not None:
        config["thinking_config"] = thinking
    return config


def thinking_allowance(
    task: TaskKind, options: JobOptions, entry: ModelEntry | None
) -> tuple[int, list[str]]:
    """Output tokens thinking may add to a job's answer, and the assumptions made."""
    sent = thinking_config(task, options, entry)
    thinking = entry.thinking if entry is not None else None
    most = thinking.max_tokens if thinking is not None else 0
    if sent is None:
        if thinking is not None and thinking.default_on:
            return most, [
                f"the model thinks by default: counted at its most, {most} thinking tokens"
            ]
        return 0, []
    budget = sent.get("thinking_budget")
    if isinstance(budget, int) and budget >= 0:
        return budget, []
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
    answer_tokens: int = DEFAULT_ANSWER_TOKENS,
) -> int | None:
    """The max_output_tokens a job's call is sent with: the job's own, else room for the
    answer plus what thinking may add, within the model's output limit.

    Always sending a cap makes the estimate's output bound (what a budget holds) the most
    the call can be billed for: without one, Gemini's own limit (65,536) applies. None for
    a model the catalogue does not know and a job that sets no cap.
    """
    if options.max_output_tokens is not None:
        return options.max_output_tokens
    if entry is None:
        return None
    thinking, _ = thinking_allowance(task, options, entry)
    cap = answer_tokens + thinking
    limit = entry.output_token_limit
    return min(cap, limit) if limit is not None else cap
