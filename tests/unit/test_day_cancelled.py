"""A teacher's whole day cancelled (DESIGN §3 "Bulk disruption"): each meeting's
cancellation is followed by a replacement time on another evening of the period, or by the
waiting list, and each guardian gets one plain notice about all of their meetings that day.
Pure: :mod:`ptm_sync.core.booking.disruption` with no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from ptm_sync.core import slots as engine
from ptm_sync.core.booking.decide import decide, needs
from ptm_sync.core.booking.disruption import families, notices, replaced_by
from ptm_sync.core.booking.events import StaffCancel
from ptm_sync.core.booking.letters import Letter
from ptm_sync.core.booking.notices import render
from ptm_sync.core.booking.values import (
    FAMILY,
    FREE,
    LEFT,
    TRIED,
    Context,
    Decision,
    Left,
    Origin,
)
from ptm_sync.core.model import Interval, MeetingState, Window
from tests.unit.booking_values import (
    HEAD,
    KIM,
    NOW,
    PAT,
    RULES,
    TZ,
    WINDOW,
    context,
    meeting,
    sent,
)

C, P = MeetingState.CONFIRMED, MeetingState.PROPOSED
DAY = timedelta(days=1)
#: The period's second evening: 15:00–17:00 on 13 April.
WINDOW2 = Window(WINDOW.start + DAY, WINDOW.end + DAY)
TWO_EVENINGS = replace(RULES, windows=(WINDOW, WINDOW2))
GRID2 = engine.grid(TWO_EVENINGS.windows, 15, 0)
FIRST, SECOND = GRID2[:8], GRID2[8:]
#: The cancelled day (12 April, New York) in UTC.
OFF = Interval(WINDOW.start - timedelta(hours=19), WINDOW.start + timedelta(hours=5))
BECAUSE = "Ms Lovelace is ill"


def ctx(**kw: object) -> Context:
    """Both evenings free, unless ``free`` says otherwise."""
    values: dict[str, object] = {"rules": TWO_EVENINGS, "free": tuple(GRID2), **kw}
    return replace(context(), **values)  # type: ignore[arg-type]


def cancel_day(at: int = 0, state: MeetingState = C, **kw: object) -> Decision:
    m = meeting(state, at=at, sequence=1 if state is C else 0)
    return decide(m, StaffCancel(reason=BECAUSE, offer_freed=False, elsewhere=OFF), ctx(**kw))


def test_the_cancellation_proposes_the_first_free_time_of_another_evening() -> None:
    event = StaffCancel(reason=BECAUSE, offer_freed=False, elsewhere=OFF)
    assert needs(meeting(C), event) == {FREE, FAMILY, TRIED, LEFT}

    decision = cancel_day(at=2)

    assert (decision.rule, decision.state) == ("staff-cancel", MeetingState.CANCELLED)
    assert decision.releases is None  # the day's times go to nobody waiting
    new = replaced_by(decision)
    # The first evening's free times are not offered: the teacher cannot meet that day.
    assert new is not None and new.slot == SECOND[0]
    assert (new.state, new.origin, new.parties[0].email) == (P, Origin.REPROPOSAL, PAT.email)
    assert decision.waitlist is None
    [(_, cancel_cal)] = sent(decision)
    assert cancel_cal is not None and str(cancel_cal["METHOD"]) == "CANCEL"
    [(invite, cal)] = sent(decision.then[0])
    assert cal is not None and str(cal["METHOD"]) == "REQUEST"
    assert SECOND[0].start == cal.events[0].DTSTART
    body = invite.message.get_body(("plain",)).get_content()
    assert body.startswith(f"{BECAUSE}. We have reserved another time")


def test_the_replacement_keeps_the_family_gap_and_never_offers_a_time_again() -> None:
    # The family meets another teacher at the second evening's first slot, and was offered
    # its second slot before: the third is the first it may have.
    decision = cancel_day(family=(SECOND[0],), tried=(SECOND[1],))
    new = replaced_by(decision)
    assert new is not None and new.slot == SECOND[2]


def test_with_no_other_evening_free_the_family_waits_and_no_separate_email_says_so() -> None:
    decision = cancel_day(free=tuple(FIRST))

    assert replaced_by(decision) is None and decision.then == ()
    assert decision.waitlist is not None and not decision.waitlist.notify
    assert decision.waitlist.guardian_ids == (PAT.guardian_id,)
    # The CANCEL only: the day's notice tells the family it waits.
    assert [str(cal["METHOD"]) if cal else None for _, cal in sent(decision)] == ["CANCEL"]


def test_after_the_deadline_nothing_is_proposed() -> None:
    closed = replace(TWO_EVENINGS, booking_closes=NOW - timedelta(hours=1))
    decision = cancel_day(rules=closed)
    assert replaced_by(decision) is None and decision.waitlist is not None


def test_a_single_cancellation_proposes_nothing() -> None:
    decision = decide(meeting(C), StaffCancel(reason=BECAUSE), ctx())
    assert decision.then == () and decision.waitlist is None
    assert decision.releases == meeting(C).slot  # offered to the waiting list


def test_one_notice_per_guardian_names_each_of_their_meetings_and_what_follows() -> None:
    # Pat's two children see Ada that day; Kim is a guardian of the second only.
    mia = decide(
        meeting(C, at=0),
        StaffCancel(reason=BECAUSE, offer_freed=False, elsewhere=OFF),
        ctx(),
    )
    leo_meeting = replace(
        meeting(C, at=2, parties=(PAT, KIM), uid="leo-k3xk3xk3xk3xk3xk@lincoln.example.org"),
        id=8,
        students=(replace(meeting(C).students[0], id=101, student_id="S2", name="Leo Johnson"),),
    )
    leo = decide(
        leo_meeting,
        StaffCancel(reason=BECAUSE, offer_freed=False, elsewhere=OFF),
        ctx(free=tuple(FIRST)),
    )

    letters = notices([mia, leo], HEAD, NOW, reason=BECAUSE)

    assert [letter.to for letter in letters] == [PAT.email, KIM.email]
    pat, kim = letters
    assert [c.students for c in pat.cancelled] == [("Mia",), ("Leo",)]
    assert [c.students for c in kim.cancelled] == [("Leo",)]
    assert pat.method is None and pat.template == "day_cancelled"
    assert Letter.from_json(pat.as_json()) == pat  # stored in the outbox as JSON
    text = render(pat).get_body(("plain",)).get_content()
    assert "Ada Lovelace cannot meet families on Monday 12 April 2027 (Ms Lovelace is ill)" in text
    assert "15:00–15:15 (Eastern Time), about Mia" in text
    new = f"{SECOND[0].start.astimezone(TZ):%A %d %B %Y, %H:%M}"
    assert f"About Mia: we have reserved {new}" in text
    assert "About Leo: no other time with Ada Lovelace is free" in text
    assert "waiting list" in text and "book+ada@lincoln.example.org" in text
    kim_text = render(kim).get_body(("plain",)).get_content()
    assert "Mia" not in kim_text and "About Leo" in kim_text
    # Fixed Message-IDs: a redelivery is the same message; each guardian has their own.
    assert notices([mia, leo], HEAD, NOW, reason=BECAUSE) == letters
    assert pat.message_id != kim.message_id


def test_meetings_that_share_a_guardian_are_one_family() -> None:
    grouped = families({5: {1}, 6: {2}, 7: {3, 1}, 8: {3}, 9: {4}})
    assert grouped == [[5, 7, 8], [6], [9]]
    assert families({}) == []


# --- who left the roster (`roster import --replace`) ----------------------------------------


def test_a_family_that_left_is_proposed_nothing_and_waits_for_nothing() -> None:
    """The review's finding: a retired family got a replacement invitation."""
    for left in (
        Left(guardians=frozenset({PAT.guardian_id})),
        Left(students=frozenset({meeting(C).students[0].id})),
        Left(teacher=True),
    ):
        for free in (tuple(GRID2), tuple(FIRST)):  # a time elsewhere, or none: the list
            decision = cancel_day(left=left, free=free)
            assert decision.state is MeetingState.CANCELLED
            assert (decision.then, decision.waitlist) == ((), None)
            assert decision.left == {PAT.guardian_id}
            [(_, cal)] = sent(decision)  # the CANCEL, and nothing else
            assert cal is not None and str(cal["METHOD"]) == "CANCEL"


