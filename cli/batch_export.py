"""`visionq batch export`: the API's JSON Lines or CSV stream written as it arrives, or turned
into Parquet (pyarrow, the optional extra ``visionq[parquet]``) a row group at a time, so
memory stays flat whatever the batch's size."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

# Rows per Parquet row group: also the most rows held in memory at once.
ROW_GROUP = 5000
# The Parquet columns: the CSV export's (api/batch_export.py CSV_COLUMNS), typed.
STRING_COLUMNS = ("key", "job_id", "status", "task", "model", "text", "error_code",
                  "error_message")  # fmt: skip
INT_COLUMNS = ("prompt_tokens", "candidates_tokens", "thoughts_tokens", "total_tokens")
USD_COLUMNS = ("cost_usd", "estimate_max_usd")
TIME_COLUMNS = ("created_at", "finished_at")
# USD to the nano-dollar, as the API counts it; 18 digits hold up to $999,999,999.
USD_SCALE = 9
_NANO = Decimal(1).scaleb(-USD_SCALE)


class ParquetUnavailableError(RuntimeError):
    """pyarrow is not installed."""


def write_stream(chunks: Iterable[bytes], out: Path | None) -> None:
    """The export's bytes to ``out`` (written whole or not at all: a temporary file renamed
    at the end) or, with None, to stdout as they come."""
    if out is None:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return
    with _atomic(out) as handle:
        for chunk in chunks:
            handle.write(chunk)


def jsonl_records(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The records of a JSON Lines stream whose chunks may end mid-line."""
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            if line.strip():
                yield json.loads(line)
    if rest.strip():
        yield json.loads(rest)


def parquet_row(record: dict[str, Any]) -> dict[str, Any]:
    """One JSON Lines record as a Parquet row: the CSV's columns, numbers and times typed,
    the result as compact JSON (``result_json``)."""
    result = record.get("result")
    error = record.get("error") or {}
    usage = record.get("usage") or {}
    text = None
    if isinstance(result, dict):
        value = result.get("label") if "label" in result else result.get("text")
        text = value if isinstance(value, str) else None
    row: dict[str, Any] = {name: record.get(name) for name in STRING_COLUMNS}
    row |= {"text": text, "error_code": error.get("code"), "error_message": error.get("message")}
    row |= {name: usage.get(name) for name in INT_COLUMNS}
    row |= {name: _usd(record.get(name)) for name in USD_COLUMNS}
    row["reruns"] = record.get("reruns")
    row |= {name: _time(record.get(name)) for name in TIME_COLUMNS}
    row["result_json"] = (
        json.dumps(result, ensure_ascii=False, separators=(",", ":"))
        if result is not None
        else None
    )
    return row


def _usd(text: Any) -> Decimal | None:
    return Decimal(str(text)).quantize(_NANO) if text is not None else None


def _time(text: Any) -> datetime | None:
    return datetime.fromisoformat(str(text)) if text else None


def parquet_schema() -> Any:
    """The Parquet file's schema (a pyarrow.Schema)."""
    pa = _pyarrow()
    fields = [(name, pa.string()) for name in STRING_COLUMNS]
    fields += [(name, pa.int64()) for name in INT_COLUMNS]
    fields += [(name, pa.decimal128(18, USD_SCALE)) for name in USD_COLUMNS]
    fields += [("reruns", pa.int64())]
    fields += [(name, pa.timestamp("us", tz="UTC")) for name in TIME_COLUMNS]
    fields += [("result_json", pa.string())]
    return pa.schema(fields)


def write_parquet(chunks: Iterable[bytes], out: Path, *, row_group: int = ROW_GROUP) -> int:
    """The JSON Lines export ``chunks`` as a Parquet file at ``out``, ``row_group`` rows at a
    time (written whole or not at all); the number of rows."""
    pa = _pyarrow()
    import pyarrow.parquet as pq

    schema = parquet_schema()
    rows = 0
    with _atomic(out) as handle, pq.ParquetWriter(handle, schema) as writer:
        group: list[dict[str, Any]] = []
        for record in jsonl_records(chunks):
            group.append(parquet_row(record))
            if len(group) >= row_group:
                writer.write_table(pa.Table.from_pylist(group, schema=schema), row_group)
                rows += len(group)
                group = []
        if group or rows == 0:  # an empty batch still gets a file with its columns
            writer.write_table(pa.Table.from_pylist(group, schema=schema), row_group)
            rows += len(group)
    return rows


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError as exc:
        raise ParquetUnavailableError(
            "--format parquet needs pyarrow: pip install 'visionq[parquet]'"
        ) from exc
    return pyarrow


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[IO[bytes]]:
    """A binary file written under a temporary name beside ``path`` and renamed to it on
    success; removed on failure (or Ctrl-C), so no half-written export is ever left."""
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".part", dir=path.parent
    )
    try:
        # mkstemp makes the file private (0600); the export gets a new file's usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
