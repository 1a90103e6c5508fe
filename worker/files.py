"""Images sent through the Gemini File API: uploaded once, reused until near expiry."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from google.genai import types
from sqlalchemy.orm import Session, sessionmaker

from visionq.models.blobs import BlobStore
from visionq.models.files import (
    claim_upload,
    find_file,
    keep_claim,
    mark_gone,
    mark_used,
    record_failure,
    record_upload,
    usable,
)
from visionq.models.metrics import FILE_UPLOAD_BYTES, FILE_UPLOADS
from visionq.models.settings import Settings
from visionq.models.tables import FileState
from visionq.worker.gemini import GeminiCaller, GeminiCallError

log = logging.getLogger(__name__)
_POLL_S = 0.25


@dataclass(frozen=True)
class FilePolicy:
    margin: timedelta
    stale_after: timedelta
    active_timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> FilePolicy:
        return cls(
            margin=timedelta(seconds=settings.file_expiry_margin_s),
            stale_after=timedelta(seconds=settings.file_upload_stale_s),
            active_timeout_s=settings.file_active_timeout_s,
        )


class UploadCache:
    """Gives the URI of an ACTIVE upload of an image, uploading it only when needed."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        gemini: GeminiCaller,
        blobs: BlobStore,
        identity: str,
        policy: FilePolicy,
    ) -> None:
        self._sessions = sessions
        self._gemini = gemini
        self._blobs = blobs
        self._identity = identity
        self._policy = policy

    def uri_for(
        self, sha256: str, mime_type: str, size_bytes: int, *, margin: timedelta | None = None
    ) -> str:
        """An ACTIVE file URI for the blob ``sha256``; raises GeminiCallError.

        ``margin``: the least time the file must have left before its expiry (default: the
        policy's, for a sync call); a Gemini batch passes its own, as it may wait 24 h.
        """
        margin = self._policy.margin if margin is None else margin
        deadline = (
            time.monotonic()
            + self._policy.active_timeout_s
            + self._policy.stale_after.total_seconds()
        )
        while True:
            reused: str | None = None
            token: str | None = None
            with self._sessions.begin() as session:
                row = find_file(session, identity=self._identity, sha256=sha256)
                if row is not None and usable(row, margin=margin):
                    mark_used(session, row.id)
                    reused = row.uri
                    assert reused is not None
                else:
                    token = claim_upload(
                        session, identity=self._identity, sha256=sha256, mime_type=mime_type,
                        size_bytes=size_bytes, margin=margin,
                        stale_after=self._policy.stale_after,
                    )  # fmt: skip
            if reused is not None:
                FILE_UPLOADS.labels("reused").inc()
                return reused
            if token is not None:
                return self._upload(sha256, mime_type, token)
            # Another worker is uploading the same image: wait for its result.
            if time.monotonic() > deadline:
                raise GeminiCallError(
                    "file_upload_timeout",
                    f"Waited too long for another worker's upload of image {sha256[:12]}.",
                    retryable=True,
                )
            time.sleep(_POLL_S)

    def _upload(self, sha256: str, mime_type: str, token: str) -> str:
        try:
            data = self._blobs.get(sha256)
            uploaded = self._gemini.upload(
                data, mime_type=mime_type, display_name=f"visionq-{sha256[:16]}"
            )
            FILE_UPLOAD_BYTES.inc(len(data))
            active = self._wait_active(uploaded, sha256, token)
        except Exception as exc:
            FILE_UPLOADS.labels("failed").inc()
            # Release the claim at once, so waiting workers do not wait for the stale timeout.
            with self._sessions.begin() as session:
                record_failure(
                    session, identity=self._identity, sha256=sha256, error=str(exc), token=token
                )
            raise
        assert active.name is not None and active.uri is not None
        FILE_UPLOADS.labels("uploaded").inc()
        try:
            with self._sessions.begin() as session:
                replaced = record_upload(
                    session, identity=self._identity, sha256=sha256, name=active.name,
                    uri=active.uri, state=FileState.ACTIVE, expires_at=active.expiration_time,
                    token=token,
                )  # fmt: skip
        except LookupError:
            # Our claim was taken over (we looked dead): the other upload is the one kept.
            self._delete_quietly(active.name)
            return active.uri
        if replaced:
            self._delete_quietly(replaced)  # the expired/failed file this one replaces
        log.info("uploaded image %s as %s", sha256[:12], active.name)
        return active.uri

    def _delete_quietly(self, name: str) -> None:
        """Free project storage; a file Gemini already dropped is fine."""
        try:
            self._gemini.delete_file(name)
        except GeminiCallError as exc:
            log.info("could not delete superseded file %s: %s", name, exc.message)

    def _wait_active(self, file: types.File, sha256: str, token: str) -> types.File:
        """Poll until ACTIVE (the SDK does not wait); FAILED is an error with its message.

        Each poll refreshes our claim, so a slow upload is not mistaken for a dead worker's.
        """
        deadline = time.monotonic() + self._policy.active_timeout_s
        current = file
        while True:
            state = current.state.value if current.state else "STATE_UNSPECIFIED"
            if state == "ACTIVE":
                return current
            if state == "FAILED":
                reason = current.error.message if current.error and current.error.message else ""
                raise GeminiCallError(
                    "file_processing_failed",
                    f"Gemini could not process the uploaded image {current.name}: "
                    f"{reason or 'no reason given'}.",
                )
            if time.monotonic() > deadline:
                raise GeminiCallError(
                    "file_not_active",
                    f"Uploaded file {current.name} was still {state} after "
                    f"{self._policy.active_timeout_s:.0f} s.",
                    retryable=True,
                )
            time.sleep(_POLL_S)
            with self._sessions.begin() as session:
                keep_claim(session, identity=self._identity, sha256=sha256, token=token)
            assert current.name is not None
            current = self._gemini.get_file(current.name)

    def forget(self, uris: list[str]) -> None:
        """Gemini refused these URIs (expired or deleted): the next use uploads again."""
        with self._sessions.begin() as session:
            mark_gone(session, identity=self._identity, uris=uris)
