"""`python -m bench.perf SUBCOMMAND`: throughput, pipeline, submit, soak, models, batch, savings,
all."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from bench.perf import batch, models, pipeline, savings, soak, submit, summary, throughput
from bench.perf.procstats import wait_until_quiet

COMMANDS = {
    "throughput": (throughput, "end-to-end jobs/s against the raw SDK ceiling, CPU per job"),
    "pipeline": (pipeline, "visionq's own CPU per job in process, against the same SDK calls"),
    "submit": (submit, "POST /v1/jobs latency at a fixed offered rate; --find-max"),
    "soak": (soak, "worker RSS over a long run"),
    "models": (models, "throughput per worker execution model, concurrency and latency"),
    "batch": (batch, "visionq batch run of 10,000 images: items/s, API CPU per item, RSS, export"),
    "savings": (savings, "cost of 1,000 images sent naively against visionq's auto tier"),
    "all": (summary, "every measurement, then summary.json and summary.md"),
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench/results"),
        help="where JSON, markdown and PNGs go (default bench/results)",
    )
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="do not wait for running pytest processes to end first",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (module, text) in COMMANDS.items():
        module.add_arguments(commands.add_parser(name, help=text, description=text))
    return parser.parse_args(argv)


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM as Ctrl-C, so every `finally` runs: processes stopped, temp dirs removed."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _interrupt)
    if not args.no_wait:
        wait_until_quiet()
    module, _ = COMMANDS[args.command]
    try:
        module.run(args, args.out)
    except KeyboardInterrupt:
        print("interrupted: every process of the stack was stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
