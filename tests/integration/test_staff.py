"""Staff acting for families (DESIGN §3, §7): book, reschedule, cancel, the waiting list, and
releasing a quarantined message — the use cases behind the commands, in process.

Every change goes through the booking core's applier; these tests read back what it wrote
(meetings, history, outbox rows) on SQLite and PostgreSQL.  The command line itself is
exercised end to end in tests/e2e/test_staff_cli.py.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, update

from ptm_sync.adapters.store import Database, Guardian, Inbound, Meeting, Student, Teacher
from ptm_sync.app.channels import staff
from ptm_sync.app.channels.replies import reprocess
from ptm_sync.app.channels.staff import StaffRefused
from ptm_sync.app.read.records import meeting_record, waitlist
from ptm_sync.config.settings import parse
from ptm_sync.core.booking.values import Decision
from ptm_sync.core.errors import BookingRefused, NotFoundError, UserError
from tests.support.booking import (
    ADA,
    ALAN,
    ALEX,
    BROWNS,
    CHRIS,
    FAMILIES,
    PAT,
    PERIODS,
    SAM,
    TZ,
    SeededSchool,
    config_text,
)

# --- helpers ------------------------------------------------------------------------------


def book(school: SeededSchool, guardian: str, teacher: str, slot: int, **kw: object) -> Decision:
    """`ptm-sync book` as the use case, at the ``slot``-th time of the period's grid."""
    period = str(kw.pop("period_id", "spring"))
    now = kw.pop("now", school.now)
    return staff.book(
        school.db,
        school.config,
        guardian=guardian,
        teacher=teacher,
        start=school.slot(slot, period).start.astimezone(TZ),
        now=now,  # type: ignore[arg-type]
        video=school.video,
        **kw,  # type: ignore[arg-type]
    )


def meeting_count(school: SeededSchool) -> int:
    with school.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Meeting)) or 0)


def wait(school: SeededSchool, guardians: list[str], teacher: str, students: list[str]) -> None:
    """Put a family on a teacher's waiting list, as `invite` does when it cannot place it."""
    with school.db.write() as session:
        people = {
            g.email: g
            for g in session.scalars(select(Guardian).where(Guardian.email.in_(guardians)))
        }
        the_teacher = session.scalars(select(Teacher).where(Teacher.email == teacher)).one()
        found = list(session.scalars(select(Student).where(Student.student_id.in_(students))))
        added = school.applier().wait(
            session, school.period(), the_teacher, [people[g] for g in guardians], found
        )
    assert added == 1


def waiting(school: SeededSchool) -> list[tuple[str, str, int]]:
    with school.db.read() as session:
        return [(w.teacher, w.guardian, w.position) for w in waitlist(session, school.config)]


# --- book ---------------------------------------------------------------------------------


def test_a_staff_booking_is_confirmed_at_once_for_every_guardian_of_the_student(
    db: Database,
) -> None:
    school = SeededSchool.create(db, families=FAMILIES + BROWNS)
    decision = book(school, ALEX, ADA, 2, note="phoned the office")

    assert decision.outcome == "applied" and decision.after is not None
    meeting = school.meeting(decision.after.id)  # type: ignore[arg-type]
    assert (meeting.state, meeting.origin, meeting.sequence) == ("confirmed", "staff", 0)
    assert meeting.start == school.slot(2).start
    assert [p.email for p in decision.after.parties] == [ALEX, CHRIS]  # the caller first
    sent = school.emails(meeting.id)
    assert sorted(e.to[0] for e in sent) == [ALEX, CHRIS]
    assert {(e.method, str(e.event["STATUS"])) for e in sent} == {("REQUEST", "CONFIRMED")}
    assert len(school.outbox_rows(meeting.id, "calendar")) == 1
    [entry] = school.history(meeting.id)
    assert (entry.actor, entry.from_state, entry.to_state) == ("staff", None, "confirmed")
    assert entry.reason == "booked by staff: phoned the office"


def test_a_student_who_meets_separately_is_booked_with_the_one_guardian(db: Database) -> None:
    school = SeededSchool.create(db, families=FAMILIES + BROWNS)
    with db.write() as session:
        session.execute(
            update(Student).where(Student.student_id == "S4").values(meeting_mode="separate")
        )
    decision = book(school, CHRIS, ADA, 0)
    assert decision.after is not None
    assert [p.email for p in decision.after.parties] == [CHRIS]
    # Each guardian has their own meeting: Alex books his, Chris cannot book a second.
    alex = book(school, ALEX, ADA, 3)
    assert alex.after is not None and [p.email for p in alex.after.parties] == [ALEX]
    with pytest.raises(BookingRefused, match="already has a meeting with this teacher"):
        book(school, CHRIS, ADA, 5)


