"""Gemini File API uploads we made, so an image is uploaded once and reused until expiry.

Claiming the right to upload is a database race that exactly one worker wins: an insert
guarded by the (identity, sha256) unique key, or a conditional update of a stale row.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.tables import FileState, GeminiFile, utcnow


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
) -> bool:
    """True if this caller must upload now; False if the file is usable or being uploaded.

    The caller commits right after, so the claim is visible to the other workers.
    """
    now = utcnow()
    row = find_file(session, identity=identity, sha256=sha256)
    if row is None:
        try:
            with session.begin_nested():
                session.add(
                    GeminiFile(
                        identity=identity, sha256=sha256, mime_type=mime_type,
                        size_bytes=size_bytes, state=FileState.UPLOADING,
                        created_at=now, updated_at=now,
                    )
                )  # fmt: skip
        except IntegrityError:
            return False  # another worker inserted it first: it uploads
        return True
    if usable(row, margin=margin, now=now):
        return False
    if row.state == FileState.UPLOADING and now - row.updated_at < stale_after:
        return False
    # Expired, gone, failed, or an upload whose worker died: take it over, if nobody did.
    taken = session.execute(
        update(GeminiFile)
        .where(GeminiFile.id == row.id, GeminiFile.updated_at == row.updated_at)
        .values(state=FileState.UPLOADING, updated_at=now, error=None, mime_type=mime_type)
    )
    return bool(taken.rowcount)  # type: ignore[attr-defined]


def record_upload(
    session: Session,
    *,
    identity: str,
    sha256: str,
    name: str,
    uri: str,
    state: str,
    expires_at: datetime | None,
    error: str | None = None,
) -> None:
    """Store the outcome of an upload (ACTIVE with its URI, or FAILED with the reason)."""
    session.execute(
        update(GeminiFile)
        .where(GeminiFile.identity == identity, GeminiFile.sha256 == sha256)
        .values(
            name=name,
            uri=uri,
            state=state,
            expires_at=expires_at,
            error=error,
            updated_at=utcnow(),
            uploads=GeminiFile.uploads + 1,
        )
    )


def record_failure(session: Session, *, identity: str, sha256: str, error: str) -> None:
    session.execute(
        update(GeminiFile)
        .where(GeminiFile.identity == identity, GeminiFile.sha256 == sha256)
        .values(state=FileState.FAILED, error=error, updated_at=utcnow())
    )


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
