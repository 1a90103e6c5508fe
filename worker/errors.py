"""What a Gemini call gives back: an answer, or an error with a code a user can act on."""

from __future__ import annotations

from dataclasses import dataclass

from models.outcomes import Usage


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
        daily_quota: bool = False,
        model_version: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.retryable = retryable
        self.usage = usage
        # RetryInfo.retryDelay of a 429: Gemini's own word on when to ask again.
        self.retry_delay_s = retry_delay_s
        # A 429 that names a per-day quota (possibly with per-minute ones): retried, but
        # worker/retry.py gives up when such refusals keep coming (the day's quota is gone).
        self.daily_quota = daily_quota
        # The model that answered (a 200 that is still a failure is billed as that model).
        self.model_version = model_version

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
