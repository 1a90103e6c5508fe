"""`visionq gc`: apply the retention policy (models/retention.py) once; run it daily."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from visionq.models.settings import get_settings


def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be deleted.")
    ] = False,
) -> None:
    """Delete old finished jobs and unused images; safe while running.

    Finished jobs older than VISIONQ_RETENTION_DAYS (with their inputs,
    attempts and masks), webhook events that old whose deliveries all
    ended (with their attempt log), expired idempotency keys, and images
    no job uses.
    """
    from visionq.models.blobs import BlobStore
    from visionq.models.db import make_engine, make_session_factory
    from visionq.models.retention import GcRunningError, collect, gc_lock, grace_s

    settings = get_settings()
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        # One gc at a time (a dry run only reads): two would trash and restore the same
        # blobs under each other.
        with contextlib.nullcontext() if dry_run else gc_lock(settings.redis_url):
            report = collect(
                settings,
                make_session_factory(engine),
                BlobStore.from_settings(settings),
                dry_run=dry_run,
            )
    except GcRunningError as exc:
        typer.echo(f"visionq gc: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    delete, move, put = (
        ("would delete", "would move", "would put") if dry_run else ("deleted", "moved", "put")
    )
    kept = (
        f"finished over {settings.retention_days} days ago"
        if settings.retention_days
        else "none: VISIONQ_RETENTION_DAYS=0 keeps jobs forever"
    )
    typer.echo(f"{delete} {report.jobs} jobs ({kept})")
    typer.echo(f"{delete} {report.batches} batches left without jobs")
    typer.echo(f"{delete} {report.webhook_events} webhook events (all their deliveries ended)")
    typer.echo(f"{delete} {report.idempotency_keys} expired idempotency keys")
    typer.echo(
        f"images: {move} {report.blobs_trashed} unused to the trash, {delete} "
        f"{report.blobs_deleted} unused there for {grace_s(settings) / 3600:g} h, {put} "
        f"{report.blobs_restored} back (in use again)"
    )
