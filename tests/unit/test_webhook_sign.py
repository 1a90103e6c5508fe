"""worker.webhook_sign: Standard Webhooks signatures, checked by a hand-written HMAC against
the spec's test vector (independent of the library that signs) and verified by the reference
library as a receiver would."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from visionq.worker.webhook_sign import sign, webhook_headers

# From the Standard Webhooks specification's reference test vector.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_AT = datetime.fromtimestamp(1614265330, tz=UTC)
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_SECRET = "whsec_" + base64.b64encode(b"\x07" * 32).decode()


def _by_hand(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def test_the_spec_vector_is_reproduced() -> None:
    assert _by_hand(SPEC_SECRET, SPEC_ID, 1614265330, SPEC_BODY) == SPEC_SIGNATURE
    assert sign([SPEC_SECRET], SPEC_ID, SPEC_AT, SPEC_BODY) == SPEC_SIGNATURE
    # visionq keeps naive UTC datetimes: the same instant signs the same.
    assert sign([SPEC_SECRET], SPEC_ID, SPEC_AT.replace(tzinfo=None), SPEC_BODY) == SPEC_SIGNATURE


def test_every_live_secret_signs_during_a_rotation() -> None:
    value = sign([OTHER_SECRET, SPEC_SECRET], SPEC_ID, SPEC_AT, SPEC_BODY)
    assert value.split(" ") == [
        _by_hand(OTHER_SECRET, SPEC_ID, 1614265330, SPEC_BODY),
        SPEC_SIGNATURE,
    ]


def test_a_receiver_with_either_secret_verifies() -> None:
    now = datetime.now(UTC)
    body = b'{"type":"job.succeeded","data":{"id":"j"}}'
    headers = webhook_headers("msg_x", now, body, [OTHER_SECRET, SPEC_SECRET])
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert headers["content-type"] == "application/json"
    for secret in (OTHER_SECRET, SPEC_SECRET):
        assert Webhook(secret).verify(body, headers) == {
            "type": "job.succeeded",
            "data": {"id": "j"},
        }
    stranger = "whsec_" + base64.b64encode(b"\x01" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify(body + b" ", headers)


def test_an_old_timestamp_is_refused_by_the_receiver() -> None:
    body = b"{}"
    headers = webhook_headers(
        "msg_y", datetime.now(UTC) - timedelta(minutes=6), body, [SPEC_SECRET]
    )
    with pytest.raises(WebhookVerificationError):
        Webhook(SPEC_SECRET).verify(body, headers)


def test_no_secret_is_an_error() -> None:
    with pytest.raises(ValueError):
        sign([], SPEC_ID, SPEC_AT, SPEC_BODY)


def test_no_live_secret_names_the_command_that_makes_one() -> None:
    with pytest.raises(ValueError, match=r"`visionq webhooks rotate ID`"):
        sign([], SPEC_ID, SPEC_AT, SPEC_BODY)
