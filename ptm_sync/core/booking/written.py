"""What the outbox's writes bring back: where the teacher's event lives, and the video link
made after the meeting was confirmed (DESIGN §3 "In person or video", §6).  PURE.

A meeting whose link is made later (Teams or Meet by the teacher's calendar system with the
event, Zoom by an outbox row of its own) is confirmed without the messages that carry the
link (:data:`~ptm_sync.core.booking.table.CARRY_THE_LINK`, held back by
:func:`~ptm_sync.core.booking.rows.make`): they go here, when the link is made, so the
parent's confirmation carries it, whatever room the teacher has.  When the calendar system
made none (a Graph account without Teams licences, a Google calendar without Meet), the
confirmation goes without a link, with the meeting's place if it has one.
"""

from __future__ import annotations

from dataclasses import replace

from ptm_sync.core.booking.events import CalendarWritten, LinkGivenUp, VideoLinkMade
from ptm_sync.core.booking.rows import DUPLICATE, Change, make, nothing
from ptm_sync.core.booking.table import row_for
from ptm_sync.core.booking.values import Context, Decision, MeetingView
from ptm_sync.core.model import LinkSource, MeetingState


def _for_organizer(meeting: MeetingView, rule: str) -> str:
    """``rule``, or its ``-booked`` row when the parent organizes the meeting (a booking
    address request: the details follow the REPLY instead of a confirmation)."""
    return f"{rule}-booked" if meeting.organized_by_parent else rule


def calendar_written(meeting: MeetingView, event: CalendarWritten, ctx: Context) -> Decision:
    """The teacher's event was written (or removed): remember where it lives; when the
    write made the video link the confirmation waited for, send the confirmation."""
    assert meeting.state is not None
    # A new object (created, or removed) holds none of the teacher's text.
    anew = event.in_flight or event.href is None or event.href != meeting.remote_href
    where = replace(
        meeting,
        remote_href=event.href,
        remote_etag=event.etag,
        remote_slot=event.slot.utc() if event.slot is not None else None,
        remote_edited=meeting.remote_edited and not anew,
    )
    made = event.join_url and not meeting.video_url
    awaited = meeting.link_pending and ctx.link_from is LinkSource.CALENDAR
    if (
        meeting.state is MeetingState.CONFIRMED
        and not event.in_flight
        and event.href is not None
        and (made or awaited)
    ):
        linked = replace(where, video_url=meeting.video_url or event.join_url, link_pending=False)
        name = _for_organizer(meeting, "link-made")
        why = (
            "the teacher's calendar made the video link"
            if made
            else "the teacher's calendar made no video link"
        )
        return make(row_for(meeting.state, name), meeting, ctx, why, Change(updated=linked))
    if where == meeting:
        return nothing(meeting, DUPLICATE, "the teacher's event is as we know it")
    return make(
        row_for(meeting.state, "calendar-written"),
        meeting,
        ctx,
        "written in the teacher's calendar",
        Change(updated=where, record=False),
    )


def video_made(meeting: MeetingView, event: VideoLinkMade, ctx: Context) -> Decision:
    """A Zoom meeting was made for ``meeting``: its link is the meeting's, the teacher's
    event is written again with it, and the confirmation that waited for it goes.  A meeting
    no longer confirmed, or with a link already, takes none (the caller removes the room)."""
    if meeting.state is not MeetingState.CONFIRMED or meeting.video_url or not event.url:
        return nothing(meeting, DUPLICATE, "the meeting needs no video room now")
    linked = replace(meeting, video_url=event.url, link_pending=False)
    name = _for_organizer(meeting, "video-made")
    return make(
        row_for(meeting.state, name),
        meeting,
        ctx,
        "the video room was made",
        Change(updated=linked),
    )


def link_given_up(meeting: MeetingView, event: LinkGivenUp, ctx: Context) -> Decision:
    """The write that was to make the link failed for good: the confirmation that waited
    for it goes now, without a link (with the meeting's place if it has one); staff see the
    dead letter.  Nothing waits for ever."""
    if meeting.state is not MeetingState.CONFIRMED or not meeting.link_pending:
        return nothing(meeting, DUPLICATE, "no confirmation waits for a link")
    name = _for_organizer(meeting, "link-made")
    unlinked = replace(meeting, link_pending=False)
    why = "the video link could not be made"
    return make(row_for(meeting.state, name), meeting, ctx, why, Change(updated=unlinked))
