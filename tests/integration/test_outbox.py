"""The outbox: at-least-once delivery, retries with backoff, dead letters, per-meeting order."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from ptm_sync.adapters.store import Database, Outbox
from ptm_sync.app import outbox
from ptm_sync.core.errors import MailRejected, MailUnavailable
from tests.support.factories import make_meeting, make_people

T0 = datetime(2027, 3, 20, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Recorder:
    """A deliverer that records what it was asked to do and fails when told to."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.failures: dict[str, list[Exception]] = {}

    def __call__(self, row: Outbox) -> None:
        self.seen.append(row.key)
        pending = self.failures.get(row.key)
        if pending:
            raise pending.pop(0)


def _add(db: Database, key: str, meeting_id: int | None = None) -> None:
    with db.write() as s:
        outbox.enqueue(
            s, key=key, kind=outbox.EMAIL, payload={"k": key}, now=T0, meeting_id=meeting_id
        )


def _meeting(db: Database) -> int:
    with db.write() as s:
        teacher, guardian = make_people(s)
        return make_meeting(s, uid="u", teacher=teacher, guardian=guardian, start=T0, now=T0).id


def _states(db: Database) -> dict[str, tuple[str, int]]:
    with db.read() as s:
        return {r.key: (r.state, r.attempts) for r in s.scalars(select(Outbox))}


def test_enqueue_is_idempotent_by_key(db: Database) -> None:
    _add(db, "email:<a@x>")
    _add(db, "email:<a@x>")
    assert list(_states(db)) == ["email:<a@x>"]


def test_flush_delivers_every_due_row_once(db: Database) -> None:
    for i in range(5):
        _add(db, f"k{i}")
    rec, clock = Recorder(), Clock()
    report = outbox.flush(db, {outbox.EMAIL: rec}, clock=clock, batch=2)
    assert report.delivered == 5 and sorted(rec.seen) == [f"k{i}" for i in range(5)]
    assert outbox.flush(db, {outbox.EMAIL: rec}, clock=clock).delivered == 0
    assert set(_states(db).values()) == {("done", 1)}


def test_retryable_failure_waits_with_backoff_then_succeeds(db: Database) -> None:
    _add(db, "k")
    rec, clock = Recorder(), Clock()
    rec.failures["k"] = [MailUnavailable("451 try later"), MailUnavailable("451 again")]
    assert outbox.flush(db, {outbox.EMAIL: rec}, clock=clock).retried == 1
    assert outbox.flush(db, {outbox.EMAIL: rec}, clock=clock).retried == 0  # not due yet
    clock.now += outbox.backoff(1)
    assert outbox.flush(db, {outbox.EMAIL: rec}, clock=clock).retried == 1
    clock.now += outbox.backoff(1)
    assert outbox.flush(db, {outbox.EMAIL: rec}, clock=clock).delivered == 0  # backoff doubled
    clock.now += outbox.backoff(2)
    assert outbox.flush(db, {outbox.EMAIL: rec}, clock=clock).delivered == 1
    assert _states(db)["k"] == ("done", 3)


def test_a_row_no_longer_wanted_is_done_with_its_reason_never_a_failure(db: Database) -> None:
    """A deliverer that returns a note (a reminder of a meeting that has started) finishes
    the row unsent: done, the note as its last error, counted as dropped."""
    _add(db, "k-late")
    _add(db, "k-due")
    clock = Clock()

    def deliverer(row: Outbox) -> str | None:
        return "dropped: the meeting has started" if row.key == "k-late" else None

    report = outbox.flush(db, {outbox.EMAIL: deliverer}, clock=clock)
    assert (report.delivered, report.dropped, report.retried, report.dead) == (1, 1, 0, 0)
    assert report.notes == ["k-late: dropped: the meeting has started"]
    assert report.errors == []
    with db.read() as s:
        rows = {r.key: (r.state, r.last_error) for r in s.scalars(select(Outbox))}
    assert rows == {
        "k-late": ("done", "dropped: the meeting has started"),
        "k-due": ("done", ""),
    }
    assert outbox.undelivered(db) == []
    assert outbox.flush(db, {outbox.EMAIL: deliverer}, clock=clock).dropped == 0  # once


def test_retry_after_from_the_server_is_honoured() -> None:
    assert outbox.backoff(1, retry_after=600) == timedelta(seconds=600)
    assert outbox.backoff(1, retry_after=1) == outbox.BASE_DELAY
    assert outbox.backoff(50) == outbox.MAX_DELAY


def test_permanent_failure_is_dead_lettered_at_once(db: Database) -> None:
    _add(db, "k")
    rec = Recorder()
    rec.failures["k"] = [MailRejected("550 no such user")]
    report = outbox.flush(db, {outbox.EMAIL: rec}, clock=Clock())
    assert report.dead == 1 and "550" in report.errors[0]
    with db.read() as s:
        row = s.scalars(select(Outbox)).one()
    assert (row.state, row.last_error) == ("dead", "550 no such user")


