"""Python client of the visionq HTTP API."""

from client.api import DEFAULT_URL, VisionqClient, VisionqConnectionError, VisionqError
from client.models import Job, JobPage

__all__ = [
    "DEFAULT_URL",
    "Job",
    "JobPage",
    "VisionqClient",
    "VisionqConnectionError",
    "VisionqError",
]
