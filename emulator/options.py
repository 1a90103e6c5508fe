"""The emulator's command-line options, declared once.

``python -m visionq.emulator`` (argparse, see ``__main__``) and ``visionq emulator`` (typer, see
``cli/main.py``) both build their flags from ``OPTIONS``; the defaults of the options that
are ``EmulatorConfig`` fields come from that dataclass, so the two command lines and the
config cannot drift apart. ``config_from_options`` turns parsed values into a config.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from visionq.emulator.catalog_load import load_models_file
from visionq.emulator.config import EmulatorConfig
from visionq.emulator.faults import (
    ALWAYS_FAIL_STATUSES,
    BATCH_LINE_STATUSES,
    BLOCKED_FINISH_REASONS,
    EMPTY_ANSWERS,
    MASK_FORMATS,
    PROMPT_BLOCK_REASONS,
    QUOTA_SHAPES,
    QUOTA_TIERS,
)

FAULTS_GROUP = (
    "faults and quotas (generateContent only; changeable at runtime via /_emulator/faults)"
)
BATCH_GROUP = "Batch API and service tiers (changeable at runtime via /_emulator/faults)"
OUTCOMES_GROUP = (
    "429 bodies, answers and service tiers (changeable at runtime via /_emulator/faults)"
)


@dataclass(frozen=True)
class Option:
    """One flag: ``dest`` is the parsed name (an ``EmulatorConfig`` field unless listed in
    ``_NOT_CONFIG``); ``kind`` is its value type; ``repeat`` makes it a repeatable list;
    a ``bool`` option is a switch that is off by default."""

    dest: str
    help: str
    kind: type = str
    flag: str = ""  # default: --dest-with-dashes
    repeat: bool = False
    choices: tuple[Any, ...] | None = None
    metavar: str | None = None
    group: str | None = None

    @property
    def name(self) -> str:
        """The command-line flag, e.g. ``--fail-503-rate``."""
        return self.flag or "--" + self.dest.replace("_", "-")

    @property
    def default(self) -> Any:
        """The default: from ``EmulatorConfig`` for its fields, else from ``_NOT_CONFIG``."""
        if self.dest in _NOT_CONFIG:
            return _NOT_CONFIG[self.dest]
        if self.repeat:  # a tuple field; argparse appends to the list
            return []
        return _CONFIG_FIELDS[self.dest].default


_BATCH_OPTIONS = (
    Option("flex_latency_ms", "extra latency of every flex call, ms", float, group=BATCH_GROUP),
    Option(
        "priority_downgrade_rate",
        "probability (0..1) that a priority call is served as standard",
        float,
        metavar="P",
        group=BATCH_GROUP,
    ),
    Option("batch_pending_s", "seconds a batch stays PENDING", float, group=BATCH_GROUP),
    Option(
        "batch_lines_per_s",
        "batch lines answered per second (0 = at once)",
        float,
        group=BATCH_GROUP,
    ),
    Option(
        "batch_stall",
        "batches stay PENDING forever (see --batch-stall-count)",
        bool,
        group=BATCH_GROUP,
    ),
    Option("batch_stall_count", "how many next batches stall (0 = all)", int, group=BATCH_GROUP),
    Option(
        "batch_expire_after_s",
        "batches stay PENDING and expire this many seconds after creation",
        float,
        group=BATCH_GROUP,
    ),
    Option("batch_expire_count", "how many next batches expire (0 = all)", int, group=BATCH_GROUP),
    Option(
        "batch_fail_line_rate",
        "probability (0..1) that a batch line answers an error",
        float,
        metavar="P",
        group=BATCH_GROUP,
    ),
    Option(
        "batch_fail_line_status",
        "status of a failed batch line",
        int,
        choices=BATCH_LINE_STATUSES,
        group=BATCH_GROUP,
    ),
    Option("batch_fail", "the next N batches end FAILED", int, metavar="N", group=BATCH_GROUP),
    Option(
        "batch_lose_create",
        "the next N batch creates make the batch but answer 503",
        int,
        metavar="N",
        group=BATCH_GROUP,
    ),
    Option(
        "batch_create_delay_s",
        "seconds before a batch create is answered (the batch runs meanwhile)",
        float,
        group=BATCH_GROUP,
    ),
)

# Options that are not config fields (where to listen, a file read into model_catalogue).
_NOT_CONFIG: dict[str, Any] = {"host": "127.0.0.1", "port": 8001, "models_file": None}
_CONFIG_FIELDS = {field.name: field for field in dataclasses.fields(EmulatorConfig)}


def _rate(status: int) -> Option:
    return Option(
        f"fail_{status}_rate",
        f"probability (0..1) that a call answers {status}",
        float,
        metavar="P",
        group=FAULTS_GROUP,
    )


OPTIONS: tuple[Option, ...] = (
    Option("host", "interface to listen on"),
    Option("port", "port to listen on (0 picks a free port)", int),
    Option("latency_ms", "added latency per model call, in ms", float),
    Option(
        "api_keys",
        "accepted key (repeatable); none given = any non-empty key",
        flag="--api-key",
        repeat=True,
    ),
    Option("inline_limit_bytes", "largest inline request generateContent accepts", int),
    Option(
        "file_processing_s", "seconds an uploaded file stays PROCESSING (0 = ACTIVE at once)", float
    ),
    Option("file_ttl_s", "seconds until an uploaded file expires (default 48 h)", float),
    Option("file_max_bytes", "largest file the File API accepts (default 2 GiB)", int),
    Option(
        "invalid_json_every", "every Nth structured answer violates its schema (0 = never)", int
    ),
    Option(
        "models_file",
        "JSON override of the built-in model catalogue (emulator/data/models.json): "
        "its models entries are merged per id (billing, thinking, status...)",
        metavar="FILE",
    ),
    Option(
        "existing_project",
        "play a project that used closed models before (they answer instead of 404)",
        bool,
    ),
    Option(
        "fetch_allowed_hosts",
        "host whose http(s) URLs fileData parts may name (repeatable)",
        flag="--fetch-allow-host",
        repeat=True,
        metavar="HOST[:PORT]",
    ),
    Option(
        "flat_image_tokens",
        "bill every image a flat N tokens for all models (calibration tests)",
        int,
        metavar="N",
    ),
    _rate(503),
    _rate(500),
    _rate(429),
    Option("retry_delay_s", "RetryInfo delay of a random 429, seconds", float, group=FAULTS_GROUP),
    Option(
        "daily_quota_exhausted",
        "every call answers the per-day quota 429",
        bool,
        group=FAULTS_GROUP,
    ),
    Option(
        "hang_rate",
        "probability (0..1) that a call hangs for --hang-s before answering",
        float,
        metavar="P",
        group=FAULTS_GROUP,
    ),
    Option("hang_s", "length of a hang, seconds", float, group=FAULTS_GROUP),
    Option(
        "always_fail",
        f"every call fails with this status ({', '.join(map(str, ALWAYS_FAIL_STATUSES))})",
        int,
        metavar="STATUS",
        group=FAULTS_GROUP,
    ),
    Option("fault_seed", "seed of the fault draws", int, group=FAULTS_GROUP),
    Option("rpm", "requests per window per model", int, group=FAULTS_GROUP),
    Option("tpm", "prompt tokens per window per model", int, group=FAULTS_GROUP),
    Option(
        "quota_window_s", "length of the sliding quota window, seconds", float, group=FAULTS_GROUP
    ),
    Option("quota_shape", "body of an injected 429", choices=QUOTA_SHAPES, group=OUTCOMES_GROUP),
    Option(
        "quota_tier",
        "quota ids of the paid or free tier",
        choices=QUOTA_TIERS,
        group=OUTCOMES_GROUP,
    ),
    Option(
        "spend_tier",
        "tier named by the spend-limit 429",
        int,
        choices=(1, 2, 3),
        group=OUTCOMES_GROUP,
    ),
    Option(
        "prompt_block_reason", "block prompts", choices=PROMPT_BLOCK_REASONS, group=OUTCOMES_GROUP
    ),
    Option(
        "blocked_finish_reason",
        "stop answers for this reason",
        choices=BLOCKED_FINISH_REASONS,
        group=OUTCOMES_GROUP,
    ),
    Option("empty_answer", "empty answers", choices=EMPTY_ANSWERS, group=OUTCOMES_GROUP),
    Option("outcome_every", "forced outcome on every Nth answer", int, group=OUTCOMES_GROUP),
    Option("thoughts_tokens", "thoughts of every thinking call", int, group=OUTCOMES_GROUP),
    Option("mask_format", "masks of every model", choices=MASK_FORMATS, group=OUTCOMES_GROUP),
    Option(
        "priority_downgrade",
        "serviceTier priority is served (and reported) as standard",
        bool,
        group=OUTCOMES_GROUP,
    ),
    Option(
        "spend_limit_usd",
        "refuse calls (spend-limit 429) once the window's calls cost this much",
        float,
        group=OUTCOMES_GROUP,
    ),
    Option(
        "spend_window_s", "length of the rolling spend window, seconds", float, group=OUTCOMES_GROUP
    ),
    Option(
        "flex_shed_rate",
        "probability (0..1) that a serviceTier flex call is shed with 503",
        float,
        metavar="P",
        group=OUTCOMES_GROUP,
    ),
    Option("batch_inline_limit_bytes", "largest batchGenerateContent body (default 20 MiB)", int),
    Option("batch_ttl_s", "seconds until an unfinished batch expires (default 48 h)", float),
    *_BATCH_OPTIONS,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare every option on an argparse parser (``python -m visionq.emulator``)."""
    groups: dict[str | None, Any] = {None: parser}
    for option in OPTIONS:
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        target = groups[option.group]
        if option.kind is bool:
            target.add_argument(
                option.name, dest=option.dest, action="store_true", help=option.help
            )
            continue
        target.add_argument(
            option.name,
            dest=option.dest,
            type=option.kind,
            default=option.default,
            action="append" if option.repeat else "store",
            choices=option.choices,
            metavar=option.metavar,
            help=option.help,
        )


def config_from_options(values: Mapping[str, Any]) -> EmulatorConfig:
    """Parsed option values (by ``dest``) -> a validated config; ``ValueError`` (or a
    catalogue error, also a ``ValueError``) names a bad value."""
    models_file = values["models_file"]
    fields: dict[str, Any] = {
        option.dest: values[option.dest] for option in OPTIONS if option.dest not in _NOT_CONFIG
    }
    for option in OPTIONS:
        if option.repeat:
            fields[option.dest] = tuple(values[option.dest] or ())
    catalogue = load_models_file(models_file) if models_file is not None else None
    return EmulatorConfig(model_catalogue=catalogue, **fields)
