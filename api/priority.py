"""The ``priority`` of a job or batch (issue 23): 0..9, 9 first, the order within the
tenant's own waiting jobs. Not Gemini's ``priority`` service tier (options.tier)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from visionq.api.errors import ApiError

MIN_PRIORITY, MAX_PRIORITY = 0, 9
DESCRIPTION = (
    "Order among your own waiting jobs: 0 to 9, 9 first (default 5, VISIONQ_DEFAULT_PRIORITY). "
    "Across tenants the fair share decides (VISIONQ_TENANT_WEIGHTS): a high priority does not "
    "take another tenant's share. Not the service tier: that is options.tier. Used only with "
    "VISIONQ_FAIR_SHARE=true (else jobs start in submit order)."
)


def priority_field(description: str = DESCRIPTION) -> Any:
    """The request field: optional, a JSON integer 0..9 (else a 422 in the one error shape)."""
    return Field(
        default=None, strict=True, ge=MIN_PRIORITY, le=MAX_PRIORITY, description=description
    )


def public_priority_field() -> Any:
    """The answer field: the priority stored."""
    return Field(default=5, ge=MIN_PRIORITY, le=MAX_PRIORITY, description=DESCRIPTION)


def parse_form_priority(value: str | None) -> int | None:
    """The multipart form's ``priority`` field (text), checked as the JSON body's."""
    if value is None:
        return None
    # One ASCII digit, nothing else: int() would also take "+5", "0_5", " 5 " or other
    # scripts' digits, which the JSON field (strict) refuses.
    if re.fullmatch("[0-9]", value, flags=re.ASCII) is None:
        raise ApiError(
            "invalid_request",
            f"priority: {value[:20]!r} is not a priority; give an integer from 0 to 9 "
            "(9 starts first among your jobs).",
        )
    return int(value)
