"""A student with two guardians: both are parties of the meeting, and either may answer.

Zoe Brown (S4) has two guardians, Chris (first in the roster: the primary) and Alex, and
sees Ada.  Each gets their own invitation and notification; the first to accept books the
meeting for the family; a decline releases it only when the other guardian has not
accepted; answers are ordered per attendee (DESIGN §4).  In process, on SQLite and
PostgreSQL, with a fixed clock.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import insert, select, text

from ptm_sync.adapters.store import Database, Guardian, Meeting, MeetingGuardian, Period, Teacher
from ptm_sync.adapters.store.db import MIGRATIONS
from ptm_sync.app import outbox
from ptm_sync.app.channels.offers import invite
from ptm_sync.app.channels.replies import Outcome
from ptm_sync.app.outbox.deliverers import teacher_event
from ptm_sync.app.services import expire_holds
from ptm_sync.core.booking.decide import APPLIED, DUPLICATE, QUARANTINED, STALE
from ptm_sync.core.booking.events import Answer, StaffCancel
from ptm_sync.demo import parents
from tests.support.booking import (
    ADA,
    ALAN,
    ALEX,
    BROWNS,
    CHRIS,
    FAMILIES,
    NOW,
    PAT,
    TZ,
    SeededSchool,
    SentEmail,
    handmade_reply,
    race,
    refresh_message,
)

MINUTE = timedelta(minutes=1)


@pytest.fixture
def school(db: Database) -> SeededSchool:
    return SeededSchool.create(db, families=FAMILIES + BROWNS)


def _zoes(school: SeededSchool, slot: int = 0) -> Meeting:
    """Zoe's meeting with Ada, proposed to both of her guardians."""
    return school.propose(ADA, CHRIS, slot=slot)


def _answers(school: SeededSchool, meeting: Meeting) -> dict[str, str]:
    """Each guardian's PARTSTAT as the meeting records it."""
    with school.db.read() as session:
        rows = session.execute(
            select(Guardian.email, MeetingGuardian.partstat)
            .join(MeetingGuardian, MeetingGuardian.guardian_id == Guardian.id)
            .where(MeetingGuardian.meeting_id == meeting.id)
        )
        return {email: partstat for email, partstat in rows}


def _to(emails: list[SentEmail], method: str | None) -> dict[str, SentEmail]:
    """The emails of one method, by their one recipient."""
    found = {}
    for sent in emails:
        if sent.method == method:
            [recipient] = sent.to
            found[recipient] = sent
    return found


def _plain(sent: SentEmail) -> str:
    body = sent.message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def _attendee(sent: SentEmail) -> tuple[str, str | None]:
    """The one ATTENDEE of the email's event, and the PARTSTAT it carries (if any)."""
    attendee = sent.event["ATTENDEE"]
    return str(attendee).lower().removeprefix("mailto:"), attendee.params.get("PARTSTAT")


# --- invitations ---------------------------------------------------------------------------


def test_invite_sends_each_guardian_their_own_request_and_notification(
    school: SeededSchool,
) -> None:
    result = invite(school.db, school.config, school.period(), now=NOW, video=school.video)

    assert len(result.proposed) == 5 and result.notified == 4  # Pat, Sam, Chris, Alex
    with school.db.read() as session:
        primary = session.scalars(select(Guardian).where(Guardian.email == CHRIS)).one()
    [zoes] = [m for m in result.proposed if m.parties[0].guardian_id == primary.id]
    requests = _to(school.emails(zoes.id), "REQUEST")
    assert set(requests) == {CHRIS, ALEX}
    for guardian, sent in requests.items():
        assert str(sent.event["UID"]) == zoes.uid
        assert _attendee(sent) == (guardian, "NEEDS-ACTION")
        assert sent.message["To"].addresses[0].addr_spec == guardian
    assert requests[CHRIS].message["Message-ID"] != requests[ALEX].message["Message-ID"]
    notes = _to(school.emails(), None)
    for guardian in (CHRIS, ALEX):
        assert "Ada Lovelace about Zoe" in _plain(notes[guardian])
    assert "Zoe" not in _plain(notes[PAT])
    assert _answers(school, zoes) == {CHRIS: "NEEDS-ACTION", ALEX: "NEEDS-ACTION"}


def test_the_teachers_event_names_both_guardians(school: SeededSchool) -> None:
    meeting = _zoes(school)
    with school.db.read() as session:
        live = session.get(Meeting, meeting.id)
        assert live is not None
        teacher = session.get(Teacher, live.teacher_id)
        assert teacher is not None
        event = teacher_event(school.config, live, teacher)
    assert f"Chris Brown <{CHRIS}> and Alex Brown <{ALEX}>" in event.description
    assert "Chris Brown & Alex Brown" in event.summary


