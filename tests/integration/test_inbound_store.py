"""The inbound pipeline on every backend: a reply is decided once, with its effects.

The end-to-end tests drive ``mail deliver`` on SQLite; these run :func:`inbound.process`
against PostgreSQL too, where recording a message and finding it again take other paths.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ptm_sync.adapters.store import (
    Calendar,
    Database,
    Guardian,
    Inbound,
    Meeting,
    MeetingHistory,
    Outbox,
    Student,
    Teacher,
)
from ptm_sync.adapters.store.secret import signing_secret
from ptm_sync.adapters.video.providers import provider_for
from ptm_sync.app.booking import load
from ptm_sync.app.booking.apply import Applier
from ptm_sync.app.channels.replies import process
from ptm_sync.app.periods import ensure_periods
from ptm_sync.config import settings as config_mod
from ptm_sync.config.settings import Config
from ptm_sync.core.booking.events import Offer
from ptm_sync.core.booking.notices import email_of
from ptm_sync.core.model import Interval
from ptm_sync.demo import parents

NOW = datetime(2027, 3, 22, 13, 0, tzinfo=UTC)
SLOT = Interval(datetime(2027, 4, 13, 19, 0, tzinfo=UTC), datetime(2027, 4, 13, 19, 15, tzinfo=UTC))
CONFIG = """
[school]
name = "Lincoln High School"
timezone = "America/New_York"
contact = "office@lincoln.example.org"

[mail]
organizer = "conferences@lincoln.example.org"

[video]
provider = "jitsi"
base_url = "https://meet.lincoln.example.org"

[[periods]]
id = "spring"
title = "Spring conferences"
windows = ["2027-04-13T15:00/19:00"]
"""


def _propose(db: Database, config: Config) -> bytes:
    """One proposed meeting; the raw invitation email it put in the outbox."""
    with db.write() as s:
        ensure_periods(s, config)
        teacher = Teacher(
            email="ada@lincoln.example.org",
            name="Ada Lovelace",
            key="ada",
            account="dav",
            calendar="/ada/",
            room="101",
            booking_address="",
        )
        guardian = Guardian(email="pat@example.net", name="Pat Johnson", language="")
        student = Student(student_id="S1", name="Mia Johnson")
        s.add_all([teacher, guardian, student])
        s.flush()
        # The teacher's calendar has been read (empty): the slot is free.
        s.add(Calendar(teacher_id=teacher.id, account="dav", url="/ada/", synced_at=NOW))
        applier = Applier(config, now=NOW, video=provider_for(config.video))
        period = config.periods[0]
        draft = load.draft(
            config,
            period,
            teacher,
            [guardian],
            [student],
            SLOT,
            fresh=applier.fresh(s, period.id),
        )
        assert applier.handle(s, draft, Offer(slot=SLOT)).outcome == "applied"
    with db.read() as s:
        row = s.scalars(select(Outbox).where(Outbox.key.like("email:<invitation.%"))).one()
    return email_of(json.loads(row.payload))


@pytest.mark.parametrize("client", ["outlook", "gmail"])
def test_an_accepted_reply_confirms_once_and_its_repeat_is_a_duplicate(
    db: Database, client: str
) -> None:
    config = config_mod.parse(CONFIG)
    video = provider_for(config.video)
    invitation = _propose(db, config)
    reply = parents.reply(
        client, invitation, "ACCEPTED", tz=config.tz, now=NOW + timedelta(hours=1)
    )

    first = process(db, config, reply, now=NOW + timedelta(hours=1), video=video)
    again = process(db, config, reply, now=NOW + timedelta(hours=2), video=video)

    assert (first.outcome, first.reason) == ("applied", "accepted")
    assert (again.outcome, again.reason) == ("duplicate", "already processed")
    with db.read() as s:
        meeting = s.scalars(select(Meeting)).one()
        inbound = s.scalars(select(Inbound)).all()
        history = s.scalars(select(MeetingHistory).order_by(MeetingHistory.id)).all()
        keys = [r.key for r in s.scalars(select(Outbox).order_by(Outbox.id))]
    assert (meeting.state, meeting.sequence) == ("confirmed", 1)
    assert [(r.id, r.outcome, r.reason, r.meeting_id) for r in inbound] == [
        (first.inbound_id, "applied", "accepted", meeting.id)
    ]
    assert inbound[0].raw is None  # only quarantined messages are kept
    assert [(h.from_state, h.to_state, h.inbound_id) for h in history] == [
        (None, "proposed", None),
        ("proposed", "confirmed", first.inbound_id),
    ]
    # The confirmation's Message-ID is fixed by meeting, SEQUENCE and recipient.
    calendar, confirmation = keys[-2:]
    assert calendar == f"calendar:{meeting.uid}:1:confirmed"
    assert confirmation.startswith(f"email:<confirmation.1.{meeting.uid.partition('@')[0]}.")
    assert confirmation.endswith("@lincoln.example.org>")


def test_a_message_we_cannot_use_is_quarantined_with_its_bytes(db: Database) -> None:
    config = config_mod.parse(CONFIG)
    raw = b"From: someone@example.net\r\nMessage-ID: <x@example.net>\r\n\r\nHello\r\n"
    outcome = process(db, config, raw, now=NOW, video=provider_for(config.video))
    assert (outcome.outcome, outcome.reason) == ("quarantined", "no-calendar-part")
    with db.read() as s:
        row = s.scalars(select(Inbound)).one()
    assert (row.outcome, row.reason, row.raw, row.meeting_id) == (
        "quarantined",
        "no-calendar-part",
        raw,
        None,
    )


def test_each_database_keeps_its_own_signing_secret(tmp_path: Path) -> None:
    folder = tmp_path
    one, two = (
        Database(f"sqlite:///{folder / 'one.db'}"),
        Database(f"sqlite:///{folder / 'two.db'}"),
    )
    for db in (one, two):
        db.migrate()
    try:
        with one.write() as s:
            first = signing_secret(s)
        with one.write() as s:
            again = signing_secret(s)
        with two.write() as s:
            other = signing_secret(s)
        assert first == again != other
    finally:
        one.dispose()
        two.dispose()


def test_a_secret_made_in_a_transaction_that_rolls_back_is_not_kept(db: Database) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), db.write() as s:
        lost = signing_secret(s)
        raise Abort
    with db.write() as s:
        kept = signing_secret(s)
    with db.write() as s:
        assert signing_secret(s) == kept != lost
