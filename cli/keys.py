"""`visionq keys`: create, list and revoke API keys in the configured database."""

from __future__ import annotations

import json

import typer

from visionq.models.settings import get_settings

app = typer.Typer(help="API keys (only their hashes are stored).", no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="A name to recognise the key by."),
    tenant: str = typer.Option("default", help="Tenant whose jobs the key can see."),
) -> None:
    """Create a key and print it once, as the last line of output."""
    from visionq.models.db import make_engine, make_session_factory
    from visionq.models.keys import create_key

    engine = make_engine(get_settings().database_url, pool_size=1)
    try:
        with make_session_factory(engine).begin() as session:
            created = create_key(session, name=name, tenant=tenant)
    finally:
        engine.dispose()
    typer.echo(f"created key {created.id} '{created.name}' for tenant '{created.tenant}'", err=True)
    typer.echo("store it now: it cannot be shown again", err=True)
    typer.echo(created.secret)


@app.command("list")
def list_(
    tenant: str | None = typer.Option(None, help="Only this tenant's keys."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array instead of a table."),
) -> None:
    """List keys; never the keys or their hashes.

    Id, tenant, name, prefix, created and status of each.
    """
    from visionq.models.db import make_engine, make_session_factory
    from visionq.models.keys import list_keys

    engine = make_engine(get_settings().database_url, pool_size=1)
    try:
        with make_session_factory(engine)() as session:
            rows = list_keys(session, tenant=tenant)
    finally:
        engine.dispose()
    if as_json:
        listed = [
            {
                "id": row.id,
                "tenant": row.tenant,
                "name": row.name,
                "prefix": row.prefix,
                "created_at": row.created_at.isoformat(),
                "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
            }
            for row in rows
        ]
        typer.echo(json.dumps(listed, indent=2))
        return
    typer.echo("id\ttenant\tname\tprefix\tcreated (UTC)\tstatus")
    for row in rows:
        revoked = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
        created = f"{row.created_at:%Y-%m-%d %H:%M}"
        typer.echo(f"{row.id}\t{row.tenant}\t{row.name}\t{row.prefix}...\t{created}\t{revoked}")


@app.command("revoke")
def revoke(key_id: int = typer.Argument(..., help="Key id from 'visionq keys list'.")) -> None:
    """Revoke a key: requests with it are refused from now on."""
    from visionq.models.db import make_engine, make_session_factory
    from visionq.models.keys import revoke_key

    engine = make_engine(get_settings().database_url, pool_size=1)
    try:
        with make_session_factory(engine).begin() as session:
            done = revoke_key(session, key_id)
    finally:
        engine.dispose()
    if not done:
        typer.secho(f"error: no active key {key_id}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=1)
    typer.echo(f"revoked key {key_id}")
