"""A visionq worker on Celery's gevent pool, monkey-patched: `python -m bench.perf.gevent_worker
worker --pool gevent [--concurrency N] [--loglevel L]` (the words of `visionq worker`).

`visionq worker` refuses gevent: it calls ``celery_app.worker_main``, which (unlike the
`celery` console script, whose ``main`` calls ``celery.maybe_patch_concurrency``) never
monkey-patches, so the SDK's blocking sockets would stall gevent's one hub thread. Here the
process is patched first thing, before anything imports ``socket``, ``ssl`` or
``threading``, and the worker is started with `visionq worker`'s own options
(``cli.main.start_worker``), bypassing only its pool check. The database calls still block
the hub while they run: this is a benchmark of the model, not a supported way to run.

One setting differs: the prefetch multiplier is Celery's default, 4, not visionq's 1.
Celery 5.7 runs a green pool's consumer in its blocking loop (``synloop``), which, once
every slot holds a message (acks_late, multiplier 1), stops asking Redis for more and
sends the finished tasks' acknowledgements only when its next poll times out: each slot
then idled 1-2 s between jobs, whatever the latency (gevent ran 4 jobs/s at concurrency 8
where threads ran 21). celery/celery#10263 sends such acknowledgements at once (merged
after 5.7.0), but Redis's poller still waits out its timeout while no slot is free.
Reserving more messages than slots keeps the loop reading, and so turning, on each one.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402 - after the patching, on purpose
from collections.abc import Sequence  # noqa: E402

from visionq.cli.main import start_worker  # noqa: E402
from visionq.worker.celery_app import app  # noqa: E402

GREEN_PREFETCH_MULTIPLIER = 4


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.gevent_worker")
    parser.add_argument("command", nargs="?", choices=["worker"], default="worker")
    parser.add_argument("--pool", choices=["gevent"], default="gevent")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)
    app.conf.worker_prefetch_multiplier = GREEN_PREFETCH_MULTIPLIER
    start_worker(concurrency=args.concurrency, pool=args.pool, loglevel=args.loglevel)


if __name__ == "__main__":
    main()
