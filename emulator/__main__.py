"""``python -m emulator``: run the Gemini API emulator."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from emulator.catalog_load import load_models_file
from emulator.config import (
    DEFAULT_FILE_MAX_BYTES,
    DEFAULT_FILE_PROCESSING_S,
    DEFAULT_FILE_TTL_S,
    DEFAULT_INLINE_LIMIT_BYTES,
    EmulatorConfig,
)
from emulator.faults import (
    ALWAYS_FAIL_STATUSES,
    BLOCKED_FINISH_REASONS,
    DEFAULT_HANG_S,
    DEFAULT_QUOTA_WINDOW_S,
    DEFAULT_RETRY_DELAY_S,
    DEFAULT_SPEND_WINDOW_S,
    EMPTY_ANSWERS,
    MASK_FORMATS,
    PROMPT_BLOCK_REASONS,
    QUOTA_SHAPES,
    QUOTA_TIERS,
    fault_field_names,
)
from emulator.server import run


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument(
        "--api-key",
        action="append",
        default=[],
        dest="api_keys",
        help="accepted key (repeatable); none given = any non-empty key",
    )
    parser.add_argument("--inline-limit-bytes", type=int, default=DEFAULT_INLINE_LIMIT_BYTES)
    parser.add_argument(
        "--file-processing-s",
        type=float,
        default=DEFAULT_FILE_PROCESSING_S,
        help="seconds an uploaded file stays PROCESSING (0 = ACTIVE at once)",
    )
    parser.add_argument(
        "--file-ttl-s",
        type=float,
        default=DEFAULT_FILE_TTL_S,
        help="seconds until an uploaded file expires (default 48 h)",
    )
    parser.add_argument(
        "--file-max-bytes",
        type=int,
        default=DEFAULT_FILE_MAX_BYTES,
        help="largest file the File API accepts (default 2 GiB)",
    )
    parser.add_argument(
        "--invalid-json-every",
        type=int,
        default=0,
        help="every Nth structured answer violates its schema (0 = never)",
    )
    parser.add_argument(
        "--models-file",
        metavar="FILE",
        default=None,
        help="JSON override of the built-in model catalogue (emulator/data/models.json): "
        "its models entries are merged per id (billing, thinking, status...)",
    )
    parser.add_argument(
        "--existing-project",
        action="store_true",
        help="play a project that used closed models before (they answer instead of 404)",
    )
    parser.add_argument(
        "--fetch-allow-host",
        action="append",
        default=[],
        dest="fetch_allowed_hosts",
        metavar="HOST[:PORT]",
        help="host whose http(s) URLs fileData parts may name (repeatable)",
    )
    parser.add_argument(
        "--flat-image-tokens",
        metavar="N",
        type=int,
        default=None,
        help="bill every image a flat N tokens for all models (calibration tests)",
    )
    _add_fault_flags(parser)
    return parser.parse_args(argv)


def _add_fault_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "faults and quotas (generateContent only; changeable at runtime via /_emulator/faults)"
    )
    for status in (503, 500, 429):
        group.add_argument(
            f"--fail-{status}-rate",
            type=float,
            default=0.0,
            metavar="P",
            help=f"probability (0..1) that a call answers {status}",
        )
    group.add_argument(
        "--retry-delay-s",
        type=float,
        default=DEFAULT_RETRY_DELAY_S,
        help="RetryInfo delay of a random 429 (default %(default)s)",
    )
    group.add_argument(
        "--daily-quota-exhausted",
        action="store_true",
        help="every call answers the per-day quota 429",
    )
    group.add_argument(
        "--hang-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="probability (0..1) that a call hangs for --hang-s before answering",
    )
    group.add_argument("--hang-s", type=float, default=DEFAULT_HANG_S, help="length of a hang")
    group.add_argument(
        "--always-fail",
        type=int,
        default=None,
        metavar="STATUS",
        help=f"every call fails with this status ({', '.join(map(str, ALWAYS_FAIL_STATUSES))})",
    )
    group.add_argument("--fault-seed", type=int, default=None, help="seed of the fault draws")
    group.add_argument("--rpm", type=int, default=None, help="requests per window per model")
    group.add_argument("--tpm", type=int, default=None, help="prompt tokens per window per model")
    group.add_argument(
        "--quota-window-s",
        type=float,
        default=DEFAULT_QUOTA_WINDOW_S,
        help="length of the sliding quota window (default %(default)s)",
    )
    _add_outcome_flags(parser)


def _add_outcome_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "429 bodies, answers and service tiers (changeable at runtime via /_emulator/faults)"
    )
    group.add_argument("--quota-shape", choices=QUOTA_SHAPES, default="standard")
    group.add_argument("--quota-tier", choices=QUOTA_TIERS, default="paid")
    group.add_argument("--spend-tier", type=int, choices=(1, 2, 3), default=1)
    group.add_argument("--prompt-block-reason", choices=PROMPT_BLOCK_REASONS, default=None)
    group.add_argument("--blocked-finish-reason", choices=BLOCKED_FINISH_REASONS, default=None)
    group.add_argument("--empty-answer", choices=EMPTY_ANSWERS, default=None)
    group.add_argument(
        "--outcome-every", type=int, default=1, help="forced outcome on every Nth answer"
    )
    group.add_argument(
        "--thoughts-tokens", type=int, default=None, help="thoughts of every thinking call"
    )
    group.add_argument("--mask-format", choices=MASK_FORMATS, default=None)
    group.add_argument(
        "--priority-downgrade",
        action="store_true",
        help="serviceTier priority is served (and reported) as standard",
    )
    group.add_argument(
        "--spend-limit-usd",
        type=float,
        default=None,
        help="refuse calls (spend-limit 429) once the window's calls cost this much",
    )
    group.add_argument(
        "--spend-window-s",
        type=float,
        default=DEFAULT_SPEND_WINDOW_S,
        help="length of the rolling spend window (default %(default)s)",
    )
    group.add_argument(
        "--flex-shed-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="probability (0..1) that a serviceTier flex call is shed with 503",
    )


def build_config(argv: Sequence[str] | None = None) -> tuple[EmulatorConfig, argparse.Namespace]:
    """Flags -> a validated config; a bad rules file or setting exits 2 with a message."""
    args = parse_args(argv)
    try:
        catalogue = load_models_file(args.models_file) if args.models_file is not None else None
        config = EmulatorConfig(
            api_keys=tuple(args.api_keys),
            latency_ms=args.latency_ms,
            inline_limit_bytes=args.inline_limit_bytes,
            file_processing_s=args.file_processing_s,
            file_ttl_s=args.file_ttl_s,
            file_max_bytes=args.file_max_bytes,
            invalid_json_every=args.invalid_json_every,
            model_catalogue=catalogue,
            existing_project=args.existing_project,
            fetch_allowed_hosts=tuple(args.fetch_allowed_hosts),
            flat_image_tokens=args.flat_image_tokens,
            **{name: getattr(args, name) for name in fault_field_names()},
        )
    except ValueError as exc:
        print(f"python -m emulator: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    return config, args


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags and serve."""
    config, args = build_config(argv)
    run(config, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
