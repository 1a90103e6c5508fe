"""A visionq worker on Celery's gevent pool, monkey-patched: `python -m bench.perf.gevent_worker
worker --pool gevent [--concurrency N] [--loglevel L]` (the words of `visionq worker`).

`visionq worker` refuses gevent: it calls ``celery_app.worker_main``, which (unlike the
`celery` console script, whose ``main`` calls ``celery.maybe_patch_concurrency``) never
monkey-patches, so the SDK's blocking sockets would stall gevent's one hub thread. Here the
process is patched first thing, before anything imports ``socket``, ``ssl`` or
``threading``, and the worker is started with `visionq worker`'s own options
(``cli.main.start_worker``), bypassing only its pool check. The database calls still block
the hub while they run: this is a benchmark of the model, not a supported way to run.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402 - after the patching, on purpose
from collections.abc import Sequence  # noqa: E402

from cli.main import start_worker  # noqa: E402


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.gevent_worker")
    parser.add_argument("command", nargs="?", choices=["worker"], default="worker")
    parser.add_argument("--pool", choices=["gevent"], default="gevent")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    start_worker(concurrency=args.concurrency, pool=args.pool, loglevel=args.loglevel)


if __name__ == "__main__":
    main()
