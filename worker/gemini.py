"""The one place that talks to Gemini: the google-genai SDK, with errors translated."""

from __future__ import annotations

import contextlib
import hashlib
import io
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from visionq.models.metrics import GEMINI_CALL_SECONDS, GEMINI_RESPONSES, model_label
from visionq.models.settings import Settings
from visionq.vision.catalogue import ServiceTier
from visionq.worker.answers import answer_from_response, served_tier, usage_from_metadata
from visionq.worker.errors import GeminiAnswer, GeminiCallError
from visionq.worker.quotas import quota_error, retry_delay

__all__ = [
    "GeminiAnswer",
    "GeminiCallError",
    "GeminiCaller",
    "gemini_identity",
    "make_client",
    "usage_from_metadata",
]


def make_client(settings: Settings) -> genai.Client | None:
    """A client for Google, or for the emulator when VISIONQ_GEMINI_BASE_URL is set.

    None when no key is configured: jobs then fail with a message saying so.
    """
    key = settings.gemini_key()
    if not key:
        return None
    options = types.HttpOptions(
        api_version=settings.gemini_api_version,
        timeout=int(settings.gemini_timeout_s * 1000),
        base_url=settings.gemini_base_url or None,
    )
    return genai.Client(api_key=key, http_options=options)


def gemini_identity(settings: Settings) -> str:
    """Stands for the Gemini project that owns our uploads: a hash of endpoint and key."""
    seed = f"{settings.gemini_base_url or 'google'}\n{settings.gemini_key() or ''}"
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


class GeminiCaller:
    """Calls generate_content; keeps its SDK client alive for the process's lifetime."""

    def __init__(self, client: genai.Client | None, *, secret: str | None = None) -> None:
        self._client = client
        self._secret = secret

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def generate(
        self,
        *,
        model: str,
        contents: list[types.Part],
        config: dict[str, Any],
        tier: ServiceTier = ServiceTier.STANDARD,
        timeout_s: float | None = None,
    ) -> GeminiAnswer:
        """Call Gemini once at ``tier`` (``timeout_s`` replaces the client's timeout for
        this call: flex answers take minutes); raise GeminiCallError for every kind of
        failure. The answer names the tier that served it (``served_tier``)."""
        client = self._client_or_fail()
        with _translated("generate_content", self._secret, model=model, tier=tier.value):
            response = client.models.generate_content(
                model=model,
                contents=[types.Content(role="user", parts=contents)],
                config=_call_config(config, tier, timeout_s),
            )
        answer = _answer_from_response(response)
        return replace(answer, served_tier=served_tier(response, tier.value))

    def _client_or_fail(self) -> genai.Client:
        if self._client is None:
            raise GeminiCallError(
                "gemini_not_configured",
                "The worker has no Gemini API key: set GEMINI_API_KEY (or GOOGLE_API_KEY).",
            )
        return self._client

    def upload(self, data: bytes, *, mime_type: str, display_name: str) -> types.File:
        """Upload bytes to the File API (the SDK's resumable protocol)."""
        client = self._client_or_fail()
        config = types.UploadFileConfig(mime_type=mime_type, display_name=display_name)
        with _translated("upload", self._secret):
            return client.files.upload(file=io.BytesIO(data), config=config)

    def get_file(self, name: str) -> types.File:
        with _translated("files.get", self._secret):
            return self._client_or_fail().files.get(name=name)

    def delete_file(self, name: str) -> None:
        with _translated("files.delete", self._secret):
            self._client_or_fail().files.delete(name=name)


def _call_config(
    config: dict[str, Any], tier: ServiceTier, timeout_s: float | None
) -> types.GenerateContentConfig | None:
    """The SDK config of one call. Standard sends no serviceTier (Gemini's default); a
    per-call timeout goes in the config's http_options (milliseconds)."""
    extra: dict[str, Any] = {}
    if tier is not ServiceTier.STANDARD:
        extra["service_tier"] = tier.value
    if timeout_s is not None:
        extra["http_options"] = types.HttpOptions(timeout=max(1, int(timeout_s * 1000)))
    merged = {**config, **extra}
    return types.GenerateContentConfig(**merged) if merged else None


