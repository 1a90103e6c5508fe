"""Submit-time checks of a job's model and options against the catalogue (vision.model_fit)."""

from typing import Any

import pytest

from visionq.vision.catalogue import Catalogue, load_catalogue
from visionq.vision.model_fit import JobWarning, ModelChoice, check_options, choose_model
from visionq.vision.tasks import JobOptions, JobSpecError, TaskKind

CATALOGUE = load_catalogue()


def refusal(
    model: str | None,
    task: TaskKind = TaskKind.CAPTION,
    catalogue: Catalogue = CATALOGUE,
    **options: Any,
) -> JobSpecError:
    """The JobSpecError choosing ``model`` and checking ``options`` raises."""
    with pytest.raises(JobSpecError) as caught:
        fit(model, task, catalogue, **options)
    return caught.value


def fit(
    model: str | None,
    task: TaskKind = TaskKind.CAPTION,
    catalogue: Catalogue = CATALOGUE,
    **options: Any,
) -> list[JobWarning]:
    """The warnings of a job that fits."""
    choice = choose_model(catalogue, model, task)
    return [
        *choice.warnings,
        *check_options(task, JobOptions.model_validate(options), choice, images=1),
    ]


@pytest.mark.parametrize(
    ("model", "replacement", "why"),
    [
        (
            "gemini-2.5-flash",
            "gemini-3.5-flash-lite",
            "Google answers it with gemini-3.5-flash-lite",
        ),
        ("gemini-3.5-flash", "gemini-3.6-flash", "Google answers it with gemini-3.6-flash"),
        ("gemini-3.7-flash", "gemini-3.8-flash", "Google answers it with gemini-3.8-flash"),
        ("gemini-2.5-pro", "gemini-3.8-flash", "Google answers it with gemini-3.8-flash"),
        ("gemini-2.0-flash", "gemini-3.5-flash-lite", "was shut down by Google"),
        ("gemini-2.0-flash-lite", "gemini-3.5-flash-lite", "was shut down by Google"),
        ("gemini-1.5-pro", "gemini-3.5-flash-lite", "was shut down by Google"),
        ("gemini-3-pro-preview", "gemini-3.1-pro-preview", "was shut down by Google"),
        ("gemini-2.5-flash-lite", "gemini-3.5-flash-lite", "closed to new projects"),
    ],
)
def test_retired_models_are_refused_naming_the_replacement(
    model: str, replacement: str, why: str
) -> None:
    error = refusal(model)
    assert error.code == "model_retired"
    assert error.message.startswith(model)
    assert why in error.message
    assert f"Send model {replacement} instead." in error.message


def test_routed_message_gives_the_date_and_the_price() -> None:
    message = refusal("gemini-2.5-flash").message
    assert "since 2026-12-01" in message
    assert "bills that model's price" in message


@pytest.mark.parametrize(
    ("model", "suggested"),
    [
        ("gemini-3.8-flsh", "gemini-3.8-flash"),
        ("gemini-3.6-flahs", "gemini-3.6-flash"),
        ("gemini-flash-lates", "gemini-flash-latest"),
    ],
)
def test_unknown_model_lists_close_matches(model: str, suggested: str) -> None:
    error = refusal(model)
    assert error.code == "unknown_model"
    assert f"Unknown model {model!r}. Did you mean {suggested}" in error.message
    assert "`visionq models` (or GET /v1/models)" in error.message


def test_unknown_model_without_close_matches() -> None:
    error = refusal("gpt-4o")
    assert error.code == "unknown_model"
    assert "Did you mean" not in error.message


def test_unknown_model_allowed_by_the_operator() -> None:
    choice = choose_model(CATALOGUE, "gemini-9-ultra", TaskKind.CAPTION, allow_unknown=True)
    assert choice.model == "gemini-9-ultra"
    assert choice.entry is None
    assert [warning.code for warning in choice.warnings] == ["model_unknown"]
    assert "VISIONQ_ALLOW_UNKNOWN_MODELS" in choice.warnings[0].message
    # No checks of its options: nothing is known about it.
    options = JobOptions(thinking_budget=0, thinking_level="MINIMAL", temperature=0.2)
    assert check_options(TaskKind.SEGMENT, options, choice, images=1) == []
    # Retired ids stay refused when unknown ones are allowed.
    with pytest.raises(JobSpecError, match=r"Send model gemini-3\.6-flash instead"):
        choose_model(CATALOGUE, "gemini-3.5-flash", TaskKind.CAPTION, allow_unknown=True)


