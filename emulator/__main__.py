"""``python -m emulator``: run the Gemini API emulator."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from emulator.config import DEFAULT_INLINE_LIMIT_BYTES, EmulatorConfig
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
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags and serve."""
    args = parse_args(argv)
    config = EmulatorConfig(
        api_keys=tuple(args.api_keys),
        latency_ms=args.latency_ms,
        inline_limit_bytes=args.inline_limit_bytes,
    )
    run(config, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
