"""`visionq webhooks` help tells the truth (issue 21 review NITs): create's --event is
marked required, the README section it points at exists, and update's --event says it
replaces the endpoint's list."""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.cli_fakes import run

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _help(*command: str) -> str:
    shown = run("webhooks", *command, "--help")
    assert shown.exit_code == 0, shown.output
    return " ".join(shown.stdout.replace("│", " ").split())


def test_webhooks_create_help_marks_event_required_and_names_a_real_readme_section() -> None:
    text = _help("create")
    assert re.search(r"--event -e \S+ An event type[^[]*\[required\]", text), text
    (section, part) = re.findall(r'README "([^"]+)", "([^"]+)"', text)[0]
    assert f"\n## {section}\n" in README
    assert f"**{part}**" in README.split(f"\n## {section}\n")[1].split("\n## ")[0]


def test_webhooks_update_help_says_event_replaces_the_list() -> None:
    assert "replacing the endpoint's whole list" in _help("update")


def test_gc_help_says_it_deletes_old_webhook_events() -> None:
    shown = run("gc", "--help")
    assert shown.exit_code == 0 and "webhook events" in " ".join(shown.stdout.split())
