"""Cross-origin calls (CORS) for pages of other origins, off unless origins are configured.

The console is served by the API itself (same origin) and needs none of this; it is for a
deployment whose own front end lives on another origin (VISIONQ_CORS_ALLOW_ORIGINS).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse, Response

from visionq.api.errors import error_body
from visionq.models.settings import Settings

ALLOW_METHODS = ("GET", "POST", "PATCH", "DELETE")
ALLOW_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id")
EXPOSE_HEADERS = (
    "Location",
    "Idempotent-Replayed",
    "Retry-After",
    "X-Request-Id",
    "Content-Disposition",
)


class ApiCors(CORSMiddleware):
    """Starlette's CORS middleware whose refused preflight is in the API's error shape
    (``cors_refused``) rather than a plain-text "Disallowed CORS ..."."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """The preflight's answer; a refusal keeps its headers and says what to change."""
        answer = super().preflight_response(request_headers)
        if answer.status_code == 200:
            return answer
        refused = bytes(answer.body).decode(errors="replace").removeprefix("Disallowed CORS ")
        headers = {
            name: value
            for name, value in answer.headers.items()
            if name.lower() not in ("content-length", "content-type")
        }
        return JSONResponse(
            error_body(
                "cors_refused",
                f"This cross-origin request is not allowed ({refused}). Allowed origins are "
                "set by VISIONQ_CORS_ALLOW_ORIGINS; methods "
                f"{', '.join(ALLOW_METHODS)}; headers {', '.join(ALLOW_HEADERS)}.",
            ),
            status_code=400,
            headers=headers,
        )


def install_cors(app: FastAPI, settings: Settings) -> None:
    """Answer CORS for ``settings.cors_allow_origins`` (nothing when empty). Call it last:
    the outermost middleware, so its headers reach every answer but a 500 (which Starlette's
    ServerErrorMiddleware, outside all user middleware, sends)."""
    if not settings.cors_allow_origins:
        return
    app.add_middleware(
        ApiCors,
        allow_origins=list(settings.cors_allow_origins),
        # Bearer keys, no cookies: credentials mode is never needed, so "*" stays safe.
        allow_credentials=False,
        allow_methods=list(ALLOW_METHODS),
        allow_headers=list(ALLOW_HEADERS),
        expose_headers=list(EXPOSE_HEADERS),
        max_age=settings.cors_max_age_s,
    )
