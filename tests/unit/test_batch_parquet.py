"""`visionq batch export --format parquet`: the API's JSON Lines stream written as Parquet a
row group at a time (pyarrow), typed, whole or not at all."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.unit.batch_fakes import FakeBatchApi, install_batch_api
from tests.unit.cli_fakes import png_file, run
from visionq.cli.batch_export import (
    ParquetUnavailableError,
    jsonl_records,
    parquet_schema,
    write_parquet,
)


def _record(index: int) -> dict[str, Any]:
    failed = index % 3 == 0
    return {
        "key": f"folder/é,\"quoted\"\n{index}.png", "job_id": f"job-{index}",
        "status": "failed" if failed else "succeeded", "task": "classify", "model": "gemini-x",
        "result": None if failed else {"label": "cat", "confidence": 0.9},
        "error": {"code": "blocked", "message": "Blocked."} if failed else None,
        "usage": {"prompt_tokens": 100 + index, "candidates_tokens": 5,
                  "thoughts_tokens": None, "total_tokens": 105 + index},
        "cost_usd": None if failed else "0.000012345", "estimate_max_usd": "0.0001",
        "reruns": index % 2, "created_at": "2026-12-05T10:00:00.123456Z",
        "finished_at": None if failed else "2026-12-05T10:00:01Z",
    }  # fmt: skip


def _stream(records: list[dict[str, Any]], piece: int = 37) -> Iterator[bytes]:
    """The JSON Lines bytes cut every ``piece`` bytes (chunks end mid-line, as a network's)."""
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    for start in range(0, len(data), piece):
        yield data[start : start + piece]


def test_round_trip_with_typed_columns(tmp_path: Path) -> None:
    records = [_record(i) for i in range(10)]
    out = tmp_path / "r.parquet"
    assert write_parquet(_stream(records), out, row_group=4) == 10
    parquet = pq.ParquetFile(out)
    assert parquet.metadata.num_row_groups == 3  # 4 + 4 + 2: memory is one group
    assert parquet.schema_arrow == parquet_schema()
    rows = parquet.read().to_pylist()
    assert [row["key"] for row in rows] == [record["key"] for record in records]
    ok, failed = rows[1], rows[0]
    assert ok["text"] == "cat" and json.loads(ok["result_json"]) == records[1]["result"]
    assert ok["cost_usd"] == Decimal("0.000012345") and ok["estimate_max_usd"] == Decimal("0.0001")
    assert ok["prompt_tokens"] == 101 and ok["thoughts_tokens"] is None and ok["reruns"] == 1
    assert ok["created_at"] == datetime(2026, 12, 5, 10, 0, 0, 123456, tzinfo=UTC)
    assert failed["error_code"] == "blocked" and failed["error_message"] == "Blocked."
    assert failed["result_json"] is None and failed["cost_usd"] is None
    assert failed["finished_at"] is None and failed["status"] == "failed"


def test_the_default_row_group_is_5000(tmp_path: Path) -> None:
    out = tmp_path / "r.parquet"
    assert write_parquet(_stream([_record(i) for i in range(5001)], piece=65536), out) == 5001
    metadata = pq.ParquetFile(out).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [5000, 1]


def test_an_empty_export_is_a_file_with_the_columns(tmp_path: Path) -> None:
    out = tmp_path / "empty.parquet"
    assert write_parquet(iter([]), out) == 0
    table = pq.read_table(out)
    assert table.num_rows == 0 and table.schema == parquet_schema()


def test_a_broken_stream_leaves_no_file(tmp_path: Path) -> None:
    def broken() -> Iterator[bytes]:
        yield json.dumps(_record(1)).encode() + b"\n"
        raise ConnectionError("lost")

    out = tmp_path / "r.parquet"
    with pytest.raises(ConnectionError):
        write_parquet(broken(), out)
    assert list(tmp_path.iterdir()) == []


def test_jsonl_records_joins_lines_cut_across_chunks() -> None:
    assert list(jsonl_records([b'{"a"', b': 1}\n{"b": 2}', b"\n\n", b'{"c": 3}'])) == [
        {"a": 1}, {"b": 2}, {"c": 3},
    ]  # fmt: skip


def test_without_pyarrow_the_message_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ParquetUnavailableError, match=r"pip install 'visionq\[parquet\]'"):
        write_parquet(iter([]), tmp_path / "r.parquet")


def test_the_command_writes_parquet(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    api: FakeBatchApi = install_batch_api(monkeypatch)
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(3):
        png_file(photos / f"{index}.png", size=(8 + index, 8))
    assert run("batch", "run", str(photos), "-t", "caption", "--name", "b").exit_code == 0
    out = tmp_path / "results.parquet"
    result = run("batch", "export", "b", "--format", "parquet", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "3 item(s) written to" in result.stderr
    rows = pq.read_table(out).to_pylist()
    assert [row["key"] for row in rows] == ["0.png", "1.png", "2.png"]
    assert rows[0]["text"] == "a picture of 0.png"
    assert ("GET", f"/v1/batches/{next(iter(api.batches))}/results") in api.requests
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    missing = run("batch", "export", "b", "--format", "parquet", "--out", str(out))
    assert missing.exit_code == 1 and "visionq[parquet]" in missing.stderr
