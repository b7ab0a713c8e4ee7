"""The booking core as a table: (meeting, event, context) → decision, with no database.

Each row names the event, the meeting it meets and what must follow: the rule of the
transition table that decides, the state after, whether SEQUENCE went up, the calendar
action, the slot released, and the messages — compared as parsed calendars (METHOD, the
ATTENDEE's PARTSTAT, STATUS, SEQUENCE, DTSTART), never as strings (sabre's ITip Broker).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta

import pytest
from icalendar.enums import PARTSTAT

from ptm_sync.core.booking.decide import decide
from ptm_sync.core.booking.events import (
    Answer,
    AskFeedback,
    Completed,
    Counter,
    Event,
    HoldExpired,
    MarkAttended,
    MarkNoShow,
    Offer,
    OrganizerCancel,
    Refresh,
    Remind,
    Request,
    Retire,
    RunningLate,
    StaffBook,
    StaffCancel,
    StaffReschedule,
    TeacherMoved,
    TeacherRemoved,
)
from ptm_sync.core.booking.messages import when
from ptm_sync.core.booking.values import (
    CalendarAction,
    Context,
    Decision,
    Left,
    MeetingView,
    Origin,
    Outcome,
)
from ptm_sync.core.model import Interval, MeetingState
from tests.unit.booking_values import (
    KIM,
    NOW,
    PAT,
    RULES,
    TZ,
    context,
    event_of,
    meeting,
    sent,
    slot,
    with_answer,
)

P, C = MeetingState.PROPOSED, MeetingState.CONFIRMED
LATER = NOW + timedelta(minutes=10)
#: After the evening of slot(0).
AFTER = slot(0).end + timedelta(hours=1)
LATE = timedelta(minutes=10)
BOOKED_BY_PAT = meeting(
    C, at=2, sequence=1, origin=Origin.BOOKING_ADDRESS, uid="pat-event-1@example.net"
)
NEW_REQUEST = replace(BOOKED_BY_PAT, id=None, state=None, sequence=0)


def request(at: Interval | None, *, sequence: int = 0, **kw: object) -> Request:
    return Request(
        guardian_id=PAT.guardian_id,
        uid="pat-event-1@example.net",
        organizer=PAT.email,
        slot=at,
        sequence=sequence,
        dtstamp=LATER,
        **kw,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Expect:
    """What a decision must say.  ``mail``: (METHOD or None, recipient, PARTSTAT or STATUS
    the message carries, start slot index or None) per email, in order."""

    rule: str
    state: MeetingState | None
    bumped: bool = False
    calendar: CalendarAction = CalendarAction.NONE
    releases: int | None = None
    mail: tuple[tuple[str | None, str, str, int | None], ...] = ()
    then: tuple[str, ...] = ()
    outcome: str = "applied"
    waitlist: bool = False


@dataclass(frozen=True)
class Case:
    name: str
    meeting: MeetingView
    event: Event
    expect: Expect
    ctx: Context = field(default_factory=context)


ACCEPTED, DECLINED, TENTATIVE = PARTSTAT.ACCEPTED, PARTSTAT.DECLINED, PARTSTAT.TENTATIVE
PAT_ID = PAT.guardian_id

CASES = [
    Case(
        "an accept confirms: the teacher's calendar, a CONFIRMED update (RFC 5546 §3.2.3)",
        meeting(P),
        Answer(guardian_id=PAT_ID, partstat=ACCEPTED, dtstamp=LATER),
        Expect(
            "accept", C, True, CalendarAction.WRITE, mail=(("REQUEST", PAT.email, "CONFIRMED", 0),)
        ),
    ),
    Case(
        "an accept after the hold deadline is decided by the deadline",
        meeting(P, hold_until=NOW - timedelta(minutes=1)),
        Answer(guardian_id=PAT_ID, partstat=ACCEPTED, dtstamp=LATER),
        Expect(
            "accept-late",
            MeetingState.EXPIRED,
            True,
            releases=0,
            mail=(("CANCEL", PAT.email, "CANCELLED", 0),),
        ),
    ),
    Case(
        "a tentative answer keeps the hold",
        meeting(P),
        Answer(guardian_id=PAT_ID, partstat=TENTATIVE, dtstamp=LATER),
        Expect("tentative", P),
    ),
    Case(
        "a decline releases the slot and proposes the next best time",
        meeting(P, at=3),
        Answer(guardian_id=PAT_ID, partstat=DECLINED, dtstamp=LATER),
        Expect(
            "decline",
            MeetingState.DECLINED,
            True,
            releases=3,
            mail=(("CANCEL", PAT.email, "CANCELLED", 3),),
            then=("reproposal",),
        ),
        context(free=(0, 3, 5)),
    ),
    Case(
        "after max_reproposals a decline proposes nothing more",
        meeting(P, at=3, reproposals=2),
        Answer(guardian_id=PAT_ID, partstat=DECLINED, dtstamp=LATER),
        Expect(
            "decline",
            MeetingState.DECLINED,
            True,
            releases=3,
            mail=(("CANCEL", PAT.email, "CANCELLED", 3),),
        ),
    ),
    Case(
        "a decline when the teacher has no other time puts the family on the waiting list",
        meeting(P, at=3),
        Answer(guardian_id=PAT_ID, partstat=DECLINED, dtstamp=LATER),
        Expect(
            "decline",
            MeetingState.DECLINED,
            True,
            releases=3,
            waitlist=True,
            mail=(("CANCEL", PAT.email, "CANCELLED", 3), (None, PAT.email, "", None)),
        ),
        context(free=(3,)),
    ),
    Case(
        "a decline of a confirmed meeting cancels it and takes the event down",
        meeting(C, sequence=1),
        Answer(guardian_id=PAT_ID, partstat=DECLINED, sequence=1, dtstamp=LATER),
        Expect(
            "decline",
            MeetingState.CANCELLED,
            True,
            CalendarAction.REMOVE,
            releases=0,
            mail=(("CANCEL", PAT.email, "CANCELLED", 0),),
        ),
    ),
    Case(
        "one guardian declining while the other attends keeps the meeting",
        with_answer(meeting(C, sequence=1, parties=(PAT, KIM)), KIM, ACCEPTED, 1),
        Answer(guardian_id=PAT_ID, partstat=DECLINED, sequence=1, dtstamp=LATER),
        Expect("decline-recorded", C),
    ),
    Case(
        "a decline of the original after a granted counter is stale (RFC 5546 §2.1.5)",
        with_answer(meeting(C, at=4, sequence=1), PAT, ACCEPTED, 0),
        Answer(guardian_id=PAT_ID, partstat=DECLINED, sequence=0, dtstamp=NOW - timedelta(hours=1)),
        Expect("stale", C, outcome="stale"),
    ),
    Case(
        "a counter for a free time moves and confirms the meeting",
        meeting(P, at=0),
        Counter(guardian_id=PAT_ID, proposed=slot(4), dtstamp=LATER),
        Expect(
            "counter-granted",
            C,
            True,
            CalendarAction.WRITE,
            releases=0,
            mail=(("REQUEST", PAT.email, "CONFIRMED", 4),),
        ),
    ),
    Case(
        "a counter for a busy time is declined with alternatives (§3.2.8)",
        meeting(P, at=0),
        Counter(guardian_id=PAT_ID, proposed=slot(4), dtstamp=LATER),
        Expect("counter-refused", P, mail=(("DECLINECOUNTER", PAT.email, "", 0),)),
        context(free=(0, 1, 6)),
    ),
    Case(
        "Gmail's reply carrying a new time is a counter",
        meeting(P, at=0),
        Answer(guardian_id=PAT_ID, partstat=TENTATIVE, dtstamp=LATER, proposed=slot(5)),
        Expect(
            "counter-granted",
            C,
            True,
            CalendarAction.WRITE,
            releases=0,
            mail=(("REQUEST", PAT.email, "CONFIRMED", 5),),
        ),
    ),
    Case(
        "a refresh sends the current version to the one who asked",
        meeting(P, parties=(PAT, KIM)),
        Refresh(guardian_id=KIM.guardian_id),
        Expect("refresh", P, mail=(("REQUEST", KIM.email, "TENTATIVE", 0),)),
    ),
    Case(
        "a refresh of a closed meeting sends its CANCEL again",
        meeting(MeetingState.EXPIRED, sequence=1),
        Refresh(guardian_id=PAT_ID),
        Expect("refresh", MeetingState.EXPIRED, mail=(("CANCEL", PAT.email, "CANCELLED", 0),)),
    ),
    Case(
        "the hold deadline passing expires the proposal",
        meeting(P, hold_until=NOW),
        HoldExpired(),
        Expect(
            "expire",
            MeetingState.EXPIRED,
            True,
            releases=0,
            mail=(("CANCEL", PAT.email, "CANCELLED", 0),),
        ),
    ),
    Case(
        "staff cancel a confirmed meeting: CANCEL, the event taken down",
        meeting(C, sequence=1),
        StaffCancel(reason="the teacher is ill"),
        Expect(
            "staff-cancel",
            MeetingState.CANCELLED,
            True,
            CalendarAction.REMOVE,
            releases=0,
            mail=(("CANCEL", PAT.email, "CANCELLED", 0),),
        ),
    ),
    Case(
        "staff reschedule a confirmed meeting to a free time",
        meeting(C, sequence=1),
        StaffReschedule(slot=slot(6)),
        Expect(
            "staff-reschedule",
            C,
            True,
            CalendarAction.WRITE,
            releases=0,
            mail=(("REQUEST", PAT.email, "CONFIRMED", 6),),
        ),
    ),
    Case(
        "staff book a free time for a family",
        replace(meeting(None), origin=Origin.STAFF),
        StaffBook(slot=slot(2)),
        Expect(
            "staff-book",
            C,
            False,
            CalendarAction.WRITE,
            mail=(("REQUEST", PAT.email, "CONFIRMED", 2),),
        ),
    ),
    Case(
        "staff may book past the deadline with an override, recorded",
        replace(meeting(None), origin=Origin.STAFF),
        StaffBook(slot=slot(2), override=True),
        Expect(
            "staff-book",
            C,
            False,
            CalendarAction.WRITE,
            mail=(("REQUEST", PAT.email, "CONFIRMED", 2),),
        ),
        context(rules=replace(RULES, booking_closes=NOW - timedelta(days=1))),
    ),
    Case(
        "without the override the deadline holds for staff too",
        replace(meeting(None), origin=Origin.STAFF),
        StaffBook(slot=slot(2)),
        Expect("staff-refused", None, outcome="refused"),
        context(rules=replace(RULES, booking_closes=NOW - timedelta(days=1))),
    ),
    Case(
        "the planner's offer holds a slot: a TENTATIVE invitation",
        meeting(None),
        Offer(slot=slot(1)),
        Expect("offer", P, mail=(("REQUEST", PAT.email, "TENTATIVE", 1),)),
    ),
    Case(
        "a request to a booking address at a free time is accepted like a room mailbox",
        NEW_REQUEST,
        request(slot(2)),
        Expect(
            "request-granted",
            C,
            False,
            CalendarAction.WRITE,
            mail=(("REPLY", PAT.email, "ACCEPTED", 2), (None, PAT.email, "", None)),
        ),
    ),
    Case(
        "a request for a busy time is declined with alternatives",
        NEW_REQUEST,
        request(slot(2)),
        Expect("request-refused", None, mail=(("REPLY", PAT.email, "DECLINED", 2),)),
        context(free=(0, 5)),
    ),
    Case(
        "a request from somebody who is not a guardian of the teacher's students is declined",
        NEW_REQUEST,
        request(slot(2)),
        Expect("request-refused", None, mail=(("REPLY", PAT.email, "DECLINED", 2),)),
        context(is_guardian=False),
    ),
    Case(
        "a request longer than one slot is declined",
        NEW_REQUEST,
        request(Interval(slot(2).start, slot(3).end)),
        Expect("request-refused", None, mail=(("REPLY", PAT.email, "DECLINED", 2),)),
    ),
    Case(
        "a request after booking closed is declined",
        NEW_REQUEST,
        request(slot(2)),
        Expect("request-refused", None, mail=(("REPLY", PAT.email, "DECLINED", 2),)),
        context(rules=replace(RULES, booking_closes=NOW)),
    ),
    Case(
        "the parent's updated request to a free time moves the booking",
        BOOKED_BY_PAT,
        request(slot(5), sequence=2),
        Expect(
            "request-moved",
            C,
            True,
            CalendarAction.WRITE,
            releases=2,
            mail=(("REPLY", PAT.email, "ACCEPTED", 5), (None, PAT.email, "", None)),
        ),
    ),
    Case(
        "the parent's updated request to a busy time is declined and the booking stays",
        BOOKED_BY_PAT,
        request(slot(5), sequence=2),
        Expect("request-move-refused", C, mail=(("REPLY", PAT.email, "DECLINED", 5),)),
        context(free=(2,)),
    ),
    Case(
        "the parent's CANCEL takes the booking down",
        BOOKED_BY_PAT,
        OrganizerCancel(guardian_id=PAT_ID, sequence=2, dtstamp=LATER),
        Expect("organizer-cancel", MeetingState.CANCELLED, True, CalendarAction.REMOVE, releases=2),
    ),
    Case(
        "the teacher moved our event: the parent is asked again at the new time",
        meeting(C, sequence=1),
        TeacherMoved(slot=slot(7)),
        Expect(
            "teacher-moved", C, True, releases=0, mail=(("REQUEST", PAT.email, "NEEDS-ACTION", 7),)
        ),
    ),
    Case(
        "the teacher deleted our event: CANCEL, and a new proposal",
        meeting(C, sequence=1, at=1),
        TeacherRemoved(),
        Expect(
            "teacher-removed",
            MeetingState.CANCELLED,
            True,
            releases=1,
            mail=(("CANCEL", PAT.email, "CANCELLED", 1),),
            then=("reproposal",),
        ),
        context(free=(0, 1, 2)),
    ),
    Case(
        "the end passing completes a confirmed meeting",
        meeting(C, sequence=1),
        Completed(),
        Expect("complete", MeetingState.COMPLETED),
        context(now=AFTER),
    ),
    Case(
        "a meeting not over yet is not completed",
        meeting(C, sequence=1),
        Completed(),
        Expect("duplicate", C, outcome=Outcome.DUPLICATE),
        context(now=slot(0).end - timedelta(seconds=1)),
    ),
    Case(
        "staff mark a no-show of a meeting that has started",
        meeting(C, sequence=1),
        MarkNoShow(),
        Expect("no-show", MeetingState.NO_SHOW),
        context(now=slot(0).start),
    ),
    Case(
        "a completed meeting corrected to no-show needs a reason",
        meeting(MeetingState.COMPLETED, sequence=1),
        MarkNoShow(),
        Expect("staff-refused", MeetingState.COMPLETED, outcome=Outcome.REFUSED),
        context(now=AFTER),
    ),
    Case(
        "a completed meeting corrected to no-show with a reason",
        meeting(MeetingState.COMPLETED, sequence=1),
        MarkNoShow(reason="the teacher entered it by mistake"),
        Expect("no-show", MeetingState.NO_SHOW),
        context(now=AFTER),
    ),
    Case(
        "a no-show corrected to attended with a reason",
        meeting(MeetingState.NO_SHOW, sequence=1),
        MarkAttended(reason="they came late"),
        Expect("attended", MeetingState.COMPLETED),
        context(now=AFTER),
    ),
    Case(
        "a no-show corrected to attended without a reason is refused",
        meeting(MeetingState.NO_SHOW, sequence=1),
        MarkAttended(),
        Expect("staff-refused", MeetingState.NO_SHOW, outcome=Outcome.REFUSED),
        context(now=AFTER),
    ),
    Case(
        "a reminder within reminder_hours of the start: a plain email",
        meeting(C, sequence=1),
        Remind(),
        Expect("remind", C, mail=((None, PAT.email, "", None),)),
        context(now=slot(0).start - timedelta(hours=3)),
    ),
    Case(
        "no reminder earlier than reminder_hours",
        meeting(C, sequence=1),
        Remind(),
        Expect("duplicate", C, outcome=Outcome.DUPLICATE),
        context(now=slot(0).start - timedelta(hours=25)),
    ),
    Case(
        "no reminder once the meeting has started",
        meeting(C, sequence=1),
        Remind(),
        Expect("duplicate", C, outcome=Outcome.DUPLICATE),
        context(now=slot(0).start),
    ),
    Case(
        "a reminded meeting is not reminded of the same time again",
        replace(meeting(C, sequence=1), reminded=slot(0).start),
        Remind(),
        Expect("duplicate", C, outcome=Outcome.DUPLICATE),
        context(now=slot(0).start - timedelta(hours=3)),
    ),
    Case(
        "a moved meeting is reminded of its new time",
        replace(meeting(C, sequence=2, at=3), reminded=slot(0).start),
        Remind(),
        Expect("remind", C, mail=((None, PAT.email, "", None),)),
        context(now=slot(0).start - timedelta(hours=3)),
    ),
    Case(
        "feedback asked once for a completed meeting",
        meeting(MeetingState.COMPLETED, sequence=1),
        AskFeedback(token="tok"),
        Expect("feedback-request", MeetingState.COMPLETED, mail=((None, PAT.email, "", None),)),
        context(now=AFTER),
    ),
    Case(
        "feedback is not asked twice",
        replace(meeting(MeetingState.COMPLETED, sequence=1), feedback_token="tok"),
        AskFeedback(token="other"),
        Expect("duplicate", MeetingState.COMPLETED, outcome=Outcome.DUPLICATE),
        context(now=AFTER),
    ),
    Case(
        "running late: the meeting moves off the grid, REQUEST and the teacher's event",
        meeting(C, sequence=1),
        RunningLate(minutes=10, slot=Interval(slot(0).start + LATE, slot(0).end + LATE)),
        Expect(
            "late",
            C,
            True,
            calendar=CalendarAction.WRITE,
            mail=(("REQUEST", PAT.email, "CONFIRMED", None),),
        ),
    ),
    Case(
        "running late and cannot move: the family is told by a plain email",
        meeting(C, sequence=1),
        RunningLate(minutes=10),
        Expect("late-told", C, mail=((None, PAT.email, "", None),)),
    ),
    Case(
        "a retired family's proposal is withdrawn with a CANCEL",
        meeting(P),
        Retire(),
        Expect(
            "retired",
            MeetingState.CANCELLED,
            True,
            releases=0,
            mail=(("CANCEL", PAT.email, "CANCELLED", 0),),
        ),
    ),
    Case(
        "a retired family's confirmed meeting is kept",
        meeting(C, sequence=1),
        Retire(),
        Expect("duplicate", C, outcome=Outcome.DUPLICATE),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_decision(case: Case) -> None:
    decision = decide(case.meeting, case.event, case.ctx)
    want = case.expect

    assert (decision.rule, decision.outcome, decision.state) == (
        want.rule,
        want.outcome,
        want.state,
    )
    assert decision.bumped is want.bumped
    assert decision.calendar is want.calendar
    assert decision.releases == (slot(want.releases) if want.releases is not None else None)
    assert tuple(d.rule for d in decision.then) == want.then
    assert (decision.waitlist is not None) is want.waitlist
    mail = []
    for message, cal in sent(decision):
        if cal is None:
            mail.append((None, message.to, "", None))
            continue
        event = event_of(cal)
        method = str(cal["METHOD"])
        [attendee] = event.attendees
        carried = (
            attendee.params.get("PARTSTAT", "")
            if method == "REPLY" or "STATUS" not in event
            else str(event["STATUS"])
        )
        if method == "REQUEST" and attendee.params.get("PARTSTAT") == "NEEDS-ACTION":
            carried = "NEEDS-ACTION" if decision.rule == "teacher-moved" else carried
        at = event.DTSTART.astimezone(NOW.tzinfo)
        start = next((i for i in range(8) if slot(i).start == at), None)  # None: off the grid
        mail.append((method, message.to, carried, start))
        asked = [n.asked for n in decision.notices if n.asked is not None]
        version = asked[0][1] if asked else (decision.after or decision.before).sequence  # type: ignore[union-attr]
        assert int(event.get("SEQUENCE", 0)) == version
    assert tuple(mail) == want.mail


def test_a_refused_request_names_the_reason_and_the_free_times() -> None:
    decision = decide(NEW_REQUEST, request(slot(2)), context(free=(0, 5, 6, 7)))
    [(message, cal)] = sent(decision)
    event = event_of(cal)
    comment = str(event["COMMENT"])
    assert "the teacher is not free then" in comment
    # Up to three alternatives, nearest first, written in the school's zone.
    assert "15:00–15:15" in comment and "16:15–16:30" in comment and "16:30–16:45" in comment
    assert "16:45–17:00" not in comment
    assert str(event["REQUEST-STATUS"]).startswith("4.0")
    assert message.message["From"].addresses[0].addr_spec == "book+ada@lincoln.example.org"


FIVE = timedelta(minutes=5)


@pytest.mark.parametrize(
    ("case", "ask", "ctx", "status"),
    [
        ("busy", request(slot(2)), context(free=(0, 5)), "4.0;Event conflict. Date/time is busy"),
        (
            "family clash",
            request(slot(2)),
            context(family=(slot(2),)),
            "4.0;Event conflict. Date/time is busy",
        ),
        (
            "off the grid",
            request(Interval(slot(2).start + FIVE, slot(2).end + FIVE)),
            context(),
            "3.1;Invalid property value;DTSTART",
        ),
        (
            "too long",
            request(Interval(slot(2).start, slot(3).end)),
            context(),
            "3.1;Invalid property value;DTEND",
        ),
        (
            "outside the period",
            request(Interval(slot(0).start - timedelta(days=1), slot(0).end - timedelta(days=1))),
            context(),
            "3.1;Invalid property value;DTSTART",
        ),
        (
            "no student of this teacher",
            request(slot(2)),
            context(is_guardian=False),
            "3.8;No authority",
        ),
        (
            "no guardian in the roster",
            request(slot(2)),
            context(is_guardian=False, in_roster=False),
            "3.7;Invalid calendar user",
        ),
        (
            "past the deadline",
            request(slot(2)),
            context(rules=replace(RULES, booking_closes=NOW - timedelta(hours=1))),
            "3.8;No authority",
        ),
        (
            "a series",
            request(slot(2), recurring=True),
            context(),
            "3.14;Unsupported capability;RRULE",
        ),
    ],
)
def test_a_refused_request_says_why_in_its_request_status_rfc5546_3_6(
    case: str, ask: Request, ctx: Context, status: str
) -> None:
    """DESIGN §4's table: the REPLY's REQUEST-STATUS comes from the admission rule's reason."""
    decision = decide(NEW_REQUEST, ask, ctx)
    [(_, cal)] = sent(decision)
    event = event_of(cal)
    assert event.attendees[0].params["PARTSTAT"] == "DECLINED", case
    assert str(event["REQUEST-STATUS"]) == status, case


