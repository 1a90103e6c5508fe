"""Move every import of visionq's packages under one namespace: ``api`` -> ``visionq.api``.

Usage, from the repository root: ``python3 scripts/namespace.py`` (idempotent: a second run
changes nothing). With a .venv it then sorts imports and formats (ruff) and reinstalls the
editable package (new package-dir mapping and entry point); ``--no-finish`` skips that.
It rewrites by pattern, not by line numbers, so it applies to a tree that moved on since
it was written:

- Python files: import statements (``from api.x import y``, ``import api.x as y``, and
  ``import api.x`` with its dotted uses), string literals that name a module of ours
  (``"api.app:create_app"``, ``"worker.tasks"``, ``"cli.stack._start"`` for monkeypatch),
  ``"-m", "cli"`` argument lists, ``resources.files("vision")`` and ``python -m emulator``
  in strings and comments. Comments and docstrings that mention a module in prose keep the
  folder's name (the folders keep their names).
- README files, compose, Dockerfile, shell scripts: import lines, ``python -m``, Celery's
  ``--app``, module:attribute strings; the Dockerfile copies visionq/ too.
- pyproject.toml: the package-dir mapping, package data, the entry point, mypy's package,
  ruff's first-party name and the lint rule that bans the bare names.
- .typecheck/visionq: a tree of symlinks mypy reads (it does not see setuptools' editable
  import hook), so mypy checks the real files under their installed names.

Needs visionq/__init__.py and visionq/py.typed (committed with this script).
"""

# ruff: noqa: S603, S607, PLR0911, PLR0912, C901  (a one-shot rewriting tool: one pass, many cases)

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NS = "visionq"
PACKAGES = ("api", "worker", "models", "vision", "emulator", "client", "cli")
PKG = "|".join(PACKAGES)
# Files that are output of past runs, not code: left as they were written.
SKIP = re.compile(r"^(bench/results/|scripts/namespace\.py$|visionq/|\.typecheck/)")
TEXT_FILES = re.compile(
    r"(^|/)(README\.md|[\w.-]*\.md|Dockerfile|docker-compose[\w.-]*\.ya?ml|run|test|lock|demo)$"
)


def tracked() -> list[str]:
    """Every file git tracks, relative to the root."""
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    return [p for p in out.splitlines() if not SKIP.match(p) and (ROOT / p).is_file()]


def our_modules() -> set[str]:
    """Dotted names of every module and package in our folders (``api``, ``api.app``...)."""
    names: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.add(".".join(parts))
    return names


MODULES = our_modules()
# A string that is exactly a reference to one of our modules (and maybe an attribute path):
# "api.app:create_app", "worker.tasks", "models.jobs.uuid.uuid4", "cli.stack._start".
MODULE_REF = re.compile(rf"^(?:{PKG})(?:\.\w+)*(?::\w+(?:\.\w+)*)?$")
PYTHON_M = re.compile(rf"(python3? (?:-\w+ )*-m )({PKG})\b(?!\.py)")
CELERY_APP = re.compile(rf"((?:--app|-A)(?:[ =]|[\"'],\s*[\"']))({PKG})\.")
IMPORT_LINE = re.compile(rf"^(\s*(?:from|import) )({PKG})(?=[.\s]|$)", re.MULTILINE)


def is_module_ref(text: str) -> bool:
    """``text`` names one of our modules (at least ``pkg.sub``), possibly with attributes."""
    if not MODULE_REF.match(text):
        return False
    module, _, attribute = text.partition(":")
    parts = module.split(".")
    longest = max(
        (n for n in range(1, len(parts) + 1) if ".".join(parts[:n]) in MODULES), default=0
    )
    return longest >= 2 or (longest == 1 and bool(attribute))


def _string_body(token: str) -> tuple[str, str, str] | None:
    """(prefix+quote, body, quote) of a plain string literal, None for f-strings and others."""
    match = re.match(r"^([rRbBuU]{0,2})('''|\"\"\"|'|\")(.*)\2$", token, re.DOTALL)
    if match is None:
        return None
    return match.group(1) + match.group(2), match.group(3), match.group(2)


