"""Deadlines and the teacher's calendar: hold expiry, superseded proposals, completion,
and the teacher moving or deleting our event (DESIGN §3).  PURE."""

from __future__ import annotations

from dataclasses import replace

from icalendar.enums import PARTSTAT

from ptm_sync.core.booking import admission
from ptm_sync.core.booking.answers import with_next_step
from ptm_sync.core.booking.events import HoldExpired, TeacherEdited, TeacherMoved
from ptm_sync.core.booking.rows import DUPLICATE, Change, make, nothing
from ptm_sync.core.booking.table import row_for
from ptm_sync.core.booking.values import Context, Decision, MeetingView
from ptm_sync.core.model import MeetingState


def expire(meeting: MeetingView, event: HoldExpired, ctx: Context) -> Decision:
    if meeting.state is not MeetingState.PROPOSED:
        return nothing(meeting, DUPLICATE, f"answered meanwhile: {meeting.state}")
    if meeting.hold_until is None or ctx.now < meeting.hold_until:
        return nothing(meeting, DUPLICATE, "the hold has not run out")
    return make(
        row_for(meeting.state, "expire"),
        meeting,
        ctx,
        "no answer by the hold deadline",
        Change(notice_reason="the reserved time was not confirmed in time"),
    )


def teacher_moved(meeting: MeetingView, event: TeacherMoved, ctx: Context) -> Decision:
    if meeting.state is not MeetingState.CONFIRMED:
        return nothing(meeting, DUPLICATE, "nothing to follow")
    if event.slot.utc() == meeting.slot:
        # Moved to the meeting's own time (where our pending write was taking it): for the
        # parents nothing changes; the teacher's version is the one we know.
        return teacher_edited(meeting, TeacherEdited(etag=event.etag), ctx)
    seen = event.slot.utc()
    if meeting.organized_by_parent:
        asker = meeting.parties[0].guardian_id
        return make(
            row_for(meeting.state, "teacher-moved-booked"),
            meeting,
            ctx,
            "the teacher moved the event; the parent is asked to move it",
            Change(
                asker=asker,
                alternatives=(seen,),
                updated=replace(meeting, remote_etag=event.etag, remote_slot=seen),
            ),
        )
    parties = tuple(replace(p, partstat=PARTSTAT.NEEDS_ACTION) for p in meeting.parties)
    moved = replace(
        meeting,
        start=event.slot.start,
        end=event.slot.end,
        parties=parties,
        remote_etag=event.etag,  # the teacher's version is now the one we know
        remote_slot=seen,
    )
    return make(
        row_for(meeting.state, "teacher-moved"),
        meeting,
        ctx,
        "moved in the teacher's calendar",
        Change(updated=moved, old_start=meeting.slot),
    )


def teacher_removed(meeting: MeetingView, ctx: Context) -> Decision:
    if meeting.state is not MeetingState.CONFIRMED:
        return nothing(meeting, DUPLICATE, "nothing to follow")
    if meeting.organized_by_parent:
        why = "the teacher can no longer meet at this time"
        return make(
            row_for(meeting.state, "teacher-removed-booked"),
            meeting,
            ctx,
            "removed from the teacher's calendar",
            Change(
                asker=meeting.parties[0].guardian_id,
                notice_reason=why,
                alternatives=admission.alternatives_for(meeting.slot, ctx),
                updated=_unwritten(meeting),
            ),
        )
    gone = _unwritten(meeting)
    why = "the teacher can no longer meet at this time"
    removed = make(
        row_for(meeting.state, "teacher-removed"),
        meeting,
        ctx,
        "removed from the teacher's calendar",
        Change(notice_reason=why, updated=gone),
    )
    # DESIGN §3: a CANCEL to the parent and a new proposal.
    return with_next_step(removed, replace(meeting, reproposals=0), ctx, because=why)


def teacher_edited(meeting: MeetingView, event: TeacherEdited, ctx: Context) -> Decision:
    """The teacher edited our event at the time it was written: their version (ETag) is the
    one we know and their text stays in our later writes; the parents hear nothing."""
    if meeting.state is not MeetingState.CONFIRMED or meeting.remote_href is None:
        return nothing(meeting, DUPLICATE, "nothing to follow")
    known = replace(meeting, remote_etag=event.etag, remote_edited=True)
    if known == meeting:
        return nothing(meeting, DUPLICATE, "the teacher's version is the one we know")
    return make(
        row_for(meeting.state, "teacher-edited"),
        meeting,
        ctx,
        "edited in the teacher's calendar",
        Change(updated=known),
    )


def _unwritten(meeting: MeetingView) -> MeetingView:
    """``meeting`` with no event in the teacher's calendar."""
    return replace(
        meeting, remote_href=None, remote_etag=None, remote_slot=None, remote_edited=False
    )


def supersede(meeting: MeetingView, reason: str, ctx: Context) -> Decision:
    """Another meeting now covers this proposal's need: it is withdrawn (CANCEL)."""
    if meeting.state is not MeetingState.PROPOSED:
        return nothing(meeting, DUPLICATE, f"meeting is {meeting.state}")
    return make(row_for(meeting.state, "supersede"), meeting, ctx, reason)