# google-genai 3.x sends through httpx2 (a fork of httpx under another name, whose classes
# are not httpx's); a client built with the SDK's httpx extra would raise httpx's own.
_TIMEOUTS = (httpx.TimeoutException, httpx2.TimeoutException)
_TRANSPORT_ERRORS = (httpx.TransportError, httpx2.TransportError)


# The `call` label of visionq_gemini_call_seconds and visionq_gemini_responses_total for
# each SDK method ``_translated`` wraps (a closed set: labels stay bounded).
CALL_LABELS = {
    "generate_content": "generate",
    "upload": "upload",
    "files.upload": "upload",
    "files.get": "file_get",
    "files.delete": "file_delete",
    "files.download": "batch_download",
    "batches.create": "batch_create",
    "batches.get": "batch_get",
    "batches.list": "batch_list",
    "batches.cancel": "batch_cancel",
    "batches.delete": "batch_delete",
}
# Label of a call that names no model or tier (File API calls, batch reads).
NO_LABEL = "none"


@contextlib.contextmanager
def _translated(
    what: str, secret: str | None, *, model: str = "", tier: str = NO_LABEL
) -> Iterator[None]:
    """Turn SDK and transport errors into GeminiCallError, like generate does; time the
    call and count Gemini's response (by HTTP status, ``timeout`` or ``unreachable``, and a
    429's quota class) for the metrics. ``model`` and ``tier``: what the call asked for."""
    started = time.monotonic()
    code, quota_class = "200", NO_LABEL
    try:
        yield
    except genai_errors.APIError as exc:
        error = _from_api_error(exc).scrubbed(secret)
        code = str(exc.code) if isinstance(exc.code, int) else "error"
        quota_class = error.quota_class or NO_LABEL
        raise error from exc
    except _TIMEOUTS as exc:
        code = "timeout"
        raise GeminiCallError(
            "gemini_timeout", f"Gemini did not answer {what} in time ({exc}).", retryable=True
        ).scrubbed(secret) from exc
    except _TRANSPORT_ERRORS as exc:
        code = "unreachable"
        raise GeminiCallError(
            "gemini_unreachable", f"Could not reach Gemini for {what}: {exc}.", retryable=True
        ).scrubbed(secret) from exc
    except GeminiCallError:
        code = ""  # ours, before any request (no key configured): Gemini answered nothing
        raise
    except Exception:
        code = "error"  # the SDK failed reading an answer
        raise
    finally:
        if code:
            seconds = time.monotonic() - started
            _observe(what, model=model, tier=tier, code=code, quota_class=quota_class,
                     seconds=seconds)  # fmt: skip


def _observe(
    what: str, *, model: str, tier: str, code: str, quota_class: str, seconds: float
) -> None:
    """One SDK call in the Gemini metrics."""
    call = CALL_LABELS.get(what, "other")
    label = model_label(model) if model else NO_LABEL
    outcome = "ok" if code == "200" else "error"
    GEMINI_CALL_SECONDS.labels(label, tier, call, outcome).observe(seconds)
    GEMINI_RESPONSES.labels(label, tier, call, code, quota_class).inc()


_RETRYABLE_STATUSES = (408, 429, 500, 502, 503, 504)


def _from_api_error(exc: genai_errors.APIError) -> GeminiCallError:
    code = exc.code if isinstance(exc.code, int) else None
    if code == 429:
        return quota_error(code, exc.status, str(exc.message), exc.details)
    status = (exc.status or "ERROR").lower()
    return GeminiCallError(
        f"gemini_{status}",
        f"Gemini answered {code} {exc.status}: {exc.message}",
        http_status=code,
        retryable=code in _RETRYABLE_STATUSES,
        retry_delay_s=retry_delay(exc.details),
    )


# The answer of a 200 (worker/answers.py); kept under this name for the callers and tests.
_answer_from_response = answer_from_response
