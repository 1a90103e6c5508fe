"""`visionq webhooks`: a tenant's webhook endpoints (create, list, show, update, delete),
their signing secret and its rotation, the callbacks endpoint. The delivery log, deliveries
and replay are in cli/webhook_log.py, registered here. HTTP only, through client.webhooks."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from visionq.cli import webhook_log
from visionq.cli.common import JsonOption, KeyOption, UrlOption, client_for, die, print_json, say
from visionq.cli.webhook_log import EndpointId, at_text, seconds_of
from visionq.client import DEFAULT_URL
from visionq.client.webhook_models import WebhookEndpoint

app = typer.Typer(
    help="Signed webhook endpoints: create, inspect, rotate, replay.",
    no_args_is_help=True,
)

EVENT_TYPES = ("job.succeeded", "job.failed", "job.cancelled", "batch.completed",
               "budget.threshold")  # fmt: skip
_EVENT_NAMES = ", ".join(EVENT_TYPES)
CreateEvents = Annotated[
    list[str],
    typer.Option(
        "--event",
        "-e",
        help=f"An event type to send (repeat for several): {_EVENT_NAMES}.",
        show_default=False,
    ),
]
UpdateEvents = Annotated[
    list[str] | None,
    typer.Option(
        "--event",
        "-e",
        help="The event types to send, replacing the endpoint's whole list (repeat for "
        f"several; give every one to keep): {_EVENT_NAMES}.",
        show_default=False,
    ),
]
ShowSecret = Annotated[bool, typer.Option("--secret", help="Print the signing secret too.")]
Description = Annotated[
    str | None,
    typer.Option(help="A note for people (at most 200 characters).", show_default=False),
]


def _events(events: list[str] | None) -> list[str] | None:
    if not events:
        return None
    unknown = [event for event in events if event not in EVENT_TYPES]
    if unknown:
        raise typer.BadParameter(
            f"unknown event type {unknown[0]!r}; use {', '.join(EVENT_TYPES)}", param_hint="--event"
        )
    return list(dict.fromkeys(events))


def _lines(endpoint: WebhookEndpoint) -> list[str]:
    state = "enabled" if endpoint.enabled else "DISABLED"
    if endpoint.enabled and endpoint.failing_since is not None:
        state = f"failing since {at_text(endpoint.failing_since)}"
    lines = [
        f"{endpoint.id}  {endpoint.kind}  {state}",
        f"  url: {endpoint.url or '(each job or batch names its webhook_url)'}",
        f"  events: {', '.join(endpoint.events) or '-'}",
        f"  pending: {endpoint.pending}  failed (24 h): {endpoint.failed_24h}  "
        f"consecutive failures: {endpoint.consecutive_failures}",
    ]
    if endpoint.description:
        lines.insert(1, f"  description: {endpoint.description}")
    if endpoint.last_error:
        lines.append(f"  last error: {endpoint.last_error}")
    if not endpoint.enabled:
        lines.append(f"  disabled: {endpoint.disabled_reason or 'by its owner'}")
    if endpoint.previous_secret_expires_at is not None:
        until = at_text(endpoint.previous_secret_expires_at)
        lines.append(f"  previous secret signs too until {until}")
    return lines


def _show(endpoint: WebhookEndpoint, as_json: bool, secret: str | None = None) -> None:
    if as_json:
        data = endpoint.model_dump(mode="json")
        if secret is not None:
            data["secret"] = secret
        print_json(data)
        return
    for line in _lines(endpoint):
        typer.echo(line)
    if secret is not None:
        typer.echo(f"  secret: {secret}")


@app.command("create")
def create(
    url: Annotated[str, typer.Argument(help="Where events are POSTed (http or https).")],
    event: CreateEvents,
    description: Description = None,
    result: Annotated[
        bool, typer.Option("--result/--no-result", help="Put small results in job events.")
    ] = True,
    api_url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an endpoint; prints its id and signing secret.

    Verify each delivery's webhook-signature with the secret (Standard
    Webhooks; README "Webhooks", "Receiving one", has five lines of Python)."""
    events = _events(event)
    if events is None:
        raise typer.BadParameter("give at least one --event", param_hint="--event")
    with client_for(api_url, api_key) as client:
        created = client.webhooks.create(
            url, events, description=description, include_result=result
        )
    _show(created, as_json, created.secret)


