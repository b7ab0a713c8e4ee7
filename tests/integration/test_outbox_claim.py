"""Claiming outbox rows: oldest first, a meeting's rows one at a time, leased and loaded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from ptm_sync.adapters.store import Database, Outbox
from ptm_sync.app import outbox
from tests.support.factories import make_meeting, make_people

T0 = datetime(2027, 3, 20, 12, 0, tzinfo=UTC)


def _meetings(db: Database, count: int) -> list[int]:
    with db.write() as s:
        teacher, guardian = make_people(s)
        return [
            make_meeting(
                s,
                uid=f"u{n}",
                teacher=teacher,
                guardian=guardian,
                start=T0 + timedelta(minutes=15 * n),
                now=T0,
            ).id
            for n in range(count)
        ]


def _add(db: Database, key: str, meeting_id: int | None = None) -> None:
    with db.write() as s:
        outbox.enqueue(
            s, key=key, kind=outbox.EMAIL, payload={"k": key}, now=T0, meeting_id=meeting_id
        )


def _keys(rows: list[Outbox]) -> list[str]:
    return [r.key for r in rows]


def _done(db: Database, *keys: str) -> None:
    with db.write() as s:
        s.execute(update(Outbox).where(Outbox.key.in_(keys)).values(state=outbox.DONE))


def test_claimed_rows_come_back_leased_and_readable(db: Database) -> None:
    _add(db, "a")
    _add(db, "b")
    rows = outbox.claim_rows(db, now=T0)
    assert _keys(rows) == ["a", "b"]
    assert all(r.claimed_until == T0 + outbox.LEASE for r in rows)
    assert [outbox.payload(r) for r in rows] == [{"k": "a"}, {"k": "b"}]
    with db.read() as s:
        stored = s.scalars(select(Outbox.claimed_until)).all()
    assert stored == [T0 + outbox.LEASE] * 2
    assert outbox.claim_rows(db, now=T0) == []  # leased


def test_only_the_oldest_pending_row_of_each_meeting_is_due(db: Database) -> None:
    a, b = _meetings(db, 2)
    for key, meeting in [("a1", a), ("b1", b), ("a2", a), ("free", None), ("b2", b), ("a3", a)]:
        _add(db, key, meeting)
    assert _keys(outbox.claim_rows(db, now=T0)) == ["a1", "b1", "free"]
    _done(db, "a1")
    assert _keys(outbox.claim_rows(db, now=T0)) == ["a2"]
    _done(db, "b1", "a2")
    assert _keys(outbox.claim_rows(db, now=T0)) == ["b2", "a3"]


def test_a_row_waiting_for_its_retry_holds_back_its_meeting_only(db: Database) -> None:
    a, b = _meetings(db, 2)
    for key, meeting in [("a1", a), ("a2", a), ("b1", b)]:
        _add(db, key, meeting)
    with db.write() as s:
        s.execute(
            update(Outbox)
            .where(Outbox.key == "a1")
            .values(next_attempt_at=T0 + outbox.LEASE / 2, attempts=1)
        )
    assert _keys(outbox.claim_rows(db, now=T0)) == ["b1"]
    assert _keys(outbox.claim_rows(db, now=T0 + outbox.LEASE / 2)) == ["a1"]  # b1 still leased


def test_the_limit_takes_the_oldest_due_rows(db: Database) -> None:
    for n in range(30):
        _add(db, f"k{n:02d}")
    with db.write() as s:  # newer rows first in the due index: order must still be by age
        s.execute(
            update(Outbox)
            .where(Outbox.key < "k10")
            .values(next_attempt_at=T0 + timedelta(seconds=1))
        )
    later = T0 + timedelta(seconds=1)
    assert _keys(outbox.claim_rows(db, now=later, limit=12)) == [f"k{n:02d}" for n in range(12)]
    assert outbox.claim(db, now=later, limit=100) == list(range(13, 31))