def _rewrite_string(token: str, before: list[tokenize.TokenInfo]) -> str:
    """The string literal ``token`` with our module names namespaced where it names them."""
    parts = _string_body(token)
    if parts is None:
        return PYTHON_M.sub(rf"\1{NS}.\2", token)
    head, body, quote = parts
    previous = [t for t in before[-3:] if t.type not in (tokenize.NL, tokenize.COMMENT)]
    if body in PACKAGES and previous:
        last = previous[-1]
        after_m = last.type == tokenize.STRING or (
            last.string == "," and len(previous) > 1 and previous[-2].type == tokenize.STRING
        )
        dash_m = [t for t in previous if t.type == tokenize.STRING]
        if after_m and dash_m and dash_m[-1].string.strip("'\"") == "-m":
            return f"{head}{NS}.{body}{quote}"
        if last.string == "(" and len(previous) > 1 and previous[-2].string == "files":
            return f"{head}{NS}.{body}{quote}"
        return token
    if is_module_ref(body):
        return f"{head}{NS}.{body}{quote}"
    if re.match(rf"^(import|from) ({PKG})\b", body):
        # Code for `python -c`: its imports are ours too.
        body = re.sub(rf"(?<![\w.])({PKG})\.(?=\w)", rf"{NS}.\1.", body)
        return f"{head}{body}{quote}"
    return head + PYTHON_M.sub(rf"\1{NS}.\2", body) + quote


