"""`visionq webhooks`: a tenant's webhook endpoints (create, list, show, update, delete),
their signing secret and its rotation, the delivery log (`attempts`: every HTTP attempt),
`deliveries` (one per event, by state), and replay. HTTP only, through client.webhooks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import islice
from typing import Annotated, Any

import typer

from visionq.cli.common import JsonOption, KeyOption, UrlOption, client_for, die, print_json, say
from visionq.client import DEFAULT_URL
from visionq.client.webhook_models import WebhookEndpoint

app = typer.Typer(
    help="Signed webhook endpoints: create, inspect, rotate, replay.",
    no_args_is_help=True,
)

EVENT_TYPES = ("job.succeeded", "job.failed", "job.cancelled", "batch.completed",
               "budget.threshold")  # fmt: skip
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class ReplayState(StrEnum):
    FAILED = "failed"
    SKIPPED = "skipped"


EndpointId = Annotated[str, typer.Argument(metavar="ID", help="The endpoint's id.")]
EventOption = Annotated[
    list[str] | None,
    typer.Option(
        "--event",
        "-e",
        help=f"An event type to send (repeat for several): {', '.join(EVENT_TYPES)}.",
        show_default=False,
    ),
]
ShowSecret = Annotated[bool, typer.Option("--secret", help="Print the signing secret too.")]
Description = Annotated[
    str | None,
    typer.Option(help="A note for people (at most 200 characters).", show_default=False),
]


def seconds_of(value: str) -> int:
    """Seconds of a duration written 90s, 30m, 12h, 7d, 2w (or a plain number of seconds)."""
    text = value.strip().lower()
    if text.isdigit():
        return int(text)
    match = re.fullmatch(r"(\d+)\s*([smhdw])", text)
    if match is None:
        raise typer.BadParameter("use a duration like 90s, 30m, 24h, 7d or 2w")
    return int(match.group(1)) * _UNITS[match.group(2)]


def moment_of(value: str) -> datetime:
    """A time: a duration back from now (30m, 2h, 7d) or an ISO date/time (UTC if no zone)."""
    if re.fullmatch(r"\s*\d+\s*[smhdw]\s*", value.lower()):
        return datetime.now(UTC) - timedelta(seconds=seconds_of(value))
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise typer.BadParameter(
            "use a duration back from now (30m, 2h, 7d) or a time like 2026-12-05T10:00Z"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _events(events: list[str] | None) -> list[str] | None:
    if not events:
        return None
    unknown = [event for event in events if event not in EVENT_TYPES]
    if unknown:
        raise typer.BadParameter(
            f"unknown event type {unknown[0]!r}; use {', '.join(EVENT_TYPES)}", param_hint="--event"
        )
    return list(dict.fromkeys(events))


def _at(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}Z"


def _lines(endpoint: WebhookEndpoint) -> list[str]:
    state = "enabled" if endpoint.enabled else "DISABLED"
    if endpoint.enabled and endpoint.failing_since is not None:
        state = f"failing since {_at(endpoint.failing_since)}"
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
        until = _at(endpoint.previous_secret_expires_at)
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
    event: EventOption = None,
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
    Webhooks; README "Receiving webhooks" has five lines of Python)."""
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
    event: EventOption = None,
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
    """Change an endpoint (only the options given)."""
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
        typer.echo(f"previous secret signs too until {_at(rotated.previous_expires_at)}")


@app.command("attempts")
def attempts(
    endpoint_id: EndpointId,
    failed: Annotated[bool, typer.Option("--failed", help="Only failed attempts.")] = False,
    since: Annotated[
        str | None,
        typer.Option(help="Only attempts since: 30m, 2h, 7d or a time.", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    api_url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """The delivery log: every HTTP attempt, newest first.

    Each line: time, event id, type, attempt, outcome, HTTP status,
    latency and error."""
    moment = None if since is None else moment_of(since)
    with client_for(api_url, api_key) as client:
        rows = list(
            islice(
                client.webhooks.attempts(
                    endpoint_id, outcome="failed" if failed else None, since=moment
                ),
                limit,
            )
        )
    if as_json:
        print_json([row.model_dump(mode="json") for row in rows])
        return
    if not rows:
        say("no delivery attempts")
    for row in rows:
        status = row.status_code if row.status_code is not None else "-"
        latency = f"{row.latency_ms} ms" if row.latency_ms is not None else "-"
        replay = " (replay)" if row.replay else ""
        error = f"  {row.error}" if row.error else ""
        typer.echo(
            f"{_at(row.at)}  {row.event_id}  {row.event_type}  #{row.attempt}"
            f"{replay}  {row.outcome}  {status}  {latency}{error}"
        )


@app.command("deliveries")
def deliveries(
    endpoint_id: EndpointId,
    state: Annotated[
        DeliveryState | None,
        typer.Option(help="Only deliveries in this state.", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    api_url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Each event sent (or to send): state, attempts, next try."""
    with client_for(api_url, api_key) as client:
        found = client.webhooks.deliveries(endpoint_id, state=state.value if state else None)
        rows = list(islice(found, limit))
    if as_json:
        print_json([row.model_dump(mode="json") for row in rows])
        return
    if not rows:
        say("no deliveries")
    for row in rows:
        following = (
            f"  next {row.next_attempt_at:%H:%M:%S}"
            if row.state == "pending" and row.next_attempt_at
            else ""
        )
        status = f"  last {row.last_status}" if row.last_status is not None else ""
        typer.echo(
            f"{row.event_id}  {row.event_type}  {row.state}  attempts {row.attempts}{status}"
            f"{following}"
        )


@app.command("replay")
def replay(
    endpoint_id: EndpointId,
    event: Annotated[
        str | None, typer.Option("--event", help="One event id (msg_...).", show_default=False)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Every failed/skipped delivery since: 2h, 1d or a time.", show_default=False
        ),
    ] = None,
    state: Annotated[
        list[ReplayState] | None,
        typer.Option(help="With --since: only these states (default both).", show_default=False),
    ] = None,
    api_url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send one event again, or every failed delivery since a time.

    --event msg_... replays one event; --since TIME replays the failed and
    skipped deliveries since then (--state to pick one)."""
    if (event is None) == (since is None):
        die("give exactly one of --event msg_... or --since TIME")
    if state and event is not None:
        die("--state goes with --since, not with --event")
    with client_for(api_url, api_key) as client:
        result = client.webhooks.replay(
            endpoint_id, event_id=event, since=None if since is None else moment_of(since),
            states=[item.value for item in state] if state else None,
        )  # fmt: skip
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    typer.echo(f"replayed {result.replayed} deliveries")
    if result.more:
        say("more deliveries match: run the same command again to replay the next ones")


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