def test_a_busy_time_is_refused_with_the_three_nearest_free_times_and_nothing_written(
    db: Database,
) -> None:
    school = SeededSchool.create(db)
    school.propose(ADA, SAM, slot=1)
    meetings, rows = meeting_count(school), len(school.outbox_rows())

    with pytest.raises(StaffRefused) as refused:
        book(school, PAT, ADA, 1)

    assert refused.value.reason == "the teacher is not free then"
    assert [a.start for a in refused.value.alternatives] == [
        school.slot(i).start for i in (0, 2, 3)
    ]
    assert str(refused.value).endswith(
        "free times nearby: 2027-04-12 15:00, 2027-04-12 15:30, 2027-04-12 15:45"
    )
    assert (meeting_count(school), len(school.outbox_rows())) == (meetings, rows)


def test_a_time_off_the_grid_is_refused(db: Database) -> None:
    school = SeededSchool.create(db)
    with pytest.raises(StaffRefused) as refused:
        staff.book(
            db,
            school.config,
            guardian=PAT,
            teacher=ADA,
            start=school.slot(0).start + timedelta(minutes=7),
            now=school.now,
            video=school.video,
        )
    assert "start at the listed times" in refused.value.reason
    assert refused.value.alternatives and meeting_count(school) == 0


def test_past_the_deadline_staff_book_only_with_override_and_the_history_says_so(
    db: Database,
) -> None:
    school = SeededSchool.create(db)
    after_closing = school.now + timedelta(days=2)  # "open-day" closed on 2027-03-23
    with pytest.raises(StaffRefused, match="booking has closed"):
        book(school, SAM, ADA, 0, period_id="open-day", now=after_closing)
    assert meeting_count(school) == 0

    decision = book(school, SAM, ADA, 0, period_id="open-day", now=after_closing, override=True)

    assert decision.overrides == ("deadline",) and decision.after is not None
    [entry] = school.history(decision.after.id)  # type: ignore[arg-type]
    assert entry.reason == "booked by staff (staff override: deadline)"


CAPPED = PERIODS.replace('format = "video"', 'format = "video"\nmax_meetings_per_family = 1')


def test_a_cap_is_set_aside_only_with_override(db: Database) -> None:
    school = SeededSchool.create(db, periods=CAPPED)
    book(school, PAT, ADA, 0)
    with pytest.raises(StaffRefused, match=r"most meetings allowed in this period \(1\)"):
        book(school, PAT, ALAN, 4)
    decision = book(school, PAT, ALAN, 4, override=True)
    assert decision.overrides == ("family cap",)


def test_a_staff_booking_supersedes_the_familys_unanswered_proposal(db: Database) -> None:
    school = SeededSchool.create(db)
    proposal = school.propose(ADA, PAT, slot=0)
    decision = book(school, PAT, ADA, 3)
    assert [d.after.id for d in decision.then if d.after] == [proposal.id]
    assert school.meeting(proposal.id).state == "superseded"
    assert school.slot(0).start in school.free_starts(ADA)


def test_a_confirmed_meeting_is_moved_not_doubled(db: Database) -> None:
    school = SeededSchool.create(db)
    first = book(school, PAT, ADA, 0)
    assert first.after is not None
    with pytest.raises(BookingRefused, match="already has a meeting with this teacher"):
        book(school, PAT, ADA, 3)
    assert meeting_count(school) == 1


def test_people_and_students_the_roster_does_not_link_are_named(db: Database) -> None:
    school = SeededSchool.create(db)
    with pytest.raises(NotFoundError, match="no guardian"):
        book(school, "nobody@example.net", ADA, 0)
    with pytest.raises(NotFoundError, match="no teacher"):
        book(school, PAT, "nobody@lincoln.example.org", 0)
    with pytest.raises(BookingRefused, match="not a guardian of any"):
        book(school, SAM, ALAN, 0)
    with pytest.raises(BookingRefused, match="student S2 is not"):
        book(school, PAT, ADA, 0, student="S2")  # Leo sees Alan, not Ada
    with pytest.raises(NotFoundError, match="no student"):
        book(school, PAT, ADA, 0, student="S9")
    assert meeting_count(school) == 0


# --- reschedule ---------------------------------------------------------------------------