# --- answers -------------------------------------------------------------------------------


@pytest.mark.parametrize(("by", "other"), [(CHRIS, ALEX), (ALEX, CHRIS)])
def test_either_guardian_may_accept_and_both_get_the_confirmation(
    school: SeededSchool, by: str, other: str
) -> None:
    meeting = _zoes(school)

    outcome = school.deliver(school.reply(meeting, "ACCEPTED", by=by, client="outlook"))

    assert (outcome.outcome, outcome.reason) == (APPLIED, "accepted")
    after = school.meeting(meeting.id)
    assert (after.state, after.sequence, after.partstat) == ("confirmed", 1, "ACCEPTED")
    assert _answers(school, meeting) == {by: "ACCEPTED", other: "NEEDS-ACTION"}
    confirmations = _to(school.emails(meeting.id)[2:], "REQUEST")
    assert set(confirmations) == {by, other}
    assert _attendee(confirmations[by]) == (by, "ACCEPTED")
    assert _attendee(confirmations[other]) == (other, "NEEDS-ACTION")
    for sent in confirmations.values():
        assert (str(sent.event["UID"]), sent.event.sequence) == (meeting.uid, 1)
        assert str(sent.event["STATUS"]) == "CONFIRMED"
    assert len(school.outbox_rows(meeting.id, outbox.CALENDAR)) == 1
    assert school.history(meeting.id)[-1].reason.startswith(
        "Chris Brown accepted" if by == CHRIS else "Alex Brown accepted"
    )


def test_the_second_guardian_accepting_too_is_recorded_and_sends_nothing(
    school: SeededSchool,
) -> None:
    meeting = _zoes(school)
    assert school.deliver(school.reply(meeting, "ACCEPTED", by=ALEX)).reason == "accepted"
    rows = len(school.outbox_rows())

    outcome = school.deliver(school.reply(meeting, "ACCEPTED", by=CHRIS), at=30 * MINUTE)

    assert (outcome.outcome, outcome.reason) == (APPLIED, "accepted")
    assert _answers(school, meeting) == {CHRIS: "ACCEPTED", ALEX: "ACCEPTED"}
    assert school.meeting(meeting.id).sequence == 1
    assert len(school.outbox_rows()) == rows
    # The same answer again is a duplicate.
    again = school.deliver(school.reply(meeting, "ACCEPTED", by=CHRIS, at=40 * MINUTE))
    assert (again.outcome, again.reason) == (DUPLICATE, "already confirmed")


def test_a_decline_after_the_other_guardian_accepted_keeps_the_meeting(
    school: SeededSchool,
) -> None:
    meeting = _zoes(school)
    assert school.deliver(school.reply(meeting, "ACCEPTED", by=ALEX)).reason == "accepted"
    rows = len(school.outbox_rows())

    outcome = school.deliver(
        school.reply(meeting, "DECLINED", by=CHRIS, comment="I am away", at=30 * MINUTE),
        at=31 * MINUTE,
    )

    assert (outcome.outcome, outcome.reason) == (APPLIED, "declined; another guardian attends")
    after = school.meeting(meeting.id)
    assert (after.state, after.sequence, after.partstat) == ("confirmed", 1, "ACCEPTED")
    assert _answers(school, meeting) == {CHRIS: "DECLINED", ALEX: "ACCEPTED"}
    assert meeting.start not in school.free_starts(ADA)
    last = school.history(meeting.id)[-1]
    assert (last.from_state, last.to_state, last.actor) == ("confirmed", "confirmed", "parent")
    assert last.reason == "Chris Brown declined; Alex Brown attends: I am away"
    assert last.inbound_id == outcome.inbound_id
    assert len(school.outbox_rows()) == rows  # the teacher's event stays; nobody is emailed


def test_a_decline_when_nobody_accepted_releases_the_slot_and_tells_both(
    school: SeededSchool,
) -> None:
    meeting = _zoes(school)

    outcome = school.deliver(school.reply(meeting, "DECLINED", by=ALEX, client="gmail"))

    assert (outcome.outcome, outcome.reason) == (APPLIED, "declined")
    after = school.meeting(meeting.id)
    assert (after.state, after.partstat) == ("declined", "DECLINED")
    assert _answers(school, meeting) == {CHRIS: "NEEDS-ACTION", ALEX: "DECLINED"}
    assert meeting.start in school.free_starts(ADA)
    told = _to(school.emails(meeting.id), "CANCEL")  # out of both their calendars
    assert set(told) == {CHRIS, ALEX}
    assert _plain(told[ALEX]).startswith("Thank you for letting us know")
    assert _plain(told[CHRIS]).startswith("Alex Brown has declined the time")