def test_retryable_failure_is_dead_lettered_after_the_limit(db: Database) -> None:
    _add(db, "k")
    rec, clock = Recorder(), Clock()
    rec.failures["k"] = [MailUnavailable("down")] * outbox.MAX_ATTEMPTS
    for _ in range(outbox.MAX_ATTEMPTS):
        outbox.flush(db, {outbox.EMAIL: rec}, clock=clock)
        clock.now += outbox.MAX_DELAY
    assert _states(db)["k"] == ("dead", outbox.MAX_ATTEMPTS)


def test_a_meetings_rows_are_delivered_in_order(db: Database) -> None:
    meeting = _meeting(db)
    _add(db, "first", meeting)
    _add(db, "second", meeting)
    _add(db, "other")
    rec, clock = Recorder(), Clock()
    rec.failures["first"] = [MailUnavailable("later")]
    outbox.flush(db, {outbox.EMAIL: rec}, clock=clock)
    assert rec.seen == ["first", "other"]  # "second" waits for "first"
    clock.now += outbox.MAX_DELAY
    outbox.flush(db, {outbox.EMAIL: rec}, clock=clock)
    assert rec.seen == ["first", "other", "first", "second"]


def test_a_worker_that_dies_mid_delivery_leaves_the_row_for_the_next(db: Database) -> None:
    _add(db, "k")
    clock = Clock()
    assert outbox.claim(db, now=clock()) != []  # claimed, then the worker "dies"
    assert outbox.claim(db, now=clock()) == []  # leased to the dead worker
    clock.now += outbox.LEASE
    rec = Recorder()
    assert outbox.flush(db, {outbox.EMAIL: rec}, clock=clock).delivered == 1
    assert rec.seen == ["k"]


def test_concurrent_workers_never_claim_the_same_row(db: Database) -> None:
    for i in range(60):
        _add(db, f"k{i}")
    claimed: list[list[int]] = []
    barrier = threading.Barrier(3)

    def worker() -> None:
        barrier.wait()
        mine: list[int] = []
        while batch := outbox.claim(db, now=T0, limit=7):
            mine += batch
        claimed.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for mine in claimed for i in mine]
    assert len(ids) == 60 and len(set(ids)) == 60


def test_emails_wait_while_no_smtp_server_is_configured(db: Database) -> None:
    _add(db, "k")
    rec, clock = Recorder(), Clock()
    assert outbox.flush(db, {outbox.CALENDAR: rec}, clock=clock).delivered == 0
    assert _states(db)["k"] == ("pending", 0)  # not given up on
    assert outbox.flush(db, {outbox.EMAIL: rec}, clock=clock).delivered == 1
    assert rec.seen == ["k"]


def test_a_claimed_row_of_an_unknown_kind_is_dead_lettered(db: Database) -> None:
    with db.write() as s:
        outbox.enqueue(s, key="x", kind="fax", payload={}, now=T0)
    report = outbox.deliver(db, {}, clock=Clock())
    assert report.dead == 1 and "no deliverer" in report.errors[0]


def test_a_slow_email_never_holds_up_the_teachers_calendar(db: Database) -> None:
    meeting = _meeting(db)
    _add(db, "email-first", meeting)
    with db.write() as s:
        outbox.enqueue(
            s, key="calendar", kind=outbox.CALENDAR, payload={}, now=T0, meeting_id=meeting
        )
    rec, clock = Recorder(), Clock()
    rec.failures["email-first"] = [MailUnavailable("451 greylisted")]
    outbox.flush(db, {outbox.EMAIL: rec, outbox.CALENDAR: rec}, clock=clock)
    assert sorted(rec.seen) == ["calendar", "email-first"]
    assert _states(db)["calendar"] == ("done", 1)


def test_an_unexpected_error_in_one_row_does_not_stop_the_others(db: Database) -> None:
    _add(db, "bad")
    _add(db, "good")
    rec, clock = Recorder(), Clock()
    rec.failures["bad"] = [RuntimeError("a bug")]
    report = outbox.flush(db, {outbox.EMAIL: rec}, clock=clock)
    assert (report.delivered, report.retried) == (1, 1)
    assert _states(db) == {"bad": ("pending", 1), "good": ("done", 1)}


class GivingUp(Recorder):
    """A deliverer that wants to hear when one of its rows is dead-lettered."""

    def __init__(self) -> None:
        super().__init__()
        self.given_up_on: list[str] = []

    def given_up(self, row: Outbox) -> None:
        self.given_up_on.append(row.key)


def test_a_deliverer_hears_when_its_row_is_given_up_and_only_then(db: Database) -> None:
    _add(db, "refused")
    _add(db, "greylisted")
    rec, clock = GivingUp(), Clock()
    rec.failures["refused"] = [MailRejected("550 no such user")]  # permanent: dead at once
    rec.failures["greylisted"] = [MailUnavailable("451 try later")]  # retried, not given up
    report = outbox.flush(db, {outbox.EMAIL: rec}, clock=clock)
    assert report.dead == 1
    assert rec.given_up_on == ["refused"]
