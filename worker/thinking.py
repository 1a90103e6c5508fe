"""Thinking shares max_output_tokens: what to ask for when thoughts used the whole cap.

On thinking models (Gemini 2.5, every 3.x) the thoughts and the answer draw on one
budget, ``maxOutputTokens``; a small cap can be spent on thinking alone, and Gemini then
returns an empty candidate with finish reason MAX_TOKENS (billed all the same). The
pipeline asks once more with the cap raised to ``raised_cap``: twice the cap, or the
thoughts plus what the task's answer needs (``answer_allowance``), whichever is more,
never above the model's output limit. A second empty MAX_TOKENS answer fails the job
``max_tokens_exhausted`` with ``exhausted_message``.
"""

from __future__ import annotations

from visionq.vision.task_registry import TASKS
from visionq.vision.tasks import JobOptions, TaskKind

# Gemini's output limit of every current model (the catalogue's output_token_limit), and
# the most options.max_output_tokens takes.
DEFAULT_OUTPUT_LIMIT = 65_536
# The error class of a batch line's attempt cut at (or emptied by) visionq's own cap and
# released to the sync lane: that call was the normal cap's, so the sync run starts at the
# raised cap (cap_may_be_raised's one raise; the normal cap again would be a sure repeat).
CUT_IN_BATCH = "BatchOutputCap"


def answer_allowance(task: TaskKind, options: JobOptions) -> int:
    """The output tokens a task's answer needs at most, thinking aside (TaskSpec.defaults)."""
    return TASKS[task].defaults.answer_allowance(options)


def raised_cap(
    *, cap: int | None, thoughts: int | None, allowance: int, limit: int = DEFAULT_OUTPUT_LIMIT
) -> int | None:
    """The max_output_tokens to ask again with after thoughts used ``cap`` (None: the
    model's own limit); None when it cannot go higher than what was sent."""
    sent = cap if cap is not None else limit
    raised = min(max(2 * sent, (thoughts or 0) + allowance), limit)
    return raised if raised > sent else None


def exhausted_message(*, cap: int | None, thoughts: int | None, first_cap: int | None) -> str:
    """What a user reads when thoughts used the whole output budget (for the last time)."""
    of = f"{cap}" if cap is not None else "the model's maximum of"
    used = f"{thoughts}" if thoughts is not None else "all"
    raised = f" (raised once from {first_cap})" if first_cap not in (None, cap) else ""
    return (
        f"Gemini returned no answer: its thoughts used {used} of the {of} output tokens"
        f"{raised} that thinking shares with the answer (finish reason MAX_TOKENS). Raise "
        "options.max_output_tokens or lower thinking (options.thinking_level or "
        "options.thinking_budget)."
    )


def truncated_message(*, cap: int | None, first_cap: int | None) -> str:
    """What a user reads when the answer was cut at the output cap (for the last time)."""
    of = f"{cap}" if cap is not None else "the model's maximum"
    raised = f" (raised once from {first_cap})" if first_cap not in (None, cap) else ""
    return (
        f"Gemini's answer was cut at max_output_tokens {of}{raised} (finish reason "
        "MAX_TOKENS); a cut answer is not kept. Raise options.max_output_tokens, lower "
        "options.max_objects, or ask for a shorter answer."
    )


def cap_may_be_raised(options: JobOptions, *, raised: bool) -> bool:
    """Whether an answer cut at (or emptied by) max_output_tokens may be asked for again
    with a higher cap: only visionq's own per-task cap, and once; never the job's
    options.max_output_tokens (a cap the user set: the job must not spend past it, so the
    same cut would be paid for again). Both lanes decide by this rule."""
    return not raised and options.max_output_tokens is None


def cap_failure_message(
    code: str, *, cap: int | None, thoughts: int | None, first_cap: int | None
) -> str:
    """What a user reads when a job fails at its output cap (``code``: answer_truncated,
    or max_tokens_exhausted), whichever lane ran it."""
    if code == "answer_truncated":
        return truncated_message(cap=cap, first_cap=first_cap)
    return exhausted_message(cap=cap, thoughts=thoughts, first_cap=first_cap)
