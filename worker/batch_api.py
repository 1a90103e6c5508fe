"""Gemini's Batch API through the google-genai SDK, with errors translated.

Every call goes through the SDK's own client (its transport, key, base URL, retries and
timeouts), and every failure comes out as ``GeminiCallError`` as in worker/gemini.py (a
404 keeps ``http_status`` 404: the reconciler and the poller tell "gone" from "down").

One call is not the SDK's public surface: the SDK (3.6.1) parses a batch into ``BatchJob``
and drops ``batchStats`` and the Operation's ``error``, which the watchdog needs to see
progress. :func:`raw_operation` reads the Operation as Gemini sent it through the SDK's
private ``_api_client.request``; it is the only place that does, and
tests/emulator/test_batch_api_wrapper.py pins it (an SDK upgrade that breaks it fails there).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from google import genai
from google.genai import types
from pydantic import BaseModel, BeforeValidator, ConfigDict, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from visionq.vision.catalogue import ServiceTier
from visionq.worker.errors import GeminiCallError
from visionq.worker.gemini import _translated

__all__ = ["GeminiBatches", "RemoteBatch", "batch_state", "raw_operation"]

# Gemini's states as the API names them; the SDK renames them JOB_STATE_*.
PENDING = "BATCH_STATE_PENDING"
RUNNING = "BATCH_STATE_RUNNING"
SUCCEEDED = "BATCH_STATE_SUCCEEDED"
FAILED = "BATCH_STATE_FAILED"
CANCELLED = "BATCH_STATE_CANCELLED"
EXPIRED = "BATCH_STATE_EXPIRED"
LIVE = frozenset({PENDING, RUNNING})
ENDED = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED})
_LIST_PAGE = 100
# The tier label of the lane's calls in the Gemini metrics (worker/gemini.py _translated).
_BATCH = ServiceTier.BATCH.value
# How often an uploaded input file is asked for its state until it is ACTIVE.
_ACTIVE_POLL_S = 0.25
_TIMES: TypeAdapter[datetime] = TypeAdapter(datetime)


@dataclass(frozen=True)
class RemoteBatch:
    """A Gemini batch as Gemini reports it.

    ``state`` is Gemini's own name (``BATCH_STATE_*``, see :func:`batch_state`); ``stats``
    holds ``batchStats`` as ints (zero counts, which Gemini omits, are absent: read with
    ``.get(key, 0)``), empty when the call that produced it does not carry them (create,
    list). ``error`` is the Operation's google.rpc Status of a failed batch.
    """

    name: str
    display_name: str | None
    state: str
    create_time: datetime | None = None
    update_time: datetime | None = None
    end_time: datetime | None = None
    stats: dict[str, int] = field(default_factory=dict)
    responses_file: str | None = None
    error: dict[str, Any] | None = None

    @property
    def live(self) -> bool:
        """Still pending or running in Gemini."""
        return self.state in LIVE


def batch_state(state: str | None) -> str:
    """Gemini's state name (``BATCH_STATE_RUNNING``) from either spelling (the SDK's
    ``JOB_STATE_RUNNING`` or an enum); unknown or missing → ``BATCH_STATE_UNSPECIFIED``."""
    text = str(getattr(state, "value", state) or "")
    suffix = text.removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_")
    return f"BATCH_STATE_{suffix or 'UNSPECIFIED'}"


def raw_operation(client: genai.Client, name: str) -> dict[str, Any]:
    """The batch Operation ``name`` ("batches/<id>") as Gemini sent it, JSON-decoded.

    Through the SDK's private ``_api_client.request`` (the typed ``batches.get`` drops
    batchStats): the same transport, auth and HTTP errors (``APIError``) as the public calls.
    """
    path = name if name.startswith("batches/") else f"batches/{name}"
    response = client._api_client.request("get", path, {})
    body = json.loads(response.body) if response.body else {}
    if not isinstance(body, dict):
        raise ValueError(f"Gemini answered GET {name} with a {type(body).__name__}, not an object")
    return body


def _count(value: Any) -> int:
    """An int64 count as Gemini sends it (a JSON string), or 0 when unreadable."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _when(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (nanoseconds cut to micro), None when missing or unreadable."""
    if not value:
        return None
    try:
        return _TIMES.validate_python(value)
    except ValidationError:
        return None


