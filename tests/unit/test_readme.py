"""Every command the README shows is a real command with valid options."""

from __future__ import annotations

import ast
import inspect
import os
import re
import shlex
from pathlib import Path

import pytest

from tests.cli_parsing import parse_visionq

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def shell_lines() -> list[str]:
    lines = []
    for block in code_blocks("sh"):
        joined = block.replace("\\\n", " ")
        for raw in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", raw).strip()
            if line:
                lines.append(line)
    return lines


def visionq_commands() -> list[list[str]]:
    found = []
    for line in shell_lines():
        for part in re.split(r"&&|;", line):
            words = shlex.split(part)
            if "visionq" in words:
                found.append(words[words.index("visionq") :])
    return found


@pytest.mark.parametrize("argv", visionq_commands(), ids=" ".join)
def test_readme_visionq_commands_parse(argv: list[str]) -> None:
    parse_visionq(argv)


def test_readme_shows_the_commands_a_new_user_needs() -> None:
    commands = {" ".join(argv[:2]) for argv in visionq_commands()}
    assert {"visionq dev", "visionq submit", "visionq jobs"} <= commands
    lines = shell_lines()
    assert lines[0] == "scripts/demo"  # the first command of the README
    assert "scripts/test" in lines


@pytest.mark.parametrize("script", ["scripts/demo", "scripts/test", ".ci/run"])
def test_scripts_exist_and_are_executable(script: str) -> None:
    assert os.access(ROOT / script, os.X_OK)


def test_ci_runs_the_readme_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test" in ci and "bash scripts/demo" in ci


def command_path(variant: str) -> list[str]:
    """`visionq keys create NAME [--tenant T]` -> ["keys", "create"]: the subcommand words."""
    words = variant.removeprefix("visionq ").split()
    path = []
    for word in words:
        if word.startswith(("-", "[")) or not word.islower():
            break
        path.append(word)
    return path


def test_reference_table_names_real_commands() -> None:
    import typer

    from visionq.cli.main import app

    rows = re.findall(r"^\| `(visionq [^|]+)` \|", README, flags=re.MULTILINE)
    variants = [v for row in rows for v in row.split("` / `")]
    assert len(variants) >= 16
    for variant in variants:
        command = typer.main.get_command(app)
        for name in command_path(variant):
            command = command.commands[name]  # type: ignore[attr-defined]


def test_python_examples_use_the_real_client() -> None:
    from visionq.client import BatchClient, VisionqClient

    jobs, batches = code_blocks("python")
    tree = ast.parse(jobs)
    called = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert {"submit", "wait"} <= called
    assert all(hasattr(VisionqClient, name) for name in ("submit", "wait"))
    # The Batches example: every client.batches.X it calls exists.
    batch_calls = {
        node.attr
        for node in ast.walk(ast.parse(batches))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "batches"
    }
    assert {"create", "add_items", "get", "export"} <= batch_calls
    assert all(hasattr(BatchClient, name) for name in batch_calls)


def test_readme_documents_every_setting_and_no_other() -> None:
    from visionq.models.settings import Settings

    mentioned = set(re.findall(r"VISIONQ_([A-Z0-9_]+)", README))
    fields = {
        name.upper() for name, info in Settings.model_fields.items() if not info.validation_alias
    }
    client_only = {"URL", "API_KEY"}  # read by the CLI's user commands, not by Settings
    assert fields - mentioned == set(), "settings missing from the README"
    assert mentioned - fields - client_only == set(), "README names settings that do not exist"


def test_readme_says_what_the_image_route_serves() -> None:
    """The images row: the stored bytes (not the bytes sent, which submit may re-encode) and
    the caching headers the route really sends."""
    from visionq.api.routes.inputs import CACHE_CONTROL

    [row] = [
        line for line in README.splitlines() if line.startswith("| `GET /v1/jobs/{id}/images/")
    ]
    assert "as sent" not in row and "as stored" in row
    assert f"`Cache-Control: {CACHE_CONTROL}`" in row and "`Vary: Authorization`" in row


def test_readme_says_the_console_is_served_at_the_hosts_root() -> None:
    """The console calls /v1/... and redirects to /console/ absolutely: a path prefix breaks
    it, and the Console section says so (review #20)."""
    from visionq.api.console_files import install_console

    assert '"/console/"' in inspect.getsource(install_console)
    assert "serve the API at the root of its host" in " ".join(README.split())


def test_readme_says_what_a_preflight_gets_with_cors_off() -> None:
    """The 400 ``cors_refused`` is the answer only when origins are configured; with CORS
    off a preflight is a plain 405 and no CORS header is sent (review22 #13; the behaviour
    itself: tests/integration/test_console_mount.py)."""
    [row] = [
        line for line in README.splitlines() if line.startswith("| `VISIONQ_CORS_ALLOW_ORIGINS`")
    ]
    assert "When set, a refused preflight is a 400 `cors_refused`" in row
    assert "When empty, no answer ever carries a CORS header" in row
    assert "405 `method_not_allowed`" in row


