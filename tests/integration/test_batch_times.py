"""Teacher times kept for a transaction (the IMAP path's group commit) never decide wrong.

A batch asks about the same teachers again and again, so a transaction keeps the teacher
times it read; the applier forgets them when it writes one of that teacher's meetings, and
decides again on fresh times when the database refuses a slot that another transaction
took meanwhile.
"""

from __future__ import annotations

from sqlalchemy import select

from ptm_sync.adapters.store import Database, Guardian, Meeting, Student, Teacher
from ptm_sync.app.booking import load
from ptm_sync.app.channels import replies as inbound
from ptm_sync.core.booking.decide import needs
from ptm_sync.core.booking.events import Offer, Request
from ptm_sync.core.booking.values import Fresh, Origin
from tests.support.booking import ADA, PAT, SAM, SeededSchool
from tests.support.booking_address import booking_request


def test_a_slot_freed_earlier_in_the_batch_is_free_for_the_next_message(db: Database) -> None:
    school = SeededSchool.create(db)
    held = school.propose(ADA, PAT, slot=3)
    decline = school.reply(held, "DECLINED")
    ask = booking_request(school, SAM, ADA, slot=3)

    outcomes = inbound.process_batch(
        school.db, school.config, [ask, decline, ask.replace(b"Message-ID: <", b"Message-ID: <x")],
        now=school.now, video=school.video,
    )  # fmt: skip

    assert [o.reason for o in outcomes] == [
        "request declined: the teacher is not free then",
        "declined",
        "booked",
    ]


def test_a_slot_another_transaction_took_is_refused_not_double_booked(
    postgres_url: str,
) -> None:
    db = Database(postgres_url)
    db.migrate()
    try:
        school = SeededSchool.create(db)
        slot = school.slot(4)
        with db.write() as session:  # the batch: it has read Ada's times already
            teacher = session.scalars(select(Teacher).where(Teacher.email == ADA)).one()
            sam = session.scalars(select(Guardian).where(Guardian.email == SAM)).one()
            ava = session.scalars(select(Student).where(Student.student_id == "S3")).one()
            applier = school.applier()
            draft = load.draft(
                school.config, school.period(), teacher, [sam], [ava], slot,
                fresh=Fresh(uid="sam-1@example.com", organizer=SAM), origin=Origin.BOOKING_ADDRESS,
            )  # fmt: skip
            event = Request(guardian_id=sam.id, uid=draft.uid, organizer=SAM, slot=slot)
            load.context(session, school.config, draft, school.now, needs=needs(draft, event))

            school.propose(ADA, PAT, slot=4)  # another transaction takes the slot, committed

            decision = applier.handle(session, draft, event)

        assert decision.rule == "request-refused"
        with db.read() as session:
            holders = session.scalars(select(Meeting).where(Meeting.start == slot.start)).all()
        assert len(holders) == 1
    finally:
        db.dispose()


def test_writing_a_teachers_meeting_forgets_their_kept_times(db: Database) -> None:
    school = SeededSchool.create(db)
    with db.write() as session:
        teacher = session.scalars(select(Teacher).where(Teacher.email == ADA)).one()
        pat = session.scalars(select(Guardian).where(Guardian.email == PAT)).one()
        mia = session.scalars(select(Student).where(Student.student_id == "S1")).one()
        applier = school.applier()
        slot = school.slot(2)
        draft = load.draft(
            school.config, school.period(), teacher, [pat], [mia], slot,
            fresh=applier.fresh(session, "spring"),
        )  # fmt: skip
        event = Offer(slot=slot)
        load.context(session, school.config, draft, school.now, needs=needs(draft, event))
        assert ("spring", teacher.id) in session.info[load._TIMES]

        assert applier.handle(session, draft, event).outcome == "applied"

        assert ("spring", teacher.id) not in session.info[load._TIMES]
