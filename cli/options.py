"""Job options on the command line: ``--option k=v`` and named flags, for submit, batch run
and estimate."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from visionq.vision.tasks import MAX_DEADLINE_S, JobOptions
from visionq.vision.tiers import Tier

OptionArgs = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-o",
        metavar="KEY=VALUE",
        help="A job option (repeatable), e.g. -o temperature=0.2 -o media_resolution=LOW; "
        "VALUE is read as JSON when it parses, else as a string. Keys: "
        + ", ".join(JobOptions.model_fields)
        + ".",
        show_default=False,
    ),
]
MaxOutputTokens = Annotated[
    int | None,
    typer.Option(
        "--max-output-tokens",
        min=1,
        help="Cap on the answer's tokens (thinking included); bounds the cost held.",
        show_default=False,
    ),
]
Thinking = Annotated[
    str | None,
    typer.Option(
        "--thinking",
        metavar="LEVEL",
        help="Gemini 3 thinking level: MINIMAL, LOW, MEDIUM or HIGH.",
        show_default=False,
    ),
]
Prompt = Annotated[str | None, typer.Option(help="ask: the question; detect: what to find.")]
Labels = Annotated[str | None, typer.Option(help="classify: comma-separated labels.")]
Model = Annotated[str | None, typer.Option(help="Gemini model (server default if unset).")]
SchemaFile = Annotated[
    Path | None, typer.Option(help="custom: a JSON Schema file the answer must satisfy.")
]
MaxSide = Annotated[
    int | None, typer.Option(help="Downscale images to this longest side before sending.")
]
Economy = Annotated[
    bool, typer.Option(help="Downscale to the cheapest token tier the task tolerates.")
]
Cache = Annotated[bool, typer.Option(help="Reuse an identical earlier job's result (free).")]
TierOption = Annotated[
    Tier | None,
    typer.Option(
        "--tier",
        help="Gemini service tier: standard; flex (half price, minutes); priority (costs "
        "more); batch (half price, hours, a Gemini batch); auto (the cheapest tier whose "
        "measured turnaround meets the deadline). Default: the server's VISIONQ_TIER_DEFAULT.",
        show_default=False,
    ),
]
DeadlineOption = Annotated[
    str | None,
    typer.Option(
        "--deadline",
        metavar="DURATION",
        help="By when the job should end, from submission: seconds, or with a unit (90m, 2h, "
        "1d); at least 60 s. Default: the tier's (VISIONQ_TIER_DEADLINES_S).",
        show_default=False,
    ),
]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_deadline(text: str) -> int:
    """``--deadline`` in seconds: a number of seconds, or one with a unit s, m, h or d."""
    match = _DURATION.match(text)
    if match is None:
        raise typer.BadParameter(
            f"{text!r}: give seconds (7200) or a duration such as 90m, 2h or 1d",
            param_hint="--deadline",
        )
    seconds = round(float(match.group(1)) * _UNIT_S[match.group(2).lower()])
    if not 60 <= seconds <= MAX_DEADLINE_S:
        raise typer.BadParameter(
            f"{text!r} is {seconds} s; a deadline is from 60 s to {MAX_DEADLINE_S // 86_400} days",
            param_hint="--deadline",
        )
    return seconds


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` as (key, value): the value as JSON when it parses, else the string.

    Raises typer.BadParameter for a missing ``=`` or a key the API does not take.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise typer.BadParameter(f"{text!r}: write an option as KEY=VALUE", param_hint="--option")
    if key not in JobOptions.model_fields:
        known = ", ".join(JobOptions.model_fields)
        raise typer.BadParameter(f"unknown option {key!r}; known: {known}", param_hint="--option")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key, value


def job_options(
    pairs: list[str] | None,
    *,
    max_output_tokens: int | None = None,
    thinking: str | None = None,
    max_side: int | None = None,
    cache: bool = True,
    economy: bool = False,
    tier: Tier | None = None,
    deadline: str | None = None,
) -> dict[str, Any]:
    """The ``options`` object of a job from ``--option`` pairs and the named flags.

    Only what differs from the API's defaults is sent. A named flag and an ``--option``
    that set one key to two values are refused (typer.BadParameter), not silently merged.
    """
    options: dict[str, Any] = {}
    for text in pairs or []:
        key, value = parse_option(text)
        if key in options and options[key] != value:
            raise typer.BadParameter(f"{key} given twice, as {options[key]!r} and {value!r}")
        options[key] = value
    flags: dict[str, Any] = {
        "max_output_tokens": max_output_tokens,
        "thinking_level": thinking.upper() if thinking else None,
        "max_side": max_side,
        "cache": None if cache else False,
        "economy": True if economy else None,
        "tier": tier.value if tier is not None else None,
        "deadline_s": parse_deadline(deadline) if deadline is not None else None,
    }
    for key, value in flags.items():
        if value is None:
            continue
        if key in options and options[key] != value:
            raise typer.BadParameter(
                f"{key} given twice, as --option {key}={json.dumps(options[key])} and by its "
                "own flag; give it once"
            )
        options[key] = value
    return options


WebhookUrlOption = Annotated[
    str | None,
    typer.Option(
        "--webhook-url",
        metavar="URL",
        help="Also POST the end event here, signed with your callbacks endpoint's secret "
        "(visionq webhooks callbacks --secret); checked like image URLs (no private hosts).",
        show_default=False,
    ),
]


def parse_priority(text: str) -> int:
    """``--priority``'s value: one digit 0-9, refused with the API's wording (typer's
    min/max would print pydantic's "Input should be less than or equal to 9")."""
    if re.fullmatch("[0-9]", text.strip(), flags=re.ASCII) is None:
        raise typer.BadParameter(
            f"{text[:20]!r} is not a priority; give an integer from 0 to 9 (9 starts first "
            "among your jobs)."
        )
    return int(text)


PriorityOption = Annotated[
    int | None,
    typer.Option(
        "--priority",
        metavar="0-9",
        parser=parse_priority,
        help="0-9: the order among your own waiting jobs, 9 first (the server's "
        "VISIONQ_DEFAULT_PRIORITY, 5, when not given). Not the service tier (--tier).",
        show_default=False,
    ),
]
BatchPriorityOption = Annotated[
    int | None,
    typer.Option(
        "--priority",
        metavar="0-9",
        parser=parse_priority,
        help="0-9: the order of the batch's jobs among your own waiting jobs, 9 first (the "
        "server's VISIONQ_DEFAULT_PRIORITY, 5, when not given). Part of the batch's defaults: "
        "give the same one to resume. Not the service tier (--tier).",
        show_default=False,
    ),
]
BatchWebhookUrlOption = Annotated[
    str | None,
    typer.Option(
        "--webhook-url",
        metavar="URL",
        help="Also POST batch.completed here when every item ended, signed with your callbacks "
        "endpoint's secret (visionq webhooks callbacks --secret); checked like image URLs. "
        "The batch is closed once every input is added (left open if one was rejected: "
        "visionq batch close sends it then).",
        show_default=False,
    ),
]
