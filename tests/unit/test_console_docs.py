"""The README's console screenshots exist, are what the browser tests take at 1280x800,
and are linked from the README (refreshed by copying them from build/screenshots)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ("docs/console-jobs.png", "docs/console-job.png")


@pytest.mark.parametrize("name", SCREENSHOTS)
def test_screenshot_is_a_1280x800_png_the_readme_shows(name: str) -> None:
    path = ROOT / name
    assert path.is_file(), f"{name} is missing: run scripts/test tests/browser and copy it"
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (1280, 800), f"{name} is {image.size}, not the 1280x800 viewport"
    readme = (ROOT / "README.md").read_text("utf-8")
    assert f"]({name})" in readme, f"README does not show {name} (![...]({name}))"
