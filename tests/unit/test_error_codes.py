"""Every code a coded error can carry has its HTTP status and its job error code declared.

The codes are read from the source: each call that builds a leaf of vision.errors.CodedError
(or one of the helpers that build one) with a literal code must name a code its class
declares in ``codes``, and each declared code must have an entry in the table of the layer
that shows it, so no code falls to a silent default status or job code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from visionq.api.errors import HTTP_STATUS, ApiError, http_status
from visionq.api.urlfetch import UrlFetchError
from visionq.models.blobs import BlobNotFoundError
from visionq.models.jobrefs import JobIdError
from visionq.models.netguard import UrlRefused
from visionq.vision.errors import CodedError, FixedCodeError
from visionq.vision.formats import ImageRejectedError
from visionq.vision.parsing import AnswerParseError
from visionq.vision.structured import SchemaMismatchError, SchemaUnverifiableError
from visionq.vision.tasks import JobSpecError
from visionq.worker.errors import GeminiCallError
from visionq.worker.failures import (
    FAILURE_WORDING,
    JOB_ERROR_CODES,
    JOB_ERROR_PREFIXES,
    failure_message,
)
from visionq.worker.ratelimit import RateLimitTimeout

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "worker", "models", "vision")
# Leaves whose codes reach the API (HTTP_STATUS) and those that end a job (JOB_ERROR_CODES).
API_LEAVES: tuple[type[CodedError], ...] = (
    JobSpecError,
    ImageRejectedError,
    JobIdError,
    UrlFetchError,
    UrlRefused,
)
JOB_LEAVES: tuple[type[CodedError], ...] = (
    GeminiCallError,
    ImageRejectedError,
    BlobNotFoundError,
    RateLimitTimeout,
    AnswerParseError,
    SchemaMismatchError,
    SchemaUnverifiableError,
)
# Leaves built with their code as the first argument (the others have one code of their own).
BUILT_WITH_CODE = (*API_LEAVES, ApiError, GeminiCallError)
# Helpers that build a leaf from their first argument, by (file, function name).
BUILDERS: dict[tuple[str, str], type[CodedError]] = {
    ("api/urlfetch.py", "_refused"): UrlFetchError,
    ("models/netguard.py", "_refused"): UrlRefused,
    ("worker/answers.py", "fail"): GeminiCallError,
}


def _leaves() -> set[type[CodedError]]:
    found: set[type[CodedError]] = set()
    todo = list(CodedError.__subclasses__())
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def _callee(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _literal_codes() -> list[tuple[str, type[CodedError], str, bool]]:
    """(where, class, code, is_prefix) of every leaf built with a literal (or f-string) code."""
    by_name = {cls.__name__: cls for cls in BUILT_WITH_CODE}
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                name = _callee(node)
                cls = BUILDERS.get((rel, name or "")) or by_name.get(name or "")
                if cls is None:
                    continue
                first = node.args[0]
                where = f"{rel}:{node.lineno}"
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.append((where, cls, first.value, False))
                elif isinstance(first, ast.JoinedStr):
                    head = first.values[0] if first.values else None
                    assert isinstance(head, ast.Constant), f"{where}: a code with no literal head"
                    found.append((where, cls, str(head.value), True))
    return found


def test_the_source_builds_coded_errors_with_literal_codes() -> None:
    # The scan below is only as good as what it finds: it must see the known raise sites.
    classes = {cls for _, cls, _, _ in _literal_codes()}
    assert classes == set(BUILT_WITH_CODE)


def test_every_literal_code_is_one_its_class_declares() -> None:
    for where, cls, code, prefix in _literal_codes():
        if prefix:
            assert code in cls.code_prefixes, f"{where}: {cls.__name__} code prefix {code!r}"
        else:
            assert cls.carries(code), f"{where}: {cls.__name__} does not declare {code!r}"


def test_every_leaf_is_served_by_a_table() -> None:
    # A new leaf must say which layer shows it (and get its table entries).
    assert _leaves() - {ApiError, FixedCodeError} == {*API_LEAVES, *JOB_LEAVES}
    for cls in _leaves() - {FixedCodeError}:
        assert cls.__doc__ and len(cls.__doc__.split()) > 8, f"{cls.__name__} says when"


@pytest.mark.parametrize("cls", (*API_LEAVES, ApiError), ids=lambda cls: cls.__name__)
def test_every_code_the_api_shows_has_its_http_status(cls: type[CodedError]) -> None:
    assert not cls.code_prefixes
    assert cls.codes and cls.codes <= HTTP_STATUS.keys(), cls.codes - HTTP_STATUS.keys()


@pytest.mark.parametrize("cls", JOB_LEAVES, ids=lambda cls: cls.__name__)
def test_every_code_that_ends_a_job_has_its_job_error_code(cls: type[CodedError]) -> None:
    assert cls.codes and cls.codes <= JOB_ERROR_CODES.keys(), cls.codes - JOB_ERROR_CODES.keys()
    assert set(cls.code_prefixes) <= set(JOB_ERROR_PREFIXES)


def test_the_tables_hold_no_code_no_leaf_carries() -> None:
    api_codes = set().union(*(cls.codes for cls in (*API_LEAVES, ApiError)))
    job_codes = set().union(*(cls.codes for cls in JOB_LEAVES))
    assert HTTP_STATUS.keys() == api_codes
    assert JOB_ERROR_CODES.keys() == job_codes


def test_there_is_no_default_status() -> None:
    with pytest.raises(KeyError):
        http_status("no_such_code")


def test_no_api_error_is_given_its_status_by_hand() -> None:
    """ApiError takes (code, message): the status comes from HTTP_STATUS only."""
    for path in sorted((ROOT / "api").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and _callee(node) == "ApiError" and node.args:
                first = node.args[0]
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                assert not (isinstance(first, ast.Constant) and isinstance(first.value, int)), where


def test_an_api_error_takes_its_status_from_the_table() -> None:
    assert ApiError("job_not_found", "No such job.").status == 404
    assert ApiError("budget_exceeded", "Over budget.").status == 402
    # A code missing from the table fails when built: no silent default status.
    with pytest.raises(KeyError):
        ApiError("no_such_code", "never answered")


@pytest.mark.parametrize("cls", JOB_LEAVES, ids=lambda cls: cls.__name__)
def test_a_leaf_with_one_code_needs_no_code_argument(cls: type[CodedError]) -> None:
    if cls in BUILT_WITH_CODE:
        return
    assert len(cls.codes) == 1
    assert issubclass(cls, FixedCodeError) or cls is RateLimitTimeout


def test_each_wording_is_for_a_code_that_ends_a_job() -> None:
    assert FAILURE_WORDING.keys() <= JOB_ERROR_CODES.keys()


def test_the_failure_mapping_reads_the_code() -> None:
    """The job error code and words a failed job shows, by the error's code (unchanged from
    the per-type mapping this replaced)."""
    sha = "ab" * 32
    cases = [
        (BlobNotFoundError(sha), "input_missing", f"Input image {sha} is missing"),
        (RateLimitTimeout("gemini-x", 2.0), "rate_limited", "The job waited for the shared"),
        (AnswerParseError("no JSON"), "unparseable_answer", "could not be read: no JSON"),
        (SchemaMismatchError("bad"), "schema_validation_failed", "failed the schema twice: bad"),
        (SchemaUnverifiableError("deep"), "schema_validation_failed", "checked against"),
        (ImageRejectedError("image_too_large", "Too big."), "image_too_large", "Too big."),
        (GeminiCallError("gemini_unavailable", "503."), "gemini_unavailable", "503."),
    ]
    for exc, code, words in cases:
        assert JOB_ERROR_CODES.get(exc.code, exc.code) == code
        assert words in failure_message(exc)
    cut = failure_message(AnswerParseError("half"), "MAX_TOKENS")
    assert cut.endswith("raise options.max_output_tokens)")
