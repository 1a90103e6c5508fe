"""The `visionq` command: operator commands that compose the packages.

Heavy imports (celery, uvicorn, alembic) happen inside the commands that need them, so
`visionq --help` and the quick commands start fast.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Literal

import typer

from visionq.cli import batch as batch_commands
from visionq.cli import cost as cost_commands
from visionq.cli import files as files_commands
from visionq.cli import keys as keys_commands
from visionq.cli import user
from visionq.cli import webhooks as webhooks_commands
from visionq.cli.demo import demo
from visionq.cli.dev import dev
from visionq.cli.emulator_cmd import run_emulator
from visionq.cli.gc import gc
from visionq.cli.retry import retry
from visionq.models.settings import get_settings

app = typer.Typer(
    name="visionq",
    help="Run image-understanding jobs on Google's Gemini API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"visionq {version('visionq')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            typer.echo("visionq (not installed: pip install -e .)")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_print_version, help="Print the version."
    ),
) -> None:
    """Run image-understanding jobs on Google's Gemini API."""


db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_commands.app, name="keys")
app.add_typer(files_commands.app, name="files")
app.add_typer(cost_commands.cost_app, name="cost")
app.add_typer(cost_commands.budgets_app, name="budgets")
app.add_typer(batch_commands.app, name="batch")
app.add_typer(webhooks_commands.app, name="webhooks")
user.register(app)
app.command()(dev)
app.command()(demo)
app.command()(retry)
app.command()(gc)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Create or update the schema of VISIONQ_DATABASE_URL."""
    from visionq.models.migrate import current_revision, upgrade

    settings = get_settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"database at revision {current_revision(settings.database_url)}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    from visionq.models.migrate import current_revision

    typer.echo(current_revision(get_settings().database_url) or "not migrated")


@app.command("models")
def list_models(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    all_models: bool = typer.Option(
        False, "--all", help="Also list retired models (shut down, routed, closed)."
    ),
) -> None:
    """List the model catalogue: status, prices, thinking, tasks.

    VISIONQ_MODELS_FILE is applied; prices are today's.
    """
    from visionq.cli.models import show_models

    show_models(get_settings(), as_json=as_json, include_retired=all_models)


@app.command("config")
def show_config() -> None:
    """Print the effective settings (secrets hidden)."""
    import json

    typer.echo(json.dumps(get_settings().redacted(), indent=2))


@app.command("api")
def run_api(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Number of uvicorn worker processes."),
    fd: int | None = typer.Option(
        None,
        help="Serve on this inherited listening socket instead of --host/--port "
        "(systemd socket activation; `visionq dev` uses it).",
    ),
) -> None:
    """Serve the HTTP API (docs at /docs, metrics at /metrics).

    Slow clients are cut off (api/server.py).
    """
    # First: every uvicorn process must store its metrics where a scrape sums them.
    prepare_metrics("api")
    from visionq.api.server import run

    run(host=host, port=port, workers=workers, fd=fd)


class WorkerPool(StrEnum):
    """The Celery pools `visionq worker` runs."""

    THREADS = "threads"
    PREFORK = "prefork"
    SOLO = "solo"


def _parse_pool(value: str) -> WorkerPool:
    """--pool: a WorkerPool; gevent and eventlet are refused with the reason."""
    if value in ("gevent", "eventlet"):
        raise typer.BadParameter(
            f"{value} is not supported: this process is not monkey-patched, so the worker "
            "would hang, and SQLite's calls would block its hub anyway; use threads, the "
            "default, for Gemini calls that mostly wait."
        )
    try:
        return WorkerPool(value)
    except ValueError:
        choices = ", ".join(pool.value for pool in WorkerPool)
        raise typer.BadParameter(f"{value!r} is not one of {choices}.") from None


def _parse_queues(value: str) -> str:
    """Typer parser of --queues: known queue names, comma-separated, at least one."""
    from visionq.models.broker import JOBS_QUEUE, WEBHOOKS_QUEUE

    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in (JOBS_QUEUE, WEBHOOKS_QUEUE)]
    if unknown or not names:
        raise typer.BadParameter(
            f"{', '.join(unknown) or 'no queue'}: give {JOBS_QUEUE}, {WEBHOOKS_QUEUE} or both, "
            "comma-separated."
        )
    return ",".join(dict.fromkeys(names))


@app.command("worker")
def run_worker(
    concurrency: int = typer.Option(
        64, help="Jobs in flight per worker process (threads: each mostly waits on Gemini)."
    ),
    pool: WorkerPool = typer.Option(
        WorkerPool.THREADS,
        parser=_parse_pool,
        help="Celery pool: threads (suits Gemini calls, which mostly wait), prefork or solo; "
        "gevent and eventlet are refused (this command does not monkey-patch).",
    ),
    loglevel: str = typer.Option("INFO", help="Log level."),
    metrics_port: int | None = typer.Option(
        None,
        min=0,
        max=65535,
        help="Port serving this worker's metrics (Prometheus text format) "
        "[default: VISIONQ_WORKER_METRICS_PORT, 9101]; 0 turns it off. Each worker on a host "
        "needs its own. It listens on VISIONQ_WORKER_METRICS_HOST (127.0.0.1: this host "
        "only; 0.0.0.0 for a Prometheus elsewhere) and wants VISIONQ_METRICS_TOKEN if set.",
    ),
    queues: str = typer.Option(
        "visionq.jobs,visionq.webhooks",
        parser=_parse_queues,
        help="Queues this worker consumes, comma-separated: visionq.jobs, visionq.webhooks. "
        "Both share its --concurrency slots; so that webhook deliveries and jobs never wait "
        "for each other's slots, run one worker with --queues visionq.jobs and a small one "
        "(--concurrency 8) with --queues visionq.webhooks.",
    ),
) -> None:
    """Run a Celery worker: jobs, webhook deliveries, metrics."""
    start_worker(
        concurrency=concurrency, pool=pool.value, loglevel=loglevel, metrics_port=metrics_port,
        queues=queues,
    )  # fmt: skip


def prepare_metrics(role: Literal["api", "worker"]) -> None:
    """Share metrics across this process and its children (models/metrics_expose.py);
    before anything imports prometheus_client."""
    from visionq.models.metrics_expose import prepare_multiprocess

    prepare_multiprocess(role)


def serve_worker_metrics(host: str, port: int, token: str | None = None) -> None:
    """The worker's metrics port (0: none; ``token``: the bearer token a scrape must send);
    a taken port ends the command with the fix."""
    from visionq.models.metrics_expose import MetricsPortInUse
    from visionq.models.metrics_expose import serve_worker_metrics as serve

    try:
        serve(host, port, token)
    except MetricsPortInUse as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from exc


def start_worker(
    *,
    concurrency: int,
    pool: str,
    loglevel: str,
    metrics_port: int | None = None,
    queues: str | None = None,
) -> None:
    """Run Celery's worker in this process until it stops, as `visionq worker` does.

    ``pool`` is passed to Celery unchecked: `visionq worker` only lets a WorkerPool through;
    bench/perf/gevent_worker.py passes gevent after monkey-patching its process.
    ``metrics_port`` overrides VISIONQ_WORKER_METRICS_PORT; ``queues`` (comma-separated)
    defaults to both of visionq's queues.
    """
    # First: prefork children must store their metrics where the worker's port sums them.
    prepare_metrics("worker")
    from visionq.models.broker import JOBS_QUEUE, WEBHOOKS_QUEUE
    from visionq.models.logs import configure_logging
    from visionq.worker.celery_app import app as celery_app

    settings = get_settings()
    from visionq.models.blobs import startup_problem

    # A worker on a store it cannot use would hold every paid answer it could not store.
    problem = startup_problem(settings)
    if problem is not None:
        typer.secho(f"error: {problem}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    if not settings.gemini_key():
        typer.secho(
            "warning: no GEMINI_API_KEY or GOOGLE_API_KEY: jobs will fail until one is set.",
            err=True,
            fg=typer.colors.YELLOW,
        )
    # Text or JSON lines (VISIONQ_LOG_FORMAT); the per-call INFO lines of the SDK, httpx and
    # Celery are quietened there: the worker logs one line per job instead (worker/tasks.py).
    configure_logging(settings.log_format, loglevel)
    # Served by this (main) process from a thread: all the worker's processes, summed.
    serve_worker_metrics(
        settings.worker_metrics_host,
        settings.worker_metrics_port if metrics_port is None else metrics_port,
        settings.metrics_token_value(),
    )
    celery_app.worker_main(
        [
            "worker",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            f"--loglevel={loglevel}",
            f"--queues={queues or f'{JOBS_QUEUE},{WEBHOOKS_QUEUE}'}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


app.command("emulator")(run_emulator)


def main() -> None:
    """Entry point of the console script: operator errors end as one line and exit code 1."""
    from visionq.cli.failures import explain

    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        line = explain(exc)
        if line is None:
            raise
        typer.secho(f"error: {line}", err=True, fg=typer.colors.RED)
        sys.exit(1)