def test_reschedule_moves_a_confirmed_meeting_and_keeps_the_old_time(db: Database) -> None:
    school = SeededSchool.create(db)
    booked = book(school, PAT, ADA, 0)
    assert booked.after is not None and booked.after.id is not None
    meeting_id = booked.after.id

    moved = staff.reschedule(
        db, school.config, meeting_id, school.slot(5).start, now=school.now, video=school.video
    )

    assert moved.outcome == "applied"
    meeting = school.meeting(meeting_id)
    assert (meeting.state, meeting.sequence, meeting.start) == (
        "confirmed",
        1,
        school.slot(5).start,
    )
    last = school.history(meeting_id)[-1]
    assert (last.actor, last.old_start, last.new_start) == (
        "staff",
        school.slot(0).start,
        school.slot(5).start,
    )
    update_ = school.emails(meeting_id)[-1]
    assert update_.method == "REQUEST" and update_.event.start == school.slot(5).start
    assert school.slot(0).start in school.free_starts(ADA)


def test_reschedule_refuses_a_busy_time_and_the_same_time(db: Database) -> None:
    school = SeededSchool.create(db)
    school.propose(ADA, SAM, slot=2)
    booked = book(school, PAT, ADA, 0)
    assert booked.after is not None and booked.after.id is not None
    with pytest.raises(StaffRefused) as refused:
        staff.reschedule(
            db,
            school.config,
            booked.after.id,
            school.slot(2).start,
            now=school.now,
            video=school.video,
        )
    assert refused.value.reason == "the teacher is not free then" and refused.value.alternatives
    with pytest.raises(StaffRefused, match="at that time already"):
        staff.reschedule(
            db,
            school.config,
            booked.after.id,
            school.slot(0).start,
            now=school.now,
            video=school.video,
        )
    assert school.meeting(booked.after.id).sequence == 0
    with pytest.raises(NotFoundError):
        staff.reschedule(
            db, school.config, 999, school.slot(0).start, now=school.now, video=school.video
        )


# --- cancel -------------------------------------------------------------------------------


def test_cancel_tells_every_guardian_frees_the_slot_and_offers_it_to_the_first_family_waiting(
    db: Database,
) -> None:
    school = SeededSchool.create(db, families=FAMILIES + BROWNS)
    booked = book(school, CHRIS, ADA, 0)
    assert booked.after is not None and booked.after.id is not None
    meeting_id = booked.after.id
    wait(school, [SAM], ADA, ["S3"])
    wait(school, [PAT], ADA, ["S1"])
    before = len(school.emails(meeting_id))

    cancelled = staff.cancel(
        db,
        school.config,
        meeting_id,
        reason="Ms Lovelace is ill",
        now=school.now,
        video=school.video,
    )

    assert cancelled.after is not None and cancelled.after.state == "cancelled"
    cancels = school.emails(meeting_id)[before:]
    assert sorted(e.to[0] for e in cancels) == [ALEX, CHRIS]
    assert {e.method for e in cancels} == {"CANCEL"}
    assert "Ms Lovelace is ill" in cancels[0].message.get_body(("plain",)).get_content()
    assert len(school.outbox_rows(meeting_id, "calendar")) == 2  # written, then removed
    # The freed time went to Sam, first on the list; Pat still waits.
    with db.read() as session:
        offered = session.scalars(select(Meeting).where(Meeting.origin == "waitlist")).one()
    assert (offered.state, offered.start) == ("proposed", school.slot(0).start)
    assert [e.to for e in school.emails(offered.id)] == [[SAM]]
    assert waiting(school) == [(ADA, PAT, 1)]

    with pytest.raises(StaffRefused, match="the meeting is cancelled"):
        staff.cancel(db, school.config, meeting_id, now=school.now, video=school.video)


def test_cancelling_a_teachers_day_cancels_that_day_only_and_offers_nothing_to_the_waiting(
    db: Database,
) -> None:
    school = SeededSchool.create(db, families=FAMILIES + BROWNS)
    monday = book(school, PAT, ADA, 0)  # 2027-04-12
    proposed = school.propose(ADA, SAM, slot=3)  # 2027-04-12
    friday = book(school, CHRIS, ADA, 8)  # 2027-04-16
    other_teacher = school.propose(ALAN, PAT, slot=4, students=["S2"])  # 2027-04-12
    assert monday.after and friday.after

    result = staff.cancel_day(
        db,
        school.config,
        teacher=ADA,
        day=date(2027, 4, 12),
        reason="ill",
        now=school.now,
        video=school.video,
    )

    assert sorted(d.after.id for d in result.cancelled if d.after) == sorted(
        [monday.after.id, proposed.id]
    )
    assert result.left == []
    states = {m: school.meeting(m).state for m in (monday.after.id, proposed.id)}
    assert set(states.values()) == {"cancelled"}
    assert school.meeting(friday.after.id).state == "confirmed"  # type: ignore[arg-type]
    assert school.meeting(other_teacher.id).state == "proposed"
    # A CANCEL, then the day's one plain notice (DESIGN §3 "Bulk disruption").
    assert [e.method for e in school.emails(proposed.id)][-2:] == ["CANCEL", None]
    # The teacher cannot meet that day: the freed times are not offered to anybody; each
    # family is proposed a time on the period's other evening instead.
    with db.read() as session:
        assert session.scalars(select(Meeting).where(Meeting.origin == "waitlist")).all() == []
        instead = session.scalars(select(Meeting).where(Meeting.origin == "reproposal")).all()
        assert {m.start.astimezone(TZ).date() for m in instead} == {date(2027, 4, 16)}
    assert len(instead) == 2 and {m.state for m in instead} == {"proposed"}
    assert meeting_count(school) == 6