def rewrite_python(source: str) -> str:
    """``source`` with imports, module strings and ``-m`` runs of our packages namespaced."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    edits: list[tuple[tuple[int, int], tuple[int, int], str]] = []
    plain_imports: set[str] = set()  # `import worker.context`: its uses need the prefix too
    statement_start = True
    in_import = False
    import_kind = ""
    for index, tok in enumerate(tokens):
        kind, text = tok.type, tok.string
        if kind in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT) or text == ";":
            statement_start, in_import = True, False
            continue
        if kind in (tokenize.NL, tokenize.COMMENT):
            if kind == tokenize.COMMENT and PYTHON_M.search(text):
                edits.append((tok.start, tok.end, PYTHON_M.sub(rf"\1{NS}.\2", text)))
            continue
        if statement_start and kind == tokenize.NAME and text in ("from", "import"):
            in_import, import_kind = True, text
            statement_start = False
            continue
        statement_start = False
        previous = tokens[index - 1]
        if in_import and kind == tokenize.NAME and text in PACKAGES:
            starts_name = previous.string in ("from", "import", ",") and (
                import_kind == "import" or previous.string == "from"
            )
            if starts_name:
                edits.append((tok.start, tok.end, f"{NS}.{text}"))
                if import_kind == "import":
                    chain, j = [text], index + 1
                    while tokens[j].string == "." and tokens[j + 1].type == tokenize.NAME:
                        chain.append(tokens[j + 1].string)
                        j += 2
                    if tokens[j].string != "as":
                        plain_imports.add(text)
            continue
        if kind == tokenize.STRING:
            new = _rewrite_string(text, tokens[max(0, index - 4) : index])
            if new != text:
                edits.append((tok.start, tok.end, new))
    if plain_imports:
        in_import = False
        for index, tok in enumerate(tokens):
            if tok.type == tokenize.NAME and tok.string in ("import", "from"):
                in_import = True
            elif tok.type == tokenize.NEWLINE:
                in_import = False
            elif (
                not in_import
                and tok.type == tokenize.NAME
                and tok.string in plain_imports
                and tokens[index - 1].string != "."
                and tokens[index + 1].string == "."
            ):
                edits.append((tok.start, tok.end, f"{NS}.{tok.string}"))
    return _apply(source, edits)


def _apply(source: str, edits: list[tuple[tuple[int, int], tuple[int, int], str]]) -> str:
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    out = source
    for start, end, new in sorted(edits, reverse=True):
        a = offsets[start[0] - 1] + start[1]
        b = offsets[end[0] - 1] + end[1]
        out = out[:a] + new + out[b:]
    return out


# Code that read the old `packages.find` table reads the folders from package-dir instead.
FIND_INCLUDE = re.compile(
    r"\{\s*pattern\.rstrip\(\"\*\"\)\.rstrip\(\"\.\"\)\s*for pattern in (\w+)"
    r"\[\"tool\"\]\[\"setuptools\"\]\[\"packages\"\]\[\"find\"\]\[\"include\"\]\s*\}"
)


def rewrite_readers(source: str) -> str:
    """Tests that read ``[tool.setuptools.packages.find]`` read the package-dir mapping."""
    return FIND_INCLUDE.sub(r'set(\1["tool"]["setuptools"]["package-dir"].values())', source)


def rewrite_text(path: str, text: str) -> str:
    """README, compose, Dockerfile and shell scripts: commands and import lines."""
    text = IMPORT_LINE.sub(rf"\1{NS}.\2", text)
    text = PYTHON_M.sub(rf"\1{NS}.\2", text)
    text = CELERY_APP.sub(rf"\1{NS}.\2.", text)
    # "api.app:create_app"-style references in commands and configuration.
    text = re.sub(
        rf"(?<![\w./-])((?:{PKG})(?:\.\w+)+:\w+)",
        lambda m: f"{NS}.{m.group(1)}" if is_module_ref(m.group(1)) else m.group(1),
        text,
    )
    if path == "Dockerfile" and f"COPY {NS} ./{NS}" not in text:
        text = re.sub(r"^(COPY cli \./cli\n)", rf"\1COPY {NS} ./{NS}\n", text, flags=re.MULTILINE)
    return text


README_BULLET = (
    "- **One import namespace**: the wheel installs one package, `visionq` (with `py.typed`),\n"
    "  whose sub-packages are the repository's folders: `visionq.api`, `visionq.worker`,\n"
    "  `visionq.models`, `visionq.vision`, `visionq.emulator`, `visionq.client`, `visionq.cli`.\n"
    "  A user's own `client.py`, `models.py` or `api/` never shadows ours. Import the client\n"
    "  as `from visionq.client import VisionqClient` (or `from visionq import VisionqClient`;\n"
    "  `visionq.__all__` is the public surface); the old `from client import VisionqClient`\n"
    "  no longer works. The emulator runs as `python -m visionq.emulator`, Celery's app is\n"
    "  `visionq.worker.celery_app`. A lint rule (ruff TID251) bans the bare names;\n"
    "  `tests/deploy/test_wheel.py` installs the wheel and imports it from such a folder.\n"
)
README_LAYOUT = (
    "Installed as one package, `visionq`: each folder above is `visionq.<folder>`\n"
    "(`[tool.setuptools.package-dir]` in pyproject.toml); `visionq/` holds the package's own\n"
    "`__init__.py` (the public surface) and `py.typed`; `.typecheck/visionq` is a tree of\n"
    "symlinks, so mypy checks the folders under their installed names.\n"
)


def rewrite_readme(text: str) -> str:
    """The import path change, in the quickstart, Guarantees and Layout (once)."""
    text = text.replace(
        "From Python:\n",
        "From Python (everything is imported from the `visionq` package):\n",
    )
    if "**One import namespace**" not in text:
        text = re.sub(r"\n+(## HTTP API\n)", lambda m: "\n" + README_BULLET + "\n" + m[1], text)
    if "Installed as one package, `visionq`" not in text:
        text = re.sub(
            r"(## Layout\n\n(?:.+\n)+)", lambda m: m[1] + "\n" + README_LAYOUT, text, count=1
        )
    return text


def packages_list() -> list[str]:
    """Every package the wheel holds, under its installed name."""
    found = [NS]
    for package in PACKAGES:
        for init in sorted((ROOT / package).rglob("__init__.py")):
            parts = init.parent.relative_to(ROOT).parts
            found.append(".".join((NS, *parts)))
    return found


def rewrite_pyproject(text: str) -> str:
    """Packaging, entry point, mypy and ruff settings for the namespace."""
    packages = ",\n".join(f'    "{p}"' for p in packages_list())
    mapping = "\n".join(f'"{NS}.{p}" = "{p}"' for p in PACKAGES)
    setuptools = (
        "[tool.setuptools]\n"
        "# The folders keep their names in the repository; the wheel installs them under one\n"
        "# package, visionq (its own __init__.py and py.typed are in visionq/). A new\n"
        "# sub-package is added here (tests/deploy/test_wheel.py checks every module ships).\n"
        f"packages = [\n{packages},\n]\n\n"
        "[tool.setuptools.package-dir]\n"
        f'{NS} = "{NS}"\n{mapping}\n'
    )
    block = r"^\[tool\.setuptools(?:\.packages\.find|\.package-dir)?\]\n(?:(?!\[).*\n)*"
    first = re.search(block, text, flags=re.MULTILINE)
    if first is None:
        raise SystemExit("pyproject.toml: no [tool.setuptools] table to replace")
    start = first.start()
    text = re.sub(block, "", text, flags=re.MULTILINE)
    text = text[:start] + setuptools + "\n" + text[start:]
    # Package data keyed by installed package names, plus the py.typed marker.
    text = re.sub(rf"^({PKG}(?:\.\w+)*) = \[", rf'"{NS}.\1" = [', text, flags=re.MULTILINE)
    if f'{NS} = ["py.typed"]' not in text:
        text = text.replace(
            "[tool.setuptools.package-data]\n",
            f'[tool.setuptools.package-data]\n{NS} = ["py.typed"]\n',
        )
    text = re.sub(rf'^(visionq = ")({PKG})\.', rf"\1{NS}.\2.", text, flags=re.MULTILINE)
    # mypy reads the symlink tree in .typecheck (see write_typecheck_tree).
    text = re.sub(
        r'^packages = \["api", [^\]]*\]\n',
        "# mypy does not see setuptools' editable import hook: .typecheck/visionq is a tree of\n"
        "# symlinks to the real folders under their installed names (scripts/namespace.py).\n"
        'mypy_path = ".typecheck"\npackages = ["visionq"]\n',
        text,
        flags=re.MULTILINE,
    )
    if '"TID"' not in text:
        text = re.sub(r'(^select = \[[^\]]*)"\]', r'\1", "TID"]', text, count=1, flags=re.M)
    if "[tool.ruff.lint.isort]" not in text:
        banned = "\n".join(
            f'"{p}".msg = "import visionq.{p}: the folder is installed as visionq.{p}"'
            for p in PACKAGES
        )
        text = text.replace(
            "[tool.ruff.lint.mccabe]",
            "[tool.ruff.lint.isort]\n"
            f'known-first-party = ["{NS}"]\n\n'
            "# The folders are installed under visionq; a bare `import api` would pick up a\n"
            "# user's own api/ or models.py (or a second copy of ours from the checkout).\n"
            "[tool.ruff.lint.flake8-tidy-imports.banned-api]\n"
            f"{banned}\n\n"
            "[tool.ruff.lint.mccabe]",
        )
    return text


def write_typecheck_tree() -> None:
    """.typecheck/visionq: symlinks to visionq/'s files and to each folder, for mypy."""
    tree = ROOT / ".typecheck" / NS
    tree.mkdir(parents=True, exist_ok=True)
    for name in ("__init__.py", "py.typed", *PACKAGES):
        link = tree / name
        target = Path("..", "..", NS, name) if name.endswith((".py", ".typed")) else None
        target = target or Path("..", "..", name)
        if link.is_symlink() and os.readlink(link) == str(target):
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)


