"""scripts/refresh_gemini_schema.py without the network: merge, render and diff."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO / "emulator" / "data" / "api_schema"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "refresh_gemini_schema", REPO / "scripts" / "refresh_gemini_schema.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


SCRIPT = _script()
PKG = "google.ai.generativelanguage.v1beta"
ANY_PKG = "google.ai.generativelanguage.{version}"


def _extracted() -> dict[str, Any]:
    part = {"fields": {"text": {"json": "text", "number": 2, "type": "string", "oneof": "data"}}}
    reason = {"values": {"FINISH_REASON_UNSPECIFIED": 0, "STOP": 1}}
    version = {
        "methods": {},
        "messages": {f"{PKG}.Part": part},
        "enums": {f"{PKG}.Candidate.FinishReason": reason},
    }
    return {
        "package_version": "9.9.9",
        "common_protos_version": "1.0",
        "versions": {"v1beta": version},
    }


SUPPLEMENT: dict[str, Any] = {
    "updated": "2026-12-05",
    "entries": [
        {"versions": ["v1beta"], "add": "field", "message": f"{ANY_PKG}.Part",
         "name": "media_resolution", "spec": {"json": "mediaResolution", "type": "string"},
         "source": "S1"},
        {"versions": ["v1beta"], "add": "field", "message": f"{ANY_PKG}.Part",
         "name": "text", "spec": {"json": "text", "type": "string"}, "source": "S2"},
        {"versions": ["v1beta"], "add": "enum_values",
         "enum": f"{ANY_PKG}.Candidate.FinishReason",
         "values": {"STOP": None, "MALFORMED_RESPONSE": None}, "source": "S3"},
        {"versions": ["v1"], "add": "enum", "name": "x.Y", "values": {"A": 0}, "source": "S4"},
    ],
}  # fmt: skip


def test_supplement_is_merged_marked_and_reported() -> None:
    schema, report = SCRIPT.build_schema(_extracted(), "2026-10-01", "v1beta", SUPPLEMENT)
    fields = schema["messages"][f"{PKG}.Part"]["fields"]
    assert fields["media_resolution"]["supplement"] == "S1"
    assert "supplement" not in fields["text"]  # the package has it: not replaced
    reason = schema["enums"][f"{PKG}.Candidate.FinishReason"]
    assert reason["values"]["MALFORMED_RESPONSE"] is None
    assert reason["supplement"] == {"MALFORMED_RESPONSE": "S3"}
    assert "x.Y" not in schema["enums"]  # another version's entry
    assert any(line.startswith("  redundant: field") for line in report)
    assert any("redundant" in line and ".STOP" in line for line in report)
    assert schema["source"].startswith("PyPI google-ai-generativelanguage 9.9.9 (wheel built")


def test_render_is_json_of_the_schema_and_diff_names_changes() -> None:
    old, _ = SCRIPT.build_schema(_extracted(), "2026-10-01", "v1beta", SUPPLEMENT)
    assert json.loads(SCRIPT.render(old)) == old
    new = copy.deepcopy(old)
    del new["messages"][f"{PKG}.Part"]["fields"]["text"]
    new["enums"][f"{PKG}.Candidate.FinishReason"]["values"]["LANGUAGE"] = 6
    new["messages"][f"{PKG}.Blob"] = {"fields": {}}
    changes = SCRIPT.diff(old, new)
    assert f"  + message {PKG}.Blob" in changes
    assert any(line.startswith(f"  - field {PKG}.Part.text:") for line in changes)
    assert f"  + value {PKG}.Candidate.FinishReason.LANGUAGE: 6" in changes
    assert SCRIPT.diff(old, old) == []


def test_stored_files_carry_every_supplement_entry() -> None:
    supplement = json.loads((SCHEMA_DIR / "supplement.json").read_text())
    for entry in supplement["entries"]:
        assert entry["source"], entry
        for version in entry["versions"]:
            stored = json.loads((SCHEMA_DIR / f"{version}.json").read_text())
            assert json.loads(SCRIPT.render(stored)) == stored
            name = (entry.get("message") or entry.get("name") or entry.get("enum")).replace(
                "{version}", version
            )
            if entry["add"] == "field":
                assert "supplement" in stored["messages"][name]["fields"][entry["name"]]
            elif entry["add"] == "message":
                assert "supplement" in stored["messages"][name]
            else:
                assert "supplement" in stored["enums"][name]
