"""A batch's results as JSON Lines or CSV, streamed in constant memory.

Each page of items is read in a new short session (keyset on the item id), formatted and
yielded: no snapshot or pooled connection is held for the whole download, and memory is one
page whatever the batch's size. The route checks the key, the batch and the format before
the stream starts, so those answer real 404/422s.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Literal

from visionq.api.deps import ApiResources
from visionq.models.batches import ItemRow, items_page
from visionq.vision.costing import usd_text
from visionq.vision.pricing import format_usd

ExportFormat = Literal["jsonl", "csv"]
MEDIA_TYPES: dict[str, str] = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
CSV_COLUMNS = (
    "key",
    "job_id",
    "status",
    "task",
    "model",
    "text",
    "error_code",
    "error_message",
    "prompt_tokens",
    "candidates_tokens",
    "thoughts_tokens",
    "total_tokens",
    "cost_usd",
    "estimate_max_usd",
    "reruns",
    "created_at",
    "finished_at",
    "result_json",
)
EXPIRED = "expired"


def _when(moment: datetime | None) -> str | None:
    # As the API's JSON shows datetimes (pydantic: UTC as "Z").
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def _estimate_max(row: ItemRow) -> str | None:
    cost = row.estimate.cost_usd if row.estimate is not None else None
    return format_usd(cost.max) if cost is not None else None


def _status(row: ItemRow) -> str:
    # An item whose job retention deleted (job_id set NULL) reads as expired.
    return row.status if row.job_id is not None else EXPIRED


def export_record(row: ItemRow) -> dict[str, Any]:
    """One item as a JSON Lines record."""
    error = None
    if row.error_code:
        error = {"code": row.error_code, "message": row.error_message or ""}
    return {
        "key": row.key,
        "job_id": row.job_id,
        "status": _status(row),
        "task": row.task,
        "model": row.model,
        "result": row.result,
        "error": error,
        "usage": {
            "prompt_tokens": row.prompt_tokens,
            "candidates_tokens": row.candidates_tokens,
            "thoughts_tokens": row.thoughts_tokens,
            "total_tokens": row.total_tokens,
        },
        "cost_usd": usd_text(row.cost_nusd) if row.cost_nusd is not None else None,
        "estimate_max_usd": _estimate_max(row),
        "reruns": row.reruns,
        "created_at": _when(row.created_at),
        "finished_at": _when(row.finished_at),
    }


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def result_text(result: dict[str, Any] | None) -> str:
    """The CSV's text column: classify's label, else the answer's text ('' for others)."""
    if not result:
        return ""
    value = result.get("label") if "label" in result else result.get("text")
    return value if isinstance(value, str) else ""


# A cell starting with one of these is a formula to a spreadsheet (a file named
# "=HYPERLINK(...).jpg" would be one): such cells get a leading ' (OWASP's CSV injection advice).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """``value``, with a leading ' when a spreadsheet would read it as a formula."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def csv_fields(row: ItemRow) -> list[object]:
    """One item as a CSV row (CSV_COLUMNS' order); nulls are empty cells. The key and text
    columns (client and model text) are spreadsheet_safe."""
    return [
        spreadsheet_safe(row.key),
        row.job_id,
        _status(row),
        row.task,
        row.model,
        spreadsheet_safe(result_text(row.result)),
        row.error_code,
        row.error_message,
        row.prompt_tokens,
        row.candidates_tokens,
        row.thoughts_tokens,
        row.total_tokens,
        usd_text(row.cost_nusd) if row.cost_nusd is not None else None,
        _estimate_max(row),
        row.reruns,
        _when(row.created_at),
        _when(row.finished_at),
        _compact(row.result) if row.result is not None else None,
    ]


def jsonl_chunk(rows: Iterable[ItemRow]) -> bytes:
    """A page of items as JSON Lines (one record a line, each line ending in \\n)."""
    return "".join(_compact(export_record(row)) + "\n" for row in rows).encode("utf-8")


class CsvChunks:
    """CSV pages through one reused buffer; the header comes with the first page."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        # The csv module quotes fields holding commas, quotes or newlines (RFC 4180); \r\n
        # line ends as the RFC has them.
        self._writer = csv.writer(self._buffer)

    def header(self) -> bytes:
        return self._take([list(CSV_COLUMNS)])

    def chunk(self, rows: Iterable[ItemRow]) -> bytes:
        return self._take(csv_fields(row) for row in rows)

    def _take(self, records: Iterable[list[object]]) -> bytes:
        self._writer.writerows(records)
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode("utf-8")


def pages(resources: ApiResources, batch_id: str, status: str | None) -> Iterator[list[ItemRow]]:
    """The batch's items a page at a time, in the order they were added; each page read in
    its own short session."""
    size = resources.settings.batch_export_page
    after = 0
    while True:
        with resources.sessions() as session:
            rows = items_page(session, batch_id, after_id=after, limit=size, status=status)
        if rows:
            yield rows
        if len(rows) < size:
            return
        after = rows[-1].id


def export_stream(
    resources: ApiResources, batch_id: str, fmt: ExportFormat, status: str | None
) -> Iterator[bytes]:
    """The batch's results as bytes, a page per chunk (sync: Starlette iterates it in its
    thread pool, and the client's reading paces it)."""
    if fmt == "csv":
        chunks = CsvChunks()
        yield chunks.header()
        for rows in pages(resources, batch_id, status):
            yield chunks.chunk(rows)
        return
    for rows in pages(resources, batch_id, status):
        yield jsonl_chunk(rows)
