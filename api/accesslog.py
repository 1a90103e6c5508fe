"""The API's access log: one line per request with its time, request id, tenant, job id,
status and duration; failures (4xx, 5xx) at WARNING.

A pure ASGI middleware around the routes, inside Starlette's ServerErrorMiddleware: an
unhandled error passes through it before that middleware answers 500, and is logged as
a 500. A client that went away before any answer is logged as 499 "client closed request"
at INFO (nothing failed on our side), the field ``client_closed`` set. The tenant comes
from the authentication dependency (``request.state.tenant``, set in api/deps.py), the
job id from the route's ``job_id`` or the Location of a created job. Each response
carries the request id in ``X-Request-ID`` (the client's, if it sent a sane one), so a
user's report can be matched to the log line.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("visionq.access")
REQUEST_ID_HEADER = b"x-request-id"
REQUEST_ID_PATTERN = "[A-Za-z0-9._:-]{1,64}"
_SANE_ID = re.compile(REQUEST_ID_PATTERN.encode("ascii"))
_JOB_LOCATION = re.compile(r"/v1/jobs/([^/?]+)$")
# nginx's status for a request whose client disconnected before the response.
CLIENT_CLOSED = 499


def printable(text: str) -> str:
    """``text`` with every character that is not printable (newlines, NUL, escapes...) and
    every backslash written as a backslash escape: a decoded path holds what the client
    sent, and ``%0A`` must not start a forged line of the log (nor ``%00`` make it binary)."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(
        char if char.isprintable() and char != "\\" else char.encode("unicode_escape").decode()
        for char in text
    )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER and _SANE_ID.fullmatch(value):
            return str(value.decode("ascii"))
    return uuid.uuid4().hex


class AccessLog:
    """Logs every HTTP request once it has been answered (or failed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        answer: dict[str, Any] = {"status": None, "location": None, "disconnected": False}

        async def receive_watched() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect":
                answer["disconnected"] = True
            return message

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                headers = list(message.get("headers", []))
                for name, value in headers:
                    if name.lower() == b"location":
                        answer["location"] = value.decode("latin-1")
                headers.append((REQUEST_ID_HEADER, request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive_watched, send_with_id)
        finally:
            self._log(scope, request_id, answer, time.perf_counter() - started)

    @staticmethod
    def _log(scope: Scope, request_id: str, answer: dict[str, Any], seconds: float) -> None:
        state = scope.get("state") or {}
        job_id = (scope.get("path_params") or {}).get("job_id")
        if job_id is None and answer["location"]:
            found = _JOB_LOCATION.search(answer["location"])
            job_id = found.group(1) if found else None
        job_id = printable(job_id) if isinstance(job_id, str) else job_id
        # No answer started: the client went away first (499), or an error escaped (500).
        closed = answer["status"] is None and answer["disconnected"]
        status = int(answer["status"] or (CLIENT_CLOSED if closed else 500))
        fields = {
            "request_id": request_id,
            "method": scope.get("method", ""),
            "path": printable(scope.get("path", "")),
            "status": status,
            "tenant": state.get("tenant"),
            "job_id": job_id,
            "duration_ms": round(seconds * 1000, 1),
            "client": (scope.get("client") or ("", 0))[0],
            "client_closed": closed,
        }
        # Led by the usual `client "METHOD path" status`, so a grep for " 500 " still works.
        text = (
            f'{fields["client"]} "{fields["method"]} {fields["path"]}" {status} '
            f"{fields['duration_ms']}ms request_id={request_id} "
            f"tenant={fields['tenant'] or '-'} job_id={job_id or '-'}"
        )
        if closed:
            text += " client closed request"
        failed = status >= 400 and not closed
        log.log(logging.WARNING if failed else logging.INFO, text, extra=fields)