def test_a_day_cancel_offers_to_nobody_even_when_a_family_waits_for_that_teacher(
    db: Database,
) -> None:
    school = SeededSchool.create(db, families=FAMILIES + BROWNS)
    book(school, PAT, ADA, 0)
    wait(school, [SAM], ADA, ["S3"])
    result = staff.cancel_day(
        db, school.config, teacher=ADA, day=date(2027, 4, 12), now=school.now, video=school.video
    )
    assert len(result.cancelled) == 1
    assert waiting(school) == [(ADA, SAM, 1)]
    with db.read() as session:
        assert session.scalars(select(Meeting).where(Meeting.origin == "waitlist")).all() == []


# --- the waiting list ---------------------------------------------------------------------


def test_the_waiting_list_in_order_with_positions_per_teacher(db: Database) -> None:
    school = SeededSchool.create(db, families=FAMILIES + BROWNS)
    wait(school, [SAM], ADA, ["S3"])
    wait(school, [PAT], ALAN, ["S1", "S2"])
    wait(school, [CHRIS, ALEX], ADA, ["S4"])

    assert waiting(school) == [(ADA, SAM, 1), (ADA, CHRIS, 2), (ALAN, PAT, 1)]
    with db.read() as session:
        rows = waitlist(session, school.config, teacher_email=ALAN.upper())
        with pytest.raises(NotFoundError):
            waitlist(session, school.config, teacher_email="nobody@lincoln.example.org")
    [pat] = [r.as_json() for r in rows]
    assert pat == {
        "teacher": ALAN,
        "guardian": PAT,
        "students": ["S1", "S2"],
        "position": 1,
        "since": school.now.astimezone(TZ).isoformat(),
    }
    assert pat["since"].endswith("-04:00")

    # A family that books by any channel leaves the list; the others move up.
    book(school, SAM, ADA, 0)
    assert waiting(school) == [(ADA, CHRIS, 1), (ALAN, PAT, 1)]


# --- releasing a quarantined message ------------------------------------------------------

ALIASED = 'aliases = { "pat@example.net" = ["pat.work@example.com"] }'


def test_release_decides_the_message_again_on_its_own_row_once_the_alias_is_known(
    db: Database,
) -> None:
    school = SeededSchool.create(db)
    meeting = school.propose(ADA, PAT, slot=0)
    reply = school.reply(meeting, "ACCEPTED", client="outlook")
    from_work = reply.replace(b"<pat@example.net>", b"<pat.work@example.com>")
    held = school.deliver(from_work)
    assert (held.outcome, held.reason) == ("quarantined", "sender-not-attendee")
    assert held.inbound_id is not None

    # Nothing fixed yet: still in quarantine, the message still kept.
    again = reprocess(db, school.config, held.inbound_id, now=school.now, video=school.video)
    assert (again.outcome, again.reason) == ("quarantined", "sender-not-attendee")
    assert school.inbound(held.inbound_id).raw == from_work

    aliased = parse(config_text(mail=ALIASED))
    later = school.now + timedelta(hours=1)
    released = reprocess(db, aliased, held.inbound_id, now=later, video=school.video)

    assert (released.outcome, released.reason) == ("applied", "accepted")
    assert released.inbound_id == held.inbound_id
    row = school.inbound(held.inbound_id)
    assert (row.outcome, row.meeting_id, row.raw) == ("applied", meeting.id, None)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Inbound)) == 1
        record = meeting_record(session, aliased, meeting.id)
    assert school.meeting(meeting.id).state == "confirmed"
    last = record.history[-1]
    assert (last.to_state, last.inbound_id, last.at) == (
        "confirmed",
        held.inbound_id,
        later.astimezone(TZ),
    )
    assert last.message_id and last.message_id == row.message_id

    with pytest.raises(UserError, match="not in quarantine"):
        reprocess(db, aliased, held.inbound_id, now=later, video=school.video)
    with pytest.raises(NotFoundError):
        reprocess(db, aliased, 999, now=later, video=school.video)
    # The same reply delivered once more is still recognised as processed.
    assert school.deliver(from_work).outcome == "duplicate"
