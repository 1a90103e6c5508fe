"""What the contract tests share: a recorder of HTTP exchanges and the schema checks.

Every exchange goes through ``Recorder`` (httpx/httpx2 event hooks), so the bodies checked
are the bytes the real SDK put on the wire and the bytes the emulator sent back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from visionq.emulator.apischema import ERROR_BODY, load_schema
from visionq.emulator.frontend import required_fields
from visionq.emulator.protojson import check

# Read by the terminal summary (conftest.py) for the closing note.
COUNTS: dict[str, int] = {"requests": 0, "responses": 0}
# Calls the emulator refused although visionq admitted them (the two catalogues disagree):
# not schema violations; the summary reports each "model: message" once, with a count.
REFUSALS: dict[str, int] = {}


@dataclass
class Exchange:
    """One HTTP request and its response."""

    method: str
    url: str
    request_body: bytes
    status: int = 0
    response_body: bytes = b""
    response_type: str = ""

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


@dataclass
class Recorder:
    """Collects exchanges from the event hooks of an httpx or httpx2 client."""

    exchanges: list[Exchange] = field(default_factory=list)

    def on_request(self, request: Any) -> None:
        body = request.content if hasattr(request, "content") else b""
        self.exchanges.append(Exchange(request.method, str(request.url), bytes(body)))

    def on_response(self, response: Any) -> None:
        response.read()
        url, method = str(response.request.url), response.request.method
        for exchange in reversed(self.exchanges):
            if exchange.url == url and exchange.method == method and not exchange.status:
                exchange.status = response.status_code
                exchange.response_body = response.content
                exchange.response_type = response.headers.get("content-type", "")
                return
        raise AssertionError(f"response without its request: {method} {url}")

    def hooks(self) -> dict[str, list[Any]]:
        """``event_hooks`` for an httpx/httpx2 client."""
        return {"request": [self.on_request], "response": [self.on_response]}

    def take(self) -> list[Exchange]:
        """The exchanges recorded since the last take."""
        taken, self.exchanges = self.exchanges, []
        return taken


def version_of(path: str) -> str:
    """The API version in a Gemini API path ("/v1beta/...", "/upload/v1beta/...")."""
    return path.removeprefix("/upload/").lstrip("/").split("/", 1)[0]


def request_problems(exchange: Exchange) -> list[str]:
    """Schema violations of a request body sent to a Gemini API route (counted)."""
    schema = load_schema(version_of(exchange.path))
    method = schema.route(exchange.method, exchange.path)
    assert method is not None, f"no API method answers {exchange.method} {exchange.path}"
    body = json.loads(exchange.request_body)
    COUNTS["requests"] += 1
    problems = [
        f"{v.field or '(top)'}: {v.description}" for v in check(body, schema, method.request)
    ]
    return problems or required_fields(body, schema, method.request)


def response_problems(exchange: Exchange) -> list[str]:
    """Schema violations of a JSON response of a Gemini API route (counted).

    A 2xx answer is checked against the method's response message (each event of a
    stream on its own), an error against Google's JSON error body.
    """
    schema = load_schema(version_of(exchange.path))
    if exchange.status >= 300:
        message = ERROR_BODY
    else:
        method = schema.route(exchange.method, exchange.path)
        assert method is not None, f"no API method answers {exchange.method} {exchange.path}"
        message = method.response
    bodies = _bodies(exchange)
    COUNTS["responses"] += len(bodies)
    return [
        f"{exchange.method} {exchange.path} {exchange.status}: {v.field or '(top)'}: "
        f"{v.description}"
        for body in bodies
        for v in check(body, schema, message)
    ]


def _bodies(exchange: Exchange) -> list[Any]:
    text = exchange.response_body.decode()
    if "text/event-stream" in exchange.response_type:
        return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    if not text.strip():
        return []  # an upload chunk's answer: only headers
    return [json.loads(text)]
