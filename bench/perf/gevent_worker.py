"""`visionq worker` behind gevent's monkey-patching: `python -m bench.perf.gevent_worker
worker --pool gevent ...`.

`visionq worker --pool gevent` as shipped does not patch: it calls
``celery_app.worker_main``, which (unlike the `celery` console script, whose ``main`` calls
``celery.maybe_patch_concurrency``) never monkey-patches, so the SDK's blocking sockets
would stall gevent's one hub thread. Patching must happen before anything imports
``socket``, ``ssl`` or ``threading``: first thing in the process, as done here.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402 - after the patching, on purpose

from cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.argv = ["visionq", *sys.argv[1:]]
    main()
