"""What a batch shows: its Operation JSON, its inlined responses and its JSONL output file.

Wire facts (GEMINI.md, "Batch API and webhooks"): counts in ``batchStats`` are int64
*strings* and zero counts are left out; the output sits in ``metadata.output`` and, once
done, also in the Operation's ``response``; inline input gives
``inlinedResponses.inlinedResponses[{response|error, metadata}]`` in request order, file
input a generated file ``files/batch-<id>`` of lines ``{"key", "response"|"error"}``.
"""

from __future__ import annotations

import json
from typing import Any

from visionq.emulator.batches import (
    CANCELLED,
    EXPIRED,
    FAILED,
    LIVE_STATES,
    SUCCEEDED,
    Batch,
)
from visionq.emulator.files import FileStore, rfc3339

TYPE_PREFIX = "type.googleapis.com/google.ai.generativelanguage.v1main."
BATCH_TYPE = TYPE_PREFIX + "GenerateContentBatch"
OUTPUT_TYPE = TYPE_PREFIX + "GenerateContentBatchOutput"
OUTPUT_MIME_TYPE = "application/jsonl"


def batch_stats(batch: Batch) -> dict[str, str]:
    """``batchStats``: int64 strings, zero counts omitted (as ProtoJSON writes them)."""
    succeeded = batch.succeeded_count()
    failed = batch.failed_count()
    counts = {
        "requestCount": len(batch.lines),
        "successfulRequestCount": succeeded,
        "failedRequestCount": failed,
        "pendingRequestCount": len(batch.lines) - succeeded - failed,
    }
    return {key: str(value) for key, value in counts.items() if value}


def output_file_id(batch: Batch) -> str:
    """The id of the batch's output file (``batch-<id>``: the dash is Google's)."""
    return f"batch-{batch.batch_id}"


def jsonl_output(batch: Batch) -> bytes:
    """The output file's bytes: one line per answered line, in input order."""
    rows = []
    for index in sorted(batch.results):
        result = batch.results[index]
        line: dict[str, Any] = {}
        key = batch.lines[index].key
        if key is not None:
            line["key"] = key
        if result.response is not None:
            line["response"] = result.response
        else:
            line["error"] = result.error
        rows.append(json.dumps(line, separators=(",", ":")))
    return ("\n".join(rows) + "\n").encode() if rows else b""


def write_output(batch: Batch, files: FileStore, ttl_s: float) -> None:
    """Store the JSONL output of a file-input batch (once it ended with results)."""
    if batch.file_name is None or batch.output_file is not None:
        return
    stored = files.add_generated(
        output_file_id(batch),
        mime_type=OUTPUT_MIME_TYPE,
        data=jsonl_output(batch),
        version=batch.api_version,
        ttl_s=ttl_s,
    )
    batch.output_file = f"files/{stored.file_id}"


def _inlined(batch: Batch) -> list[dict[str, Any]]:
    out = []
    for index in sorted(batch.results):
        result = batch.results[index]
        item: dict[str, Any] = (
            {"response": result.response}
            if result.response is not None
            else {"error": result.error}
        )
        line = batch.lines[index]
        if line.has_metadata:
            item["metadata"] = line.metadata
        out.append(item)
    return out


def _output(batch: Batch) -> dict[str, Any] | None:
    if batch.state in LIVE_STATES or batch.state in (FAILED, EXPIRED):
        return None
    if batch.file_name is not None:
        return {"responsesFile": batch.output_file} if batch.output_file else None
    responses = _inlined(batch)
    return {"inlinedResponses": {"inlinedResponses": responses}} if responses else None


def operation(batch: Batch) -> dict[str, Any]:
    """The Operation JSON of ``batches.get`` / ``list`` / ``batchGenerateContent``."""
    metadata: dict[str, Any] = {"@type": BATCH_TYPE, "model": batch.model}
    if batch.display_name:
        metadata["displayName"] = batch.display_name
    if batch.file_name is not None:
        metadata["inputConfig"] = {"fileName": batch.file_name}
    output = _output(batch)
    if output is not None:
        metadata["output"] = output
    metadata |= {
        "createTime": rfc3339(batch.created),
        "updateTime": rfc3339(batch.updated),
    }
    if batch.ended is not None:
        metadata["endTime"] = rfc3339(batch.ended)
    stats = batch_stats(batch)
    if stats:
        metadata["batchStats"] = stats
    metadata["state"] = batch.state
    metadata["name"] = batch.name
    body: dict[str, Any] = {"name": batch.name, "metadata": metadata, "done": not batch.live}
    if batch.error is not None:
        body["error"] = batch.error
    elif batch.state in (SUCCEEDED, CANCELLED):
        # EXPIRED has neither results nor an error to show (GEMINI.md: "no results").
        body["response"] = {"@type": OUTPUT_TYPE, **(output or {})}
    return body