@app.command("list")
def list_endpoints(
    api_url: UrlOption = DEFAULT_URL, api_key: KeyOption = None, as_json: JsonOption = False
) -> None:
    """List the tenant's endpoints with their delivery health."""
    with client_for(api_url, api_key) as client:
        found = client.webhooks.list()
    if as_json:
        print_json([endpoint.model_dump(mode="json") for endpoint in found])
    elif not found:
        say("no webhook endpoints; create one with: visionq webhooks create URL --event ...")
    for endpoint in [] if as_json else found:
        for line in _lines(endpoint):
            typer.echo(line)


@app.command("show")
def show(
    endpoint_id: EndpointId,
    secret: ShowSecret = False,
    api_url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show an endpoint: URL, events, health, why it was disabled."""
    with client_for(api_url, api_key) as client:
        endpoint = client.webhooks.get(endpoint_id)
        shown = client.webhooks.secret(endpoint_id) if secret else None
    _show(endpoint, as_json, shown)


@app.command("update")
def update(
    endpoint_id: EndpointId,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--endpoint-url",
            help="A new URL for the endpoint (--url is the API's).",
            show_default=False,
        ),
    ] = None,
    event: UpdateEvents = None,
    description: Description = None,
    enable: Annotated[
        bool | None,
        typer.Option(
            "--enable/--disable",
            help="--enable re-enables a disabled endpoint (clears its failing state); "
            "--disable pauses deliveries (events are kept as skipped, replayable).",
            show_default=False,
        ),
    ] = None,
    result: Annotated[
        bool | None,
        typer.Option(
            "--result/--no-result", help="Small results in job events.", show_default=False
        ),
    ] = None,
    api_url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change an endpoint (only the options given).

    --event replaces the endpoint's event list: give every type it should
    keep."""
    fields = {"url": endpoint_url, "events": _events(event), "description": description,
              "enabled": enable, "include_result": result}  # fmt: skip
    changes: dict[str, Any] = {key: value for key, value in fields.items() if value is not None}
    if not changes:
        die("nothing to change: give --endpoint-url, --event, --description, --enable/--disable or "
            "--result/--no-result")  # fmt: skip
    with client_for(api_url, api_key) as client:
        endpoint = client.webhooks.update(endpoint_id, **changes)
    _show(endpoint, as_json)


@app.command("delete")
def delete(
    endpoint_id: EndpointId, api_url: UrlOption = DEFAULT_URL, api_key: KeyOption = None
) -> None:
    """Delete an endpoint with its secrets, deliveries and log."""
    with client_for(api_url, api_key) as client:
        client.webhooks.delete(endpoint_id)
    say(f"deleted webhook endpoint {endpoint_id}")


@app.command("rotate")
def rotate(
    endpoint_id: EndpointId,
    grace: Annotated[
        str | None,
        typer.Option(
            help="How long the previous secret signs too: 0, 30m, 24h, 7d (default: the "
            "server's VISIONQ_WEBHOOK_ROTATION_GRACE_S).",
            show_default=False,
        ),
    ] = None,
    api_url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """A new signing secret; both are sent during the grace period."""
    grace_s = None if grace is None else seconds_of(grace)
    with client_for(api_url, api_key) as client:
        rotated = client.webhooks.rotate(endpoint_id, grace_s=grace_s)
    if as_json:
        print_json(rotated.model_dump(mode="json"))
        return
    typer.echo(f"secret: {rotated.secret}")
    if rotated.previous_expires_at is not None:
        typer.echo(f"previous secret signs too until {at_text(rotated.previous_expires_at)}")


# The delivery log and replay (cli/webhook_log.py), listed after the endpoint commands.
app.command("attempts")(webhook_log.attempts)
app.command("deliveries")(webhook_log.deliveries)
app.command("replay")(webhook_log.replay)


@app.command("callbacks")
def callbacks(
    secret: ShowSecret = False,
    api_url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the endpoint that signs --webhook-url callbacks."""
    with client_for(api_url, api_key) as client:
        endpoint = client.webhooks.callbacks()
        shown = client.webhooks.secret(endpoint.id) if secret else None
    _show(endpoint, as_json, shown)