def test_who_stays_of_a_joint_meeting_is_proposed_the_replacement_alone() -> None:
    both = meeting(C, parties=(PAT, KIM), sequence=1)
    event = StaffCancel(reason=BECAUSE, offer_freed=False, elsewhere=OFF)
    decision = decide(both, event, ctx(left=Left(guardians=frozenset({PAT.guardian_id}))))
    new = replaced_by(decision)
    assert new is not None and [p.email for p in new.parties] == [KIM.email]
    assert decision.left == {PAT.guardian_id}
    waits = decide(
        both, event, ctx(free=tuple(FIRST), left=Left(guardians=frozenset({KIM.guardian_id})))
    )
    assert waits.waitlist is not None and waits.waitlist.guardian_ids == (PAT.guardian_id,)

    pat, kim = notices([decision], HEAD, NOW, reason=BECAUSE)
    assert (pat.to, kim.to) == (PAT.email, KIM.email)
    assert [(c.instead, c.ended) for c in pat.cancelled] == [(None, True)]
    assert kim.cancelled[0].instead is not None and not kim.cancelled[0].ended
    assert Letter.from_json(pat.as_json()) == pat
    text = render(pat).get_body(("plain",)).get_content()
    assert "your meeting that day is cancelled" in text
    assert "Your calendar receives a cancellation for the meeting." in text
    assert "Questions: office@lincoln.example.org" in text
    for said in ("What happens next", "reserved", "waiting list", "invitation", "book+ada"):
        assert said not in text, said
    assert "we have reserved" in render(kim).get_body(("plain",)).get_content()
