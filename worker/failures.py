"""The job error code of each coded error that ends a job in the worker, declared once.

A job that fails stores a code a user can act on (README lists them). The worker's failure
mapping (worker/pipeline.py) reads the error's ``code`` through this table instead of
choosing one per call site; tests/unit/test_error_codes.py checks every code of
GeminiCallError and ImageRejectedError has its entry.
"""

from __future__ import annotations

from vision.errors import CodedError

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
}
# Codes built at run time that a job keeps as they are: gemini_<status>, the lower-cased
# google.rpc status of Google's answer (gemini_invalid_argument, gemini_unavailable, ...).
JOB_ERROR_PREFIXES: tuple[str, ...] = ("gemini_",)


def job_error_code(exc: CodedError) -> str:
    """The code a job that ``exc`` ended stores. A code with no entry is kept as it is (so a
    failure is always recorded), but the unit test makes sure there is none."""
    return JOB_ERROR_CODES.get(exc.code, exc.code)