def test_a_declined_counter_says_why_in_its_request_status() -> None:
    late = context(rules=replace(RULES, booking_closes=NOW - timedelta(hours=1)))
    decision = decide(meeting(P, at=0), Counter(guardian_id=PAT_ID, proposed=slot(3)), late)
    [(_, cal)] = sent(decision)
    assert str(cal["METHOD"]) == "DECLINECOUNTER"
    assert str(event_of(cal)["REQUEST-STATUS"]) == "3.8;No authority"
    busy = decide(
        meeting(P, at=0), Counter(guardian_id=PAT_ID, proposed=slot(3)), context(free=(0,))
    )
    [(_, cal)] = sent(busy)
    assert str(event_of(cal)["REQUEST-STATUS"]) == "4.0;Event conflict. Date/time is busy"


def test_a_declined_counter_offers_alternatives_clear_of_the_familys_other_meetings() -> None:
    others = (slot(1),)  # the family's meeting with another teacher
    ctx = context(free=(0, 2, 3, 4, 5), family=others)
    decision = decide(meeting(P, at=0), Counter(guardian_id=PAT_ID, proposed=slot(1)), ctx)
    assert decision.rule == "counter-refused"
    # slot 2 starts right when the other meeting ends: inside the 5-minute gap.
    assert decision.alternatives == (slot(3), slot(4), slot(5))


