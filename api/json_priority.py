"""The JSON bodies' ``priority`` check (POST /v1/jobs, POST /v1/batches): the same message
as the multipart form's (api/priority.py) instead of pydantic's "Input should be ..."."""

from __future__ import annotations

import json

from pydantic_core import PydanticCustomError

# The wording of the multipart form's error, so both request shapes read alike.
PRIORITY_HELP = "give an integer from 0 to 9 (9 starts first among your jobs)"
# A value shown in the message is cut to this many characters (it comes from the client).
_SHOWN_CHARS = 20


def check_json_priority(value: object) -> object:
    """``value`` unchanged when null or a JSON integer 0..9 (the field's strict int and
    bounds then accept it); else a 422 naming the value and what to give instead."""
    if value is None or (type(value) is int and 0 <= value <= 9):
        return value
    try:
        shown = json.dumps(value)
    except (TypeError, ValueError):  # not from JSON (a Python caller): show its repr
        shown = repr(value)
    raise PydanticCustomError(
        "priority",
        "{shown} is not a priority; " + PRIORITY_HELP + ".",
        {"shown": shown[:_SHOWN_CHARS]},
    )
