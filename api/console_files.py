"""The web console's files at /console/ (plain HTML, CSS and ES modules in api/console/).

The console is a client of the public JSON API, served from the same origin so it needs no
CORS. Its files are static; the headers below lock the page down: scripts and styles only
from this origin (no inline code), calls only to this origin, no framing, no referrer.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

CONSOLE_DIR = Path(__file__).parent / "console"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'; "
    # The console builds nodes, never HTML strings: an innerHTML (or eval) is a CSP error.
    "require-trusted-types-for 'script'"
)
CONSOLE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidate every time (ETag answers 304): a new release's files are seen at once.
    "Cache-Control": "no-cache",
}


class ConsoleFiles(StaticFiles):
    """StaticFiles with the console's security and caching headers on every answer."""

    async def check_config(self) -> None:
        """Accept a missing folder (a build without the console): every path is then a 404
        in the error shape, not a 500."""
        if self.directory is not None and Path(self.directory).is_dir():
            await super().check_config()

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file's answer (or StaticFiles' 304), with CONSOLE_HEADERS."""
        response = await super().get_response(path, scope)
        response.headers.update(CONSOLE_HEADERS)
        return response


def install_console(app: FastAPI, directory: Path = CONSOLE_DIR) -> None:
    """Serve ``directory`` at /console/ (index.html for the folder) and redirect /console
    there. A missing folder answers 404 rather than failing at startup."""

    @app.get("/console", include_in_schema=False)
    def console_root() -> RedirectResponse:
        # Absolute, like the console's /v1/... calls: it is served at the host's root (README).
        return RedirectResponse("/console/", status_code=307)

    app.mount("/console", ConsoleFiles(directory=directory, html=True, check_dir=False))
