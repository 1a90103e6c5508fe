"""What a Gemini call gives back: an answer, or an error with a code a user can act on."""

from __future__ import annotations

from dataclasses import dataclass

from visionq.models.outcomes import Usage
from visionq.vision.errors import CodedError


class GeminiCallError(CodedError):
    """A Gemini call (or a File API upload) that produced no usable answer: Google refused
    it (``gemini_<status>``, a quota), it timed out or could not connect, or a 200 held no
    answer (worker/answers.py). ``retryable`` says whether worker/retry.py asks again; when
    it does not (or gives up) the job fails with this code (worker/failures.py)."""

    codes = frozenset({
        "spend_limit_exceeded", "daily_quota_exhausted", "file_upload_timeout",
        "file_processing_failed", "file_not_active", "gemini_not_configured",
        "gemini_timeout", "gemini_unreachable", "blocked_prompt", "blocked_output",
        "malformed_response", "answer_stopped", "max_tokens_exhausted", "answer_truncated",
        "empty_answer",
    })  # fmt: skip
    # gemini_<status>: the lower-cased google.rpc status Google answered with.
    code_prefixes = ("gemini_",)

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
        quota_class: str | None = None,
    ) -> None:
        super().__init__(code, message)
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
        # Which of a 429's four shapes this was (worker/quotas.py, QUOTA_CLASSES): a metrics
        # label (visionq_gemini_responses_total); None for anything but a 429.
        self.quota_class = quota_class

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
    # The service tier that answered (x-gemini-service-tier; the tier asked when absent).
    served_tier: str | None = None
