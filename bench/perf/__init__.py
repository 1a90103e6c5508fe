"""Performance harness: runs the real visionq stack on this machine and measures it.

`python -m bench.perf --help` lists the subcommands; bench/README.md explains each number.
"""