def test_readme_says_which_console_messages_fail_a_browser_test() -> None:
    """Not "any console error": a test may declare the messages it provokes (the browser's
    own log line for a failed request the page handles), as the fixture allows (review22
    #12). The fixture is read, not imported: pytest imports it as the browser tests' conftest."""
    fixture = (ROOT / "tests" / "browser" / "conftest.py").read_text()
    assert "def expect(self, pattern: str)" in fixture
    assert 'message.type in ("error", "warning")' in fixture and "on_pageerror" in fixture
    text = " ".join(README.split())
    assert "any console error" not in text
    assert "unless the test declares the message it provokes on purpose" in text
    assert "`console_log.expect(pattern)`" in text


def test_readme_says_when_a_batch_eta_is_known() -> None:
    """The console and the ETA bullet name the real threshold of a measured rate, and that
    without it or a quota the ETA is null (review22 #7: a batch of 10 showed no ETA)."""
    from visionq.api.batch_progress import MIN_MEASURED, eta

    assert eta(1, MIN_MEASURED - 1, 60.0, None) == (None, None, "none")
    assert eta(1, MIN_MEASURED, 60.0, None)[2] == "measured"
    assert eta(1, 0, 60.0, 0.5)[2] == "quota"
    text = " ".join(README.split())
    assert f"The ETA is known once at least {MIN_MEASURED} of the batch's items" in text
    assert f"a batch of fewer than {MIN_MEASURED} items shows none without a quota" in text
    assert f"At least {MIN_MEASURED} such ends are needed" in text
    assert "`eta_s` and `eta_at` are null and `eta_basis` is `none` until then" in text


@pytest.mark.parametrize(
    ("path", "options"),
    [
        (["submit"], ["--cache", "--no-cache", "--economy", "--tier", "--deadline"]),
        (["batch", "run"], ["--cache", "--no-cache", "--economy", "--tier", "--deadline"]),
        (["worker"], ["--loglevel", "--metrics-port"]),
        (["emulator"], ["--host"]),
        (["demo"], ["--port"]),
    ],
    ids=" ".join,
)
def test_reference_table_lists_the_options_a_new_user_looked_for(
    path: list[str], options: list[str]
) -> None:
    """A new user's trial: these were in the commands' help but not in the README's table."""
    import typer

    from visionq.cli.main import app

    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    real = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    [row] = [
        line for line in README.splitlines() if line.startswith(f"| `visionq {' '.join(path)} ")
    ]
    usage = row.split("` |")[0]
    for option in options:
        assert option in real, f"visionq {' '.join(path)} has no {option}"
        assert re.search(rf"[\[|]{option}(?![\w-])", usage), f"{option} is not in the row: {usage}"


def test_readme_states_the_emulators_palette_and_tolerance_exactly() -> None:
    """A new user's pure-red shapes got "no objects": the README says which colours the
    emulator's detect reads, within what tolerance, and which pure colours fall outside."""
    from PIL import Image

    from visionq.emulator.scene import (
        MAX_OFF_PALETTE_FRACTION,
        MIN_SHAPE_AREA,
        MIN_SHAPE_SIDE,
        PALETTE_NAMES,
        PALETTE_TOLERANCE,
        quantise,
    )
    from visionq.emulator.shapes import PALETTE

    text = " ".join(README.split())
    assert f"{len(PALETTE)} palette colours" in text
    for name, (r, g, b) in PALETTE.items():
        assert f"{name} ({r},{g},{b})" in text, name
    assert f"within {PALETTE_TOLERANCE} per channel" in text
    assert f"at least {100 - round(MAX_OFF_PALETTE_FRACTION * 100)}% of the pixels" in text
    assert f"at least {MIN_SHAPE_AREA} pixels and {MIN_SHAPE_SIDE} pixels a side" in text
    colours = tuple(PALETTE[name] for name in PALETTE_NAMES)
    off = {}
    for rgb in ((255, 0, 0), (255, 255, 0), (0, 255, 255), (0, 255, 0), (0, 0, 255), (255, 0, 255)):
        nearest = colours[quantise(Image.new("RGB", (1, 1), rgb), colours).getpixel((0, 0))]
        off[rgb] = max(abs(a - b) for a, b in zip(rgb, nearest, strict=True))
    inside = "Pure red (255,0,0), yellow (255,255,0) and cyan (0,255,255) are within that tolerance"
    assert inside in text
    assert all(off[rgb] <= PALETTE_TOLERANCE for rgb in ((255, 0, 0), (255, 255, 0), (0, 255, 255)))
    outside = [off[(0, 255, 0)], off[(0, 0, 255)], off[(255, 0, 255)]]
    assert all(value > PALETTE_TOLERANCE for value in outside)
    assert (
        "pure green (0,255,0), blue (0,0,255) and magenta (255,0,255) are not "
        f"({outside[0]}, {outside[1]} and {outside[2]} off)"
    ) in text


def test_readme_lists_every_input_change_code() -> None:
    """``inputs[].changes`` are codes (GIF/BMP/TIFF gave sentences before), all of them named."""
    from visionq.vision.changes import Change

    for change in Change:
        assert f"`{change.value}`" in README, change