def test_a_deprecated_model_runs_with_a_warning() -> None:
    catalogue = load_catalogue({"models": {"gemini-3.1-flash-lite": {"status": "deprecated"}}})
    warnings = fit("gemini-3.1-flash-lite", catalogue=catalogue)
    assert [warning.code for warning in warnings] == ["model_deprecated"]
    assert warnings[0].message == (
        "gemini-3.1-flash-lite is deprecated and shuts down on 2027-05-07; move to "
        "gemini-3.5-flash-lite."
    )
    assert warnings[0].as_dict() == {"code": "model_deprecated", "message": warnings[0].message}
    # Stable in the packaged catalogue, but its shutdown date is announced: warned too.
    assert [warning.code for warning in fit("gemini-3.1-flash-lite")] == ["model_deprecated"]
    # A stable model without a shutdown date: no warning.
    assert fit("gemini-3.5-flash-lite") == []


def test_an_alias_is_pinned_with_a_warning() -> None:
    choice = choose_model(CATALOGUE, "gemini-flash-latest", TaskKind.DETECT)
    assert choice.model == "gemini-3.8-flash"
    assert choice.entry is CATALOGUE.models["gemini-3.8-flash"]
    assert [warning.code for warning in choice.warnings] == ["model_alias"]
    assert "pinned to gemini-3.8-flash (catalogue of 2026-12-04)" in choice.warnings[0].message


def test_default_model_per_task() -> None:
    assert choose_model(CATALOGUE, None, TaskKind.CAPTION) == ModelChoice(
        "gemini-3.5-flash-lite", CATALOGUE.models["gemini-3.5-flash-lite"], []
    )
    assert choose_model(CATALOGUE, "", TaskKind.DETECT).model == "gemini-3.5-flash-lite"
    assert choose_model(CATALOGUE, None, TaskKind.SEGMENT).model == "gemini-3.6-flash"
    # The operator's default wins where it serves the task (gemini-3.8-flash segments)...
    configured = "gemini-3.8-flash"
    caption = choose_model(CATALOGUE, None, TaskKind.CAPTION, configured_default=configured)
    assert caption.model == "gemini-3.8-flash"
    segment = choose_model(CATALOGUE, None, TaskKind.SEGMENT, configured_default=configured)
    assert segment.model == "gemini-3.8-flash"
    # ... and the catalogue's default for the task where it does not.
    lite = "gemini-3.1-flash-lite"
    segment = choose_model(CATALOGUE, None, TaskKind.SEGMENT, configured_default=lite)
    assert segment.model == "gemini-3.6-flash"
    # A job naming a model is not changed by the default.
    named = choose_model(CATALOGUE, "gemini-3.6-flash", TaskKind.ASK, configured_default=configured)
    assert named.model == "gemini-3.6-flash"


def test_a_versioned_id_is_kept_as_sent() -> None:
    choice = choose_model(CATALOGUE, "gemini-3.6-flash-001", TaskKind.CAPTION)
    assert choice.model == "gemini-3.6-flash-001"
    assert choice.entry is CATALOGUE.models["gemini-3.6-flash"]
    assert choice.warnings == []


@pytest.mark.parametrize(
    ("model", "instead"),
    [
        ("gemini-3.8-flash", "send thinking_level LOW or a budget of 1 to 24576"),
        ("gemini-3.5-flash-lite", "send thinking_level MINIMAL or a budget of 512 to 24576"),
    ],
)
def test_budget_zero_on_a_model_that_only_thinks(model: str, instead: str) -> None:
    error = refusal(model, TaskKind.DETECT, thinking_budget=0)
    assert error.code == "invalid_options"
    assert "does not take thinking_budget 0 (it only works in thinking mode)" in error.message
    assert instead in error.message


@pytest.mark.parametrize(
    ("model", "budget"),
    [("gemini-3.8-flash", 24577), ("gemini-3.5-flash-lite", 511), ("gemini-3.5-flash-lite", 24577)],
)
def test_budget_out_of_range(model: str, budget: int) -> None:
    error = refusal(model, thinking_budget=budget)
    assert error.code == "invalid_options"
    assert f"{model} does not take thinking_budget {budget}; send" in error.message
    assert "only works in thinking mode" not in error.message


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("gemini-3.8-flash", {"thinking_budget": 128}),
        ("gemini-3.8-flash", {"thinking_budget": -1}),
        ("gemini-3.8-flash", {"thinking_level": "low"}),
        ("gemini-3.5-flash-lite", {"thinking_level": "MINIMAL"}),
        ("gemini-3.5-flash-lite", {"thinking_budget": 24576}),
        ("gemini-3.6-flash", {"image_media_resolution": ["ULTRA_HIGH"]}),
    ],
)
def test_options_the_model_takes(model: str, options: dict[str, Any]) -> None:
    assert fit(model, **options) == []


