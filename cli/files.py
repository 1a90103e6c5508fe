"""`visionq files`: the images visionq uploaded to the Gemini File API."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from visionq.models.settings import get_settings

app = typer.Typer(help="Images uploaded to the Gemini File API (reused until expiry).",
                  no_args_is_help=True)  # fmt: skip


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False) -> None:
    """Show every upload visionq knows of, newest first."""
    from visionq.models.db import make_engine, make_session_factory
    from visionq.models.files import list_files

    engine = make_engine(get_settings().database_url, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            rows = list_files(session)
    finally:
        engine.dispose()
    if as_json:
        fields = ("sha256", "name", "uri", "state", "mime_type", "size_bytes", "uploads")
        data = [
            {**{f: getattr(r, f) for f in fields}, "expires_at": str(r.expires_at or ""),
             "last_used_at": str(r.last_used_at or "")}
            for r in rows
        ]  # fmt: skip
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table(box=box.SIMPLE_HEAD, header_style="bold")
    for column in ("sha256", "name", "state", "size", "expires", "last used", "uploads"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        expires = row.expires_at.strftime("%Y-%m-%d %H:%M") if row.expires_at else ""
        used = row.last_used_at.strftime("%Y-%m-%d %H:%M") if row.last_used_at else ""
        table.add_row(row.sha256[:12], row.name or "", row.state, f"{row.size_bytes:,}", expires,
                      used, str(row.uploads))  # fmt: skip
    Console().print(table)
    typer.echo(f"{len(rows)} file(s)", err=True)


@app.command("prune")
def prune(
    all_files: Annotated[
        bool, typer.Option("--all", help="Delete every upload, even ACTIVE ones.")
    ] = False,
    unused_hours: Annotated[
        float | None, typer.Option(help="Also delete ACTIVE uploads unused for this long.")
    ] = None,
) -> None:
    """Delete expired, failed and (optionally) unused uploads.

    They are deleted from Gemini and from visionq's table.
    """
    from visionq.models.db import make_engine, make_session_factory
    from visionq.models.files import forget_file, list_files, usable
    from visionq.models.tables import utcnow
    from visionq.worker.gemini import GeminiCaller, GeminiCallError, gemini_identity, make_client

    settings = get_settings()
    identity = gemini_identity(settings)
    gemini = GeminiCaller(make_client(settings))
    engine = make_engine(settings.database_url, pool_size=1)
    deleted = kept = 0
    cutoff = utcnow() - timedelta(hours=unused_hours) if unused_hours is not None else None
    try:
        with make_session_factory(engine).begin() as session:
            for row in list_files(session, identity=identity):
                live = usable(row, margin=timedelta(0))
                idle = cutoff is not None and (row.last_used_at or row.created_at) < cutoff
                if live and not (all_files or idle):
                    kept += 1
                    continue
                if row.name and row.state != "GONE":
                    try:
                        gemini.delete_file(row.name)
                    except GeminiCallError as exc:
                        # Already gone on Gemini's side (expired): only our row remains.
                        if exc.http_status not in (403, 404):
                            raise typer.Exit(
                                _error(f"could not delete {row.name}: {exc.message}")
                            ) from exc
                forget_file(session, row.id)
                deleted += 1
    finally:
        gemini.close()
        engine.dispose()
    typer.echo(f"deleted {deleted} upload(s), kept {kept}")


def _error(message: str) -> int:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return 1
