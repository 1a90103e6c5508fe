"""What every ORM table builds on: the declarative base, aware UTC timestamps, and JSON
columns read as pydantic models. Split from models/tables.py so table modules can share
it without importing each other."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol, Self, TypeVar

from sqlalchemy import JSON, DateTime, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

# The longest URL visionq stores (image URLs, webhook endpoints, per-job and per-batch
# webhook_url); the API's request schemas accept no more (api.schemas re-uses it).
URL_MAX_CHARS = 2048


def utcnow() -> datetime:
    """Aware UTC now; every timestamp we store is UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite forgets the zone on its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StorableModel(Protocol):
    """A pydantic model a JSON column holds: ``stored()`` is its one dump for the row."""

    def stored(self) -> dict[str, Any]: ...

    @classmethod
    def model_validate(cls, obj: Any) -> Self: ...


ModelT = TypeVar("ModelT", bound=StorableModel)


class ModelJSON(TypeDecorator[ModelT]):
    """A JSON column read and written as a pydantic model: dumped once here (``stored()``),
    validated once on load, so code between intake and the worker only sees the model.

    A plain dict is stored as given (tests and data fixes write rows that way).
    """

    impl = JSON
    cache_ok = True

    def __init__(self, model: type[ModelT]) -> None:
        super().__init__()
        self.model = model

    def process_bind_param(self, value: ModelT | dict[str, Any] | None, dialect: Dialect) -> Any:
        if value is None or isinstance(value, dict):
            return value
        return value.stored()

    def process_result_value(self, value: Any, dialect: Dialect) -> ModelT | None:
        return None if value is None else self.model.model_validate(value)


class Base(DeclarativeBase):
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }
