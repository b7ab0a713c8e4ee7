"""The store: migrations, UTC round trips, and the database-level ban on double booking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from ptm_sync.adapters.store import Base, Database, Meeting
from tests.support.factories import make_meeting, make_people

T0 = datetime(2027, 4, 10, 19, 0, tzinfo=UTC)


def _seed(db: Database) -> tuple[int, int]:
    with db.write() as s:
        teacher, guardian = make_people(s)
        return teacher.id, guardian.id


def test_migration_matches_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert db.is_current()


def test_migrate_twice_is_harmless(db: Database) -> None:
    db.migrate()
    assert db.is_current()


def test_times_come_back_as_aware_utc(db: Database) -> None:
    teacher, guardian = _seed(db)
    local = T0.astimezone(ZoneInfo("America/New_York"))
    with db.write() as s:
        make_meeting(s, teacher=teacher, guardian=guardian, start=local, state="proposed")
    with db.read() as s:
        meeting = s.scalars(select(Meeting)).one()
    assert meeting.start == T0
    assert meeting.start.tzinfo is not None and meeting.start.utcoffset() == timedelta(0)


def test_two_active_meetings_on_one_slot_are_refused(db: Database) -> None:
    teacher, guardian = _seed(db)
    with db.write() as s:
        make_meeting(s, teacher=teacher, guardian=guardian, start=T0, state="proposed")
    with pytest.raises(IntegrityError), db.write() as s:
        make_meeting(s, teacher=teacher, guardian=guardian, start=T0, state="confirmed")
    with db.read() as s:
        assert s.scalar(select(text("count(*)")).select_from(Meeting)) == 1


def test_inactive_meetings_do_not_hold_the_slot(db: Database) -> None:
    teacher, guardian = _seed(db)
    with db.write() as s:
        make_meeting(s, teacher=teacher, guardian=guardian, start=T0, state="declined")
        make_meeting(s, teacher=teacher, guardian=guardian, start=T0, state="cancelled")
        make_meeting(s, teacher=teacher, guardian=guardian, start=T0, state="confirmed")
    with db.read() as s:
        assert len(s.scalars(select(Meeting)).all()) == 3


def test_postgres_refuses_overlapping_meetings_off_the_grid(postgres_url: str) -> None:
    db = Database(postgres_url)
    db.migrate()
    teacher, guardian = _seed(db)
    with db.write() as s:
        make_meeting(s, teacher=teacher, guardian=guardian, start=T0, state="confirmed", minutes=30)
    with pytest.raises(IntegrityError, match="ex_meetings_no_overlap"), db.write() as s:
        make_meeting(
            s,
            teacher=teacher,
            guardian=guardian,
            start=T0 + timedelta(minutes=10),
            state="proposed",
        )
    with db.write() as s:  # touching ends do not overlap
        make_meeting(
            s,
            teacher=teacher,
            guardian=guardian,
            start=T0 + timedelta(minutes=30),
            state="proposed",
        )
    db.dispose()


def test_sqlite_is_durable_and_checks_foreign_keys(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    db.migrate()
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(IntegrityError), db.write() as s:
        make_meeting(s, teacher=999, guardian=999, start=T0, state="proposed")
    db.dispose()
