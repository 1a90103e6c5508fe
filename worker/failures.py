"""The job error code of each coded error that ends a job in the worker, declared once.

A job that fails stores a code a user can act on (README lists them). The worker's failure
mapping (worker/pipeline.py) reads the error's ``code`` through this table (and its wording
through failure_message) instead of choosing one per exception type;
tests/unit/test_error_codes.py checks every code of the leaves that end a job has its entry.
"""

from __future__ import annotations

from visionq.vision.errors import CodedError

JOB_ERROR_CODES: dict[str, str] = {
    # worker.errors.GeminiCallError: Google refused or failed the call (quotas, spend,
    # timeouts, the File API) ...
    "spend_limit_exceeded": "spend_limit_exceeded",
    "daily_quota_exhausted": "daily_quota_exhausted",
    "file_upload_timeout": "file_upload_timeout",
    "file_processing_failed": "file_processing_failed",
    "file_not_active": "file_not_active",
    "gemini_not_configured": "gemini_not_configured",
    "gemini_timeout": "gemini_timeout",
    "gemini_unreachable": "gemini_unreachable",
    # ... or a 200 held no answer (worker/answers.py).
    "blocked_prompt": "blocked_prompt",
    "blocked_output": "blocked_output",
    "malformed_response": "malformed_response",
    "answer_stopped": "answer_stopped",
    "max_tokens_exhausted": "max_tokens_exhausted",
    "answer_truncated": "answer_truncated",
    "empty_answer": "empty_answer",
    # vision.formats.ImageRejectedError: a downscale over the decode memory bound.
    "unsupported_media_type": "unsupported_media_type",
    "corrupt_image": "corrupt_image",
    "image_too_large": "image_too_large",
    # models.blobs.BlobNotFoundError: an input gone from the blob store.
    "blob_not_found": "input_missing",
    # worker.ratelimit.RateLimitTimeout: the shared limiter's wait ran past the deadline.
    "rate_limit_timeout": "rate_limited",
    # vision.parsing.AnswerParseError and its schema leaves (vision/structured.py).
    "unparseable_answer": "unparseable_answer",
    "schema_mismatch": "schema_validation_failed",
    "schema_unverifiable": "schema_validation_failed",
}
# What a failed job says for the errors whose own message is not for users (a sha256, a
# parser's detail): {exc} is the error's message, {cut} says why an answer was cut short.
FAILURE_WORDING: dict[str, str] = {
    "blob_not_found": "Input image {exc} is missing from the blob store.",
    "rate_limit_timeout": (
        "The job waited for the shared Gemini rate limit until its deadline: {exc}. "
        "Raise VISIONQ_RATE_LIMITS for this model or submit fewer jobs at once."
    ),
    "schema_unverifiable": "Gemini's answer could not be checked against the schema: {exc}",
    "schema_mismatch": "Gemini's answer failed the schema twice: {exc}",
    "unparseable_answer": "Gemini's answer could not be read: {exc}{cut}",
}
_CUT = (
    " (the answer was cut at max_output_tokens, finish reason MAX_TOKENS: raise "
    "options.max_output_tokens)"
)
# Codes built at run time that a job keeps as they are: gemini_<status>, the lower-cased
# google.rpc status of Google's answer (gemini_invalid_argument, gemini_unavailable, ...).
JOB_ERROR_PREFIXES: tuple[str, ...] = ("gemini_",)


def job_error_code(exc: CodedError) -> str:
    """The code a job that ``exc`` ended stores. A code with no entry is kept as it is (so a
    failure is always recorded), but the unit test makes sure there is none."""
    return JOB_ERROR_CODES.get(exc.code, exc.code)


def failure_message(exc: CodedError, finish_reason: str | None = None) -> str:
    """What a user reads on the job ``exc`` ended: its wording (FAILURE_WORDING) or, for
    an error written for users (GeminiCallError, ImageRejectedError), its own message.
    ``finish_reason`` is the answer's, when it was read."""
    wording = FAILURE_WORDING.get(exc.code)
    if wording is None:
        return exc.message
    return wording.format(exc=exc, cut=_CUT if finish_reason == "MAX_TOKENS" else "")
