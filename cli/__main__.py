"""`python -m cli` is the same as the `visionq` command."""

from cli.main import main

main()
