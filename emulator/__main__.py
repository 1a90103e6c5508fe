"""``python -m visionq.emulator``: run the Gemini API emulator."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from visionq.emulator.config import EmulatorConfig
from visionq.emulator.options import add_arguments, config_from_options
from visionq.emulator.server import run


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line flags (declared once, in ``emulator.options``)."""
    parser = argparse.ArgumentParser(prog="python -m visionq.emulator", description=__doc__)
    add_arguments(parser)
    return parser.parse_args(argv)


def build_config(argv: Sequence[str] | None = None) -> tuple[EmulatorConfig, argparse.Namespace]:
    """Flags -> a validated config; a bad rules file or setting exits 2 with a message."""
    args = parse_args(argv)
    try:
        config = config_from_options(vars(args))
    except ValueError as exc:
        print(f"python -m visionq.emulator: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    return config, args


def main(argv: Sequence[str] | None = None) -> None:
    """Parse flags and serve."""
    config, args = build_config(argv)
    run(config, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
