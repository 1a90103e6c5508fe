"""Whether a job fits the model it names, checked against the catalogue before it is queued.

Google refuses what a model does not take with a 400 after the job waited in the queue (or,
for a retired id, answers with another model at another price). Every such refusal is made
here instead, at submit, as a JobSpecError saying what to send instead; what Google would
accept but a user should know (a deprecated model, an alias, an ignored option) becomes a
warning on the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from visionq.vision.catalogue import Catalogue, ModelEntry, ModelStatus
from visionq.vision.tasks import JobOptions, JobSpecError, TaskKind


@dataclass(frozen=True)
class JobWarning:
    """Something a user should know about a job that runs anyway."""

    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class ModelChoice:
    """The model a job runs on: its id (aliases resolved), its catalogue entry (None for an
    unknown id an operator allows) and the warnings the choice gives."""

    model: str
    entry: ModelEntry | None
    warnings: list[JobWarning] = field(default_factory=list)


def choose_model(
    catalogue: Catalogue,
    requested: str | None,
    task: TaskKind,
    *,
    configured_default: str | None = None,
    allow_unknown: bool = False,
) -> ModelChoice:
    """The model of a job asking for ``requested`` (None: the default for its task).

    Raises JobSpecError for a retired (shut down, routed, closed) or unknown id.
    """
    if not requested:
        # The operator's default when it serves the task (check_default_model made sure
        # it is usable), else the catalogue's default for the task (segment has its own).
        configured = catalogue.entry(configured_default) if configured_default else None
        if configured_default and configured is not None and task in configured.tasks:
            return _known(catalogue, configured_default, [])
        return _known(catalogue, catalogue.default_for(task), [])
    warnings: list[JobWarning] = []
    model = requested
    target = catalogue.aliases.get(requested)
    if target is not None:
        warnings.append(
            JobWarning(
                "model_alias",
                f"{requested} is an alias that Google re-points without notice; this job is "
                f"pinned to {target} (catalogue of {catalogue.as_of.isoformat()}).",
            )
        )
        model = target
    found = catalogue.lookup(model)
    if found is None:
        if allow_unknown:
            warnings.append(
                JobWarning(
                    "model_unknown",
                    f"{model} is not in visionq's model catalogue: no estimate, no price, "
                    "no checks of its options (allowed by VISIONQ_ALLOW_UNKNOWN_MODELS).",
                )
            )
            return ModelChoice(model, None, warnings)
        matches = catalogue.close_matches(model)
        hint = f" Did you mean {' or '.join(matches)}?" if matches else ""
        raise JobSpecError(
            "unknown_model",
            f"Unknown model {model!r}.{hint} `visionq models` (or GET /v1/models) lists the "
            "models visionq knows.",
        )
    return _known(catalogue, model, warnings)


def _known(catalogue: Catalogue, model: str, warnings: list[JobWarning]) -> ModelChoice:
    found = catalogue.lookup(model)
    assert found is not None, model  # defaults and aliases are checked by the catalogue
    key, entry = found
    status = entry.status
    if status is ModelStatus.ROUTED:
        since = entry.shut_down_on or entry.deprecated_on
        when = f" since {since.isoformat()}" if since else ""
        raise JobSpecError(
            "model_retired",
            f"{model} is retired: Google answers it with {entry.routed_to}{when} and bills "
            f"that model's price. Send model {entry.replacement or entry.routed_to} instead.",
        )
    if status is ModelStatus.SHUT_DOWN:
        when = f" on {entry.shut_down_on.isoformat()}" if entry.shut_down_on else ""
        raise JobSpecError(
            "model_retired",
            f"{model} was shut down by Google{when}. Send model "
            f"{entry.replacement or catalogue.defaults['model']} instead.",
        )
    if status is ModelStatus.CLOSED:
        raise JobSpecError(
            "model_retired",
            f"{model} is closed to new projects (Google answers 404). Send model "
            f"{entry.replacement or catalogue.defaults['model']} instead.",
        )
    # Google's deprecations page gives a shutdown date to models it still calls stable:
    # either way the user's code must move before that day.
    if status is ModelStatus.DEPRECATED or entry.shutdown_date is not None:
        when = f" on {entry.shutdown_date.isoformat()}" if entry.shutdown_date else " soon"
        instead = f"; move to {entry.replacement}" if entry.replacement else ""
        warnings.append(
            JobWarning("model_deprecated", f"{model} is deprecated and shuts down{when}{instead}.")
        )
    del key  # a versioned id (gemini-3.6-flash-001) is kept as sent: Google pins it
    return ModelChoice(model, entry, warnings)


def check_options(
    task: TaskKind, options: JobOptions, choice: ModelChoice, *, images: int
) -> list[JobWarning]:
    """Refuse options the model does not take (JobSpecError, code ``invalid_options`` or
    ``task_not_supported``); warn about options it ignores."""
    entry = choice.entry
    if entry is None:
        return []
    model = choice.model
    if task not in entry.tasks:
        raise JobSpecError(
            "task_not_supported",
            f"{model} does not serve task {task}. Send no model (the default for {task}) or "
            "one whose `visionq models` row lists it.",
        )
    _check_thinking(options, model, entry)
    limit = entry.output_token_limit
    cap = options.max_output_tokens
    if cap is not None and limit is not None and cap > limit:
        raise JobSpecError(
            "invalid_options",
            f"{model} answers with at most {limit} output tokens; send "
            f"options.max_output_tokens of at most {limit}.",
        )
    per_image = options.image_media_resolution
    if per_image and any(per_image) and not entry.per_part_media_resolution:
        raise JobSpecError(
            "invalid_options",
            f"{model} takes no per-image media resolution; send "
            "options.media_resolution (for all images) instead.",
        )
    warnings = []
    ignored = sorted(
        name for name in entry.sampling_ignored if getattr(options, name, None) is not None
    )
    if ignored:
        warnings.append(
            JobWarning(
                "option_ignored",
                f"{model} ignores {', '.join(ignored)} (deprecated by Google); it is not sent.",
            )
        )
    refused = sorted(
        name for name in entry.sampling_refused if getattr(options, name, None) is not None
    )
    if refused:
        raise JobSpecError(
            "invalid_options", f"{model} refuses {', '.join(refused)}; leave it unset."
        )
    del images  # per-image counts are checked by vision.tasks.validate_job
    return warnings


def _check_thinking(options: JobOptions, model: str, entry: ModelEntry) -> None:
    level, budget = options.thinking_level, options.thinking_budget
    thinking = entry.thinking
    if level is not None and budget is not None:
        raise JobSpecError(
            "invalid_options",
            "Give thinking_level or thinking_budget, not both (Google refuses the pair).",
        )
    if level is not None:
        if thinking is None or not thinking.levels:
            raise JobSpecError(
                "invalid_options",
                f"{model} takes no thinking_level; "
                + (
                    f"send thinking_budget ({thinking.budget.describe()}) instead."
                    if thinking is not None and thinking.budget is not None
                    else "leave it unset."
                ),
            )
        if level not in thinking.levels:
            raise JobSpecError(
                "invalid_options",
                f"{model} does not take thinking_level {level}; send one of "
                f"{', '.join(thinking.levels)} ({thinking.floor} is its lowest).",
            )
    if budget is not None:
        rule = thinking.budget if thinking is not None else None
        if rule is None:
            raise JobSpecError(
                "invalid_options", f"{model} takes no thinking_budget; leave it unset."
            )
        if not rule.allows(budget):
            only_thinks = budget == 0 and not rule.off
            why = " (it only works in thinking mode)" if only_thinks else ""
            lowest = f"thinking_level {thinking.floor} or " if thinking and thinking.floor else ""
            raise JobSpecError(
                "invalid_options",
                f"{model} does not take thinking_budget {budget}{why}; send {lowest}a budget "
                f"of {rule.describe()}.",
            )
