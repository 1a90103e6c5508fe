"""`visionq dev`'s banner prints each command on one line at an 80-column terminal, so that
pasting the lines runs exactly those commands (review 22 #16: rich broke the key's line and
pasting it ran the comment's tail, "revoked at stop", as a command)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from visionq.cli.dev import print_ready
from visionq.cli.stack import Stack
from visionq.models.keys import KEY_PREFIX

# A key as long as create_key() makes them (token_urlsafe(32) is 43 characters).
KEY = KEY_PREFIX + "A" * 43


def _banner(tmp_path: Path, width: int) -> list[str]:
    stack = Stack(
        api_url="http://127.0.0.1:8000",
        api_key=KEY,
        redis_url="",
        uses_emulator=True,
        run_dir=tmp_path,
        data_dir=tmp_path / "dev",
        database_url=f"sqlite:///{tmp_path}/dev/visionq.db",
    )
    out = io.StringIO()
    print_ready(Console(file=out, width=width, color_system=None), stack)
    return out.getvalue().splitlines()


def test_the_key_line_is_whole_with_nothing_after_the_key(tmp_path: Path) -> None:
    lines = _banner(tmp_path, 80)
    key_lines = [line for line in lines if KEY in line]
    assert key_lines == [f"  export VISIONQ_API_KEY={KEY}"]
    # The line after it is the next command, not a fragment of this one.
    after = lines[lines.index(key_lines[0]) + 1]
    assert after == "  visionq submit photo.jpg --task caption --wait"


def test_the_note_about_the_key_is_a_comment_line_of_its_own(tmp_path: Path) -> None:
    lines = _banner(tmp_path, 80)
    before = lines[lines.index(f"  export VISIONQ_API_KEY={KEY}") - 1]
    assert before.lstrip().startswith("#")
    assert "revoked" in before


def test_long_commands_are_not_broken_at_a_narrow_terminal(tmp_path: Path) -> None:
    lines = _banner(tmp_path, 40)
    assert "  export VISIONQ_URL=http://127.0.0.1:8000" in lines
    assert f"  export VISIONQ_API_KEY={KEY}" in lines
    keys = [line for line in lines if line.startswith("More keys for this stack: ")]
    assert len(keys) == 1 and keys[0].endswith(" visionq keys create NAME")
