"""Webhook endpoints through the HTTP API: ``VisionqClient(...).webhooks`` (HTTP only, like
the rest of the client: no server code imported)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from visionq.client.api import VisionqClient
from visionq.client.webhook_models import (
    ReplayResult,
    WebhookAttempt,
    WebhookAttemptPage,
    WebhookCreated,
    WebhookDelivery,
    WebhookDeliveryPage,
    WebhookEndpoint,
    WebhookSecret,
)

PAGE_SIZE = 200
# The fields update() may change (PATCH /v1/webhooks/{id}).
UPDATABLE = frozenset({"url", "events", "description", "include_result", "enabled"})
Item_co = TypeVar("Item_co", covariant=True)


class _Page(Protocol[Item_co]):
    @property
    def data(self) -> Sequence[Item_co]: ...
    @property
    def next_cursor(self) -> str | None: ...


class WebhookClient:
    """The webhook routes (/v1/webhooks...). Get it as ``client.webhooks``."""

    def __init__(self, client: VisionqClient) -> None:
        self._client = client

    def create(
        self,
        url: str,
        events: Sequence[str],
        *,
        description: str | None = None,
        include_result: bool = True,
    ) -> WebhookCreated:
        """A new endpoint receiving ``events`` at ``url``; the answer holds its signing
        secret (whsec_...). The URL must pass the API's SSRF rules (422 url_*)."""
        body: dict[str, Any] = {"url": url, "events": list(events)}
        body["include_result"] = include_result
        if description is not None:
            body["description"] = description
        response = self._client.request("POST", "/v1/webhooks", json=body)
        return WebhookCreated.model_validate(response.json())

    def list(self) -> list[WebhookEndpoint]:
        """The tenant's endpoints, oldest first."""
        data = self._client.request("GET", "/v1/webhooks").json()["data"]
        return [WebhookEndpoint.model_validate(item) for item in data]

    def get(self, endpoint_id: str) -> WebhookEndpoint:
        """One endpoint with its delivery health (failing since, last error, disabled why)."""
        response = self._client.request("GET", f"/v1/webhooks/{endpoint_id}")
        return WebhookEndpoint.model_validate(response.json())

    def update(self, endpoint_id: str, **changes: Any) -> WebhookEndpoint:
        """Change any of url, events, description, include_result, enabled (``enabled=True``
        re-enables a disabled endpoint and clears its failing state)."""
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise TypeError(
                f"update() takes {', '.join(sorted(UPDATABLE))}, not {', '.join(sorted(unknown))}"
            )
        if "events" in changes and changes["events"] is not None:
            changes["events"] = list(changes["events"])
        response = self._client.request("PATCH", f"/v1/webhooks/{endpoint_id}", json=changes)
        return WebhookEndpoint.model_validate(response.json())

    def delete(self, endpoint_id: str) -> None:
        """Delete the endpoint with its secrets, deliveries and log."""
        self._client.request("DELETE", f"/v1/webhooks/{endpoint_id}")

    def secret(self, endpoint_id: str) -> str:
        """The endpoint's current signing secret (whsec_...)."""
        response = self._client.request("GET", f"/v1/webhooks/{endpoint_id}/secret")
        return str(WebhookSecret.model_validate(response.json()).secret)

    def rotate(self, endpoint_id: str, *, grace_s: int | None = None) -> WebhookSecret:
        """A new signing secret; the previous one also signs for ``grace_s`` seconds (the
        server's default when None)."""
        body = {} if grace_s is None else {"grace_s": grace_s}
        response = self._client.request("POST", f"/v1/webhooks/{endpoint_id}/rotate", json=body)
        return WebhookSecret.model_validate(response.json())

    def attempts(
        self,
        endpoint_id: str,
        *,
        outcome: str | None = None,
        since: datetime | None = None,
    ) -> Iterator[WebhookAttempt]:
        """The delivery log, newest first: every HTTP attempt (GET
        /v1/webhooks/{id}/attempts; pages fetched as needed). ``outcome``: succeeded or
        failed."""
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if outcome:
            params["outcome"] = outcome
        if since is not None:
            params["since"] = since.isoformat()
        path = f"/v1/webhooks/{endpoint_id}/attempts"
        return self._pages(path, params, WebhookAttemptPage.model_validate)

    def deliveries(
        self, endpoint_id: str, *, state: str | None = None
    ) -> Iterator[WebhookDelivery]:
        """One delivery per event sent (or to send) to the endpoint, newest first (GET
        /v1/webhooks/{id}/deliveries); ``state``: pending, sending, succeeded, failed or
        skipped."""
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if state:
            params["state"] = state
        path = f"/v1/webhooks/{endpoint_id}/deliveries"
        return self._pages(path, params, WebhookDeliveryPage.model_validate)

    def _pages(
        self, path: str, params: dict[str, Any], page_of: Callable[[Any], _Page[Item_co]]
    ) -> Iterator[Item_co]:
        # GET the pages of ``path`` one by one as the caller iterates, following next_cursor.
        while True:
            page = page_of(self._client.request("GET", path, params=params).json())
            yield from page.data
            if not page.next_cursor:
                return
            params["cursor"] = page.next_cursor

    def replay(
        self,
        endpoint_id: str,
        *,
        event_id: str | None = None,
        since: datetime | None = None,
        states: Sequence[str] | None = None,
    ) -> ReplayResult:
        """Send one event again (``event_id``), or every delivery in ``states`` (default
        failed and skipped) since ``since``; ``more`` in the answer: call again."""
        body: dict[str, Any] = {}
        if event_id is not None:
            body["event_id"] = event_id
        if since is not None:
            body["since"] = since.isoformat()
        if states:
            body["states"] = list(states)
        response = self._client.request("POST", f"/v1/webhooks/{endpoint_id}/replay", json=body)
        return ReplayResult.model_validate(response.json())

    def callbacks(self) -> WebhookEndpoint:
        """The tenant's callbacks endpoint: it signs and logs the deliveries to per-job and
        per-batch webhook_urls (its secret: ``secret(callbacks().id)``)."""
        response = self._client.request("GET", "/v1/webhooks/callbacks")
        return WebhookEndpoint.model_validate(response.json())
