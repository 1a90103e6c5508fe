"""One formatter of pydantic's validation errors (issue 18, item 8): the API, the settings
line of the CLI and the tables read from users' files word the same (where, message)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError, field_validator

from visionq.api.rawjob import describe
from visionq.vision.validation import describe_errors, problems


class _Inner(BaseModel):
    size: int

    @field_validator("size")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value < 1:
            raise ValueError("size must be positive")
        return value


class _Outer(BaseModel):
    inner: _Inner
    name: str


def _error(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        _Outer.model_validate(data)
    return caught.value


def test_problems_name_where_and_what() -> None:
    error = _error({"inner": {"size": 0}})
    assert problems(error, plain=True) == [
        ("inner.size", "size must be positive"), ("name", "Field required"),
    ]  # fmt: skip
    assert problems(error, limit=1) == [("inner.size", "Value error, size must be positive")]
    assert problems(error, drop={"inner"})[0][0] == "size"
    assert problems(_error("x")) == [
        ("", "Input should be a valid dictionary or instance of _Outer")
    ]


def test_every_caller_words_the_same_problems() -> None:
    error = _error({"inner": {"size": 0}})
    assert describe(error) == "inner.size: Value error, size must be positive; name: Field required"
    assert describe_errors(error, "prices", "p.json") == (
        "invalid prices (p.json):\n  inner.size: size must be positive\n  name: Field required"
    )
    assert describe_errors(_error("x"), "prices", "p.json").endswith(
        "  (top level): Input should be a valid dictionary or instance of _Outer"
    )
