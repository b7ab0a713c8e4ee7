"""Insert a row unless its unique key is taken, in one statement.

``INSERT … ON CONFLICT (key) DO NOTHING`` (SQLite 3.24+, PostgreSQL 9.5+) lets the unique
index decide whether a row is new: no look-up before the insert, and no race between the
look-up and the insert when two workers record the same thing.  The statements are built
once per table and dialect; the values come as parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Insert, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ptm_sync.core.errors import StoreError

_DIALECTS: dict[str, Any] = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
_BUILT: dict[tuple[str, str, str], Insert] = {}


def _statement(dialect: str, table: Table, key: str) -> Insert:
    built = _BUILT.get((dialect, table.name, key))
    if built is None:
        make = _DIALECTS.get(dialect)
        if make is None:  # pragma: no cover - the store supports SQLite and PostgreSQL only
            raise StoreError(f"no INSERT … ON CONFLICT for the {dialect} dialect")
        built = make(table).on_conflict_do_nothing(index_elements=[key])
        if dialect == "postgresql":
            # The new row's key comes back, or no row when it existed.  (SQLite tells by
            # the row count and the last row id: RETURNING needs SQLite 3.35.)
            built = built.returning(*table.primary_key.columns)
        _BUILT[(dialect, table.name, key)] = built
    return built


def insert_new(session: Session, table: Table, values: Mapping[str, Any], *, key: str) -> bool:
    """Insert ``values`` into ``table`` unless a row with the same ``key`` exists.

    Runs at once in the session's transaction.  Returns True when the row was inserted
    (the primary key may be of any type: a settings key, a period id).
    """
    dialect = session.get_bind().dialect.name
    result = session.execute(_statement(dialect, table, key), dict(values))
    if dialect == "postgresql":
        return result.first() is not None
    return result.rowcount == 1  # type: ignore[attr-defined]


def insert_new_id(
    session: Session, table: Table, values: Mapping[str, Any], *, key: str
) -> int | None:
    """Like :func:`insert_new`; the new row's integer primary key, or None when it existed."""
    dialect = session.get_bind().dialect.name
    result = session.execute(_statement(dialect, table, key), dict(values))
    if dialect == "postgresql":
        row = result.first()
        return None if row is None else int(row[0])
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return int(result.lastrowid)  # type: ignore[attr-defined]
