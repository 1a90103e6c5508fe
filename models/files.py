"""Gemini File API uploads we made, so an image is uploaded once and reused until expiry.

Claiming the right to upload is a database race that exactly one worker wins: an insert
guarded by the (identity, sha256) unique key, or a conditional update of a stale row.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionq.models.tables import FileState, GeminiFile, utcnow


def find_file(session: Session, *, identity: str, sha256: str) -> GeminiFile | None:
    return session.scalar(
        select(GeminiFile).where(GeminiFile.identity == identity, GeminiFile.sha256 == sha256)
    )


def usable(row: GeminiFile, *, margin: timedelta, now: datetime | None = None) -> bool:
    """ACTIVE, with a URI, and not within ``margin`` of its expiry."""
    now = now or utcnow()
    return (
        row.state == FileState.ACTIVE
        and row.uri is not None
        and row.expires_at is not None
        and row.expires_at - margin > now
    )


def claim_upload(
    session: Session,
    *,
    identity: str,
    sha256: str,
    mime_type: str,
    size_bytes: int,
    margin: timedelta,
    stale_after: timedelta,
) -> str | None:
    """A claim token if this caller must upload now; None if usable or being uploaded.

    The caller commits right after, so the claim is visible to the other workers, and
    passes the token to record_upload/record_failure/keep_claim.
    """
    now = utcnow()
    token = secrets.token_hex(16)
    row = find_file(session, identity=identity, sha256=sha256)
    if row is None:
        try:
            with session.begin_nested():
                session.add(
                    GeminiFile(
                        identity=identity, sha256=sha256, mime_type=mime_type,
                        size_bytes=size_bytes, state=FileState.UPLOADING,
                        created_at=now, updated_at=now, claim=token,
                    )
                )  # fmt: skip
        except IntegrityError:
            return None  # another worker inserted it first: it uploads
        return token
    if usable(row, margin=margin, now=now):
        return None
    if row.state == FileState.UPLOADING and now - row.updated_at < stale_after:
        return None
    # Expired, gone, failed, or an upload whose worker died: take it over, if nobody did.
    taken = session.execute(
        update(GeminiFile)
        .where(GeminiFile.id == row.id, GeminiFile.updated_at == row.updated_at)
        .values(
            state=FileState.UPLOADING, updated_at=now, error=None, mime_type=mime_type,
            claim=token,
        )
    )  # fmt: skip
    return token if taken.rowcount else None  # type: ignore[attr-defined]


def keep_claim(session: Session, *, identity: str, sha256: str, token: str) -> bool:
    """Refresh a claim during a long upload, so it is not taken for a dead worker's."""
    kept = session.execute(
        update(GeminiFile)
        .where(
            GeminiFile.identity == identity, GeminiFile.sha256 == sha256,
            GeminiFile.claim == token,
        )
        .values(updated_at=utcnow())
    )  # fmt: skip
    return bool(kept.rowcount)  # type: ignore[attr-defined]


def record_upload(
    session: Session,
    *,
    identity: str,
    sha256: str,
    name: str,
    uri: str,
    state: str,
    expires_at: datetime | None,
    token: str,
    error: str | None = None,
) -> str | None:
    """Store the outcome of an upload (ACTIVE with its URI) if the claim is still ours.

    Returns the name of the Gemini file this one replaces (to delete), or None. Raises
    LookupError when the claim was taken over meanwhile: the caller's upload is surplus.
    """
    previous = session.scalar(
        select(GeminiFile.name).where(
            GeminiFile.identity == identity, GeminiFile.sha256 == sha256, GeminiFile.claim == token
        )
    )
    recorded = session.execute(
        update(GeminiFile)
        .where(
            GeminiFile.identity == identity,
            GeminiFile.sha256 == sha256,
            GeminiFile.claim == token,
        )
        .values(
            name=name,
            uri=uri,
            state=state,
            expires_at=expires_at,
            error=error,
            updated_at=utcnow(),
            uploads=GeminiFile.uploads + 1,
            claim=None,
        )
    )
    if not recorded.rowcount:  # type: ignore[attr-defined]
        raise LookupError(f"the upload claim of {sha256[:12]} was taken over")
    return previous if previous and previous != name else None


def record_failure(session: Session, *, identity: str, sha256: str, error: str, token: str) -> None:
    """Mark our claimed upload FAILED, so waiting workers stop waiting at once."""
    session.execute(
        update(GeminiFile)
        .where(
            GeminiFile.identity == identity, GeminiFile.sha256 == sha256,
            GeminiFile.claim == token,
        )
        .values(state=FileState.FAILED, error=error, updated_at=utcnow(), claim=None)
    )  # fmt: skip


def mark_used(session: Session, file_id: int) -> None:
    session.execute(
        update(GeminiFile).where(GeminiFile.id == file_id).values(last_used_at=utcnow())
    )


def mark_gone(session: Session, *, identity: str, uris: list[str]) -> int:
    """Forget files Gemini refused at call time (expired or deleted): they get re-uploaded."""
    result = session.execute(
        update(GeminiFile)
        .where(GeminiFile.identity == identity, GeminiFile.uri.in_(uris))
        .values(state=FileState.GONE, updated_at=utcnow())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def list_files(session: Session, *, identity: str | None = None) -> list[GeminiFile]:
    query = select(GeminiFile).order_by(GeminiFile.created_at.desc())
    if identity is not None:
        query = query.where(GeminiFile.identity == identity)
    return list(session.scalars(query))


def forget_file(session: Session, file_id: int) -> None:
    session.execute(delete(GeminiFile).where(GeminiFile.id == file_id))
