"""The video link made after confirmation, decided by the booking core (DESIGN §3 "In person
or video", issue 15): Teams or Meet made by the teacher's calendar system with the event,
Zoom made by the outbox.  The parents' confirmation waits for the link and then carries it;
where the system made none, it goes without one; in person, it goes at once with the room.
"""

from __future__ import annotations

from dataclasses import replace

from icalendar.enums import PARTSTAT

from ptm_sync.core.booking.decide import decide
from ptm_sync.core.booking.events import (
    Answer,
    CalendarWritten,
    LinkGivenUp,
    Request,
    TeacherMoved,
    VideoLinkMade,
)
from ptm_sync.core.booking.values import CalendarAction, MeetingView, Origin
from ptm_sync.core.model import LinkSource, MeetingState
from tests.unit.booking_values import NOW, PAT, context, event_of, meeting, sent, slot

P, C = MeetingState.PROPOSED, MeetingState.CONFIRMED
TEAMS = "https://teams.microsoft.com/l/meetup-join/19%3ameeting_abc"
ZOOM = "https://zoom.us/j/123456789"


def unlinked(state: MeetingState | None = P, **kw: object) -> MeetingView:
    """A meeting whose link is made later: none at proposal."""
    return replace(meeting(state, **kw), video_url="")  # type: ignore[arg-type]


def accept(view: MeetingView) -> Answer:
    return Answer(
        guardian_id=PAT.guardian_id, partstat=PARTSTAT.ACCEPTED, sequence=view.sequence, dtstamp=NOW
    )


def test_an_accept_whose_link_the_calendar_makes_writes_the_event_and_holds_the_confirmation() -> (
    None
):
    decision = decide(unlinked(), accept(unlinked()), context(link_from=LinkSource.CALENDAR))
    assert (decision.rule, decision.state) == ("accept", C)
    assert decision.calendar is CalendarAction.WRITE
    assert decision.notices == ()
    assert decision.after is not None and decision.after.link_pending


def test_the_write_that_made_the_teams_link_sends_the_confirmation_with_it() -> None:
    pending = replace(unlinked(C, sequence=1), link_pending=True)
    written = CalendarWritten(href="/events/AAMk1", etag='W/"1"', join_url=TEAMS)
    decision = decide(pending, written, context(link_from=LinkSource.CALENDAR))
    assert decision.rule == "link-made"
    assert decision.after is not None
    after = decision.after
    assert (after.video_url, after.link_pending) == (TEAMS, False)
    assert (after.remote_href, after.remote_etag) == ("/events/AAMk1", 'W/"1"')
    [(_, cal)] = sent(decision)
    event = event_of(cal)
    assert str(cal["METHOD"]) == "REQUEST" and str(event["STATUS"]) == "CONFIRMED"
    assert int(event["SEQUENCE"]) == 1  # the confirmation of the accepted version
    assert TEAMS in str(event["DESCRIPTION"]) and TEAMS in str(event["LOCATION"])
    assert decision.calendar is CalendarAction.NONE  # the link is in the event already


def test_a_write_that_made_no_link_sends_the_confirmation_without_one() -> None:
    pending = replace(unlinked(C, sequence=1), link_pending=True, location="Room 101")
    decision = decide(
        pending, CalendarWritten(href="/e/1", etag="1"), context(link_from=LinkSource.CALENDAR)
    )
    assert decision.rule == "link-made"
    assert decision.after is not None and not decision.after.link_pending
    [(_, cal)] = sent(decision)
    assert "Room 101" in str(event_of(cal)["LOCATION"])


def test_a_write_while_zoom_is_still_to_come_only_says_where_the_event_lives() -> None:
    pending = replace(unlinked(C, sequence=1), link_pending=True)
    decision = decide(
        pending, CalendarWritten(href="/e/1", etag="1"), context(link_from=LinkSource.ZOOM)
    )
    assert decision.rule == "calendar-written" and decision.notices == ()
    assert decision.after is not None and decision.after.link_pending
    assert decision.history is None  # where an event lives is no step of the meeting's life


