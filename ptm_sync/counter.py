"""Propose new time (iTIP COUNTER, RFC 5546 §3.2.7): grant it or decline with alternatives.

A parent's proposed time is granted when it is one slot of the period's grid, still ahead,
before booking closes, free in the teacher's calendar, held or booked by no other meeting,
and at least ``gap_minutes`` away from the family's other meetings (DESIGN §3).  Otherwise
the meeting keeps its time and the parent gets a DECLINECOUNTER naming the reason and up to
three free times nearest to the one they asked for.  First come, first served: the database
decides when two families ask for the same slot at once.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ptm_sync import slots as engine
from ptm_sync.availability import teacher_times
from ptm_sync.booking import Booking
from ptm_sync.config import PeriodConfig
from ptm_sync.errors import SlotTaken
from ptm_sync.model import ACTIVE_STATES, Actor, Interval
from ptm_sync.store import Meeting, MeetingGuardian, Teacher

ALTERNATIVES = 3


def _free(session: Session, booking: Booking, meeting: Meeting) -> list[Interval]:
    """The teacher's free slots, counting the meeting's own slot as free, none in the past."""
    period = booking.period(meeting)
    teacher = session.get(Teacher, meeting.teacher_id)
    assert teacher is not None
    (times,) = teacher_times(session, period, [teacher])
    own = Interval(meeting.start, meeting.end)
    others = [m for m in times.held + times.booked if m != own]
    found = engine.teacher_slots(
        period.windows, period.slot_minutes, period.buffer_minutes, times.busy, others
    )
    return [s for s in found if s.start >= booking.now]


def _family(session: Session, meeting: Meeting) -> list[Interval]:
    """The other active meetings in the period of any of the meeting's guardians."""
    guardians = select(MeetingGuardian.guardian_id).where(MeetingGuardian.meeting_id == meeting.id)
    rows = session.execute(
        select(Meeting.start, Meeting.end)
        .join(MeetingGuardian, MeetingGuardian.meeting_id == Meeting.id)
        .where(
            MeetingGuardian.guardian_id.in_(guardians),
            Meeting.period_id == meeting.period_id,
            Meeting.id != meeting.id,
            Meeting.state.in_([s.value for s in ACTIVE_STATES]),
        )
        .distinct()
    )
    return [Interval(start, end) for start, end in rows]


def _clashes(slot: Interval, family: list[Interval], gap: timedelta) -> bool:
    return any(slot.start < o.end + gap and o.start < slot.end + gap for o in family)


def _problem(
    proposed: Interval,
    period: PeriodConfig,
    free: list[Interval],
    family: list[Interval],
    booking: Booking,
) -> str | None:
    closes = period.booking_closes
    if closes is not None and booking.now >= closes:
        return "booking has closed"
    if proposed.start < booking.now:
        return "that time has passed"
    on_grid = engine.grid(period.windows, period.slot_minutes, period.buffer_minutes)
    if proposed not in on_grid:
        return f"meetings are {period.slot_minutes} minutes long and start at the listed times"
    if proposed not in free:
        return "the teacher is not free then"
    if _clashes(proposed, family, timedelta(minutes=period.gap_minutes)):
        return "it is too close to your other meetings that evening"
    return None


def handle_counter(
    session: Session,
    booking: Booking,
    meeting: Meeting,
    proposed: Interval,
    *,
    by: MeetingGuardian,
    inbound_id: int,
    comment: str | None,
) -> str:
    """Grant or decline the time guardian ``by`` proposed; returns a short outcome."""
    period = booking.period(meeting)
    proposed = proposed.utc()
    free = _free(session, booking, meeting)
    family = _family(session, meeting)
    why = _problem(proposed, period, free, family, booking)
    if why is None:
        note = f": {comment}" if comment else ""
        try:
            with session.begin_nested():
                booking.move(
                    session,
                    meeting,
                    proposed,
                    actor=Actor.PARENT,
                    reason=f"{by.guardian.name} proposed a new time{note}",
                    inbound_id=inbound_id,
                    by=by,
                )
            return "counter accepted"
        except SlotTaken:
            session.refresh(meeting)
            why = "another family has just booked that time"
            free = [s for s in free if s != proposed]
    gap = timedelta(minutes=period.gap_minutes)
    own = Interval(meeting.start, meeting.end).utc()
    choices = [s for s in free if s != own and not _clashes(s, family, gap)]
    choices.sort(key=lambda s: (abs((s.start - proposed.start).total_seconds()), s.start))
    booking.decline_counter(session, meeting, why, sorted(choices[:ALTERNATIVES]), by)
    return f"counter declined: {why}"