def test_the_last_attending_guardian_declining_cancels_the_confirmed_meeting(
    school: SeededSchool,
) -> None:
    meeting = _zoes(school)
    school.deliver(school.reply(meeting, "ACCEPTED", by=CHRIS))
    school.deliver(school.reply(meeting, "DECLINED", by=ALEX, at=20 * MINUTE), at=21 * MINUTE)
    assert school.meeting(meeting.id).state == "confirmed"

    outcome = school.deliver(
        school.reply(meeting, "DECLINED", by=CHRIS, at=40 * MINUTE), at=41 * MINUTE
    )

    assert (outcome.outcome, outcome.reason) == (APPLIED, "declined")
    assert school.meeting(meeting.id).state == "cancelled"
    assert school.outbox_rows(meeting.id, outbox.CALENDAR)[-1].key.endswith(":cancelled")


def test_answers_are_ordered_per_attendee(school: SeededSchool) -> None:
    meeting = _zoes(school)
    invitation = school.latest_request(meeting.id, ALEX)
    chris_older = school.reply(meeting, "DECLINED", by=CHRIS, at=5 * MINUTE)
    chris_newer = school.reply(meeting, "TENTATIVE", by=CHRIS, at=20 * MINUTE)
    alex = school.reply(meeting, "ACCEPTED", by=ALEX, at=10 * MINUTE)
    assert school.deliver(chris_newer, at=21 * MINUTE).reason == "tentative"

    # Alex's answer is stamped before Chris's, but it is Alex's first: it counts.
    outcome = school.deliver(alex, at=22 * MINUTE)
    assert (outcome.outcome, outcome.reason) == (APPLIED, "accepted")
    # Chris's own older answer, arriving late, loses to Chris's newer one.
    late = school.deliver(chris_older, at=23 * MINUTE)
    assert late.outcome == STALE
    # The same answer from Alex sent again (same SEQUENCE and DTSTAMP) is a duplicate.
    again = school.reply(meeting, "ACCEPTED", invitation=invitation, at=10 * MINUTE, client="apple")
    assert school.deliver(again, at=24 * MINUTE).outcome == DUPLICATE
    assert school.meeting(meeting.id).state == "confirmed"
    assert _answers(school, meeting) == {CHRIS: "TENTATIVE", ALEX: "ACCEPTED"}
    with school.db.read() as session:
        last = {
            email: (sequence, dtstamp)
            for email, sequence, dtstamp in session.execute(
                select(
                    Guardian.email, MeetingGuardian.reply_sequence, MeetingGuardian.reply_dtstamp
                )
                .join(MeetingGuardian, MeetingGuardian.guardian_id == Guardian.id)
                .where(MeetingGuardian.meeting_id == meeting.id)
            )
        }
    assert last == {CHRIS: (0, NOW + 20 * MINUTE), ALEX: (0, NOW + 10 * MINUTE)}


def test_an_accept_and_a_decline_racing_end_in_one_consistent_state(school: SeededSchool) -> None:
    meeting = _zoes(school)
    accept = school.reply(meeting, "ACCEPTED", by=CHRIS)
    decline = school.reply(meeting, "DECLINED", by=ALEX)

    accepted, declined = race([lambda: school.deliver(accept), lambda: school.deliver(decline)])

    state, answers = school.meeting(meeting.id).state, _answers(school, meeting)
    if declined.reason == "declined":  # Alex's answer came first: the slot was released
        assert (state, accepted.reason) == ("declined", "meeting-declined")
        assert answers == {CHRIS: "NEEDS-ACTION", ALEX: "DECLINED"}
    else:  # Chris's came first: the meeting is confirmed, a new version (SEQUENCE 1)
        assert (state, accepted.reason) == ("confirmed", "accepted")
        # Alex answered the version Chris's accept replaced: outdated, recorded as stale
        # and changing nothing (RFC 5546 §2.1.5).
        assert declined.outcome == "stale"
        assert answers == {CHRIS: "ACCEPTED", ALEX: "NEEDS-ACTION"}


