"""API keys: generated once, stored only as a hash, looked up by hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from visionq.models.tables import API_KEYS, ApiKey, utcnow

KEY_PREFIX = "vq_"


def hash_key(secret: str) -> str:
    # The keys are 256 random bits, so a fast unsalted hash cannot be brute-forced;
    # a slow KDF would only add latency to every request.
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedKey:
    id: int
    tenant: str
    name: str
    secret: str


def create_key(session: Session, *, name: str, tenant: str) -> CreatedKey:
    """Create a key; the returned secret is the only copy that will ever exist."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(tenant=tenant, name=name, prefix=secret[:10], secret_hash=hash_key(secret))
    session.add(row)
    session.flush()
    return CreatedKey(id=row.id, tenant=tenant, name=name, secret=secret)


@dataclass(frozen=True)
class KeyIdentity:
    """Who an authenticated request comes from."""

    id: int
    tenant: str


# Every request authenticates: the statement is built once, and reads only what it needs.
_BY_HASH = select(
    API_KEYS.c.id, API_KEYS.c.tenant, API_KEYS.c.secret_hash, API_KEYS.c.revoked_at
).where(API_KEYS.c.secret_hash == bindparam("digest"))


def authenticate(session: Session, secret: str) -> KeyIdentity | None:
    """The active key with this secret, or None.

    The lookup is by the secret's hash (an attacker cannot steer which index entries are
    compared), and the stored hash is then compared in constant time.
    """
    digest = hash_key(secret)
    row = session.connection().execute(_BY_HASH, {"digest": digest}).first()
    if row is None or not hmac.compare_digest(row.secret_hash, digest):
        return None
    if row.revoked_at is not None:
        return None
    return KeyIdentity(id=row.id, tenant=row.tenant)


def list_keys(session: Session, *, tenant: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.id)
    if tenant is not None:
        query = query.where(ApiKey.tenant == tenant)
    return list(session.scalars(query))


def revoke_key(session: Session, key_id: int) -> bool:
    """Revoke a key; False when there is no such active key."""
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True
