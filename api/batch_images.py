"""The images of batch items: checked and stored in a pool of threads (Pillow's decode and
hashing release the GIL), each as a single submit checks it. Images given by sha256 are
taken from the tenant's stored inputs without a decode or a write."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from visionq.api.batch_body import ImagePart
from visionq.api.batch_schemas import BatchImageRef
from visionq.api.deps import ApiResources
from visionq.api.errors import ApiError
from visionq.api.job_checks import admit_image, check_downscale
from visionq.api.rawjob import image_label, too_large
from visionq.api.request_body import decode_base64
from visionq.api.urlfetch import FetchPolicy, UrlFetchError, fetch_image, shown_url
from visionq.models.blobs import BlobNotFoundError, BlobStore
from visionq.models.jobs import NewInput
from visionq.models.settings import Settings

# An image's header (size, mode, a JPEG's EXIF and DCT layout) is in its first bytes: the
# downscale check of a stored image reads only these (one ranged read on S3/GCS).
HEADER_BYTES = 262144
_PNG = b"\x89PNG\r\n\x1a\n"

# Codes of faults that are not the item's: the whole call fails (and may be retried).
CALL_FAULTS = frozenset({"unavailable"})


@dataclass(frozen=True)
class ImageWork:
    """An item's images to store, and the max_side its options ask (None: none)."""

    refs: Sequence[BatchImageRef]
    max_side: int | None


@dataclass
class StoredImages:
    """An item's images as stored inputs, in order; or the error rejecting the item."""

    inputs: list[NewInput] = field(default_factory=list)
    received: int = 0  # images sent as bytes (a part, base64 or a URL)
    referenced: int = 0  # images given by sha256
    error: ApiError | None = None


@dataclass(frozen=True)
class _Context:
    parts: Sequence[ImagePart]
    stored: dict[str, NewInput]
    resources: ApiResources
    policy: FetchPolicy


def store_images(
    work: Sequence[ImageWork],
    *,
    parts: Sequence[ImagePart],
    stored: dict[str, NewInput],
    resources: ApiResources,
) -> list[StoredImages]:
    """Check and store the images of each item of ``work``, in resources.intake_pool. An
    item with a bad image gets its error (the first, in image order); a resource fault
    (blob store, decode memory budget) is raised: the call fails. ``stored``: the tenant's
    inputs by sha256, for the sha256 refs."""
    settings = resources.settings
    policy = FetchPolicy(
        max_bytes=settings.max_image_bytes,
        timeout_s=settings.url_fetch_timeout_s,
        max_redirects=settings.url_fetch_max_redirects,
        allowed_networks=tuple(settings.url_fetch_allowed_networks),
    )
    context = _Context(parts, stored, resources, policy)
    results = [StoredImages() for _ in work]
    with _pool(resources) as pool:
        pending: list[list[Future[tuple[NewInput, bool]]]] = [
            [
                pool.submit(_image_input, ref, number, item.max_side, context)
                for number, ref in enumerate(item.refs)
            ]
            for item in work
        ]
        try:
            for result, futures in zip(results, pending, strict=True):
                for future in futures:
                    try:
                        image, received = future.result()
                    except ApiError as exc:
                        if exc.code in CALL_FAULTS:
                            raise
                        result.error = exc
                        break
                    result.inputs.append(image)
                    result.received += received
                    result.referenced += not received
        except BaseException:
            for futures in pending:
                for future in futures:
                    future.cancel()
            raise
    return results


@contextmanager
def _pool(resources: ApiResources) -> Iterator[ThreadPoolExecutor]:
    """The API's intake pool, else one for this call."""
    if resources.intake_pool is not None:
        yield resources.intake_pool
        return
    with ThreadPoolExecutor(resources.settings.batch_intake_threads) as pool:
        yield pool


def _image_input(
    ref: BatchImageRef, number: int, max_side: int | None, context: _Context
) -> tuple[NewInput, bool]:
    """One image as a stored input, and whether its bytes were received (else it was
    referenced by sha256). ApiError as a single submit answers for that image."""
    settings = context.resources.settings
    blobs = context.resources.blobs
    if ref.sha256 is not None:
        label = image_label(None, number)
        found = context.stored.get(ref.sha256)
        if found is None:
            raise _not_stored(label, ref.sha256)
        if max_side:
            try:
                check_stored_downscale(blobs, found.sha256, max_side, settings, label)
            except BlobNotFoundError as exc:
                raise _not_stored(label, ref.sha256) from exc
        return found, False
    if ref.part is not None:
        part = context.parts[ref.part]
        label = image_label(part.name, number)
        if part.data is None:
            raise too_large(label[0].lower() + label[1:], part.size, settings.max_image_bytes)
        data = part.data
    elif ref.url is not None:
        label = image_label(ref.url, number)
        try:
            data = fetch_image(ref.url, context.policy).data
        except UrlFetchError as exc:
            shown = shown_url(ref.url)
            named = "" if shown in exc.message else f" {shown}"
            raise ApiError.of(exc, f"images[{number}].url{named}: {exc.message}") from exc
    else:
        label = image_label(None, number)
        data = decode_base64(ref.data or "", number)
    prepared = admit_image(data, label, settings)
    if max_side:
        check_downscale(prepared.data, max_side, settings, label)
    sha256 = blobs.put(prepared.data)
    size = len(prepared.data)
    image = NewInput(sha256, prepared.mime_type, prepared.width, prepared.height, size,
                     prepared.changes)  # fmt: skip
    return image, True


def check_stored_downscale(
    blobs: BlobStore, sha256: str, max_side: int, settings: Settings, label: str
) -> None:
    """:func:`check_downscale` of a stored image from its first :data:`HEADER_BYTES`; the
    whole image only when its header lies further (a JPEG with a large EXIF or ICC block)
    or it is a PNG (whose orientation chunk may trail the pixels)."""
    head = blobs.head(sha256, HEADER_BYTES)
    if len(head) < HEADER_BYTES:
        check_downscale(head, max_side, settings, label)  # the whole image
        return
    if not head.startswith(_PNG):
        try:
            check_downscale(head, max_side, settings, label)
        except ApiError:
            raise
        except Exception:  # noqa: S110  # the header goes on past the head
            pass
        else:
            return
    check_downscale(blobs.get(sha256), max_side, settings, label)


def _not_stored(label: str, sha256: str) -> ApiError:
    return ApiError(
        "image_not_stored",
        f"{label}: no image of this tenant's jobs has sha256 {sha256}; send the image "
        "itself (a part, data or url).",
    )
