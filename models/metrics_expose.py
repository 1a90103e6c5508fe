"""Exposing the metrics: multiprocess set-up, per-scrape registries, the worker's port.

prometheus-client picks how it stores values when it is first imported: in memory, or in
per-process mmap files under ``PROMETHEUS_MULTIPROC_DIR`` that a scrape sums. The API runs
several uvicorn processes and a worker may run prefork children, so `visionq api` and
`visionq worker` call :func:`prepare_multiprocess` before anything imports
prometheus_client; this module therefore imports it only inside its functions.
"""

from __future__ import annotations

import atexit
import errno
import hmac
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format generate_latest writes; said explicitly (prometheus-client 0.26
# calls it version 1.0.0 by default), which every Prometheus 2.x and 3.x reads.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricsPortInUse(Exception):
    """The worker's metrics port is taken (another worker on this host has it)."""


def multiprocess_dir() -> Path | None:
    """The directory this process's metrics live in (None: in memory, one process)."""
    raw = os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower())
    return Path(raw) if raw else None


def prepare_multiprocess(role: Literal["api", "worker"]) -> Path:
    """Make this process and its children (uvicorn's workers, Celery's prefork pool) share
    metrics through files; call it before anything imports prometheus_client.

    The files go to a new folder of this process only, ``<role>-<host>-<pid>``: under
    ``PROMETHEUS_MULTIPROC_DIR`` when the operator set it (so the API and the workers of a
    host may share one directory: none wipes or serves another's live files), else a new
    temporary directory. It is removed when this process exits; folders left by processes
    of this host that died without cleaning up (SIGKILL) are swept first. Raises
    RuntimeError when prometheus_client was imported too early, which would silently keep
    each process's metrics to itself. Called again in the same process: the same folder.
    """
    global _prepared  # noqa: PLW0603 - one folder per process, as prometheus-client's mode
    _check_not_imported_in_memory()
    if _prepared is not None and _prepared.is_dir():
        return _prepared
    host, owner = _host(), os.getpid()
    given = multiprocess_dir()
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        _sweep(given, _OPERATOR_FOLDER, host)
        made = given / f"{role}-{host}-{owner}"
        shutil.rmtree(made, ignore_errors=True)  # a pid reused from an earlier boot
        made.mkdir()
    else:
        temporary = Path(tempfile.gettempdir())
        _sweep(temporary, _TEMPORARY_FOLDER, host)
        made = Path(tempfile.mkdtemp(prefix=f"visionq-metrics-{role}-{host}-{owner}-"))
    os.environ[MULTIPROC_ENV] = str(made)
    _prepared = made

    def _remove() -> None:
        # Forked children (prefork) inherit atexit handlers: only the creator removes it.
        if os.getpid() == owner:
            shutil.rmtree(made, ignore_errors=True)

    atexit.register(_remove)
    return made


# The folder prepare_multiprocess made for this process (None: not called).
_prepared: Path | None = None
# Folders prepare_multiprocess makes: under the operator's directory, and temporary ones.
_OPERATOR_FOLDER = re.compile(r"^(?:api|worker)-(?P<host>.+)-(?P<pid>\d+)$")
_TEMPORARY_FOLDER = re.compile(r"^visionq-metrics-(?:api|worker)-(?P<host>.+)-(?P<pid>\d+)-[^-]+$")


def _host() -> str:
    """This host's name as a folder name part (a container's id under Docker: containers
    sharing a volume never take each other's folders, whatever their pids)."""
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _sweep(parent: Path, pattern: re.Pattern[str], host: str) -> None:
    """Remove the metrics folders under ``parent`` of this host's processes that are gone
    (a pid of another host says nothing here: those are left alone)."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        found = pattern.match(entry.name)
        if found is None or found["host"] != host or not entry.is_dir():
            continue
        if not _alive(int(found["pid"])):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): alive
        return True
    return True


def _check_not_imported_in_memory() -> None:
    values = sys.modules.get("prometheus_client.values")
    if values is None:
        return
    value_class = getattr(values, "ValueClass", None)
    if getattr(value_class, "__name__", "") == "MutexValue":
        raise RuntimeError(
            "prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set, so this "
            "process would keep its metrics in memory and a scrape would see one process "
            "only: import visionq.models.metrics (or anything using it) inside the command, "
            "after prepare_multiprocess(), not at the top of cli/main.py"
        )


class _DefaultCollectors:
    """The in-memory registry's metrics, for one process without a metrics directory."""

    def collect(self) -> Iterator[Metric]:
        from prometheus_client import REGISTRY  # noqa: PLC0415 - import order, see above

        yield from REGISTRY.collect()


def scrape_registry(*extra: Collector) -> CollectorRegistry:
    """A registry for one scrape: every process's metrics (summed from the metrics
    directory, or this process's in memory) plus ``extra`` collectors (the API's cluster
    gauges), which run in the scraping process."""
    from prometheus_client import CollectorRegistry, multiprocess  # noqa: PLC0415 - see above

    registry = CollectorRegistry(auto_describe=False)
    folder = multiprocess_dir()
    if folder is not None:
        summed = multiprocess.MultiProcessCollector  # untyped in prometheus-client 0.26
        summed(registry, path=str(folder))  # type: ignore[no-untyped-call]
    else:
        registry.register(_DefaultCollectors())
    for collector in extra:
        registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry in Prometheus' text format: (body, content type)."""
    from prometheus_client import generate_latest  # noqa: PLC0415 - import order, see above

    return generate_latest(registry), TEXT_CONTENT_TYPE


def serve_worker_metrics(host: str, port: int, token: str | None = None) -> None:
    """Serve this worker's metrics (all its processes) on ``host:port`` from a daemon
    thread; port 0 turns it off. With ``token`` (VISIONQ_METRICS_TOKEN) a scrape must send
    ``Authorization: Bearer <token>``, as the API's /metrics wants. Raises
    MetricsPortInUse when the port is taken."""
    if port == 0:
        return
    from wsgiref.simple_server import WSGIRequestHandler, make_server  # noqa: PLC0415

    from prometheus_client.exposition import (  # noqa: PLC0415 - import order, see above
        ThreadingWSGIServer,
        make_wsgi_app,
    )

    class Server(ThreadingWSGIServer):
        # IPv4 or IPv6, as the host names it (ThreadingWSGIServer is IPv4 only).
        address_family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """No access log line per scrape."""

    app = _bearer_only(make_wsgi_app(scrape_registry()), token)
    try:
        server = make_server(host, port, app, Server, handler_class=Quiet)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise MetricsPortInUse(
            f"port {port} is in use: give each worker on this host its own --metrics-port "
            "(VISIONQ_WORKER_METRICS_PORT), or 0 to turn its metrics off"
        ) from exc
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()


def _bearer_only(app: WSGIApplication, token: str | None) -> WSGIApplication:
    """``app`` behind ``Authorization: Bearer <token>`` (None: open)."""
    if token is None:
        return app
    expected = token.encode()

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        scheme, _, given = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
            return app(environ, start_response)
        body = (
            b"this metrics port needs 'Authorization: Bearer <VISIONQ_METRICS_TOKEN>' "
            b"(Prometheus: authorization.credentials_file in its scrape config)\n"
        )
        start_response("401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"),
                                             ("WWW-Authenticate", "Bearer")])  # fmt: skip
        return [body]

    return guarded


def process_dead(pid: int) -> None:
    """A pool process ended: drop its live-gauge files (counters and histograms keep
    counting in the sums)."""
    if multiprocess_dir() is None:
        return
    from prometheus_client import multiprocess  # noqa: PLC0415 - import order, see above

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
