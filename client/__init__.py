"""Python client of the visionq HTTP API."""

from visionq.client.api import (
    DEFAULT_URL,
    PAGE_SIZE_MIN,
    VisionqClient,
    VisionqConnectionError,
    VisionqError,
)
from visionq.client.models import Job, JobPage

__all__ = [
    "DEFAULT_URL",
    "PAGE_SIZE_MIN",
    "Job",
    "JobPage",
    "VisionqClient",
    "VisionqConnectionError",
    "VisionqError",
]
