"""`python -m visionq.cli` is the same as the `visionq` command."""

from visionq.cli.main import main

main()