def test_a_decline_that_waited_for_an_accept_sees_it_on_postgresql(postgres_url: str) -> None:
    db = Database(postgres_url)
    db.migrate()
    try:
        school = SeededSchool.create(db, families=FAMILIES + BROWNS)
        meeting = _zoes(school)
        decline = school.reply(meeting, "DECLINED", by=ALEX)
        outcomes: list[Outcome] = []
        waiter = threading.Thread(target=lambda: outcomes.append(school.deliver(decline)))
        with db.write() as session:  # Chris's accept, still uncommitted while Alex's arrives
            live = session.get(Meeting, meeting.id, with_for_update=True)
            assert live is not None
            [chris] = [a for a in live.guardians if a.guardian.email == CHRIS]
            accept = Answer(guardian_id=chris.guardian_id, partstat="ACCEPTED", dtstamp=school.now)
            school.applier().handle(session, live, accept)
            session.flush()
            me = session.scalar(text("SELECT pg_backend_pid()"))
            waiter.start()
            _until_blocked_by(db, me)
        waiter.join(timeout=60)

        # Alex's decline waited for Chris's accept, which made a new version of the
        # meeting (SEQUENCE 1): it answers the old one and changes nothing.
        assert [o.outcome for o in outcomes] == ["stale"]
        assert school.meeting(meeting.id).state == "confirmed"
        assert _answers(school, meeting) == {CHRIS: "ACCEPTED", ALEX: "NEEDS-ACTION"}
    finally:
        db.dispose()


def _until_blocked_by(db: Database, pid: int) -> None:
    """Return once another backend waits for a lock that backend ``pid`` holds."""
    query = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
    for _ in range(600):
        with db.engine.connect() as connection:
            if connection.scalar(query, {"pid": pid}):
                return
        time.sleep(0.05)
    raise AssertionError("the second reply never waited for the first")


# --- trust ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attendee", "sender", "reason"),
    [
        ("mallory@evil.example", "mallory@evil.example", "attendee-not-invited"),
        (CHRIS, "mallory@evil.example", "sender-not-attendee"),
        # One guardian cannot answer in the other's name.
        (ALEX, CHRIS, "sender-not-attendee"),
        # Nor can another family's guardian.
        (ALEX, PAT, "sender-not-attendee"),
    ],
)
def test_only_each_guardian_may_answer_for_themselves(
    school: SeededSchool, attendee: str, sender: str, reason: str
) -> None:
    meeting = _zoes(school)
    rows = len(school.outbox_rows())

    raw = handmade_reply(meeting.uid, attendee, "ACCEPTED", now=NOW + MINUTE, sender=sender)
    outcome = school.deliver(raw)

    assert (outcome.outcome, outcome.reason) == (QUARANTINED, reason)
    assert school.meeting(meeting.id).state == "proposed"
    assert _answers(school, meeting) == {CHRIS: "NEEDS-ACTION", ALEX: "NEEDS-ACTION"}
    assert len(school.outbox_rows()) == rows


def test_an_alias_of_the_second_guardian_may_answer_for_them(db: Database) -> None:
    school = SeededSchool.create(
        db,
        families=FAMILIES + BROWNS,
        mail=f'aliases = {{ "{ALEX}" = ["alex@work.example"] }}',
    )
    meeting = _zoes(school)
    raw = handmade_reply(meeting.uid, "alex@work.example", "ACCEPTED", now=NOW + MINUTE)

    assert school.deliver(raw).reason == "accepted"
    assert _answers(school, meeting) == {CHRIS: "NEEDS-ACTION", ALEX: "ACCEPTED"}


# --- refresh, counter, expiry, cancel --------------------------------------------------------


def test_refresh_from_the_second_guardian_sends_the_request_to_them_only(
    school: SeededSchool,
) -> None:
    meeting = _zoes(school)
    sent = len(school.emails(meeting.id))

    outcome = school.deliver(refresh_message(meeting, ALEX, now=NOW + MINUTE))

    assert (outcome.outcome, outcome.reason) == (APPLIED, "refresh")
    [again] = school.emails(meeting.id)[sent:]
    assert again.to == [ALEX] and again.method == "REQUEST"
    assert _attendee(again) == (ALEX, "NEEDS-ACTION")


def test_a_counter_from_the_second_guardian_moves_the_meeting_for_both(
    school: SeededSchool,
) -> None:
    meeting = _zoes(school, slot=0)
    school.deliver(school.reply(meeting, "ACCEPTED", by=CHRIS))
    wanted = school.slot(4)
    counter = parents.propose_new_time(
        school.latest_request(meeting.id, ALEX),
        wanted.start,
        wanted.end,
        tz=TZ,
        now=NOW + 30 * MINUTE,
    )

    outcome = school.deliver(counter, at=31 * MINUTE)

    assert (outcome.outcome, outcome.reason) == (APPLIED, "counter accepted")
    moved = school.meeting(meeting.id)
    assert (moved.start, moved.state, moved.sequence) == (wanted.start, "confirmed", 2)
    # Alex chose the new time; Chris's answer was for the old one.
    assert _answers(school, meeting) == {CHRIS: "NEEDS-ACTION", ALEX: "ACCEPTED"}
    updates = _to(
        [e for e in school.emails(meeting.id) if e.event.start == wanted.start], "REQUEST"
    )
    assert set(updates) == {CHRIS, ALEX}


