"""The store: migrations, UTC round trips, and the database-level ban on double booking."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from ptm_sync.adapters.store import Base, Database, Guardian, Meeting, Period, Teacher

T0 = datetime(2027, 4, 10, 19, 0, tzinfo=UTC)


def _seed(db: Database) -> tuple[int, int]:
    with db.write() as s:
        s.add(Period(id="p", title="Spring"))
        teacher = Teacher(
            email="t@school.test",
            name="T",
            key="t",
            account="a",
            calendar="c",
            room="",
            booking_address="",
        )
        guardian = Guardian(email="g@home.test", name="G", language="")
        s.add_all([teacher, guardian])
        s.flush()
        return teacher.id, guardian.id


def _meeting(
    uid: str, teacher: int, guardian: int, start: datetime, state: str, minutes: int = 15
) -> Meeting:
    return Meeting(
        uid=uid,
        period_id="p",
        teacher_id=teacher,
        guardian_id=guardian,
        start=start,
        end=start + timedelta(minutes=minutes),
        state=state,
        sequence=0,
        origin="offer",
        organizer="",
        partstat="NEEDS-ACTION",
        video_url="",
        location="",
        reproposals=0,
        created_at=T0,
        updated_at=T0,
    )


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
        s.add(_meeting("u1", teacher, guardian, local, "proposed"))
    with db.read() as s:
        meeting = s.scalars(select(Meeting)).one()
    assert meeting.start == T0
    assert meeting.start.tzinfo is not None and meeting.start.utcoffset() == timedelta(0)


def test_two_active_meetings_on_one_slot_are_refused(db: Database) -> None:
    teacher, guardian = _seed(db)
    with db.write() as s:
        s.add(_meeting("u1", teacher, guardian, T0, "proposed"))
    with pytest.raises(IntegrityError), db.write() as s:
        s.add(_meeting("u2", teacher, guardian, T0, "confirmed"))
    with db.read() as s:
        assert s.scalar(select(text("count(*)")).select_from(Meeting)) == 1


def test_inactive_meetings_do_not_hold_the_slot(db: Database) -> None:
    teacher, guardian = _seed(db)
    with db.write() as s:
        s.add(_meeting("u1", teacher, guardian, T0, "declined"))
        s.add(_meeting("u2", teacher, guardian, T0, "cancelled"))
        s.add(_meeting("u3", teacher, guardian, T0, "confirmed"))
    with db.read() as s:
        assert len(s.scalars(select(Meeting)).all()) == 3


def test_postgres_refuses_overlapping_meetings_off_the_grid(postgres_url: str) -> None:
    db = Database(postgres_url)
    db.migrate()
    teacher, guardian = _seed(db)
    with db.write() as s:
        s.add(_meeting("u1", teacher, guardian, T0, "confirmed", minutes=30))
    with pytest.raises(IntegrityError, match="ex_meetings_no_overlap"), db.write() as s:
        s.add(_meeting("u2", teacher, guardian, T0 + timedelta(minutes=10), "proposed"))
    with db.write() as s:  # touching ends do not overlap
        s.add(_meeting("u3", teacher, guardian, T0 + timedelta(minutes=30), "proposed"))
    db.dispose()


def test_sqlite_is_durable_and_checks_foreign_keys(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    db.migrate()
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(IntegrityError), db.write() as s:
        s.add(_meeting("u1", 999, 999, T0, "proposed"))
    db.dispose()
