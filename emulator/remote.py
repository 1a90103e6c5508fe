"""Web URLs in ``fileData`` parts (public or signed https URLs, as Gemini takes them).

The emulator cannot reach the internet. It serves URLs of its own public objects
(``PUT /_emulator/public/{name}``, kept in memory) and fetches URLs of the hosts in
``EmulatorConfig.fetch_allowed_hosts``; any other web URL gets the 400 Google gives for a
URL it cannot fetch.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from visionq.emulator import errors

PUBLIC_PATH = "/_emulator/public/"
WEB_SCHEMES = ("http", "https")
FETCH_TIMEOUT_S = 10.0


def is_web_uri(uri: str) -> bool:
    """True for an http(s) URL (as opposed to a File API URI or another scheme)."""
    return urlsplit(uri).scheme.lower() in WEB_SCHEMES


def _allowed(netloc: str, hostname: str, allowed: tuple[str, ...]) -> bool:
    return netloc in allowed or hostname in allowed


async def fetch(
    uri: str,
    *,
    own_base: str,
    public: Mapping[str, tuple[str, bytes]],
    allowed: tuple[str, ...],
    limit: int,
) -> tuple[str, bytes]:
    """(MIME type, bytes) behind a web URL, or the unreachable-URL 400.

    ``own_base`` is the emulator's own ``scheme://host:port`` as the caller reached it.
    """
    parts = urlsplit(uri)
    if parts.netloc == urlsplit(own_base).netloc and parts.path.startswith(PUBLIC_PATH):
        found = public.get(parts.path.removeprefix(PUBLIC_PATH))
        if found is None:
            raise errors.url_unreachable(uri)
        return found
    if not _allowed(parts.netloc, parts.hostname or "", allowed):
        raise errors.url_unreachable(uri)
    try:
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S) as client:
            response = await client.get(uri)
    except httpx.HTTPError as exc:
        raise errors.url_unreachable(uri) from exc
    if response.status_code != 200 or len(response.content) > limit:
        raise errors.url_unreachable(uri)
    mime_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return mime_type, response.content
