"""`visionq gc`: apply the retention policy (models/retention.py) once; run it daily."""

from __future__ import annotations

from typing import Annotated

import typer

from models.settings import get_settings


def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be deleted.")
    ] = False,
) -> None:
    """Delete finished jobs older than VISIONQ_RETENTION_DAYS (inputs, attempts, masks),
    expired idempotency keys, and images no job uses; safe while the service runs."""
    from models.blobs import BlobStore
    from models.db import make_engine, make_session_factory
    from models.retention import collect, grace_s

    settings = get_settings()
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        report = collect(
            settings, make_session_factory(engine), BlobStore(settings.blob_dir), dry_run=dry_run
        )
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
    typer.echo(f"{delete} {report.idempotency_keys} expired idempotency keys")
    typer.echo(
        f"images: {move} {report.blobs_trashed} unused to the trash, {delete} "
        f"{report.blobs_deleted} unused there for {grace_s(settings) / 3600:g} h, {put} "
        f"{report.blobs_restored} back (in use again)"
    )
