"""The files `visionq batch run` lists its left-out inputs in: ``--skipped FILE`` (files that
are not images, one a line) and the rejected items (JSON Lines), so that with 10,000 files
what was not added is not only in the terminal's scroll-back."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from visionq.cli.common import die

# A batch name as a file name: other characters (a "/", a space...) become "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Rejection:
    """An item the API refused at add time (not in the batch): its key, the error, and the
    input it came from (a file's path, or a manifest's ``file:line``)."""

    key: str
    code: str
    message: str
    input: str

    def text(self) -> str:
        """The stderr line: ``key: code: message``."""
        return f"{self.key}: {self.code}: {self.message}"


def default_rejected_path(batch_name: str) -> Path:
    """``<batch name>.rejected.jsonl`` in the current folder (the name made file-safe)."""
    return Path(f"{_UNSAFE.sub('_', batch_name)[:120] or 'batch'}.rejected.jsonl")


class RejectedLog:
    """Every rejected item as one JSON object a line (key, code, message, input).

    The file --rejected names is created at the start (an empty file then means none was
    rejected, as with --skipped); the default one only at the first rejection, so a run
    without any leaves no file. A file that cannot be written is said once (``error``) and
    the run goes on: the rejections are still shown on stderr and counted.
    """

    def __init__(self, path: Path, *, given: bool) -> None:
        self.path = path
        self.count = 0
        self.error: str | None = None
        self._handle: IO[str] | None = None
        if given:
            try:
                self._handle = path.open("w", encoding="utf-8")
            except OSError as exc:
                die(f"cannot write {path}: {exc.strerror or exc}")

    def add(self, rejection: Rejection) -> None:
        self.count += 1
        if self.error is not None:
            return
        try:
            if self._handle is None:
                self._handle = self.path.open("w", encoding="utf-8")
            self._handle.write(json.dumps(asdict(rejection), ensure_ascii=False) + "\n")
        except OSError as exc:
            self.error = f"cannot write {self.path}: {exc.strerror or exc}"

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def summary(self) -> str:
        """Where the rejected items are (say it whenever some were)."""
        where = (
            f"listed in {self.path} (JSON Lines: key, code, message, input)"
            if self.error is None
            else f"shown above only ({self.error})"
        )
        return (
            f"{self.count:,} item(s) rejected, not in the batch; {where}; fix them and run the "
            "same command again to add them"
        )


@contextlib.contextmanager
def skipped_file(path: Path | None) -> Iterator[IO[str] | None]:
    """--skipped FILE opened for the run (None without it)."""
    if path is None:
        yield None
        return
    try:
        handle = path.open("w", encoding="utf-8")
    except OSError as exc:
        die(f"cannot write {path}: {exc.strerror or exc}")
    with handle:
        yield handle
