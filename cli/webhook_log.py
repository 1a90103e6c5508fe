"""`visionq webhooks attempts / deliveries / replay`: an endpoint's delivery log (every HTTP
attempt), its deliveries (one per event, by state) and replaying them; the durations and
times these commands take. Registered on the `visionq webhooks` group by cli/webhooks.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import islice
from typing import Annotated

import typer

from visionq.cli.common import JsonOption, KeyOption, UrlOption, client_for, die, print_json, say
from visionq.client import DEFAULT_URL

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
LimitOption = Annotated[int, typer.Option(min=1, help="At most this many, newest first.")]


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


def at_text(moment: datetime) -> str:
    """An instant as the webhook commands print it: ``2026-12-05 10:00:00Z``."""
    return f"{moment:%Y-%m-%d %H:%M:%S}Z"


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 delivery``, ``2 deliveries``."""
    return f"{count:,} {one if count == 1 else many or one + 's'}"


def attempts(
    endpoint_id: EndpointId,
    failed: Annotated[bool, typer.Option("--failed", help="Only failed attempts.")] = False,
    since: Annotated[
        str | None,
        typer.Option(help="Only attempts since: 30m, 2h, 7d or a time.", show_default=False),
    ] = None,
    limit: LimitOption = 50,
    api_url: UrlOption = DEFAULT_URL,
    api_key: KeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """The delivery log: every HTTP attempt, newest first.

    Each line: time, event id, type, attempt, outcome, HTTP status,
    latency and error."""
    moment = None if since is None else moment_of(since)
    with client_for(api_url, api_key) as client:
        found = client.webhooks.attempts(
            endpoint_id, outcome="failed" if failed else None, since=moment
        )
        rows = list(islice(found, limit))
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
            f"{at_text(row.at)}  {row.event_id}  {row.event_type}  #{row.attempt}"
            f"{replay}  {row.outcome}  {status}  {latency}{error}"
        )


def deliveries(
    endpoint_id: EndpointId,
    state: Annotated[
        DeliveryState | None,
        typer.Option(help="Only deliveries in this state.", show_default=False),
    ] = None,
    limit: LimitOption = 50,
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
    typer.echo(f"replayed {plural(result.replayed, 'delivery', 'deliveries')}")
    if result.more:
        say("more deliveries match: run the same command again to replay the next ones")
