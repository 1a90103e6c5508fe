"""A Gemini batch's output lines, read into :class:`LineOutcome` (worker/batch_results.py
stores them).

Lines are matched to jobs by the id they carry (inline: ``metadata.job_id``, echoed back by
Gemini; file: ``key``), never by position; a line naming no job of ours, or unreadable, is
logged and skipped (its job is re-sent as missing). A line's error is a google.rpc Status,
mapped to the GeminiCallError a sync call would have raised (:func:`line_error`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.genai import errors as genai_errors
from google.genai import types
from pydantic import BaseModel, ConfigDict, ValidationError

from visionq.worker.errors import GeminiCallError
from visionq.worker.gemini import _from_api_error

log = logging.getLogger(__name__)


class RpcStatus(BaseModel):
    """A google.rpc Status as a batch line carries it: ``code`` may be an HTTP status or a
    gRPC code (13); ``status`` (the name), when given, decides."""

    model_config = ConfigDict(extra="allow")

    code: int | str | None = None
    message: str | None = None
    status: str | None = None


class OutputLine(BaseModel):
    """One line of a batch's JSONL output: ``{"key", "response"}`` or ``{"key", "error"}``."""

    model_config = ConfigDict(extra="ignore")

    key: str | int
    response: types.GenerateContentResponse | None = None
    error: RpcStatus | None = None


@dataclass(frozen=True)
class LineOutcome:
    """One line of a batch's output: the job it answers, and its response or its error
    (a google.rpc Status as a dict: ``code``, ``message``, maybe ``status``)."""

    job_id: str
    response: types.GenerateContentResponse | None
    error: dict[str, Any] | None


def read_inline(responses: Sequence[types.InlinedResponse]) -> Iterator[LineOutcome]:
    """The lines of an inline batch, each with the job id its metadata echoes."""
    for index, item in enumerate(responses):
        job_id = (item.metadata or {}).get("job_id")
        if not job_id:
            log.warning("inline batch response %d names no job (metadata %s); skipped",
                        index, item.metadata)  # fmt: skip
            continue
        error = item.error.model_dump(mode="json", exclude_none=True) if item.error else None
        yield _outcome(str(job_id), item.response, error)


def read_jsonl(path: Path) -> Iterator[LineOutcome]:
    """The lines of a batch's output file, streamed; an unreadable line is logged and
    skipped (its job is re-sent as missing)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                line = OutputLine.model_validate_json(raw)
            except ValidationError as exc:
                log.warning("batch output %s line %d unreadable (%s); skipped",
                            path.name, number, exc)  # fmt: skip
                continue
            error = line.error.model_dump(exclude_none=True) if line.error else None
            yield _outcome(str(line.key), line.response, error)


def _outcome(
    job_id: str, response: types.GenerateContentResponse | None, error: dict[str, Any] | None
) -> LineOutcome:
    if response is None and error is None:
        # Neither answer nor error (the error line's shape is unconfirmed): a line error
        # worth another try, not a failed job.
        error = {"code": 500, "status": "INTERNAL",
                 "message": "the batch line held neither a response nor an error"}  # fmt: skip
    return LineOutcome(job_id, response, error)


def line_error(error: Mapping[str, Any]) -> GeminiCallError:
    """A line's google.rpc Status as the GeminiCallError a sync call would have raised
    (same codes and retryability: worker/gemini.py). Its ``code`` may be an HTTP status or
    a gRPC code (13): the status name, when given, decides."""
    try:
        parsed = RpcStatus.model_validate(dict(error))
    except ValidationError:
        parsed = RpcStatus()
    status = (parsed.status or "").upper() or None
    raw = parsed.code
    code = int(raw) if raw is not None and str(raw).isdigit() else None
    if status in _HTTP_OF_STATUS:
        http = _HTTP_OF_STATUS[status]
    elif code is not None and code >= 100:
        http = code
    else:
        http = _HTTP_OF_GRPC.get(code or 0, 500)
    name = status or _STATUS_OF_HTTP.get(http, "UNKNOWN")
    message = parsed.message or "no message"
    body = {"error": {"code": http, "message": message, "status": name}}
    return _from_api_error(genai_errors.APIError(http, body))


_HTTP_OF_STATUS = {
    "INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "INTERNAL": 500, "UNKNOWN": 500,
    "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504,
}  # fmt: skip
_STATUS_OF_HTTP = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                   429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
                   504: "DEADLINE_EXCEEDED"}  # fmt: skip
# google.rpc.Code numbers: INVALID_ARGUMENT 3, DEADLINE_EXCEEDED 4, NOT_FOUND 5,
# PERMISSION_DENIED 7, RESOURCE_EXHAUSTED 8, FAILED_PRECONDITION 9, INTERNAL 13, UNAVAILABLE 14.
_HTTP_OF_GRPC = {3: 400, 4: 504, 5: 404, 7: 403, 8: 429, 9: 400, 13: 500, 14: 503}

__all__ = ["LineOutcome", "OutputLine", "RpcStatus", "line_error", "read_inline", "read_jsonl"]
