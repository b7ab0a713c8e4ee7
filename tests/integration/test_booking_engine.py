"""The booking engine: each transition, its history row and its outbox rows, in one transaction.

In process, on SQLite and PostgreSQL, with a fixed clock (:mod:`tests.support.booking`).
The command-line story on real servers is in ``tests/e2e/test_booking_flow.py``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ptm_sync.adapters.store import (
    Database,
    Guardian,
    Meeting,
    MeetingHistory,
    Outbox,
    Student,
    Teacher,
)
from ptm_sync.adapters.store import WaitlistEntry as WaitlistRow
from ptm_sync.adapters.store.secret import signing_secret
from ptm_sync.app import outbox
from ptm_sync.app.booking import load
from ptm_sync.app.channels.offers import invite, needs
from ptm_sync.app.services import expire_holds
from ptm_sync.core import trust
from ptm_sync.core.booking.decide import APPLIED, DUPLICATE, QUARANTINED, STALE, decide
from ptm_sync.core.booking.decide import needs as needs_of
from ptm_sync.core.booking.events import Answer, Offer, StaffCancel
from ptm_sync.core.booking.values import Decision
from ptm_sync.core.errors import BookingRefused, SlotTaken
from ptm_sync.core.model import Interval
from tests.support.booking import (
    ADA,
    ALAN,
    CONTACT,
    NOW,
    ORGANIZER,
    PAT,
    SAM,
    VIDEO_BASE,
    SeededSchool,
    race,
    refresh_message,
)


@pytest.fixture
def school(db: Database) -> SeededSchool:
    return SeededSchool.create(db)


def _count(db: Database, table: type, **where: object) -> int:
    with db.read() as session:
        query = select(func.count()).select_from(table)
        for name, value in where.items():
            query = query.where(getattr(table, name) == value)
        return int(session.scalar(query) or 0)


# --- propose ------------------------------------------------------------------------------


def test_a_proposal_holds_its_slot_with_a_signed_uid_and_sends_one_tentative_request(
    school: SeededSchool,
) -> None:
    meeting = school.propose(ADA, PAT, slot=2)

    assert (meeting.state, meeting.sequence, meeting.partstat) == ("proposed", 0, "NEEDS-ACTION")
    assert meeting.hold_until == NOW + timedelta(hours=48)
    assert (meeting.start, meeting.end) == (school.slot(2).start, school.slot(2).end)
    with school.db.read() as session:
        assert trust.uid_is_ours(signing_secret(session), meeting.uid)
    assert meeting.video_url.startswith(VIDEO_BASE + "/") and meeting.location == ""
    assert meeting.start not in school.free_starts(ADA)

    [history] = school.history(meeting.id)
    assert (history.from_state, history.to_state, history.actor) == (None, "proposed", "system")
    [row] = school.outbox_rows(meeting.id)
    assert row.kind == outbox.EMAIL and row.state == outbox.PENDING
    [sent] = school.emails(meeting.id)
    assert sent.to == [PAT] and sent.method == "REQUEST"
    event = sent.event
    assert str(event["UID"]) == meeting.uid and int(event["SEQUENCE"]) == 0
    assert str(event["STATUS"]) == "TENTATIVE"
    assert str(event["ORGANIZER"]).lower() == f"mailto:{ORGANIZER}"
    assert event.start == meeting.start and event.end == meeting.end
    assert meeting.video_url in str(event["LOCATION"]) and str(event["URL"]) == meeting.video_url


def test_an_in_person_proposal_has_the_room_and_no_video_link_and_holds_until_booking_closes(
    school: SeededSchool,
) -> None:
    meeting = school.propose(ALAN, SAM, slot=0, period_id="open-day", students=["S3"])

    closes = school.period("open-day").booking_closes
    assert closes == NOW + timedelta(hours=24)  # sooner than hold_hours = 48
    assert meeting.hold_until == closes
    assert meeting.video_url == ""
    assert meeting.location == "Room 102, main building"
    event = school.emails(meeting.id)[0].event
    assert str(event["LOCATION"]) == "Room 102, main building"
    assert "URL" not in event and "CONFERENCE" not in event


def _decided_now(school: SeededSchool, guardian: str, slot: Interval) -> Decision:
    """An offer of ``slot`` to ``guardian``'s family with Ada, decided on what the database
    holds now and not written: a transaction that will lose a race it could not see."""
    with school.db.write() as session:
        guardians = [g for g in session.scalars(select(Guardian).where(Guardian.email == guardian))]
        family = {PAT: ["S1"], SAM: ["S3"]}[guardian]
        students = list(session.scalars(select(Student).where(Student.student_id.in_(family))))
        teacher = session.scalars(select(Teacher).where(Teacher.email == ADA)).one()
        applier = school.applier()
        draft = load.draft(
            school.config,
            school.period(),
            teacher,
            guardians,
            students,
            slot,
            fresh=applier.fresh(session, "spring"),
        )
        ctx = load.context(
            session, school.config, draft, school.now, needs=needs_of(draft, Offer(slot=slot))
        )
        decision = decide(draft, Offer(slot=slot), ctx)
    assert decision.outcome == APPLIED
    return decision


def test_a_taken_slot_is_refused_by_the_rule_and_a_lost_race_by_the_database(
    school: SeededSchool,
) -> None:
    late = _decided_now(school, SAM, school.slot(0))  # decided before Pat's meeting exists
    first = school.propose(ADA, PAT, slot=0)
    with pytest.raises(SlotTaken, match="not free"):  # the admission rule sees it
        school.propose(ADA, SAM, slot=0)
    with pytest.raises(SlotTaken) as lost, school.db.write() as session:
        school.applier().write(session, late, None)  # the database refuses what it missed
    assert isinstance(lost.value.__cause__, IntegrityError)
    assert _count(school.db, Meeting) == 1
    assert _count(school.db, Outbox) == 1

    # A declined meeting no longer occupies the slot: the index covers active states only.
    assert school.deliver(school.reply(first, "DECLINED")).reason == "declined"
    with school.db.read() as session:
        assert session.scalar(select(func.count()).select_from(WaitlistRow)) == 0
    again = school.propose(ADA, SAM, slot=0)
    assert again.state == "proposed"


def test_overlapping_off_grid_meetings_are_refused_on_postgresql(postgres_url: str) -> None:
    db = Database(postgres_url)
    try:
        db.migrate()
        school = SeededSchool.create(db)
        on_grid = school.slot(0)
        shifted = Interval(on_grid.start + timedelta(minutes=5), on_grid.end + timedelta(minutes=5))
        decided = _decided_now(school, SAM, school.slot(1))
        assert decided.after is not None
        late = replace(decided, after=replace(decided.after, start=shifted.start, end=shifted.end))
        school.propose(ADA, PAT, slot=0)
        with pytest.raises(SlotTaken) as lost, db.write() as session:
            school.applier().write(session, late, None)
        assert "ex_meetings_no_overlap" in str(lost.value.__cause__)
        # The same teacher right after is fine; off the grid the rule says no by itself.
        school.propose(ADA, SAM, slot=1)
        with pytest.raises(BookingRefused, match="off-grid"):
            school.propose(ALAN, SAM, slot=shifted, students=["S3"])
        assert _count(db, Meeting) == 2
    finally:
        db.dispose()


def test_invite_proposes_each_need_once_and_notifies_each_family(school: SeededSchool) -> None:
    with school.db.read() as session:
        wanted, _ = needs(session, school.config, school.period())
    assert len(wanted) == 4
    result = invite(school.db, school.config, school.period(), now=NOW, video=school.video)
    assert len(result.proposed) == 4 and result.notified == 2 and result.lost_races == 0
    again = invite(school.db, school.config, school.period(), now=NOW, video=school.video)
    assert again.proposed == [] and again.notified == 0
    notes = [e for e in school.emails() if e.method is None]
    assert sorted(n.to[0] for n in notes) == [PAT, SAM]
    body = notes[0].message.get_body(("plain",))
    assert body is not None
    assert "on Monday 12 April, Friday 16 April:" in str(body.get_content())  # in date order


def test_nothing_is_proposed_once_booking_has_closed(school: SeededSchool) -> None:
    period = school.period("open-day")
    closes = period.booking_closes
    assert closes is not None
    with pytest.raises(BookingRefused, match="closed"):
        school.propose(ALAN, SAM, slot=0, period_id="open-day", students=["S3"], now=closes)
    with pytest.raises(BookingRefused, match="closed"):
        invite(school.db, school.config, period, now=closes, video=school.video)
    assert _count(school.db, Meeting) == 0
    # Just before the deadline a proposal holds its slot only until the deadline.
    last_minute = school.propose(
        ALAN, SAM, slot=0, period_id="open-day", students=["S3"], now=closes - timedelta(hours=1)
    )
    assert last_minute.hold_until == closes


# --- confirm ------------------------------------------------------------------------------


def test_accepting_confirms_with_history_a_calendar_write_and_a_confirming_update(
    school: SeededSchool,
) -> None:
    meeting = school.propose(ADA, PAT, slot=1)

    outcome = school.deliver(school.reply(meeting, "ACCEPTED", comment="See you then"))

    assert (outcome.outcome, outcome.reason) == (APPLIED, "accepted")
    assert outcome.meeting_uid == meeting.uid
    confirmed = school.meeting(meeting.id)
    assert (confirmed.state, confirmed.sequence, confirmed.partstat) == ("confirmed", 1, "ACCEPTED")
    assert confirmed.hold_until is None
    last = school.history(meeting.id)[-1]
    assert (last.from_state, last.to_state, last.actor) == ("proposed", "confirmed", "parent")
    assert last.inbound_id == outcome.inbound_id and "See you then" in last.reason
    assert school.inbound(outcome.inbound_id or 0).meeting_id == meeting.id

    [calendar] = school.outbox_rows(meeting.id, outbox.CALENDAR)
    assert outbox.payload(calendar) == {"meeting_id": meeting.id}
    update = school.emails(meeting.id)[-1]
    assert update.to == [PAT] and update.method == "REQUEST"
    event = update.event
    assert str(event["UID"]) == meeting.uid
    assert (int(event["SEQUENCE"]), str(event["STATUS"])) == (1, "CONFIRMED")
    assert meeting.video_url in str(event["LOCATION"])
    assert update.subject.startswith("Confirmed")
    body = update.message.get_body(("plain",))
    assert body is not None and CONTACT in str(body.get_content())


def test_a_confirmation_whose_transaction_fails_leaves_nothing_behind(
    school: SeededSchool,
) -> None:
    meeting = school.propose(ADA, PAT, slot=0)
    rows_before = _count(school.db, Outbox)

    with pytest.raises(SlotTaken), school.db.write() as session:
        live = session.get(Meeting, meeting.id)
        assert live is not None
        accept = Answer(guardian_id=live.guardian_id, partstat="ACCEPTED", dtstamp=school.now)
        school.applier().handle(session, live, accept)
        session.flush()
        # The change and every effect are in this one transaction ...
        assert (
            session.scalar(
                select(func.count()).select_from(Outbox).where(Outbox.meeting_id == meeting.id)
            )
            == 3
        )
        # ... which then dies (here: a second active meeting on the same slot).
        school.propose_in(session, ADA, SAM, school.slot(0), school.period())

    after = school.meeting(meeting.id)
    assert (after.state, after.sequence, after.hold_until) == ("proposed", 0, meeting.hold_until)
    assert len(school.history(meeting.id)) == 1
    assert _count(school.db, Outbox) == rows_before
    assert school.outbox_rows(meeting.id, outbox.CALENDAR) == []
    # And the reply can still confirm it afterwards.
    assert school.deliver(school.reply(meeting, "ACCEPTED")).outcome == APPLIED


# --- decline, tentative, closed meetings ----------------------------------------------------


def test_declining_a_proposal_releases_the_slot(school: SeededSchool) -> None:
    meeting = school.propose(ADA, PAT, slot=3)
    assert meeting.start not in school.free_starts(ADA)

    outcome = school.deliver(school.reply(meeting, "DECLINED", client="gmail"))

    assert (outcome.outcome, outcome.reason) == (APPLIED, "declined")
    after = school.meeting(meeting.id)
    assert (after.state, after.partstat, after.hold_until) == ("declined", "DECLINED", None)
    assert meeting.start in school.free_starts(ADA)
    assert school.outbox_rows(meeting.id, outbox.CALENDAR) == []  # nothing was in a calendar
    # A CANCEL, so the invitation also leaves the calendars of anyone else who got it.
    last = school.emails(meeting.id)[-1]
    assert last.method == "CANCEL" and last.subject.startswith("Declined")
    assert int(last.event["SEQUENCE"]) == after.sequence == 1


def test_declining_a_confirmed_meeting_cancels_it_and_takes_the_teachers_event_down(
    school: SeededSchool,
) -> None:
    meeting = school.propose(ADA, PAT, slot=0)
    school.deliver(school.reply(meeting, "ACCEPTED"), at=timedelta(minutes=15))

    outcome = school.deliver(
        school.reply(meeting, "DECLINED", at=timedelta(hours=2)), at=timedelta(hours=2)
    )

    assert (outcome.outcome, outcome.reason) == (APPLIED, "declined")
    assert school.meeting(meeting.id).state == "cancelled"
    assert meeting.start in school.free_starts(ADA)
    calendar = school.outbox_rows(meeting.id, outbox.CALENDAR)
    assert len(calendar) == 2  # confirmed: written; cancelled: taken down
    assert calendar[-1].key.endswith(":cancelled")
    last = school.history(meeting.id)[-1]
    assert (last.from_state, last.to_state, last.actor) == ("confirmed", "cancelled", "parent")


def test_tentative_keeps_the_proposal_and_records_the_answer(school: SeededSchool) -> None:
    meeting = school.propose(ADA, PAT, slot=0)

    outcome = school.deliver(school.reply(meeting, "TENTATIVE", client="outlook"))

    assert (outcome.outcome, outcome.reason) == (APPLIED, "tentative")
    after = school.meeting(meeting.id)
    assert (after.state, after.partstat, after.sequence) == ("proposed", "TENTATIVE", 0)
    assert after.hold_until == meeting.hold_until
    last = school.history(meeting.id)[-1]
    assert (last.from_state, last.to_state, last.inbound_id) == (
        "proposed",
        "proposed",
        outcome.inbound_id,
    )
    assert len(school.outbox_rows(meeting.id)) == 1  # nothing sent


def _expired(school: SeededSchool, meeting: Meeting) -> None:
    assert (
        expire_holds(school.db, school.config, now=NOW + timedelta(hours=49), video=school.video)
        == 1
    )


def _cancelled(school: SeededSchool, meeting: Meeting) -> None:
    with school.db.write() as session:
        live = session.get(Meeting, meeting.id)
        assert live is not None
        school.applier().handle(session, live, StaffCancel(reason="teacher is ill"))


def _declined(school: SeededSchool, meeting: Meeting) -> None:
    assert school.deliver(school.reply(meeting, "DECLINED", at=timedelta(minutes=1))).reason == (
        "declined"
    )


@pytest.mark.parametrize(
    ("state", "close"),
    [("expired", _expired), ("cancelled", _cancelled), ("declined", _declined)],
)
def test_accepting_a_closed_meeting_is_quarantined_and_changes_nothing(
    school: SeededSchool, state: str, close: object
) -> None:
    meeting = school.propose(ADA, PAT, slot=0)
    invitation = school.latest_request(meeting.id)
    close(school, meeting)  # type: ignore[operator]
    before = school.meeting(meeting.id)
    rows = len(school.outbox_rows())

    late = school.reply(meeting, "ACCEPTED", at=timedelta(hours=50), invitation=invitation)
    outcome = school.deliver(late, at=timedelta(hours=50))

    assert (outcome.outcome, outcome.reason) == (QUARANTINED, f"meeting-{state}")
    after = school.meeting(meeting.id)
    assert (after.state, after.sequence, after.partstat) == (
        state,
        before.sequence,
        before.partstat,
    )
    assert (after.reply_sequence, after.reply_dtstamp) == (
        before.reply_sequence,
        before.reply_dtstamp,
    )
    assert len(school.outbox_rows()) == rows
    assert school.inbound(outcome.inbound_id or 0).raw == late


# --- ordering and duplicates ----------------------------------------------------------------


def test_a_second_accept_from_another_message_is_a_duplicate(school: SeededSchool) -> None:
    meeting = school.propose(ADA, PAT, slot=0)
    first = school.reply(meeting, "ACCEPTED", client="apple", at=timedelta(minutes=5))
    assert school.deliver(first).outcome == APPLIED
    rows = len(school.outbox_rows())

    # The same answer again later, e.g. from the parent's phone.
    later = school.reply(meeting, "ACCEPTED", client="apple", at=timedelta(minutes=30))
    outcome = school.deliver(later, at=timedelta(minutes=31))

    assert (outcome.outcome, outcome.reason) == (DUPLICATE, "already confirmed")
    assert school.meeting(meeting.id).sequence == 1
    assert len(school.outbox_rows()) == rows


def test_the_same_answer_resent_with_the_same_dtstamp_is_a_duplicate_not_stale(
    school: SeededSchool,
) -> None:
    meeting = school.propose(ADA, PAT, slot=0)
    at = timedelta(minutes=5)
    assert school.deliver(school.reply(meeting, "TENTATIVE", at=at)).outcome == APPLIED

    # A client that sends its answer twice: new Message-ID, identical SEQUENCE and DTSTAMP.
    outcome = school.deliver(school.reply(meeting, "TENTATIVE", at=at), at=timedelta(hours=1))

    assert outcome.outcome == DUPLICATE
    assert len(school.history(meeting.id)) == 2


def test_an_older_reply_after_a_newer_one_is_stale_and_changes_nothing(
    school: SeededSchool,
) -> None:
    meeting = school.propose(ADA, PAT, slot=0)
    older = school.reply(meeting, "DECLINED", client="outlook", at=timedelta(minutes=5))
    newer = school.reply(meeting, "ACCEPTED", client="outlook", at=timedelta(minutes=9))
    assert school.deliver(newer).reason == "accepted"

    # Same SEQUENCE, older DTSTAMP: it arrived late, it loses (RFC 5546 §2.1.5, DESIGN §4).
    outcome = school.deliver(older, at=timedelta(minutes=20))

    assert outcome.outcome == STALE
    assert school.meeting(meeting.id).state == "confirmed"


def test_a_reply_with_a_lower_sequence_loses_to_a_reply_to_the_update(
    school: SeededSchool,
) -> None:
    meeting = school.propose(ADA, PAT, slot=0)
    invitation = school.latest_request(meeting.id)  # SEQUENCE 0
    assert school.deliver(school.reply(meeting, "ACCEPTED", at=timedelta(minutes=5))).outcome == (
        APPLIED
    )
    # The parent answers the confirming update (SEQUENCE 1) ...
    assert school.deliver(
        school.reply(meeting, "ACCEPTED", at=timedelta(minutes=30)), at=timedelta(minutes=31)
    ).reason == ("already confirmed")
    # ... and then an answer to the original invitation turns up, though stamped later.
    old = school.reply(meeting, "DECLINED", at=timedelta(hours=3), invitation=invitation)
    outcome = school.deliver(old, at=timedelta(hours=3))

    assert outcome.outcome == STALE
    after = school.meeting(meeting.id)
    assert (after.state, after.reply_sequence) == ("confirmed", 1)


def test_refresh_sends_the_current_request_again(school: SeededSchool) -> None:
    meeting = school.propose(ADA, PAT, slot=0)
    school.deliver(school.reply(meeting, "ACCEPTED"))
    sent = len(school.emails(meeting.id))

    outcome = school.deliver(
        refresh_message(meeting, PAT, now=NOW + timedelta(hours=1)), at=timedelta(hours=1)
    )

    assert (outcome.outcome, outcome.reason) == (APPLIED, "refresh")
    emails = school.emails(meeting.id)
    assert len(emails) == sent + 1
    again = emails[-1]
    assert again.to == [PAT] and again.method == "REQUEST"
    assert (int(again.event["SEQUENCE"]), str(again.event["STATUS"])) == (1, "CONFIRMED")
    stamp = again.event.DTSTAMP
    assert stamp == NOW + timedelta(hours=1)
    assert school.meeting(meeting.id).sequence == 1


def test_refresh_of_a_closed_meeting_sends_a_cancel_again(school: SeededSchool) -> None:
    meeting = school.propose(ADA, PAT, slot=0)
    _cancelled(school, meeting)
    cancels = [e for e in school.emails(meeting.id) if e.method == "CANCEL"]
    assert len(cancels) == 1

    outcome = school.deliver(
        refresh_message(meeting, PAT, now=NOW + timedelta(hours=1)), at=timedelta(hours=1)
    )

    assert outcome.outcome == APPLIED
    cancels = [e for e in school.emails(meeting.id) if e.method == "CANCEL"]
    assert len(cancels) == 2 and cancels[-1].to == [PAT]


@pytest.mark.parametrize(
    ("attendee", "reason"),
    [("mallory@evil.example", "attendee-not-invited"), (PAT, "sender-not-attendee")],
)
def test_a_refresh_from_a_stranger_is_quarantined_and_sends_nothing(
    school: SeededSchool, attendee: str, reason: str
) -> None:
    meeting = school.propose(ADA, PAT, slot=0)
    rows = len(school.outbox_rows())

    raw = refresh_message(meeting, "mallory@evil.example", attendee=attendee, now=NOW)
    outcome = school.deliver(raw)

    assert (outcome.outcome, outcome.reason) == (QUARANTINED, reason)
    assert len(school.outbox_rows()) == rows


# --- staff cancel and expiry ------------------------------------------------------------------


def test_staff_cancelling_a_confirmed_meeting_sends_a_cancel_and_takes_the_event_down(
    school: SeededSchool,
) -> None:
    meeting = school.propose(ADA, PAT, slot=0)
    school.deliver(school.reply(meeting, "ACCEPTED"))

    _cancelled(school, meeting)

    after = school.meeting(meeting.id)
    assert (after.state, after.sequence) == ("cancelled", 2)
    cancel = school.emails(meeting.id)[-1]
    assert cancel.method == "CANCEL" and int(cancel.event["SEQUENCE"]) == 2
    assert str(cancel.event["UID"]) == meeting.uid
    assert school.outbox_rows(meeting.id, outbox.CALENDAR)[-1].key.endswith(":cancelled")
    assert school.history(meeting.id)[-1].actor == "staff"


def test_expiry_ends_unanswered_proposals_frees_their_slots_and_tells_the_parent(
    school: SeededSchool,
) -> None:
    unanswered = school.propose(ADA, PAT, slot=0)
    accepted = school.propose(ADA, SAM, slot=1)
    tentative = school.propose(ALAN, PAT, slot=3)
    fresh = school.propose(ALAN, SAM, slot=5, students=["S3"], now=NOW + timedelta(hours=30))
    school.deliver(school.reply(accepted, "ACCEPTED"))
    school.deliver(school.reply(tentative, "TENTATIVE"))
    later = NOW + timedelta(hours=48)

    assert expire_holds(school.db, school.config, now=later, video=school.video) == 2

    states = {m.id: school.meeting(m.id).state for m in (unanswered, accepted, tentative, fresh)}
    assert states == {
        unanswered.id: "expired",
        accepted.id: "confirmed",
        tentative.id: "expired",
        fresh.id: "proposed",
    }
    assert unanswered.start in school.free_starts(ADA)
    assert accepted.start not in school.free_starts(ADA)
    cancel = school.emails(unanswered.id)[-1]
    assert cancel.to == [PAT] and cancel.method == "CANCEL"
    assert str(cancel.event["UID"]) == unanswered.uid and int(cancel.event["SEQUENCE"]) == 1
    last = school.history(unanswered.id)[-1]
    assert (last.from_state, last.to_state, last.actor) == ("proposed", "expired", "system")
    assert _count(school.db, MeetingHistory, meeting_id=unanswered.id) == 2
    # Running it again finds nothing more to do.
    assert expire_holds(school.db, school.config, now=later, video=school.video) == 0


def test_expiry_racing_an_accept_ends_in_one_consistent_state(school: SeededSchool) -> None:
    meeting = school.propose(ADA, PAT, slot=0)
    after_hold = timedelta(hours=48, minutes=1)
    accept = school.reply(meeting, "ACCEPTED", at=timedelta(hours=47))

    expired, outcome = race(
        [
            lambda: expire_holds(
                school.db, school.config, now=NOW + after_hold, video=school.video
            ),
            lambda: school.deliver(accept, at=after_hold),
        ]
    )

    # An answer after the hold deadline is decided by the deadline, whichever ran first.
    state = school.meeting(meeting.id).state
    if outcome.outcome == APPLIED:  # the answer came first and found the hold run out
        assert (expired, outcome.reason, state) == (
            0,
            "accepted after the hold deadline",
            "expired",
        )
    else:  # the expiry job came first
        assert (expired, outcome.reason, state) == (1, "meeting-expired", "expired")
    assert [h.to_state for h in school.history(meeting.id)] == ["proposed", "expired"]
