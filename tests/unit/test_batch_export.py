"""A batch's export rows as JSON Lines and CSV (api/batch_export.py): every field of the
item and its latest job, keys with commas, quotes and newlines kept intact."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from visionq.api.batch_export import (
    CSV_COLUMNS,
    CsvChunks,
    export_stream,
    jsonl_chunk,
    result_text,
)
from visionq.models.batches import ItemRow
from visionq.vision.estimate import CostRange, StoredEstimate

CREATED = datetime(2026, 12, 5, 7, 0, 0, 123456, tzinfo=UTC)
FINISHED = datetime(2026, 12, 5, 7, 0, 3, tzinfo=UTC)
JOB = "0b7e7a4e-8c1c-4c55-9d6e-3f1f2a2b3c4d"


def _row(key: str = "a/b.jpg", **values: Any) -> ItemRow:
    fields: dict[str, Any] = {
        "id": 1, "key": key, "reruns": 0, "job_id": JOB, "status": "succeeded",
        "task": "caption", "model": "gemini-x", "result": {"text": "a cat, on a mat"},
        "error_code": None, "error_message": None, "prompt_tokens": 100,
        "candidates_tokens": 20, "thoughts_tokens": 0, "total_tokens": 120,
        "cost_nusd": 1_500, "created_at": CREATED, "finished_at": FINISHED,
        "estimate": StoredEstimate(
            model="gemini-x", cost_usd=CostRange(min=Decimal("0.000001"), max=Decimal("0.00002"))
        ),
    }  # fmt: skip
    fields.update(values)
    return ItemRow(**fields)


HARD_KEYS = ["plain.jpg", "with, comma.png", 'quote "q".webp', "new\nline.jpg", "ünï — ✓.png"]


def test_a_jsonl_line_holds_the_item_and_its_job() -> None:
    (line,) = jsonl_chunk([_row()]).decode().splitlines()
    assert json.loads(line) == {
        "key": "a/b.jpg", "job_id": JOB, "status": "succeeded", "task": "caption",
        "model": "gemini-x", "result": {"text": "a cat, on a mat"}, "error": None,
        "usage": {"prompt_tokens": 100, "candidates_tokens": 20, "thoughts_tokens": 0,
                  "total_tokens": 120},
        "cost_usd": "0.0000015", "estimate_max_usd": "0.00002", "reruns": 0,
        "created_at": "2026-12-05T07:00:00.123456Z", "finished_at": "2026-12-05T07:00:03Z",
    }  # fmt: skip


def test_a_failed_and_an_expired_item_carry_their_error_and_status() -> None:
    failed = _row(status="failed", result=None, error_code="gemini_refused", error_message="No.")
    expired = _row(job_id=None, status="expired", task=None, model=None, result=None,
                   cost_nusd=None, estimate=None, finished_at=None)  # fmt: skip
    first, second = (json.loads(line) for line in jsonl_chunk([failed, expired]).splitlines())
    assert first["error"] == {"code": "gemini_refused", "message": "No."}
    assert first["result"] is None
    assert second["status"] == "expired" and second["job_id"] is None
    assert second["cost_usd"] is None and second["estimate_max_usd"] is None


def test_keys_survive_both_formats() -> None:
    rows = [_row(key, id=index + 1) for index, key in enumerate(HARD_KEYS)]
    lines = jsonl_chunk(rows).decode("utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == len(HARD_KEYS) + 1  # a newline in a key is escaped
    assert [json.loads(line)["key"] for line in lines[:-1]] == HARD_KEYS
    chunks = CsvChunks()
    text = (chunks.header() + chunks.chunk(rows[:2]) + chunks.chunk(rows[2:])).decode("utf-8")
    records = list(csv.reader(io.StringIO(text, newline="")))
    assert records[0] == list(CSV_COLUMNS)
    assert [record[0] for record in records[1:]] == HARD_KEYS


def test_a_csv_row_has_every_column_in_order() -> None:
    chunks = CsvChunks()
    chunks.header()
    (record,) = csv.reader(io.StringIO(chunks.chunk([_row()]).decode(), newline=""))
    assert dict(zip(CSV_COLUMNS, record, strict=True)) == {
        "key": "a/b.jpg", "job_id": JOB, "status": "succeeded", "task": "caption",
        "model": "gemini-x", "text": "a cat, on a mat", "error_code": "", "error_message": "",
        "prompt_tokens": "100", "candidates_tokens": "20", "thoughts_tokens": "0",
        "total_tokens": "120", "cost_usd": "0.0000015", "estimate_max_usd": "0.00002",
        "reruns": "0", "created_at": "2026-12-05T07:00:00.123456Z",
        "finished_at": "2026-12-05T07:00:03Z", "result_json": '{"text":"a cat, on a mat"}',
    }  # fmt: skip


def test_the_text_column_is_the_label_for_classify() -> None:
    assert result_text({"label": "cat", "text": "It is a cat."}) == "cat"
    assert result_text({"text": "a dog"}) == "a dog"
    assert result_text({"json": {"a": 1}}) == "" and result_text(None) == ""


class _Sessions:
    """A session factory for export_stream: a context manager yielding a marker."""

    def __init__(self) -> None:
        self.opened = 0

    def __call__(self) -> _Sessions:
        self.opened += 1
        return self

    def __enter__(self) -> object:
        return object()

    def __exit__(self, *exc: object) -> None:
        return None


def test_the_stream_reads_a_page_per_session(monkeypatch: Any) -> None:
    rows = [_row(f"k{index}", id=index + 1) for index in range(25)]
    asked: list[int] = []

    def items_page(_: object, batch_id: str, *, after_id: int, limit: int,
                   status: str | None = None) -> list[ItemRow]:  # fmt: skip
        asked.append(after_id)
        return [row for row in rows if row.id > after_id][:limit]

    monkeypatch.setattr("visionq.api.batch_export.items_page", items_page)
    sessions = _Sessions()

    resources: Any = SimpleNamespace(
        settings=SimpleNamespace(batch_export_page=10), sessions=sessions
    )
    chunks: Iterator[bytes] = export_stream(resources, "b", "jsonl", None)
    lines = b"".join(chunks).decode().splitlines()
    assert [json.loads(line)["key"] for line in lines] == [row.key for row in rows]
    # Three pages (10, 10, 5), each in a session of its own.
    assert asked == [0, 10, 20] and sessions.opened == 3
    csv_text = b"".join(export_stream(resources, "b", "csv", None)).decode()
    assert len(list(csv.reader(io.StringIO(csv_text, newline="")))) == 26


def test_csv_cells_a_spreadsheet_would_run_are_quoted() -> None:
    """Keys and texts starting with = + - @ (a file named =HYPERLINK(...).jpg) get a
    leading ' in CSV (OWASP's advice); JSON Lines keeps them as they are."""
    chunks = CsvChunks()
    chunks.header()
    rows = [
        _row('=HYPERLINK("http://x").jpg', result={"text": "+1 cat"}),
        _row("@sum.png", result={"label": "-dog"}),
        _row("a=b.png", result={"text": "fine = fine"}),
    ]
    records = list(csv.reader(io.StringIO(chunks.chunk(rows).decode(), newline="")))
    key, text = CSV_COLUMNS.index("key"), CSV_COLUMNS.index("text")
    assert [(record[key], record[text]) for record in records] == [
        ('\'=HYPERLINK("http://x").jpg', "'+1 cat"),
        ("'@sum.png", "'-dog"),
        ("a=b.png", "fine = fine"),
    ]
    assert json.loads(jsonl_chunk(rows[:1]))["key"] == '=HYPERLINK("http://x").jpg'
