"""README's Webhooks section and CLI reference say what the code does (issue 21 review
NITs): every data field of every event body (the OpenAPI document's webhook models) is
named, and the `visionq gc` row says it deletes old webhook events."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from visionq.api.webhook_events import BatchEventData, BudgetEventData, JobEventData

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
WEBHOOKS = README.split("\n## Webhooks\n")[1].split("\n## ")[0]


@pytest.mark.parametrize("model", [JobEventData, BatchEventData, BudgetEventData])
def test_readme_names_every_field_of_each_webhook_body(model: type[BaseModel]) -> None:
    obj = model.model_fields["object"].annotation.__args__[0]  # type: ignore[union-attr]
    (shape,) = re.findall(r'`\{"object": "' + obj + r'",(.*?)\}`', WEBHOOKS, flags=re.DOTALL)
    fields = [name for name in model.model_fields if name not in ("object", "expired")]
    missing = [name for name in fields if f'"{name}"' not in shape]
    assert missing == [], f"README's {obj} data lacks {missing}"
    # The retention case is told in prose next to the shapes.
    assert "expired" not in model.model_fields or '`"expired": true`' in WEBHOOKS


def test_readme_gc_row_mentions_webhook_events() -> None:
    (row,) = [line for line in README.splitlines() if line.startswith("| `visionq gc")]
    assert "webhook events" in row