def test_the_marker_of_a_create_in_flight_sends_nothing() -> None:
    pending = replace(unlinked(C, sequence=1), link_pending=True)
    marker = CalendarWritten(href="creating:", in_flight=True)
    decision = decide(pending, marker, context(link_from=LinkSource.CALENDAR))
    assert decision.rule == "calendar-written" and decision.notices == ()


def test_the_zoom_room_made_sends_the_confirmation_and_rewrites_the_event() -> None:
    pending = replace(unlinked(C, sequence=1), link_pending=True)
    decision = decide(pending, VideoLinkMade(url=ZOOM), context(link_from=LinkSource.ZOOM))
    assert decision.rule == "video-made"
    assert decision.calendar is CalendarAction.WRITE
    [(_, cal)] = sent(decision)
    assert ZOOM in str(event_of(cal)["DESCRIPTION"])


def test_a_zoom_room_for_a_meeting_no_longer_confirmed_is_not_taken() -> None:
    cancelled = unlinked(MeetingState.CANCELLED, sequence=2)
    decision = decide(cancelled, VideoLinkMade(url=ZOOM), context(link_from=LinkSource.ZOOM))
    assert decision.outcome == "duplicate" and decision.after == cancelled


def test_in_person_the_confirmation_goes_at_once_with_the_room() -> None:
    view = replace(unlinked(), location="Room 101")
    decision = decide(view, accept(view), context(link_from=LinkSource.NONE))
    assert decision.after is not None and not decision.after.link_pending
    [(_, cal)] = sent(decision)
    event = event_of(cal)
    assert str(event["STATUS"]) == "CONFIRMED" and "Room 101" in str(event["LOCATION"])


def test_a_booking_address_request_is_accepted_at_once_and_its_details_follow_the_link() -> None:
    draft = replace(
        unlinked(None, origin=Origin.BOOKING_ADDRESS, uid="pat-1@example.net"), hold_until=None
    )
    ask = Request(
        guardian_id=PAT.guardian_id,
        uid="pat-1@example.net",
        organizer=PAT.email,
        slot=slot(2),
        dtstamp=NOW,
    )
    granted = decide(draft, ask, context(link_from=LinkSource.CALENDAR))
    assert granted.rule == "request-granted"
    assert [n.template for n in granted.notices] == ["booking_accepted"]
    assert granted.after is not None and granted.after.link_pending
    confirmed = replace(granted.after, id=9)
    written = CalendarWritten(href="/e/2", etag="2", join_url=TEAMS)
    details = decide(confirmed, written, context(link_from=LinkSource.CALENDAR))
    assert details.rule == "link-made-booked"
    assert [n.template for n in details.notices] == ["booking_details"]


def test_the_teachers_move_keeps_their_version_as_the_one_we_know() -> None:
    confirmed = meeting(C, at=0, sequence=1)
    decision = decide(confirmed, TeacherMoved(slot=slot(3), etag="teacher-2"), context())
    assert decision.after is not None and decision.after.remote_etag == "teacher-2"


def test_a_link_given_up_sends_the_waiting_confirmation_without_one() -> None:
    pending = replace(unlinked(C, sequence=1), link_pending=True, location="Room 101")
    decision = decide(pending, LinkGivenUp(), context(link_from=LinkSource.CALENDAR))
    assert decision.rule == "link-made"
    assert decision.after is not None and not decision.after.link_pending
    [(_, cal)] = sent(decision)
    event = event_of(cal)
    assert str(event["STATUS"]) == "CONFIRMED" and "Room 101" in str(event["LOCATION"])
    # Nothing waits any more: a second give-up sends nothing.
    again = decide(decision.after, LinkGivenUp(), context(link_from=LinkSource.CALENDAR))
    assert again.outcome == "duplicate" and again.notices == ()