def test_the_granted_counter_resets_the_other_guardians_answers() -> None:
    view = with_answer(meeting(C, sequence=1, parties=(PAT, KIM)), KIM, ACCEPTED, 1)
    decision = decide(view, Counter(guardian_id=PAT_ID, proposed=slot(3), sequence=1), context())
    assert decision.after is not None
    answers = {p.email: p.partstat for p in decision.after.parties}
    assert answers == {PAT.email: ACCEPTED, KIM.email: PARTSTAT.NEEDS_ACTION}
    assert decision.history is not None and decision.history.old_start == slot(0).start


def test_the_reproposal_avoids_every_time_already_offered() -> None:
    ctx = context(free=(0, 1, 2, 3), tried=(slot(1),))
    decision = decide(
        meeting(P, at=0, reproposals=1),
        Answer(guardian_id=PAT_ID, partstat=DECLINED, dtstamp=LATER),
        ctx,
    )
    [offer] = decision.then
    assert offer.after is not None and offer.after.slot == slot(2)
    assert offer.after.reproposals == 2 and offer.after.replaces == 7
    assert offer.after.uid == "next-z9z9z9z9z9z9z9z9@lincoln.example.org"


def test_who_left_the_roster_is_proposed_nothing_after_a_decline_or_a_deletion() -> None:
    """Nothing that follows a meeting's end goes to who left the roster: no re-proposal,
    no waiting list, and their letter names no next step (not even how to book)."""
    left = Left(guardians=frozenset({PAT_ID}))
    for meeting_now, event, free in (
        (meeting(P), Answer(guardian_id=PAT_ID, partstat=DECLINED, dtstamp=LATER), (1, 2)),
        (meeting(P), Answer(guardian_id=PAT_ID, partstat=DECLINED, dtstamp=LATER), ()),
        (meeting(C, sequence=1, at=1), TeacherRemoved(), (0, 1, 2)),
    ):
        decision = decide(meeting_now, event, context(free=free, left=left))
        assert decision.outcome == Outcome.APPLIED
        assert (decision.then, decision.waitlist, decision.left) == ((), None, {PAT_ID})
        for message, _ in sent(decision):
            body = message.message.get_body(("plain",)).get_content()
            assert "invitation for another time" not in body and "waiting list" not in body
            assert "book+" not in body
        stays = decide(meeting_now, event, context(free=free))
        assert stays.then or stays.waitlist is not None  # the same answer from who stays