def main() -> int:
    """Rewrite the tree in place; prints the files it changed."""
    if not (ROOT / NS / "__init__.py").is_file():
        print(f"{NS}/__init__.py is missing: apply the commit that adds it first", file=sys.stderr)
        return 1
    changed = []
    for path in tracked():
        full = ROOT / path
        try:
            text = full.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if path == "pyproject.toml":
            new = rewrite_pyproject(text)
        elif path.endswith(".py"):
            new = rewrite_readers(rewrite_python(text))
        elif TEXT_FILES.search(path) or path.startswith((".ci/", "scripts/")):
            new = rewrite_text(path, text)
            if path == "README.md":
                new = rewrite_readme(new)
        else:
            continue
        if new != text:
            full.write_text(new, encoding="utf-8")
            changed.append(path)
    write_typecheck_tree()
    print("\n".join(changed))
    print(f"{len(changed)} files changed", file=sys.stderr)
    venv = ROOT / ".venv" / "bin"
    if "--no-finish" in sys.argv or not (venv / "ruff").exists():
        return 0
    # Imports sort differently once visionq is the first-party name; longer names may need a
    # line break. Then the editable install learns the package-dir mapping and entry point.
    steps = [
        [str(venv / "ruff"), "check", "--fix", "--select", "I", "."],
        [str(venv / "ruff"), "format", "."],
        [str(venv / "python"), "-m", "pip", "install", "--quiet", "--no-deps", "-e", "."],
    ]
    for step in steps:
        print("+", " ".join(step), file=sys.stderr)
        subprocess.run(step, cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
