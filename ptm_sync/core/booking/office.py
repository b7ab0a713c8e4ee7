"""Meetings made or changed by the school: the planner's offers and staff bookings,
reschedules and cancellations (DESIGN §3; staff may override the deadline and the caps,
recorded).  PURE."""

from __future__ import annotations

from dataclasses import replace

from icalendar.enums import PARTSTAT

from ptm_sync.core.booking import admission, disruption
from ptm_sync.core.booking.admission import Admission, Ask
from ptm_sync.core.booking.events import Offer, StaffBook, StaffCancel, StaffReschedule
from ptm_sync.core.booking.requests import supersede_pending
from ptm_sync.core.booking.rows import REFUSED, Change, make, note, nothing, refusal
from ptm_sync.core.booking.table import NEW, OPEN, row_for
from ptm_sync.core.booking.values import Context, Decision, MeetingView, Origin
from ptm_sync.core.model import Interval, MeetingState


def offer(meeting: MeetingView, event: Offer, ctx: Context) -> Decision:
    name = {Origin.REPROPOSAL: "reproposal", Origin.WAITLIST: "waitlist-offer"}.get(
        event.origin, "offer"
    )
    result = admission.admit(ctx=ctx, ask=Ask(slot=event.slot))
    if not result.granted:
        return nothing(meeting, REFUSED, refusal(result))
    draft = replace(
        meeting,
        start=event.slot.start,
        end=event.slot.end,
        origin=event.origin,
        hold_until=ctx.rules.hold_deadline(ctx.now),
    )
    return make(row_for(NEW, name), draft, ctx, f"proposed ({event.origin})")


def staff_book(meeting: MeetingView, event: StaffBook, ctx: Context) -> Decision:
    result = admission.admit(ctx=ctx, ask=Ask(slot=event.slot, staff=True, override=event.override))
    if not result.granted:
        return refused_for_staff(meeting, ctx, result.reason, result.alternatives)
    booked = replace(
        meeting,
        start=event.slot.start,
        end=event.slot.end,
        origin=Origin.STAFF,
        hold_until=None,
    )
    return make(
        row_for(NEW, "staff-book"),
        booked,
        ctx,
        _staff_reason("booked by staff", event.note, result),
        Change(
            overrides=result.overrides,
            then=supersede_pending(ctx, "booked by the school office", booked.slot),
        ),
    )


def _staff_reason(what: str, remark: str, result: Admission) -> str:
    overridden = f" (staff override: {', '.join(result.overrides)})" if result.overrides else ""
    return f"{what}{note(remark)}{overridden}"


def refused_for_staff(
    meeting: MeetingView, ctx: Context, why: str, alternatives: tuple[Interval, ...] = ()
) -> Decision:
    row = row_for(meeting.state, "staff-refused")
    return make(
        row, meeting, ctx, why, Change(outcome=REFUSED, alternatives=alternatives, record=False)
    )


def staff_reschedule(meeting: MeetingView, event: StaffReschedule, ctx: Context) -> Decision:
    if meeting.state not in OPEN:
        return refused_for_staff(meeting, ctx, f"the meeting is {meeting.state}")
    if meeting.organized_by_parent:
        return refused_for_staff(
            meeting, ctx, "the parent organizes this meeting (booking address): ask them to move it"
        )
    if event.slot.utc() == meeting.slot:
        return refused_for_staff(meeting, ctx, "the meeting is at that time already")
    result = admission.admit(
        ctx=ctx, ask=Ask(slot=event.slot, current=meeting.slot, staff=True, override=event.override)
    )
    if not result.granted:
        return refused_for_staff(meeting, ctx, result.reason, result.alternatives)
    parties = tuple(replace(p, partstat=PARTSTAT.NEEDS_ACTION) for p in meeting.parties)
    moved = replace(meeting, start=event.slot.start, end=event.slot.end, parties=parties)
    if meeting.state is MeetingState.PROPOSED:
        # A new time to answer: the hold starts again.
        moved = replace(moved, hold_until=ctx.rules.hold_deadline(ctx.now))
    return make(
        row_for(meeting.state, "staff-reschedule"),
        meeting,
        ctx,
        _staff_reason("rescheduled by staff", event.note, result),
        Change(updated=moved, old_start=meeting.slot, overrides=result.overrides),
    )


def staff_cancel(meeting: MeetingView, event: StaffCancel, ctx: Context) -> Decision:
    if meeting.state not in OPEN:
        return refused_for_staff(meeting, ctx, f"the meeting is {meeting.state}")
    booked = meeting.organized_by_parent and meeting.state is MeetingState.CONFIRMED
    name = "staff-cancel-booked" if booked else "staff-cancel"
    asker = meeting.parties[0].guardian_id if booked else None
    reason = event.reason or "cancelled by the school"
    # The parent organizes the event: the answer offers other free times (a bulk
    # cancellation of the teacher's day offers none: that day is off, and the family is
    # proposed a time on another evening instead, below).
    decision = make(
        row_for(meeting.state, name),
        meeting,
        ctx,
        f"cancelled by staff{note(event.reason)}",
        Change(
            asker=asker,
            notice_reason=reason,
            alternatives=admission.alternatives_for(meeting.slot, ctx)
            if booked and event.offer_freed
            else (),
        ),
    )
    if event.elsewhere is not None:
        decision = disruption.with_replacement(
            decision, meeting, ctx, outside=event.elsewhere, because=event.reason
        )
    return decision if event.offer_freed else replace(decision, releases=None)
