"""The staff digest (DESIGN §8 ``[notify] staff_digest``): once a school day, quarantined
messages and dead letters go to ``[school] contact`` as one email in the outbox, so that
nothing waits unseen.  The real inbound pipeline quarantines a parent's message, the real
outbox dead-letters an email; SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from ptm_sync.adapters.store import Database, Outbox
from ptm_sync.app import outbox
from ptm_sync.app.read import digest
from ptm_sync.config.settings import parse
from ptm_sync.core.errors import MailRejected
from tests.support.booking import (
    CONTACT,
    PAT,
    SAM,
    SeededSchool,
    config_text,
    email_of,
    parse_email,
    with_header,
)

#: A stranger answering Pat's invitation: a message that must not change anything.
STRANGER = "someone@elsewhere.example"


def quarantine_one(school: SeededSchool, *, at: timedelta) -> int:
    meeting = school.propose()
    raw = with_header(school.reply(meeting, "ACCEPTED"), "From", STRANGER)
    outcome = school.deliver(raw, at=at)
    assert outcome.outcome == "quarantined", outcome
    assert outcome.inbound_id is not None
    return outcome.inbound_id


def dead_letter_one(school: SeededSchool, now: datetime, slot: int = 4) -> Outbox:
    """Sam's invitation, refused for good by the mail server."""
    meeting = school.propose(guardian=SAM, slot=slot)

    def refuse(row: Outbox) -> None:
        raise MailRejected("SMTP server mx.example: 550 5.1.1 <sam@example.com>: no such user")

    with school.db.write() as session:  # only Sam's row is due: the others wait
        session.execute(
            Outbox.__table__.update()  # type: ignore[attr-defined]
            .where(or_(Outbox.meeting_id.is_(None), Outbox.meeting_id != meeting.id))
            .values(next_attempt_at=now + timedelta(days=30))
        )
    report = outbox.deliver(school.db, {outbox.EMAIL: refuse}, clock=lambda: now)
    assert report.dead == 1, report
    with school.db.read() as session:
        return session.scalars(select(Outbox).where(Outbox.state == outbox.DEAD)).one()


def digests(db: Database) -> list[Outbox]:
    with db.read() as session:
        return list(session.scalars(select(Outbox).where(Outbox.key.startswith("digest:"))))


def text_of(row: Outbox) -> tuple[str, str, str]:
    """(To, Subject, plain body) of a digest row."""
    data = json.loads(row.payload)
    message = parse_email(email_of(data))
    assert data["to"] == [CONTACT]
    body = message.get_body(("plain",))
    assert body is not None
    return str(message["To"]), str(message["Subject"]), body.get_content()


def test_one_digest_a_day_with_the_quarantine_and_the_dead_letters(db: Database) -> None:
    school = SeededSchool.create(db)
    now = school.now + timedelta(hours=1)
    quarantined = quarantine_one(school, at=timedelta(minutes=20))
    dead = dead_letter_one(school, now)

    assert digest.send_if_due(db, school.config, now)
    (row,) = digests(db)
    assert row.key == f"digest:{now.astimezone(school.config.tz).date().isoformat()}"
    to, subject, body = text_of(row)
    assert to == CONTACT and "needs attention (2 items" in subject
    assert f"#{quarantined} " in body and f"from {STRANGER}" in body
    assert f"#{dead.id} email of meeting {dead.meeting_id}: " in body
    assert "550 5.1.1" in body
    assert "ptm-sync quarantine show ID" in body and "ptm-sync outbox retry ID" in body
    # Nothing of the parents' messages but their address: no subject, no calendar text.
    assert PAT not in body and "ACCEPTED" not in body

    # The same day again: nothing more, however often the daemon asks.
    assert not digest.send_if_due(db, school.config, now + timedelta(hours=3))
    assert len(digests(db)) == 1


def test_the_next_day_reports_only_new_quarantine_and_the_dead_letters_still_dead(
    db: Database,
) -> None:
    school = SeededSchool.create(db)
    first = school.now + timedelta(hours=1)
    old = quarantine_one(school, at=timedelta(minutes=20))
    assert digest.send_if_due(db, school.config, first)
    dead = dead_letter_one(school, first + timedelta(hours=1))

    next_day = first + timedelta(days=1)
    assert digest.send_if_due(db, school.config, next_day)
    latest = digests(db)[-1]
    _, subject, body = text_of(latest)
    assert f"#{old} " not in body  # reported yesterday
    assert f"#{dead.id} email" in body and "(1 item," in subject

    # Retried and delivered: on the day after, nothing to report, no email; the day stays
    # open, so a dead letter later that day is told that day.
    outbox.requeue(db, dead.id, now=next_day)
    report = outbox.deliver(db, {outbox.EMAIL: lambda row: None}, clock=lambda: next_day)
    assert report.delivered >= 1
    third = next_day + timedelta(days=1)
    assert not digest.send_if_due(db, school.config, third)
    assert len(digests(db)) == 2
    assert not digest.done_today(db, school.config, third)
    later = dead_letter_one(school, third + timedelta(hours=2), slot=6)
    assert digest.send_if_due(db, school.config, third + timedelta(hours=3))
    assert f"#{later.id} email" in text_of(digests(db)[-1])[2]
    assert digest.done_today(db, school.config, third + timedelta(hours=3))


def test_a_day_with_nothing_to_report_sends_nothing(db: Database) -> None:
    school = SeededSchool.create(db)
    assert not digest.send_if_due(db, school.config, school.now)
    assert digests(db) == []
    assert not digest.done_today(db, school.config, school.now)  # looked, stays open


def test_never_means_never(db: Database) -> None:
    text = config_text() + '\n[notify]\nstaff_digest = "never"\n'
    school = SeededSchool.create(db)
    config = parse(text)
    quarantine_one(school, at=timedelta(minutes=20))
    assert not digest.send_if_due(db, config, school.now + timedelta(hours=1))
    assert digests(db) == []
