"""`import visionq`: a small explicit public surface, imported only when used."""

from __future__ import annotations

import subprocess
import sys

import pytest

import visionq
from visionq.client import VisionqClient
from visionq.vision.tasks import TaskKind


def test_every_public_name_resolves_to_its_sub_package_object() -> None:
    assert set(visionq.__all__) == {
        "Job", "JobPage", "TaskKind", "VisionqClient", "VisionqConnectionError", "VisionqError",
        "__version__",
    }  # fmt: skip
    for name in visionq.__all__:
        assert getattr(visionq, name) is not None
    assert visionq.VisionqClient is VisionqClient
    assert visionq.TaskKind is TaskKind


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = visionq.nothing


def test_importing_a_sub_package_does_not_import_the_http_client() -> None:
    code = "import sys, visionq.models.settings; print('visionq.client' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