def test_staff_overrides_are_recorded_in_the_history() -> None:
    ctx = context(rules=replace(RULES, max_meetings_per_family=1), family_count=1)
    decision = decide(
        replace(meeting(None), origin=Origin.STAFF), StaffBook(slot=slot(2), override=True), ctx
    )
    assert decision.overrides == ("family cap",)
    assert decision.history is not None and "staff override: family cap" in decision.history.reason
    refused = decide(replace(meeting(None), origin=Origin.STAFF), StaffBook(slot=slot(2)), ctx)
    assert refused.outcome == "refused" and "most meetings allowed" in refused.reason


def test_a_new_booking_supersedes_the_familys_pending_proposal() -> None:
    pending = meeting(P, at=6, uid="old-proposal@lincoln.example.org")
    decision = decide(NEW_REQUEST, request(slot(2)), context(pending=(pending,)))
    [superseded] = decision.then
    assert (superseded.rule, superseded.state) == ("supersede", MeetingState.SUPERSEDED)
    [(_, cal)] = sent(superseded)
    assert str(cal["METHOD"]) == "CANCEL" if cal is not None else False


def _plain(decision: Decision) -> list[str]:
    bodies = []
    for out, _ in sent(decision):
        part = out.message.get_body(("plain",))
        assert part is not None
        bodies.append(part.get_content())
    return bodies


