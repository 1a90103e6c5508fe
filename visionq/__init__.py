"""visionq: image-understanding jobs on Google's Gemini API.

The distribution installs one package, ``visionq``; its parts live in the repository's
top-level folders and are imported as ``visionq.api``, ``visionq.worker``, ``visionq.models``,
``visionq.vision``, ``visionq.emulator``, ``visionq.client`` and ``visionq.cli`` (the mapping
is ``[tool.setuptools.package-dir]`` in pyproject.toml). This module re-exports what a Python
caller of the HTTP API needs; everything else is imported from its sub-package.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from visionq.client import Job, JobPage, VisionqClient, VisionqConnectionError, VisionqError
    from visionq.vision.tasks import TaskKind

try:
    __version__ = version("visionq")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Job",
    "JobPage",
    "TaskKind",
    "VisionqClient",
    "VisionqConnectionError",
    "VisionqError",
    "__version__",
]

# Imported on first use: `import visionq.worker.tasks` (every worker, API and CLI process
# imports this module first) must not pay for the HTTP client it does not use.
_WHERE = {
    "Job": "visionq.client",
    "JobPage": "visionq.client",
    "VisionqClient": "visionq.client",
    "VisionqConnectionError": "visionq.client",
    "VisionqError": "visionq.client",
    "TaskKind": "visionq.vision.tasks",
}


def __getattr__(name: str) -> Any:
    """The public names of ``__all__``, imported from their sub-package when first read."""
    if name in _WHERE:
        value = getattr(import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'visionq' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
