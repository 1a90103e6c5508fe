"""The File API's storage and lifecycle: upload sessions, files, states and expiry.

No HTTP here (files_api.py speaks the protocol). Time comes from a clock handed in, so
the state machine can be tested without sleeping.

Lifecycle of a file:

- PROCESSING from the finalizing chunk until ``processing_s`` later, then ACTIVE, or
  FAILED when an ``image/*`` file does not decode (the verdict is reached at finalize
  and only shown once the delay has passed, like a real processing step).
- Expired ``ttl_s`` after creation (or when forced by the emulator-only endpoint): its
  bytes are dropped and a tombstone stays, so files.get answers 403 as the real service
  does; expired files are not listed.
- Deleted: forgotten entirely, so files.get answers 404.

Generated files (a batch's output, ``files/batch-<id>``) are ACTIVE at once, have
``source: GENERATED`` and a ``downloadUri``; only they can be downloaded.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from PIL import Image

from visionq.emulator import errors
from visionq.emulator.paging import page_of
from visionq.emulator.scene import UndecodableImageError, load_image

Clock = Callable[[], float]

ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 12
# Ids the caller may choose; generated ids use [a-z0-9] only, since the SDK extracts ids
# from URIs with that pattern.
NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
# A fileData URI names a file by its path, "…/files/<id>" (host and version ignored, so
# the worker may reach the emulator under another host name than the uploader).
URI_PATTERN = re.compile(r"(?:^|/)files/([a-z0-9][a-z0-9-]*)/?$")
FAILED_MESSAGE = "The file could not be processed."
FAILED_CODE = 400
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100


def rfc3339(timestamp: float) -> str:
    """A Z-normalised RFC 3339 time with microseconds, as Google's JSON writes it."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_file_id() -> str:
    """A random id of [a-z0-9] (unguessable enough that ids never collide in practice)."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def requested_id(name: str) -> str:
    """The id in a caller-chosen ``files/<id>`` (or bare ``<id>``) name, validated."""
    file_id = name.removeprefix("files/")
    if not NAME_PATTERN.fullmatch(file_id):
        raise errors.invalid_file_name(name)
    return file_id


def id_from_uri(uri: str) -> str | None:
    """The file id a fileData URI names, or None when it is not a File API URI."""
    path = uri.split("?", 1)[0]
    match = URI_PATTERN.search(path)
    return match.group(1) if match else None


def decodes(mime_type: str, data: bytes) -> bool:
    """False when an ``image/*`` file does not decode as an image; other types pass."""
    if not mime_type.startswith("image/"):
        return True
    try:
        load_image(data)
    except (UndecodableImageError, Image.DecompressionBombError):
        return False
    return True


@dataclass
class StoredFile:
    """One uploaded file. ``data`` is None once the file has expired."""

    file_id: str
    display_name: str
    mime_type: str
    size: int
    sha256_hex: str
    version: str
    created: float
    ready_at: float
    expires_at: float
    failed: bool
    seq: int
    data: bytes | None = field(repr=False)
    generated: bool = False

    def is_expired(self, now: float) -> bool:
        """True from the expiration time on."""
        return now >= self.expires_at

    def state(self, now: float) -> str:
        """PROCESSING until ``ready_at``, then FAILED or ACTIVE."""
        if now < self.ready_at:
            return "PROCESSING"
        return "FAILED" if self.failed else "ACTIVE"

    def uri(self, base_url: str) -> str:
        """``{base}/{version}/files/<id>``: the real one is on generativelanguage.googleapis.com."""
        return f"{base_url.rstrip('/')}/{self.version}/files/{self.file_id}"

    def resource(self, now: float, base_url: str) -> dict[str, Any]:
        """The File resource as JSON (empty fields left out, as ProtoJSON does)."""
        state = self.state(now)
        updated = self.ready_at if state != "PROCESSING" else self.created
        body: dict[str, Any] = {"name": f"files/{self.file_id}"}
        if self.display_name:
            body["displayName"] = self.display_name
        body |= {
            "mimeType": self.mime_type,
            "sizeBytes": str(self.size),
            "createTime": rfc3339(self.created),
            "updateTime": rfc3339(updated),
            "expirationTime": rfc3339(self.expires_at),
            # A proto bytes field (base64 in JSON) holding the hex digest's characters.
            "sha256Hash": base64.b64encode(self.sha256_hex.encode("ascii")).decode("ascii"),
            "uri": self.uri(base_url),
            "state": state,
            "source": "GENERATED" if self.generated else "UPLOADED",
        }
        if self.generated:
            body["downloadUri"] = f"{self.uri(base_url)}:download?alt=media"
        if state == "FAILED":
            body["error"] = {"code": FAILED_CODE, "message": FAILED_MESSAGE}
        return body


@dataclass
class UploadSession:
    """A resumable upload between its ``start`` and its ``finalize``."""

    token: str
    file_id: str | None
    display_name: str
    mime_type: str
    size: int
    version: str
    buffer: bytearray = field(default_factory=bytearray, repr=False)

    @property
    def received(self) -> int:
        """Bytes stored so far (the next expected ``X-Goog-Upload-Offset``)."""
        return len(self.buffer)


class FileStore:
    """Files and upload sessions of one emulator app."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.files: dict[str, StoredFile] = {}
        self.sessions: dict[str, UploadSession] = {}
        self._seq = 0

    def clear(self) -> None:
        """Forget every file and session."""
        self.files.clear()
        self.sessions.clear()

    # --- uploads ------------------------------------------------------------------------

    def start(
        self, *, name: str | None, display_name: str, mime_type: str, size: int, version: str
    ) -> UploadSession:
        """Open a session; the token goes into the upload URL and is its only credential."""
        file_id = requested_id(name) if name else None
        if file_id is not None and file_id in self.files:
            raise errors.file_already_exists(file_id)
        session = UploadSession(
            token=secrets.token_urlsafe(24),
            file_id=file_id,
            display_name=display_name,
            mime_type=mime_type,
            size=size,
            version=version,
        )
        self.sessions[session.token] = session
        return session

    def session(self, token: str) -> UploadSession:
        """The open session behind an upload URL."""
        session = self.sessions.get(token)
        if session is None:
            raise errors.upload_session_not_found()
        return session

    def cancel(self, token: str) -> None:
        """Drop a session (the ``cancel`` command, or a finalize claiming it)."""
        self.sessions.pop(token, None)

    def finish(
        self,
        session: UploadSession,
        data: bytes,
        *,
        processing_s: float,
        ttl_s: float,
        failed: bool,
    ) -> StoredFile:
        """Turn a complete session (its bytes: ``data``) into a PROCESSING file.

        With ``processing_s`` 0 the file is ACTIVE (or FAILED) at once.
        """
        self.sessions.pop(session.token, None)
        file_id = session.file_id or new_file_id()
        while session.file_id is None and file_id in self.files:
            file_id = new_file_id()
        if file_id in self.files:
            raise errors.file_already_exists(file_id)
        now = self.clock()
        self._seq += 1
        stored = StoredFile(
            file_id=file_id,
            display_name=session.display_name,
            mime_type=session.mime_type,
            size=len(data),
            sha256_hex=hashlib.sha256(data).hexdigest(),
            version=session.version,
            created=now,
            ready_at=now + processing_s,
            expires_at=now + ttl_s,
            failed=failed,
            seq=self._seq,
            data=data,
        )
        self.files[file_id] = stored
        return stored

    def add_generated(
        self, file_id: str, *, mime_type: str, data: bytes, version: str, ttl_s: float
    ) -> StoredFile:
        """Store a file the service made (a batch's output): ACTIVE at once, downloadable."""
        now = self.clock()
        self._seq += 1
        stored = StoredFile(
            file_id=file_id,
            display_name="",
            mime_type=mime_type,
            size=len(data),
            sha256_hex=hashlib.sha256(data).hexdigest(),
            version=version,
            created=now,
            ready_at=now,
            expires_at=now + ttl_s,
            failed=False,
            seq=self._seq,
            data=data,
            generated=True,
        )
        self.files[file_id] = stored
        return stored

    def download(self, file_id: str) -> StoredFile:
        """files.download: the file's bytes; 403 like ``get``, 400 for an uploaded file."""
        stored = self.get(file_id)
        if not stored.generated or stored.data is None:
            raise errors.invalid_argument(
                "Only generated files can be downloaded; uploaded files cannot be downloaded."
            )
        return stored

    # --- files --------------------------------------------------------------------------

    def _sweep(self, now: float) -> None:
        # Expired files keep their metadata (for the 403) but not their bytes.
        for stored in self.files.values():
            if stored.data is not None and stored.is_expired(now):
                stored.data = None

    def get(self, file_id: str) -> StoredFile:
        """files.get: 403 PERMISSION_DENIED for unknown, deleted and expired ids.

        The Gemini API does not say whether a file exists that the caller may not see, so
        an id that never existed gets the same 403 as an expired one.
        """
        now = self.clock()
        self._sweep(now)
        stored = self.files.get(file_id)
        if stored is None or stored.is_expired(now):
            raise errors.file_permission_denied(file_id)
        return stored

    def delete(self, file_id: str) -> None:
        """files.delete: same errors as ``get``."""
        self.get(file_id)
        del self.files[file_id]

    def expire(self, file_id: str) -> StoredFile:
        """Make a file expire now (emulator-only, for tests); 404 if unknown."""
        stored = self.files.get(file_id)
        if stored is None:
            raise errors.file_not_found(file_id)
        stored.expires_at = min(stored.expires_at, self.clock())
        stored.data = None
        return stored

    def for_prompt(self, file_id: str) -> tuple[StoredFile, bytes]:
        """A file used by generateContent: 403 unless it exists, 400 unless ACTIVE."""
        now = self.clock()
        self._sweep(now)
        stored = self.files.get(file_id)
        if stored is None or stored.data is None or stored.is_expired(now):
            raise errors.file_permission_denied(file_id)
        if stored.state(now) != "ACTIVE":
            raise errors.file_not_active(file_id)
        return stored, stored.data

    def live(self) -> list[StoredFile]:
        """Unexpired files, newest first."""
        now = self.clock()
        self._sweep(now)
        alive = [f for f in self.files.values() if not f.is_expired(now)]
        return sorted(alive, key=lambda f: f.seq, reverse=True)

    def page(self, page_size: int | None, page_token: str | None) -> tuple[list[StoredFile], str]:
        """One page of files.list (newest first) and the next token ("" on the last page).

        A token encodes the sequence number of the last file returned, so deletions
        between pages neither repeat nor skip files.
        """
        return page_of(
            self.live(),
            lambda item: item.seq,
            page_size=page_size,
            page_token=page_token,
            sizes=(DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
            kind="after",
        )
