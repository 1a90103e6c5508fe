"""The one place that talks to Gemini: the google-genai SDK, with errors translated."""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from models.outcomes import Usage
from models.settings import Settings

# finishReason values that mean the answer was withheld rather than cut short.
_BLOCKED_REASONS = {
    "SAFETY",
    "RECITATION",
    "PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
}


class GeminiCallError(Exception):
    """A Gemini call that produced no usable answer, with a code a user can act on."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        http_status: int | None = None,
        retryable: bool = False,
        usage: Usage | None = None,
        retry_delay_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.retryable = retryable
        self.usage = usage
        # RetryInfo.retryDelay of a 429: Gemini's own word on when to ask again.
        self.retry_delay_s = retry_delay_s

    def scrubbed(self, secret: str | None) -> GeminiCallError:
        """This error with ``secret`` (the API key) masked in its message, should any
        server or library ever echo it: messages are stored and shown to users."""
        if secret and secret in self.message:
            self.message = self.message.replace(secret, "***")
            self.args = (self.message,)
        return self


@dataclass(frozen=True)
class GeminiAnswer:
    text: str
    usage: Usage | None
    model_version: str | None
    finish_reason: str | None


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


def usage_from_metadata(
    metadata: types.GenerateContentResponseUsageMetadata | None,
) -> Usage | None:
    """Our usage record from the SDK's usage_metadata."""
    if metadata is None:
        return None
    return Usage(
        prompt_tokens=metadata.prompt_token_count,
        candidates_tokens=metadata.candidates_token_count,
        thoughts_tokens=metadata.thoughts_token_count,
        cached_tokens=metadata.cached_content_token_count,
        total_tokens=metadata.total_token_count,
        raw=metadata.model_dump(mode="json", exclude_none=True),
    )


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
        self, *, model: str, contents: list[types.Part], config: dict[str, Any]
    ) -> GeminiAnswer:
        """Call Gemini once; raise GeminiCallError for every kind of failure."""
        client = self._client_or_fail()
        with _translated("generate_content", self._secret):
            response = client.models.generate_content(
                model=model,
                contents=[types.Content(role="user", parts=contents)],
                config=types.GenerateContentConfig(**config) if config else None,
            )
        return _answer_from_response(response)

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

    def list_files(self) -> list[types.File]:
        with _translated("files.list", self._secret):
            return list(self._client_or_fail().files.list())


# google-genai 3.x sends through httpx2 (a fork of httpx under another name, whose classes
# are not httpx's); a client built with the SDK's httpx extra would raise httpx's own.
_TIMEOUTS = (httpx.TimeoutException, httpx2.TimeoutException)
_TRANSPORT_ERRORS = (httpx.TransportError, httpx2.TransportError)


@contextlib.contextmanager
def _translated(what: str, secret: str | None) -> Iterator[None]:
    """Turn SDK and transport errors into GeminiCallError, like generate does."""
    try:
        yield
    except genai_errors.APIError as exc:
        raise _from_api_error(exc).scrubbed(secret) from exc
    except _TIMEOUTS as exc:
        raise GeminiCallError(
            "gemini_timeout", f"Gemini did not answer {what} in time ({exc}).", retryable=True
        ).scrubbed(secret) from exc
    except _TRANSPORT_ERRORS as exc:
        raise GeminiCallError(
            "gemini_unreachable", f"Could not reach Gemini for {what}: {exc}.", retryable=True
        ).scrubbed(secret) from exc


_RETRYABLE_STATUSES = (408, 429, 500, 502, 503, 504)


def _from_api_error(exc: genai_errors.APIError) -> GeminiCallError:
    status = (exc.status or "ERROR").lower()
    code = exc.code if isinstance(exc.code, int) else None
    details = _error_details(exc.details)
    quota_ids = [
        str(violation.get("quotaId", ""))
        for detail in details
        if str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure")
        for violation in detail.get("violations") or []
        if isinstance(violation, dict)
    ]
    delay = next(
        (
            _seconds(detail.get("retryDelay"))
            for detail in details
            if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo")
        ),
        None,
    )
    message = f"Gemini answered {code} {exc.status}: {exc.message}"
    if code == 429 and any("PerDay" in quota for quota in quota_ids):
        # Retrying within the day only burns attempts: fail now and say why.
        return GeminiCallError(
            "daily_quota_exhausted",
            f"{message} (daily quota {', '.join(quota_ids)} is used up; it resets at "
            "midnight Pacific time: submit again then, or raise the quota)",
            http_status=code,
            retry_delay_s=delay,
        )
    return GeminiCallError(
        f"gemini_{status}",
        message,
        http_status=code,
        retryable=code in _RETRYABLE_STATUSES,
        retry_delay_s=delay,
    )


def _error_details(body: Any) -> list[dict[str, Any]]:
    """The ``error.details`` objects of a Google error body (empty when absent or odd)."""
    error = body.get("error", body) if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return [item for item in details if isinstance(item, dict)] if isinstance(details, list) else []


def _seconds(value: Any) -> float | None:
    """A google.protobuf.Duration in JSON ("26s", "0.5s") as seconds."""
    if not isinstance(value, str) or not value.endswith("s"):
        return None
    try:
        seconds = float(value[:-1])
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _answer_from_response(response: types.GenerateContentResponse) -> GeminiAnswer:
    usage = usage_from_metadata(response.usage_metadata)
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        reason = str(feedback.block_reason.value)
        raise GeminiCallError(
            "blocked_prompt",
            f"Gemini refused the request ({reason}): {feedback.block_reason_message or ''}".strip(),
            usage=usage,
        )
    candidate = response.candidates[0] if response.candidates else None
    finish = candidate.finish_reason.value if candidate and candidate.finish_reason else None
    if finish in _BLOCKED_REASONS:
        raise GeminiCallError(
            "blocked_output", f"Gemini withheld the answer (finish reason {finish}).", usage=usage
        )
    text = response.text or ""
    if not text.strip():
        raise GeminiCallError(
            "empty_answer",
            f"Gemini returned no text (finish reason {finish or 'unknown'}); "
            "if it is MAX_TOKENS, raise options.max_output_tokens.",
            usage=usage,
        )
    return GeminiAnswer(
        text=text, usage=usage, model_version=response.model_version, finish_reason=finish
    )