def _object(value: Any) -> Any:
    """A missing (null) object read as an empty one."""
    return value if value is not None else {}


_Count = Annotated[int, BeforeValidator(_count)]
_When = Annotated[datetime | None, BeforeValidator(_when)]
_CAMEL = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class _Output(BaseModel):
    model_config = _CAMEL

    responses_file: str | None = None


class _Metadata(BaseModel):
    """An Operation's metadata (a GenerateContentBatch): what the lane reads of it."""

    model_config = _CAMEL

    display_name: str | None = None
    state: Annotated[str | None, BeforeValidator(lambda v: None if v is None else str(v))] = None
    create_time: _When = None
    update_time: _When = None
    end_time: _When = None
    batch_stats: Annotated[dict[str, _Count], BeforeValidator(_object)] = {}
    output: _Output | None = None


class Operation(BaseModel):
    """A batch Operation as Gemini sends it (batchStats as int64 strings; the top-level
    ``error`` of a failed batch, a google.rpc Status)."""

    model_config = _CAMEL

    name: Annotated[str, BeforeValidator(lambda v: "" if v is None else v)] = ""
    metadata: Annotated[_Metadata, BeforeValidator(_object)] = _Metadata()
    response: _Output | None = None
    error: dict[str, Any] | None = None


def remote_from_operation(operation: Mapping[str, Any]) -> RemoteBatch:
    """A RemoteBatch from a raw Operation (metadata.state, batchStats as int64 strings,
    output.responsesFile; the top-level ``error`` of a failed batch). A body that is not an
    Operation raises ValidationError (a ValueError)."""
    parsed = Operation.model_validate(operation)
    metadata = parsed.metadata
    output = metadata.output or parsed.response
    return RemoteBatch(
        name=parsed.name,
        display_name=metadata.display_name,
        state=batch_state(metadata.state),
        create_time=metadata.create_time,
        update_time=metadata.update_time,
        end_time=metadata.end_time,
        stats=dict(metadata.batch_stats),
        responses_file=output.responses_file if output else None,
        error=parsed.error,
    )


def remote_from_job(job: types.BatchJob) -> RemoteBatch:
    """A RemoteBatch from the SDK's typed BatchJob (create and list: no batchStats)."""
    error = job.error.model_dump(mode="json", exclude_none=True) if job.error else None
    return RemoteBatch(
        name=job.name or "",
        display_name=job.display_name,
        state=batch_state(job.state),
        create_time=job.create_time,
        update_time=job.update_time,
        end_time=job.end_time,
        responses_file=job.dest.file_name if job.dest else None,
        error=error,
    )


