"""Requests to a teacher's booking address, decided like a room mailbox (DESIGN §3): the
parent's REQUEST (new or updated) and CANCEL; the parent stays organizer.  PURE."""

from __future__ import annotations

from dataclasses import replace

from icalendar.enums import PARTSTAT

from ptm_sync.core.booking import admission
from ptm_sync.core.booking.admission import Ask
from ptm_sync.core.booking.events import OrganizerCancel, Request
from ptm_sync.core.booking.lifecycle import supersede
from ptm_sync.core.booking.rows import (
    DUPLICATE,
    STALE,
    Change,
    make,
    note,
    nothing,
    quarantine,
    refusal,
)
from ptm_sync.core.booking.table import CLOSED, NEW, row_for
from ptm_sync.core.booking.values import Context, Decision, MeetingView, WaitlistEntry
from ptm_sync.core.errors import QuarantineReason
from ptm_sync.core.model import Interval, MeetingState


def request(meeting: MeetingView, event: Request, ctx: Context) -> Decision:
    asker = event.guardian_id
    if meeting.state is NEW:
        if event.slot is None:
            return quarantine(meeting, QuarantineReason.REQUEST_WITHOUT_TIME, asker)
        ask = Ask(
            slot=event.slot, booking_address=True, recurring=event.recurring, all_day=event.all_day
        )
        result = admission.admit(ctx=ctx, ask=ask)
        booked = replace(
            meeting,
            start=event.slot.start,
            end=event.slot.end,
            sequence=event.sequence,
            # The organizer books; a joint student's other guardians are asked nothing.
            parties=tuple(
                replace(
                    p,
                    partstat=PARTSTAT.ACCEPTED,
                    reply_sequence=event.sequence,
                    reply_dtstamp=event.dtstamp,
                )
                if p.guardian_id == asker
                else p
                for p in meeting.parties
            ),
        )
        if not result.granted:
            wait = None
            if result.code in ("busy", "family-clash") and not result.alternatives:
                wait = waitlist_entry(meeting, ctx)
            return make(
                row_for(NEW, "request-refused"),
                booked,
                ctx,
                refusal(result),
                Change(
                    asker=asker,
                    notice_reason=result.reason,
                    alternatives=result.alternatives,
                    waitlist=wait,
                    request_status=result.request_status,
                ),
            )
        return make(
            row_for(NEW, "request-granted"),
            booked,
            ctx,
            f"booked through {meeting.teacher.booking_address}{note(event.comment)}",
            Change(
                asker=asker,
                then=supersede_pending(ctx, "booked through the booking address", booked.slot),
            ),
        )
    if not meeting.organized_by_parent or meeting.state is MeetingState.PROPOSED:
        return quarantine(meeting, QuarantineReason.UNSUPPORTED_METHOD, asker)
    if meeting.party(asker) is None:
        return quarantine(meeting, QuarantineReason.SENDER_NOT_ORGANIZER, asker)
    if event.sequence < meeting.sequence:
        return nothing(meeting, STALE, f"an older version (SEQUENCE {event.sequence})", asker)
    if meeting.state in CLOSED:
        why = f"this booking is {meeting.state}; please send a new invitation"
        return make(
            row_for(meeting.state, "request-closed"),
            meeting,
            ctx,
            why,
            Change(asker=asker, notice_reason=why, record=False),
        )
    if event.slot is None:
        return quarantine(meeting, QuarantineReason.REQUEST_WITHOUT_TIME, asker)
    newer = replace(meeting, sequence=max(event.sequence, meeting.sequence))
    if event.slot.utc() == meeting.slot:
        party = meeting.party(asker)
        assert party is not None
        if event.sequence == meeting.sequence and event.dtstamp == party.reply_dtstamp:
            return nothing(meeting, DUPLICATE, "the same request was processed before", asker)
        again = newer.with_party(
            replace(party, reply_sequence=event.sequence, reply_dtstamp=event.dtstamp)
        )
        return make(
            row_for(meeting.state, "request-again"),
            meeting,
            ctx,
            "the request came again",
            Change(updated=again, asker=asker, record=False),
        )
    ask = Ask(
        slot=event.slot, booking_address=True, recurring=event.recurring, all_day=event.all_day
    )
    result = admission.admit(ctx=ctx, ask=ask)
    if not result.granted:
        # Like a room mailbox that cannot take the new time, we decline the update; the
        # booking the parent had stays (the answer says so), nothing confirmed is lost.
        return make(
            row_for(meeting.state, "request-move-refused"),
            meeting,
            ctx,
            f"new time refused: {refusal(result)}",
            Change(
                asker=asker,
                notice_reason=result.reason,
                alternatives=result.alternatives,
                asked=(event.slot.utc(), event.sequence),
                request_status=result.request_status,
                record=False,
            ),
        )
    moved = replace(newer, start=event.slot.start, end=event.slot.end)
    return make(
        row_for(meeting.state, "request-moved"),
        meeting,
        ctx,
        f"moved by the parent{note(event.comment)}",
        Change(updated=moved, asker=asker, old_start=meeting.slot),
    )


def organizer_cancel(meeting: MeetingView, event: OrganizerCancel, ctx: Context) -> Decision:
    if meeting.state is NEW or meeting.party(event.guardian_id) is None:
        return quarantine(meeting, QuarantineReason.UNKNOWN_UID, event.guardian_id)
    if not meeting.organized_by_parent or meeting.state is MeetingState.PROPOSED:
        return quarantine(meeting, QuarantineReason.UNSUPPORTED_METHOD, event.guardian_id)
    if meeting.state in CLOSED:
        return nothing(meeting, DUPLICATE, f"meeting already {meeting.state}", event.guardian_id)
    if event.sequence < meeting.sequence:
        return nothing(meeting, STALE, f"an older version (SEQUENCE {event.sequence})")
    newer = replace(meeting, sequence=max(event.sequence, meeting.sequence))
    return make(
        row_for(meeting.state, "organizer-cancel"),
        meeting,
        ctx,
        "cancelled by the parent",
        Change(updated=newer, asker=event.guardian_id),
    )


def waitlist_entry(meeting: MeetingView, ctx: Context) -> WaitlistEntry:
    return WaitlistEntry(
        id=None,
        period=meeting.period,
        teacher_id=meeting.teacher.id,
        guardian_ids=tuple(p.guardian_id for p in meeting.parties),
        student_ids=tuple(s.id for s in meeting.students),
        since=ctx.now,
    )


def supersede_pending(ctx: Context, why: str, booked: Interval) -> tuple[Decision, ...]:
    """Withdraw the family's unanswered proposals for the need a booking at ``booked``
    covers.  A proposal's slot is offered to the waiting list, unless the booking takes it."""
    found = []
    for pending in ctx.pending:
        decision = supersede(pending, why, ctx)
        if decision.releases == booked.utc():
            decision = replace(decision, releases=None)
        found.append(decision)
    return tuple(found)
