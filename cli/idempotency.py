"""Idempotency-Keys derived from what is submitted, so running a command again resumes it.

The API keeps each key for VISIONQ_IDEMPOTENCY_TTL_S (48 h by default) and answers a
repeated key with the job it already made: the same command over the same files, run
again after an interruption, finds its earlier jobs instead of paying for them twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

# Bumped if the canonical form changes, so an old key never matches a new meaning.
_KEY_VERSION = 1


def job_key(
    *,
    task: str,
    prompt: str | None,
    labels: Sequence[str] | None,
    model: str | None,
    options: dict[str, Any] | None,
    schema: Any,
    image_sha256s: Sequence[str],
    occurrence: int = 0,
    salt: str | None = None,
    webhook_url: str | None = None,
    priority: int | None = None,
) -> str:
    """The Idempotency-Key of one job: a sha256 over a canonical form of its request.

    Everything the API bills for is in it (task, prompt, labels, model, options, schema,
    and each image's sha256 in order): any change gives a new key, the same request the
    same key. ``occurrence`` tells identical jobs of one command apart (the same file
    given twice is two jobs, as asked). ``salt`` (`submit --new`, random per run) makes
    keys no earlier run had, so the same request makes new jobs; without it the key is
    what it always was. ``webhook_url`` is in it only when given (the API's request
    fingerprint has it then too), so keys without one are what they always were.
    """
    salted: dict[str, str] = {} if salt is None else {"salt": salt}
    if webhook_url is not None:
        salted["webhook_url"] = webhook_url
    if priority is not None:  # the same: only when given (--priority)
        salted["priority"] = str(priority)
    canonical = json.dumps(
        {
            **salted,
            "v": _KEY_VERSION,
            "task": task,
            "prompt": prompt,
            "labels": list(labels) if labels is not None else None,
            "model": model,
            "options": options or {},
            "schema": schema,
            "images": list(image_sha256s),
            "occurrence": occurrence,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return f"vq{_KEY_VERSION}-{hashlib.sha256(canonical.encode()).hexdigest()}"


def numbered(contents: Sequence[str]) -> list[int]:
    """For each item, how many identical items come before it (0 for the first)."""
    seen: dict[str, int] = {}
    counts = []
    for item in contents:
        counts.append(seen.get(item, 0))
        seen[item] = counts[-1] + 1
    return counts
