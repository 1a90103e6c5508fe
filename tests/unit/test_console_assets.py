"""The console's files (api/console) work offline and under its Content-Security-Policy.

No external URL (no CDN: the console must work without the internet), no inline script or
style (the CSP allows scripts and styles from 'self' only, so an inline one would be
blocked and logged), every relative import and link resolves to a shipped file, every file
is one the wheel ships (pyproject's package-data globs) and every JS module stays small
with a header comment saying its job.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "api" / "console"
_PACKAGE_DATA: dict[str, list[str]] = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))[
    "tool"
]["setuptools"]["package-data"]
# The globs of visionq.api and its data packages (visionq.api.console, ...), as paths
# under api/: "visionq.api.console.js" = ["*.js"] is console/js/*.js.
PACKAGE_DATA: list[str] = [
    "/".join([*package.split(".")[2:], glob])
    for package, globs in _PACKAGE_DATA.items()
    if package == "visionq.api" or package.startswith("visionq.api.")
    for glob in globs
]
# XML namespace names are identifiers, never fetched (createElementNS, the SVG's xmlns).
NAMESPACES = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink")
MAX_JS_LINES = 400

# import x from "./a.js"; import "./a.js"; export {x} from "./a.js"; import("./a.js")
IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["'](\.{1,2}/[^"']+)["']""")
# src="..." and href="..." of the HTML shell (relative ones: fragments and absolute paths
# are not files of this folder).
HTML_REF = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"'#]+)["']""")


def files(*suffixes: str) -> list[Path]:
    return sorted(p for p in CONSOLE.rglob("*") if p.is_file() and p.suffix in suffixes)


def ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(CONSOLE).as_posix() for p in paths]


def code(text: str) -> str:
    """JavaScript without its comments (which may well name what the code must not do)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"(?m)(?:^|\s)//.*$", "", text)


ALL = files(".html", ".css", ".svg", ".js")
JS = files(".js")
HTML = files(".html")


def test_console_folder_has_the_shell_and_modules() -> None:
    assert (CONSOLE / "index.html").is_file(), "api/console/index.html is the console's shell"
    assert (CONSOLE / "js" / "main.js").is_file()
    assert len(JS) >= 5


@pytest.mark.parametrize("path", ALL, ids=ids(ALL))
def test_no_external_urls(path: Path) -> None:
    text = path.read_text("utf-8")
    for name in NAMESPACES:
        text = text.replace(name, "")
    found = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"'`)]*", text, flags=re.I)
    assert not found, f"{path.name} names external URLs (the console must work offline): {found}"


@pytest.mark.parametrize("path", HTML, ids=ids(HTML))
def test_html_has_no_inline_script_or_style(path: Path) -> None:
    text = path.read_text("utf-8")
    for tag in re.findall(r"<script\b[^>]*>", text, flags=re.I):
        assert re.search(r"\bsrc\s*=", tag), f"inline script in {path.name}: {tag} (CSP)"
    for body in re.findall(r"<script\b[^>]*>(.*?)</script>", text, flags=re.I | re.S):
        assert not body.strip(), f"a script with a body in {path.name} (CSP blocks it)"
    assert not re.search(r"<style\b", text, flags=re.I), f"<style> in {path.name} (CSP)"
    assert not re.search(r"\sstyle\s*=", text, flags=re.I), f"style= in {path.name} (CSP)"
    handlers = re.findall(r"\son[a-z]+\s*=", text, flags=re.I)
    assert not handlers, f"inline event handlers in {path.name}: {handlers} (CSP)"


@pytest.mark.parametrize("path", HTML, ids=ids(HTML))
def test_html_references_resolve(path: Path) -> None:
    refs = HTML_REF.findall(path.read_text("utf-8"))
    assert refs, f"{path.name} links no files"
    for ref in refs:
        if ref.startswith("/"):
            continue  # a route of the API itself, not a file here
        assert (path.parent / ref).resolve().is_file(), f"{path.name} links {ref}: no such file"


@pytest.mark.parametrize("path", JS, ids=ids(JS))
def test_js_module_is_small_with_a_header_and_resolving_imports(path: Path) -> None:
    text = path.read_text("utf-8")
    lines = text.splitlines()
    assert len(lines) < MAX_JS_LINES, f"{path.name} has {len(lines)} lines: split it"
    assert lines and lines[0].lstrip().startswith(("//", "/*")), (
        f"{path.name} starts without a header comment saying its job"
    )
    for ref in IMPORT.findall(text):
        target = (path.parent / ref).resolve()
        assert target.is_file(), f"{path.name} imports {ref}: no such file"
        assert target.is_relative_to(CONSOLE), f"{path.name} imports {ref} outside api/console"


@pytest.mark.parametrize("path", JS, ids=ids(JS))
def test_js_sets_no_inline_style_attribute_or_evaluates_strings(path: Path) -> None:
    # element.style.x = ... is allowed by the CSP; a style="..." attribute or eval is not.
    text = code(path.read_text("utf-8"))
    assert not re.search(r"""\bstyle=\\?["']""", text), f"style= attribute in {path.name}"
    assert not re.search(r"""setAttribute\(\s*["']style["']""", text), path.name
    assert not re.search(r"\beval\s*\(|\bnew\s+Function\s*\(", text), path.name


def test_every_file_is_package_data() -> None:
    for path in CONSOLE.rglob("*"):
        if path.is_file():
            inside = path.relative_to(CONSOLE.parent).as_posix()
            assert any(fnmatch.fnmatchcase(inside, glob) for glob in PACKAGE_DATA), (
                f"{inside} is not shipped in the wheel: add its pattern to pyproject's "
                '[tool.setuptools.package-data] "visionq.api.console" (or its folder\'s package)'
            )
