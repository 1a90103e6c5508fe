"""The client's errors: the API's error answer as an exception, and how long to wait before
trying a transient one again."""

from __future__ import annotations

import contextlib
import logging
import math
import random
import re

import httpx


class VisionqError(Exception):
    """The API refused a request; ``code`` and ``message`` come from its error body."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: float | None = None
    ) -> None:
        # Status 0: no HTTP answer at all (VisionqConnectionError), so no status to show.
        super().__init__(f"{message} ({code}, HTTP {status})" if status else message)
        self.status = status
        self.code = code
        self.message = message
        # Seconds the server asked us to wait (Retry-After of a 429 or 503), if any.
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Worth trying again later: rate limited, unavailable, or not reached at all."""
        return self.status in (0, 429, 502, 503, 504)


class VisionqConnectionError(VisionqError):
    """The API could not be reached at all."""


# "[Errno 111] Connection refused": the errno is noise to a reader.
_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")


def transport_problem(exc: httpx.TransportError) -> str:
    """Why no answer came, in a few words: "connection refused", "timed out"."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    text = _ERRNO.sub("", str(exc).strip()).rstrip(".")
    return text[:1].lower() + text[1:] if text else type(exc).__name__


def retry_delay(error: VisionqError, attempt: int) -> float:
    """The server's Retry-After when it gave one, else full-jitter backoff (cap 30 s)."""
    if error.retry_after is not None:
        return min(error.retry_after, 300.0)
    return random.uniform(0, min(30.0, 0.5 * 2**attempt))


def retry_notice(error: VisionqError, delay: float, attempt: int, retries: int) -> None:
    """Say why a request waits before its next try, when the server is unavailable (503:
    its store or database is down): a WARNING of the ``visionq.client`` logger, which
    Python prints on stderr when the program configured no logging (the CLI's case)."""
    if error.status != 503:
        return
    logging.getLogger("visionq.client").warning(
        "server unavailable (503 %s: %s); retrying in %.0f s (try %d of %d)",
        error.code, error.message, delay, attempt + 2, retries + 1,
    )  # fmt: skip


def error_from(response: httpx.Response) -> VisionqError:
    retry_after: float | None = None
    with contextlib.suppress(ValueError):
        retry_after = float(response.headers.get("retry-after", ""))
    if retry_after is not None and not 0 <= retry_after < math.inf:
        retry_after = None  # a nonsense header: fall back to our own backoff
    try:
        error = response.json()["error"]
        return VisionqError(
            response.status_code, str(error["code"]), str(error["message"]),
            retry_after=retry_after,
        )  # fmt: skip
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:200] or response.reason_phrase
        return VisionqError(response.status_code, "http_error", text, retry_after=retry_after)
