#!/usr/bin/env python3
"""Refresh the emulator's dated copy of the Generative Language API schema (v1 and v1beta).

Google's discovery document is not reachable from here, but PyPI is: the package
``google-ai-generativelanguage`` ships the compiled protobuf descriptors of
``google.ai.generativelanguage.v1`` and ``v1beta`` (and, through its dependency
``googleapis-common-protos``, ``google.rpc``). This script

1. downloads that wheel (the newest, or ``--version X.Y.Z``) into a temporary directory
   and installs it into a throw-away virtualenv (it never becomes a visionq dependency);
2. runs ``gemini_schema_extract.py`` inside that virtualenv to walk the descriptors reachable
   from the methods visionq and the emulator use (generateContent, streamGenerateContent,
   countTokens, models.get/list, files.create/get/list/delete) and the ``google.rpc``
   error details, and prints them as JSON;
3. merges the hand-maintained, dated supplement (``supplement.json``: what the live API
   has and the package lacks, each entry with its source) and reports every entry it
   used, or that the package now makes redundant;
4. prints a readable diff against the stored files and writes
   ``emulator/data/api_schema/{v1,v1beta}.json`` (``--dry-run``: diff only). Exits 0.

Usage: ``.venv/bin/python scripts/refresh_gemini_schema.py [--version 0.12.1] [--dry-run]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path
from typing import Any

PACKAGE = "google-ai-generativelanguage"
COMMON_PROTOS = "googleapis-common-protos"
VERSIONS = ("v1", "v1beta")
REPO = Path(__file__).resolve().parents[1]
SCHEMA_DIR = REPO / "emulator" / "data" / "api_schema"
SUPPLEMENT = SCHEMA_DIR / "supplement.json"
EXTRACTOR = Path(__file__).resolve().parent / "gemini_schema_extract.py"


def _run(command: list[str]) -> str:
    """Run one of this script's own commands (pip, the venv's python); its stdout.

    Its stderr is shown only when it fails: pip's warnings about this machine's index
    settings are noise otherwise.
    """
    done = subprocess.run(command, check=False, text=True, capture_output=True)  # noqa: S603
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}")
    return done.stdout


def download_and_extract(version: str | None, workdir: Path) -> tuple[dict[str, Any], str]:
    """Install the package into a virtualenv under ``workdir``; its descriptors and the
    wheel's build date (the newest file in it)."""
    env_dir = workdir / "venv"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    requirement = f"{PACKAGE}=={version}" if version else PACKAGE
    wheels = workdir / "wheels"
    _run([python, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
          "--dest", str(wheels), requirement])  # fmt: skip
    wheel = next(wheels.glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        built = max(dt.datetime(*info.date_time) for info in archive.infolist())
    _run([python, "-m", "pip", "install", "--quiet", str(wheel)])
    output = _run([python, str(EXTRACTOR)])
    return json.loads(output), built.date().isoformat()


def _versioned(name: str, version: str) -> str:
    return name.replace("{version}", version)


def apply_supplement(schema: dict[str, Any], supplement: dict[str, Any], version: str) -> list[str]:
    """Merge the supplement's entries for ``version`` into ``schema``; one report line each.

    Nothing already in the package is replaced: such entries are reported as redundant.
    """
    report = []
    messages, enums = schema["messages"], schema["enums"]
    for entry in supplement["entries"]:
        if version not in entry["versions"]:
            continue
        source = entry["source"]
        kind = entry["add"]
        if kind == "message":
            name = _versioned(entry["name"], version)
            if name in messages:
                report.append(f"  redundant: message {name} is in the package; remove the entry")
                continue
            fields = {
                key: _versioned_spec(spec, version) | {"supplement": source}
                for key, spec in entry["fields"].items()
            }
            messages[name] = {"fields": fields, "supplement": source}
            report.append(f"  + message {name}")
        elif kind == "field":
            message = messages[_versioned(entry["message"], version)]
            if entry["name"] in message["fields"]:
                report.append(
                    f"  redundant: field {entry['message']}.{entry['name']} is in the package;"
                    " remove the entry"
                )
                continue
            spec = _versioned_spec(entry["spec"], version) | {"supplement": source}
            message["fields"][entry["name"]] = spec
            report.append(f"  + field {_versioned(entry['message'], version)}.{entry['name']}")
        elif kind == "enum":
            name = _versioned(entry["name"], version)
            if name in enums:
                report.append(f"  redundant: enum {name} is in the package; remove the entry")
                continue
            enums[name] = {"values": dict(entry["values"]), "supplement": source}
            report.append(f"  + enum {name} {sorted(entry['values'])}")
        elif kind == "enum_values":
            name = _versioned(entry["enum"], version)
            values = enums[name]["values"]
            added = {k: v for k, v in entry["values"].items() if k not in values}
            for known in sorted(set(entry["values"]) - set(added)):
                report.append(f"  redundant: {name}.{known} is in the package; remove it")
            values.update(added)
            if added:
                enums[name].setdefault("supplement", {}).update(dict.fromkeys(added, source))
                report.append(f"  + values of {name}: {sorted(added)}")
        else:
            raise SystemExit(f"{SUPPLEMENT}: unknown entry kind {kind!r}")
    return report


def _versioned_spec(spec: dict[str, Any], version: str) -> dict[str, Any]:
    out = dict(spec)
    if "ref" in out:
        out["ref"] = _versioned(out["ref"], version)
    if isinstance(out.get("value"), dict):
        out["value"] = _versioned_spec(out["value"], version)
    return out


def build_schema(
    extracted: dict[str, Any], built: str, version: str, supplement: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The stored schema of one API version, and the supplement report."""
    data = extracted["versions"][version]
    schema: dict[str, Any] = {
        "api": "generativelanguage.googleapis.com",
        "version": version,
        "source": (
            f"PyPI {PACKAGE} {extracted['package_version']} (wheel built {built}),"
            f" google.rpc from PyPI {COMMON_PROTOS} {extracted['common_protos_version']}"
        ),
        "generated": dt.datetime.now(dt.UTC).date().isoformat(),
        "generator": "scripts/refresh_gemini_schema.py",
        "supplement": f"supplement.json of {supplement['updated']} (fields marked 'supplement')",
        "methods": data["methods"],
        "messages": data["messages"],
        "enums": data["enums"],
    }
    report = apply_supplement(schema, supplement, version)
    schema["messages"] = dict(sorted(schema["messages"].items()))
    schema["enums"] = dict(sorted(schema["enums"].items()))
    return schema, report


def render(schema: dict[str, Any]) -> str:
    """JSON with one line per field, method and enum, so that git diffs read well."""

    def one(value: Any) -> str:
        return json.dumps(value, sort_keys=False, ensure_ascii=False)

    lines = ["{"]
    header = [key for key in schema if key not in ("methods", "messages", "enums")]
    lines += [f"  {one(key)}: {one(schema[key])}," for key in header]
    lines.append('  "methods": {')
    methods = [f"    {one(name)}: {one(spec)}" for name, spec in schema["methods"].items()]
    lines += [",\n".join(methods), "  },", '  "messages": {']
    blocks = []
    for name, message in schema["messages"].items():
        extra = "".join(f", {one(k)}: {one(v)}" for k, v in message.items() if k != "fields")
        fields = ",\n".join(
            f"      {one(key)}: {one(spec)}" for key, spec in message["fields"].items()
        )
        body = f"\n{fields}\n    " if fields else ""
        blocks.append(f'    {one(name)}: {{"fields": {{{body}}}{extra}}}')
    lines += [",\n".join(blocks), "  },", '  "enums": {']
    lines.append(",\n".join(f"    {one(name)}: {one(e)}" for name, e in schema["enums"].items()))
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """What changed between two stored schemas, in words."""
    if old is None:
        return [f"  new file ({len(new['messages'])} messages, {len(new['enums'])} enums)"]
    out = []
    if old.get("source") != new["source"]:
        out.append(f"  source: {old.get('source')} -> {new['source']}")
    out += _diff_keys("method", old["methods"], new["methods"])
    for name in sorted(set(old["messages"]) | set(new["messages"])):
        before, after = old["messages"].get(name), new["messages"].get(name)
        if before is None or after is None:
            out.append(f"  {'+' if before is None else '-'} message {name}")
            continue
        out += _diff_keys(f"field {name}.", before["fields"], after["fields"], joined=True)
    for name in sorted(set(old["enums"]) | set(new["enums"])):
        before, after = old["enums"].get(name), new["enums"].get(name)
        if before is None or after is None:
            out.append(f"  {'+' if before is None else '-'} enum {name}")
            continue
        out += _diff_keys(f"value {name}.", before["values"], after["values"], joined=True)
    return out


def _diff_keys(
    what: str, old: dict[str, Any], new: dict[str, Any], *, joined: bool = False
) -> list[str]:
    def label(key: str) -> str:
        return f"{what}{key}" if joined else f"{what} {key}"

    out = [f"  + {label(key)}: {json.dumps(new[key])}" for key in new if key not in old]
    out += [f"  - {label(key)}: {json.dumps(old[key])}" for key in old if key not in new]
    out += [
        f"  ~ {label(key)}: {json.dumps(old[key])} -> {json.dumps(new[key])}"
        for key in new
        if key in old and old[key] != new[key]
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    """Refresh (or with --dry-run, only compare) the stored schema files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", help=f"{PACKAGE} version (default: the newest)")
    parser.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    args = parser.parse_args(argv)
    supplement = json.loads(SUPPLEMENT.read_text())
    with tempfile.TemporaryDirectory(prefix="gemini-schema-") as tmp:
        print(f"downloading {PACKAGE} {args.version or '(newest)'} into a temporary virtualenv")
        extracted, built = download_and_extract(args.version, Path(tmp))
    for version in VERSIONS:
        schema, report = build_schema(extracted, built, version, supplement)
        path = SCHEMA_DIR / f"{version}.json"
        old = json.loads(path.read_text()) if path.exists() else None
        print(f"\n{version}: {schema['source']}")
        print(f"supplement ({SUPPLEMENT.name}, {supplement['updated']}):")
        print("\n".join(report) or "  (nothing for this version)")
        changes = diff(old, schema)
        print(f"changes against {path.relative_to(REPO)}:")
        print("\n".join(changes) or "  none (the stored file and its date are kept)")
        if changes and not args.dry_run:
            path.write_text(render(schema))
    if args.dry_run:
        print("\n--dry-run: nothing written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