def test_a_counter_is_checked_against_the_meetings_of_every_guardian(
    school: SeededSchool,
) -> None:
    meeting = _zoes(school, slot=0)
    # Alex alone has a meeting with Alan (Chris is not a party of it) ...
    alans = school.propose(ALAN, ALEX, slot=4, students=["S4"])
    assert _answers(school, alans) == {ALEX: "NEEDS-ACTION"}
    # ... and Chris asks to move Zoe's meeting with Ada to that very time.
    wanted = school.slot(4)
    counter = parents.propose_new_time(
        school.latest_request(meeting.id, CHRIS), wanted.start, wanted.end, tz=TZ, now=NOW
    )

    outcome = school.deliver(counter)

    assert outcome.reason == "counter declined: it is too close to your other meetings that evening"
    assert school.meeting(meeting.id).start == meeting.start
    [declined] = [e for e in school.emails(meeting.id) if e.method == "DECLINECOUNTER"]
    assert declined.to == [CHRIS]


def test_expiry_tells_every_guardian(school: SeededSchool) -> None:
    meeting = _zoes(school)

    assert expire_holds(school.db, school.config, now=NOW + 49 * 60 * MINUTE, video=school.video)

    cancels = _to(school.emails(meeting.id), "CANCEL")
    assert set(cancels) == {CHRIS, ALEX}
    assert all(_attendee(c)[0] == g for g, c in cancels.items())


def test_a_staff_cancel_tells_every_guardian(school: SeededSchool) -> None:
    meeting = _zoes(school)
    school.deliver(school.reply(meeting, "ACCEPTED", by=ALEX))

    with school.db.write() as session:
        live = session.get(Meeting, meeting.id)
        assert live is not None
        school.applier().handle(session, live, StaffCancel(reason="teacher is ill"))

    cancels = _to(school.emails(meeting.id), "CANCEL")
    assert set(cancels) == {CHRIS, ALEX}
    assert {c.event.sequence for c in cancels.values()} == {2}


# --- migration -------------------------------------------------------------------------------


def test_upgrading_from_0001_gives_each_meeting_its_guardian_with_its_answer(
    db_url: str,
) -> None:
    db = Database(db_url)
    try:
        alembic = AlembicConfig()
        alembic.set_main_option("script_location", str(MIGRATIONS))
        with db.engine.begin() as connection:
            alembic.attributes["connection"] = connection
            command.upgrade(alembic, "0001")
        answered = NOW + 5 * MINUTE
        with db.write() as session:
            session.add(Period(id="p", title="Spring"))
            # The teacher as 0001 knew it (columns added later, e.g. source, are absent).
            teacher_id = session.execute(
                text(
                    "INSERT INTO teachers (email, name, key, account, calendar, room, "
                    "booking_address) VALUES (:e, 'Ada', 'ada', 'a', 'c', '', '') RETURNING id"
                ),
                {"e": ADA},
            ).scalar_one()
            # The guardian as 0001 knew it (retired_at came with 0010).
            guardian_id = session.execute(
                text(
                    "INSERT INTO guardians (email, name, language) VALUES (:e, 'Pat', '') "
                    "RETURNING id"
                ),
                {"e": PAT},
            ).scalar_one()
            # Core, with the columns 0001 has: the model has grown since.
            values = dict(
                uid="u1",
                period_id="p",
                teacher_id=teacher_id,
                guardian_id=guardian_id,
                start=NOW,
                end=NOW + 15 * MINUTE,
                state="confirmed",
                sequence=1,
                origin="offer",
                organizer="",
                partstat="ACCEPTED",
                video_url="",
                location="",
                reply_sequence=0,
                reply_dtstamp=answered,
                reproposals=0,
                created_at=NOW,
                updated_at=NOW,
            )
            meeting_id = session.execute(
                insert(Meeting.__table__).values(**values)
            ).inserted_primary_key[0]
        assert not db.is_current()

        db.migrate()

        assert db.is_current()
        with db.read() as session:
            [row] = session.scalars(select(MeetingGuardian))
            assert (row.meeting_id, row.guardian_id) == (meeting_id, guardian_id)
            assert (row.partstat, row.reply_sequence, row.reply_dtstamp) == (
                "ACCEPTED",
                0,
                answered,
            )
    finally:
        db.dispose()
