"""Python client of the visionq HTTP API."""

from visionq.client.api import (
    DEFAULT_URL,
    PAGE_SIZE_MIN,
    VisionqClient,
    VisionqConnectionError,
    VisionqError,
)
from visionq.client.batch_models import (
    Batch,
    BatchItem,
    BatchPage,
    BatchProgress,
    ItemOutcome,
    ItemPage,
    ItemsAdded,
    Lookup,
    NewItem,
    RerunResult,
    Sha256Ref,
)
from visionq.client.batches import BatchClient
from visionq.client.models import Job, JobPage

__all__ = [
    "DEFAULT_URL",
    "PAGE_SIZE_MIN",
    "Batch",
    "BatchClient",
    "BatchItem",
    "BatchPage",
    "BatchProgress",
    "ItemOutcome",
    "ItemPage",
    "ItemsAdded",
    "Job",
    "JobPage",
    "Lookup",
    "NewItem",
    "RerunResult",
    "Sha256Ref",
    "VisionqClient",
    "VisionqConnectionError",
    "VisionqError",
]
