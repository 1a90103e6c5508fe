"""A fake Gemini Batch API (worker/batch_api.GeminiBatches' methods) for the lane's tests."""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from google.genai import types

from visionq.worker.batch_api import RemoteBatch
from visionq.worker.errors import GeminiCallError

USAGE = {"promptTokenCount": 1000, "candidatesTokenCount": 100, "totalTokenCount": 1100}


def answer(text: str) -> dict[str, Any]:
    """A generateContent response (camelCase JSON) answering ``text``."""
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                        "finishReason": "STOP"}],
        "usageMetadata": USAGE,
    }  # fmt: skip


class FakeBatches:
    """Keeps batches in memory; ``on_create`` runs inside create (to look at the database
    while the create is in flight); ``create_error`` is raised by the next creates."""

    def __init__(self, tmp: Path) -> None:
        self.remotes: dict[str, RemoteBatch] = {}
        self.sources: dict[str, list[types.InlinedRequest] | str] = {}
        self.files: dict[str, Path] = {}
        self.cancelled: list[str] = []
        self.deleted: list[str] = []
        self.deleted_files: list[str] = []
        self.create_error: GeminiCallError | None = None
        self.on_create: Callable[[str], None] | None = None
        self._ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._tmp = tmp

    def create(
        self, *, model: str, src: list[types.InlinedRequest] | str, display_name: str
    ) -> RemoteBatch:
        if self.on_create is not None:
            self.on_create(display_name)
        if self.create_error is not None:
            raise self.create_error
        name = f"batches/b{next(self._ids)}"
        self.sources[name] = src
        remote = RemoteBatch(name=name, display_name=display_name, state="BATCH_STATE_PENDING")
        self.remotes[name] = remote
        return remote

    def upload_jsonl(self, path: Path, *, display_name: str) -> str:
        name = f"files/in{next(self._file_ids)}"
        copy = self._tmp / name.replace("/", "-")
        shutil.copy(path, copy)
        self.files[name] = copy
        return name

    def input_lines(self, name: str) -> list[dict[str, Any]]:
        source = self.sources[name]
        assert isinstance(source, str)
        return [json.loads(line) for line in self.files[source].read_text().splitlines()]

    def finish(self, name: str, state: str, texts: dict[str, str]) -> None:
        """End batch ``name`` in ``state`` with an answer per job id in ``texts``."""
        remote = self.remotes[name]
        source = self.sources[name]
        output = None
        if isinstance(source, str):
            output = f"files/batch-{name.removeprefix('batches/')}"
            path = self._tmp / output.replace("/", "-")
            lines = [{"key": key, "response": answer(text)} for key, text in texts.items()]
            path.write_text("\n".join(json.dumps(line) for line in lines))
            self.files[output] = path
        else:
            self.inline = getattr(self, "inline", {})
            self.inline[name] = [
                types.InlinedResponse(
                    response=types.GenerateContentResponse.model_validate(answer(text)),
                    metadata={"job_id": key},
                )
                for key, text in texts.items()
            ]
        self.remotes[name] = RemoteBatch(
            name=name, display_name=remote.display_name, state=state,
            stats={"requestCount": len(texts)}, responses_file=output,
        )  # fmt: skip

    def get(self, name: str) -> RemoteBatch:
        if name not in self.remotes:
            raise GeminiCallError("gemini_not_found", f"{name} not found", http_status=404)
        return self.remotes[name]

    def inlined(self, name: str) -> list[types.InlinedResponse]:
        return list(getattr(self, "inline", {}).get(name, []))

    def list_all(self) -> Iterator[RemoteBatch]:
        return iter(list(self.remotes.values()))

    def cancel(self, name: str) -> None:
        self.cancelled.append(name)

    def delete(self, name: str) -> None:
        self.deleted.append(name)
        self.remotes.pop(name, None)

    def download(self, file_name: str, destination: Path) -> None:
        shutil.copy(self.files[file_name], destination)

    def delete_file(self, name: str) -> None:
        self.deleted_files.append(name)

    def close(self) -> None:
        pass