def test_a_confirmed_meeting_confirmed_at_another_time_says_when_it_was() -> None:
    """Staff moved a booked meeting (the family on the phone): the confirmation names the
    old time and the new, not a bare "is confirmed" the family could take for the old."""
    moved = decide(meeting(C, sequence=1), StaffReschedule(slot=slot(6)), context())
    [text] = _plain(moved)
    old = when(slot(0).start, slot(0).end, TZ)
    assert f"has been moved from {old} and is confirmed at its new time:" in text
    assert when(slot(6).start, slot(6).end, TZ) in text
    # A first confirmation (an Accept of a proposal) is only that.
    accepted = decide(
        meeting(P), Answer(guardian_id=PAT_ID, partstat=ACCEPTED, dtstamp=LATER), context()
    )
    [first] = _plain(accepted)
    assert "is confirmed." in first and "moved" not in first


def test_a_late_move_is_a_request_update_at_the_new_time_in_words() -> None:
    later = Interval(slot(0).start + LATE, slot(0).end + LATE)
    decision = decide(meeting(C, sequence=1), RunningLate(minutes=10, slot=later), context())
    [(message, cal)] = sent(decision)
    event = event_of(cal)
    assert str(cal["METHOD"]) == "REQUEST" and event["SEQUENCE"] == 2
    assert later.start == event.DTSTART and str(event["STATUS"]) == "CONFIRMED"
    body = message.message.get_body(("plain",)).get_content()
    assert "running about 10 minutes late" in body and "Eastern Time" in body
    assert decision.history is not None and decision.history.old_start == slot(0).start


def test_a_reminder_names_the_zone_in_words_the_link_and_how_to_change() -> None:
    decision = decide(
        meeting(C, sequence=1), Remind(), context(now=slot(0).start - timedelta(hours=2))
    )
    [(message, cal)] = sent(decision)
    assert cal is None and message.to == PAT.email
    body = message.message.get_body(("plain",)).get_content()
    assert "Eastern Time" in body and "(America/New_York)" not in body
    assert "Propose new time" in body
    assert decision.after is not None and decision.after.reminded == slot(0).start
    assert decision.history is None  # reminders are not transitions
