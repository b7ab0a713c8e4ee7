"""Running late (DESIGN §3): which of a teacher's meetings move, and what each one says.  PURE.

``plan`` decides the whole evening at once, from the last meeting backwards: a meeting
moves by N minutes when its moved time stays clear of the teacher's other active meetings
and holds (the later meetings at their moved times) and of its family's other meetings by
``gap_minutes``, and ends by the end of the meeting's local day (the school's midnight: a
move never takes a meeting to another day); the first one that cannot move stays, and no
meeting before it moves either, so the teacher's meetings never overlap.  A late move is
exempt from the grid and may pass the window's end.  A teacher more than
:data:`MAX_MINUTES` late cancels the evening instead.  :func:`running_late` then decides one
meeting's
:class:`~ptm_sync.core.booking.events.RunningLate` event: a REQUEST update (SEQUENCE + 1,
the teacher's event moves too) or an email telling the family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ptm_sync.core.booking.events import RunningLate
from ptm_sync.core.booking.office import refused_for_staff
from ptm_sync.core.booking.rows import Change, make
from ptm_sync.core.booking.table import row_for
from ptm_sync.core.booking.values import Context, Decision, MeetingView
from ptm_sync.core.model import Interval, MeetingState

#: The most minutes a teacher may run late (4 hours): later than that, the evening is
#: cancelled (``cancel --teacher --date``), not moved.
MAX_MINUTES = 240


@dataclass(frozen=True, slots=True, kw_only=True)
class LateMeeting:
    """One confirmed meeting of the teacher from the late time on.

    ``slot``: its time (UTC).  ``family``: the other active meetings of its guardians (any
    teacher, UTC).  ``movable``: False for a meeting the parent organizes (a booking
    address: only the parent can move it)."""

    id: int
    slot: Interval
    family: tuple[Interval, ...] = ()
    movable: bool = True


def plan(
    meetings: Sequence[LateMeeting],
    *,
    minutes: int,
    gap_minutes: int,
    day_end: datetime,
    occupied: Sequence[Interval] = (),
) -> dict[int, Interval | None]:
    """Each meeting's new time (UTC), or None where it stays and its family is told.

    ``minutes``: how late (1..:data:`MAX_MINUTES`).  ``day_end``: the end of the meetings'
    local day (aware: the school's midnight); a meeting whose moved end would pass it
    cannot move.  ``occupied``: the teacher's other active meetings and holds that do not
    move (UTC).

    Raises:
        ValueError: ``minutes`` is not positive or more than :data:`MAX_MINUTES`, or
            ``day_end`` is naive.
    """
    if minutes <= 0:
        raise ValueError("a teacher runs a positive number of minutes late")
    if minutes > MAX_MINUTES:
        raise ValueError(f"a teacher runs at most {MAX_MINUTES} minutes late")
    if day_end.tzinfo is None:
        raise ValueError("day_end must be an aware time")
    shift, gap = timedelta(minutes=minutes), timedelta(minutes=gap_minutes)
    taken = [s.utc() for s in occupied]
    result: dict[int, Interval | None] = {}
    stuck = False
    for meeting in sorted(meetings, key=lambda m: (m.slot.start, m.id), reverse=True):
        slot = meeting.slot.utc()
        moved = Interval(slot.start + shift, slot.end + shift)
        if (
            not stuck
            and meeting.movable
            and moved.end <= day_end
            and not any(_overlaps(moved, other, timedelta(0)) for other in taken)
            and not any(_overlaps(moved, other, gap) for other in meeting.family)
        ):
            result[meeting.id] = moved
            taken.append(moved)
            continue
        stuck = True
        result[meeting.id] = None
        taken.append(slot)
    return result


def _overlaps(a: Interval, b: Interval, gap: timedelta) -> bool:
    b = b.utc()
    return a.start < b.end + gap and b.start < a.end + gap


def running_late(meeting: MeetingView, event: RunningLate, ctx: Context) -> Decision:
    """A confirmed meeting moves to ``event.slot`` (REQUEST, SEQUENCE + 1, the teacher's
    event follows; history ``late``), or stays and its family is told by email."""
    if meeting.state is not MeetingState.CONFIRMED:
        return refused_for_staff(meeting, ctx, f"the meeting is {meeting.state}")
    why = f"the teacher is running {event.minutes} minutes late"
    if event.slot is None:
        return make(
            row_for(meeting.state, "late-told"),
            meeting,
            ctx,
            f"{why}; the meeting could not move (told by email)",
            Change(notice_reason=f"about {event.minutes} minutes"),
        )
    # A family reminded of the old time reads the new one in this update: the reminder
    # is not sent again for it.
    reminded = event.slot.utc().start if meeting.reminded is not None else None
    moved = replace(meeting, start=event.slot.start, end=event.slot.end, reminded=reminded)
    return make(
        row_for(meeting.state, "late"),
        meeting,
        ctx,
        f"{why}: moved by {event.minutes} minutes",
        Change(
            updated=moved, old_start=meeting.slot, notice_reason=f"about {event.minutes} minutes"
        ),
    )


def moves(planned: Mapping[int, Interval | None]) -> int:
    """How many meetings of a plan move."""
    return sum(1 for slot in planned.values() if slot is not None)