class GeminiBatches:
    """Create, follow, list, cancel and delete Gemini batches, and move their files."""

    def __init__(self, client: genai.Client | None, *, secret: str | None) -> None:
        self._client = client
        self._secret = secret

    def close(self) -> None:
        """Close the SDK client's connections."""
        if self._client is not None:
            self._client.close()

    def _sdk(self) -> genai.Client:
        if self._client is None:
            raise GeminiCallError(
                "gemini_not_configured",
                "The worker has no Gemini API key: set GEMINI_API_KEY (or GOOGLE_API_KEY) "
                "for the batch lane.",
            )
        return self._client

    def create(
        self, *, model: str, src: list[types.InlinedRequest] | str, display_name: str
    ) -> RemoteBatch:
        """Create a batch from inline requests or an uploaded JSONL (``"files/<id>"``).

        Not idempotent (Gemini's): the caller records the batch first and matches it by
        ``display_name`` when the answer is lost (worker/batch_gather.py).
        """
        config = types.CreateBatchJobConfig(display_name=display_name)
        source: Any = src
        with _translated("batches.create", self._secret, model=model, tier=_BATCH):
            job = self._sdk().batches.create(model=model, src=source, config=config)
        return remote_from_job(job)

    def upload_jsonl(self, path: Path, *, display_name: str, active_timeout_s: float = 60.0) -> str:
        """Upload a JSONL input file; its name (``"files/<id>"``) once Gemini has processed
        it: a batch created from a file still PROCESSING is refused (400
        FAILED_PRECONDITION "not in an ACTIVE state"), and the SDK's upload does not wait."""
        config = types.UploadFileConfig(mime_type="jsonl", display_name=display_name)
        with _translated("files.upload", self._secret, tier=_BATCH):
            uploaded = self._sdk().files.upload(file=path, config=config)
        if not uploaded.name:
            raise GeminiCallError(
                "gemini_malformed_upload",
                f"Gemini accepted the batch input {path.name} but named no file; the batch is "
                "sent again on the next tick.",
                retryable=True,
            )
        self._wait_active(uploaded, active_timeout_s)
        return uploaded.name

    def _wait_active(self, file: types.File, timeout_s: float) -> None:
        """Poll the file until ACTIVE; FAILED is an error with Gemini's reason, and still
        PROCESSING after ``timeout_s`` a retryable one (the next tick builds it again)."""
        assert file.name is not None
        deadline = time.monotonic() + timeout_s
        current = file
        while True:
            state = current.state.value if current.state else "STATE_UNSPECIFIED"
            if state == "ACTIVE":
                return
            if state == "FAILED":
                reason = current.error.message if current.error and current.error.message else ""
                raise GeminiCallError(
                    "file_processing_failed",
                    f"Gemini could not process the batch input {file.name}: "
                    f"{reason or 'no reason given'}.",
                )
            if time.monotonic() > deadline:
                raise GeminiCallError(
                    "file_not_active",
                    f"The batch input {file.name} was still {state} after {timeout_s:.0f} s; "
                    "the batch is sent again on the next tick.",
                    retryable=True,
                )
            time.sleep(_ACTIVE_POLL_S)
            with _translated("files.get", self._secret, tier=_BATCH):
                current = self._sdk().files.get(name=file.name)

    def get(self, name: str) -> RemoteBatch:
        """The batch with its progress (batchStats, updateTime), read raw."""
        try:
            with _translated("batches.get", self._secret, tier=_BATCH):
                return remote_from_operation(raw_operation(self._sdk(), name))
        except (TypeError, ValueError, AttributeError) as exc:
            raise GeminiCallError(
                "malformed_response",
                f"Gemini's answer for {name} is not a batch Operation ({exc}); asked again "
                "on the next poll.",
                retryable=True,
            ) from exc

    def inlined(self, name: str) -> list[types.InlinedResponse]:
        """The inline responses of a finished inline batch (typed by the SDK)."""
        with _translated("batches.get", self._secret, tier=_BATCH):
            job = self._sdk().batches.get(name=name)
        if job.dest is None or not job.dest.inlined_responses:
            return []
        return list(job.dest.inlined_responses)

    def list_all(self) -> Iterator[RemoteBatch]:
        """Every batch of the project, page by page (100 a page)."""
        config = types.ListBatchJobsConfig(page_size=_LIST_PAGE)
        with _translated("batches.list", self._secret, tier=_BATCH):
            for job in self._sdk().batches.list(config=config):
                yield remote_from_job(job)

    def cancel(self, name: str) -> None:
        """Ask Gemini to cancel a batch (lines answered so far stay in its output)."""
        with _translated("batches.cancel", self._secret, tier=_BATCH):
            self._sdk().batches.cancel(name=name)

    def delete(self, name: str) -> None:
        """Delete a finished batch (its results must be stored first)."""
        with _translated("batches.delete", self._secret, tier=_BATCH):
            self._sdk().batches.delete(name=name)

    def download(self, file_name: str, destination: Path) -> None:
        """Stream an output file (``"files/batch-<id>"``: the name, never a URI) to a path."""
        with _translated("files.download", self._secret, tier=_BATCH):
            self._sdk().files.download(file=file_name, destination=destination)

    def delete_file(self, name: str) -> None:
        """Delete an uploaded file (a batch's JSONL input once the batch is done)."""
        with _translated("files.delete", self._secret, tier=_BATCH):
            self._sdk().files.delete(name=name)
