"""Standard Webhooks signing: the headers of one delivery attempt.

The ``standardwebhooks`` library (the spec authors' reference implementation) computes each
``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``; during a secret rotation's grace
period every live secret signs and the signatures are sent space-separated, so a receiver
holding either the old or the new secret verifies the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from math import floor

from standardwebhooks import Webhook

USER_AGENT = "visionq-webhooks/1"


def sign(secrets: Sequence[str], msg_id: str, at: datetime, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,...`` per secret (``whsec_...``), in order."""
    if not secrets:
        raise ValueError(
            "an endpoint has no live secret to sign with: make one with "
            "`visionq webhooks rotate ID` (ID from `visionq webhooks list`)"
        )
    return " ".join(Webhook(secret).sign(msg_id, _aware(at), body) for secret in secrets)


def webhook_headers(
    msg_id: str, at: datetime, body: bytes, secrets: Sequence[str]
) -> dict[str, str]:
    """Every header of one attempt: content type, user agent and the three Standard Webhooks
    headers (``webhook-timestamp`` is ``at`` in whole seconds, as signed)."""
    moment = _aware(at)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        # A compressed answer is of no use: only the status and a few bytes are kept.
        "accept-encoding": "identity",
        "webhook-id": msg_id,
        "webhook-timestamp": str(floor(moment.timestamp())),
        "webhook-signature": sign(secrets, msg_id, moment, body),
    }


def _aware(at: datetime) -> datetime:
    # visionq stores naive UTC; the library reads a naive datetime as UTC too, but say so.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
