"""After the booking: reminders, completion, no-shows, feedback requests, retirement (DESIGN
§3 "Other life-cycle jobs", §7 ``meetings mark``, ``roster import --replace``).  PURE.

Each job asks about one meeting at a time with ``now`` from the context, and the answer is
the same however often it is asked: a meeting is reminded once per time (``reminded``
holds the start it was reminded of), asked for feedback once (``feedback_token``), and
completed once; the applier's row lock makes a second replica's answer a duplicate.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from enum import StrEnum

from ptm_sync.core.booking.events import AskFeedback, MarkAttended, MarkNoShow, Retire
from ptm_sync.core.booking.office import refused_for_staff
from ptm_sync.core.booking.rows import DUPLICATE, Change, make, note, nothing
from ptm_sync.core.booking.table import row_for
from ptm_sync.core.booking.values import Context, Decision, MeetingView
from ptm_sync.core.model import MeetingState

C, DONE, NOSHOW = MeetingState.CONFIRMED, MeetingState.COMPLETED, MeetingState.NO_SHOW


class Unwanted(StrEnum):
    """Why a queued reminder or feedback request is no longer sent (DESIGN §3, §6: "dropped
    once the meeting has started").  The texts name no person: they go to the outbox row's
    ``last_error`` and the log."""

    STARTED = "the meeting has started"
    CANCELLED = "the meeting was cancelled"
    NOT_CONFIRMED = "the meeting is no longer confirmed"
    MOVED = "the meeting was moved (its new time is reminded on its own)"
    PURGED = "the meeting's personal data was purged"
    GONE = "the meeting is gone"


def reminder_still_due(
    letter_start: datetime, meeting_state: MeetingState, meeting_start: datetime, now: datetime
) -> Unwanted | None:
    """Whether a reminder queued for a meeting starting at ``letter_start`` may still be
    sent at ``now`` (aware datetimes): None when it may, else why not.

    A reminder waits in the outbox while the mail server is away; when it can go at last,
    the meeting may have started (a reminder is never sent then), been cancelled, or moved
    (the new time gets its own reminder: ``reminded`` holds the start reminded of).
    """
    if meeting_state is MeetingState.CANCELLED:
        return Unwanted.CANCELLED
    if meeting_state in (DONE, NOSHOW):
        return Unwanted.STARTED
    if meeting_state is not C:
        return Unwanted.NOT_CONFIRMED
    if meeting_start != letter_start:
        return Unwanted.MOVED
    if now >= meeting_start:
        return Unwanted.STARTED
    return None


def feedback_request_still_due(purged: bool) -> Unwanted | None:
    """Whether a queued feedback request may still be sent: not once the meeting's personal
    data was purged (its record is gone; an answer could not be kept)."""
    return Unwanted.PURGED if purged else None


def remind(meeting: MeetingView, ctx: Context) -> Decision:
    """The family of a confirmed meeting is reminded once per start time, within the
    period's ``reminder_hours`` before it and never once it has started."""
    if meeting.state is not C:
        return nothing(meeting, DUPLICATE, f"meeting is {meeting.state}")
    if meeting.reminded == meeting.slot.start:
        return nothing(meeting, DUPLICATE, "reminded of this time already")
    if not ctx.rules.reminder_due(meeting.slot.start, ctx.now):
        return nothing(meeting, DUPLICATE, "no reminder due")
    return make(
        row_for(meeting.state, "remind"),
        meeting,
        ctx,
        "reminder sent",
        Change(updated=replace(meeting, reminded=meeting.slot.start), record=False),
    )


def complete(meeting: MeetingView, ctx: Context) -> Decision:
    """A confirmed meeting whose end has passed is ``completed``."""
    if meeting.state is not C:
        return nothing(meeting, DUPLICATE, f"meeting is {meeting.state}")
    if ctx.now < meeting.slot.end:
        return nothing(meeting, DUPLICATE, "the meeting is not over yet")
    return make(row_for(meeting.state, "complete"), meeting, ctx, "the meeting ended")


def ask_feedback(meeting: MeetingView, event: AskFeedback, ctx: Context) -> Decision:
    """The guardians of a completed meeting are asked for feedback, once per meeting."""
    if meeting.state is not DONE:
        return nothing(meeting, DUPLICATE, f"meeting is {meeting.state}")
    if meeting.feedback_token is not None:
        return nothing(meeting, DUPLICATE, "feedback was asked for already")
    return make(
        row_for(meeting.state, "feedback-request"),
        meeting,
        ctx,
        "feedback asked for",
        Change(updated=replace(meeting, feedback_token=event.token), record=False),
    )


def mark_no_show(meeting: MeetingView, event: MarkNoShow, ctx: Context) -> Decision:
    """Staff mark a no-show: a confirmed meeting that has started, or a completed one as a
    correction (which needs a reason: DESIGN §3)."""
    if meeting.state is NOSHOW:
        return nothing(meeting, DUPLICATE, "marked no-show already")
    if meeting.state not in (C, DONE):
        return refused_for_staff(meeting, ctx, f"the meeting is {meeting.state}")
    if meeting.state is C and ctx.now < meeting.slot.start:
        return refused_for_staff(meeting, ctx, "the meeting has not started yet")
    if meeting.state is DONE and not event.reason.strip():
        return refused_for_staff(
            meeting, ctx, "the meeting is completed: a correction to no-show needs a reason"
        )
    reason = f"marked no-show{note(event.reason)}"
    return make(row_for(meeting.state, "no-show"), meeting, ctx, reason)


def mark_attended(meeting: MeetingView, event: MarkAttended, ctx: Context) -> Decision:
    """Staff mark that the family came: a confirmed meeting that has started becomes
    ``completed``; a ``no_show`` corrected to ``completed`` needs a reason."""
    if meeting.state is DONE:
        return nothing(meeting, DUPLICATE, "completed already")
    if meeting.state not in (C, NOSHOW):
        return refused_for_staff(meeting, ctx, f"the meeting is {meeting.state}")
    if meeting.state is C and ctx.now < meeting.slot.start:
        return refused_for_staff(meeting, ctx, "the meeting has not started yet")
    if meeting.state is NOSHOW and not event.reason.strip():
        return refused_for_staff(
            meeting, ctx, "the meeting is marked no-show: a correction to attended needs a reason"
        )
    return make(
        row_for(meeting.state, "attended"), meeting, ctx, f"marked attended{note(event.reason)}"
    )


def retire(meeting: MeetingView, event: Retire, ctx: Context) -> Decision:
    """A retired family's (or teacher's) open proposal is withdrawn with a CANCEL; a
    confirmed meeting is kept (staff see it in ``meetings --retired``)."""
    if meeting.state is not MeetingState.PROPOSED:
        return nothing(meeting, DUPLICATE, f"meeting is {meeting.state}: kept")
    return make(
        row_for(meeting.state, "retired"),
        meeting,
        ctx,
        f"withdrawn: {event.reason}",
        Change(notice_reason=event.reason),
    )
