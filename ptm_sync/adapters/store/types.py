"""Column types shared by the tables."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import DateTime, Dialect, String
from sqlalchemy.types import TypeDecorator

E = TypeVar("E", bound=StrEnum)


class UtcDateTime(TypeDecorator[datetime]):
    """An aware datetime stored in UTC.

    PostgreSQL keeps ``timestamptz``; SQLite, which has no time zones, keeps the naive UTC
    value as text in a fixed format, which also sorts correctly.  Reads always return aware
    UTC datetimes, so the code above never meets a naive one.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class StrEnumColumn(TypeDecorator[E], Generic[E]):
    """A :class:`~enum.StrEnum` stored as its value in a ``VARCHAR(length)`` (the column the
    migrations made: no database type or constraint of its own, so adding a value needs no
    migration).  Reads return the enum member.  A string is bound as it is, so a filter
    with a value no row can hold finds nothing instead of failing; and a value this version
    does not know (written by a newer replica sharing the database) reads back as the plain
    string, for the code to refuse in words (an outbox row of an unknown kind is
    dead-lettered) instead of every read of the table failing."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int = 20) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> Any:
        return None if value is None else str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        if value is None:
            return None
        try:
            return self.enum(value)
        except ValueError:
            return value  # type: ignore[return-value]  # see the class docstring