def test_a_level_below_the_floor_names_the_lowest() -> None:
    error = refusal("gemini-3.8-flash", thinking_level="MINIMAL")
    assert error.code == "invalid_options"
    assert error.message == (
        "gemini-3.8-flash does not take thinking_level MINIMAL; send one of LOW, MEDIUM, "
        "HIGH (LOW is its lowest)."
    )


def test_level_and_budget_together() -> None:
    error = refusal("gemini-3.6-flash", thinking_level="LOW", thinking_budget=1024)
    assert error.code == "invalid_options"
    assert "Give thinking_level or thinking_budget, not both" in error.message


def test_a_level_on_a_budget_only_model_and_a_budget_on_a_model_without_thinking() -> None:
    catalogue = load_catalogue(
        {
            "models": {
                "gemini-3.6-flash": {"thinking": {"budget": {"min": 1, "max": 24576, "off": True}}},
                "gemini-3.1-flash-lite": {"thinking": None},
            }
        }
    )
    error = refusal("gemini-3.6-flash", catalogue=catalogue, thinking_level="LOW")
    assert error.code == "invalid_options"
    assert "takes no thinking_level; send thinking_budget (1 to 24576, or 0 (off)" in error.message
    assert fit("gemini-3.6-flash", catalogue=catalogue, thinking_budget=0) == []
    error = refusal("gemini-3.1-flash-lite", catalogue=catalogue, thinking_budget=512)
    assert error.message == "gemini-3.1-flash-lite takes no thinking_budget; leave it unset."
    error = refusal("gemini-3.1-flash-lite", catalogue=catalogue, thinking_level="LOW")
    assert "takes no thinking_level; leave it unset." in error.message


def test_per_image_media_resolution_needs_per_part_support() -> None:
    catalogue = load_catalogue(
        {"models": {"gemini-3.6-flash": {"per_part_media_resolution": False}}}
    )
    error = refusal("gemini-3.6-flash", catalogue=catalogue, image_media_resolution=["LOW"])
    assert error.code == "invalid_options"
    assert "takes no per-image media resolution" in error.message
    assert "send options.media_resolution (for all images) instead" in error.message
    # No level given for any image: nothing per part is sent.
    assert fit("gemini-3.6-flash", catalogue=catalogue, image_media_resolution=[None]) == []
    assert fit("gemini-3.6-flash", catalogue=catalogue, media_resolution="low") == []


def test_a_task_the_model_does_not_serve() -> None:
    error = refusal("gemini-3.5-flash-lite", TaskKind.SEGMENT)
    assert error.code == "task_not_supported"
    assert "gemini-3.5-flash-lite does not serve task segment" in error.message
    assert "Send no model (the default for segment)" in error.message
    assert fit(None, TaskKind.SEGMENT) == []


def test_ignored_and_refused_sampling_options() -> None:
    warnings = fit("gemini-3.6-flash", temperature=0.2)
    assert [warning.code for warning in warnings] == ["option_ignored"]
    assert "gemini-3.6-flash ignores temperature" in warnings[0].message
    assert fit("gemini-3.6-flash") == []
    assert fit("gemini-3.5-flash-lite", temperature=0.2) == []  # it takes one
    catalogue = load_catalogue(
        {
            "models": {
                "gemini-3.6-flash": {"sampling_ignored": [], "sampling_refused": ["temperature"]}
            }
        }
    )
    error = refusal("gemini-3.6-flash", catalogue=catalogue, temperature=0.2)
    assert error.code == "invalid_options"
    assert error.message == "gemini-3.6-flash refuses temperature; leave it unset."


def test_max_output_tokens_over_the_models_limit_is_refused() -> None:
    with pytest.raises(JobSpecError) as caught:
        fit("gemini-3.6-flash", max_output_tokens=65_537)
    assert caught.value.code == "invalid_options"
    assert "at most 65536" in caught.value.message
    # The bound is the catalogue's: a model added with a larger limit takes more.
    big = load_catalogue({"models": {"gemini-3.6-flash": {"output_token_limit": 131_072}}})
    assert fit("gemini-3.6-flash", catalogue=big, max_output_tokens=100_000) == []
