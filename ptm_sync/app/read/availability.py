"""Bookable slots and the scheduling matrix, read from the store.

The one place that turns stored busy times and meetings into the pure slot engine's inputs;
the command line, the published pages and the booking engine all go through here, so
`slots --format json` and `/periods/<id>/slots.json` can never disagree.  A teacher who
left the roster (``retired_at``, `roster import --replace`) offers no times: :func:`teachers`
leaves them out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import BusyTime, Calendar, CalendarEvent, Meeting, SchoolBusy, Teacher
from ptm_sync.app.periods import period_span
from ptm_sync.config.settings import Config, PeriodConfig
from ptm_sync.core import slots as engine
from ptm_sync.core.errors import NotFoundError
from ptm_sync.core.model import Interval, MeetingState, SlotStatus


@dataclass(frozen=True, slots=True)
class SlotRow:
    teacher: str
    teacher_key: str
    teacher_name: str
    period: str
    start: datetime  # in the school's zone
    end: datetime

    def as_json(self) -> dict[str, str]:
        """The contract's JSON object (DESIGN §7): no names beyond the teacher's email."""
        return {
            "teacher": self.teacher,
            "teacher_key": self.teacher_key,
            "period": self.period,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class MatrixRow:
    date: str
    start: datetime
    end: datetime
    teacher: str
    teacher_name: str
    status: SlotStatus

    def as_json(self) -> dict[str, str]:
        return {
            "date": self.date,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "teacher": self.teacher,
            "status": self.status.value,
        }


@dataclass(frozen=True, slots=True)
class TeacherTimes:
    """One teacher's inputs to the engine for one period.

    ``synced`` is False while the teacher's calendar has never been read successfully:
    ``busy`` is then the whole period (nothing is offered) and the matrix says
    ``not_synced`` rather than ``busy`` (DESIGN §7).  ``unknown``: spans the calendar
    system had no data for (DESIGN §5); they are in ``busy`` too (no slot is offered in
    them) and the matrix shows them ``not_synced``.
    """

    teacher: Teacher
    busy: list[Interval]
    held: list[Interval]
    booked: list[Interval]
    synced: bool = True
    unknown: list[Interval] = field(default_factory=list)


def teachers(
    session: Session, teacher_email: str | None = None, *, retired: bool = False
) -> list[Teacher]:
    """The roster's teachers by name, or the one with ``teacher_email`` (any case); those
    who left the roster (``roster import --replace``) only with ``retired``: they offer no
    times (slots, the matrix, the published pages and feeds, the planner).

    Raises:
        NotFoundError: no teacher has ``teacher_email``, or (without ``retired``) that
            teacher left the roster.
    """
    query = select(Teacher).order_by(Teacher.name, Teacher.email)
    if teacher_email:
        query = query.where(Teacher.email == teacher_email.strip().lower())
    found = list(session.scalars(query))
    if teacher_email and not found:
        raise NotFoundError(f"no teacher {teacher_email!r} in the roster")
    if retired:
        return found
    if teacher_email and found[0].retired_at is not None:
        raise NotFoundError(
            f"teacher {teacher_email!r} left the roster (roster import --replace) and offers "
            "no times; import them again to offer them"
        )
    return [t for t in found if t.retired_at is None]


# Built once: every booking decision reads a teacher's times, and building the statements
# costs more than running them.  ``ids`` is an expanding parameter (a list of teacher ids).
_BUSY = (
    select(BusyTime.teacher_id, BusyTime.start, BusyTime.end, CalendarEvent.uid, BusyTime.unknown)
    .outerjoin(CalendarEvent, CalendarEvent.id == BusyTime.event_id)
    .outerjoin(Meeting, Meeting.uid == CalendarEvent.uid)
    .where(
        BusyTime.teacher_id.in_(bindparam("ids", expanding=True)),
        BusyTime.start < bindparam("end"),
        BusyTime.end > bindparam("start"),
        # An event we wrote for a meeting, where we wrote it, is the meeting itself.  If the
        # teacher dragged it elsewhere, its new time is busy like any other event (the
        # meeting still holds the old one until it is rescheduled).
        or_(
            Meeting.id.is_(None),
            BusyTime.start != Meeting.start,
            BusyTime.end != Meeting.end,
        ),
    )
)
#: The school events feeds (``blocks = "everyone"``) block every teacher.
_SCHOOL_BUSY = select(SchoolBusy.start, SchoolBusy.end).where(
    SchoolBusy.start < bindparam("end"), SchoolBusy.end > bindparam("start")
)
_SYNCED = select(Calendar.teacher_id).where(
    Calendar.teacher_id.in_(bindparam("ids", expanding=True)), Calendar.synced_at.is_not(None)
)
_ACTIVE_MEETINGS = select(
    Meeting.id, Meeting.teacher_id, Meeting.start, Meeting.end, Meeting.state
).where(
    Meeting.teacher_id.in_(bindparam("ids", expanding=True)),
    Meeting.state.in_([MeetingState.PROPOSED.value, MeetingState.CONFIRMED.value]),
    Meeting.start < bindparam("end"),
    Meeting.end > bindparam("start"),
)


@dataclass(frozen=True, slots=True)
class TimesRows:
    """What the store holds about some teachers' time in a period, as read: busy spans
    with the UID of the event they come from, teachers whose calendar was read, and active
    meetings with their id and state.  :func:`times_of` turns it into :class:`TeacherTimes`.
    ``unknown`` holds (teacher id, start, end) of the spans without data (also in ``busy``)."""

    busy: tuple[tuple[int, datetime, datetime, str | None], ...]
    synced: frozenset[int]
    meetings: tuple[tuple[int, int, datetime, datetime, str], ...]
    unknown: tuple[tuple[int, datetime, datetime], ...] = ()


def times_rows(session: Session, period: PeriodConfig, ids: Sequence[int]) -> TimesRows:
    """Read the rows behind :func:`teacher_times` (four indexed queries); the school
    events feeds' busy spans are every teacher's."""
    start, end = period_span(period)
    window = {"ids": list(ids), "start": start, "end": end}
    own: list[tuple[int, datetime, datetime, str | None]] = []
    unknown: list[tuple[int, datetime, datetime]] = []
    for teacher_id, b_start, b_end, uid, no_data in session.execute(_BUSY, window):
        own.append((teacher_id, b_start, b_end, uid))
        if no_data:
            unknown.append((teacher_id, b_start, b_end))
    school = session.execute(_SCHOOL_BUSY, {"start": start, "end": end}).all()
    own.extend((i, s, e, None) for s, e in school for i in ids)
    return TimesRows(
        busy=tuple(own),
        synced=frozenset(session.scalars(_SYNCED, {"ids": list(ids)})),
        meetings=tuple(tuple(row) for row in session.execute(_ACTIVE_MEETINGS, window)),  # type: ignore[misc]
        unknown=tuple(unknown),
    )


def times_of(
    rows: TimesRows,
    period: PeriodConfig,
    selected: Sequence[Teacher],
    *,
    own_meeting: tuple[int, str] | None = None,
    replaced: Collection[int] = (),
) -> list[TeacherTimes]:
    """Each teacher's busy times and held and booked meetings, from ``rows``.

    ``own_meeting``: (id, UID) of a meeting whose own time is asked about (a counter, a
    reschedule): it holds no slot against itself, and its event in the teacher's calendar,
    wherever the teacher put it, is not busy time for it.  ``replaced``: ids of proposals
    the booking asked about replaces, which hold no slot against it either.
    """
    start, end = period_span(period)
    own_id, own_uid = own_meeting if own_meeting else (None, None)
    busy: dict[int, list[Interval]] = defaultdict(list)
    held: dict[int, list[Interval]] = defaultdict(list)
    booked: dict[int, list[Interval]] = defaultdict(list)
    for teacher_id, b_start, b_end, uid in rows.busy:
        if own_uid is not None and uid == own_uid:
            continue
        busy[teacher_id].append(Interval(b_start, b_end))
    # A calendar never read successfully says nothing about the teacher: offering the whole
    # evening could book them over anything, so they count as busy until a sync succeeds.
    for teacher in selected:
        if teacher.id not in rows.synced:
            busy[teacher.id] = [Interval(start, end)]
    for meeting_id, teacher_id, m_start, m_end, state in rows.meetings:
        if meeting_id == own_id or meeting_id in replaced:
            continue
        target = booked if state == MeetingState.CONFIRMED else held
        target[teacher_id].append(Interval(m_start, m_end))
    unknown: dict[int, list[Interval]] = defaultdict(list)
    for teacher_id, u_start, u_end in rows.unknown:
        unknown[teacher_id].append(Interval(u_start, u_end))
    return [
        TeacherTimes(
            t,
            busy[t.id],
            held[t.id],
            booked[t.id],
            synced=t.id in rows.synced,
            unknown=unknown[t.id],
        )
        for t in selected
    ]


class _Span(NamedTuple):
    """A busy span as the slot engine reads it (start and end, UTC): cheaper than an
    :class:`Interval` for the hundreds a decision looks at."""

    start: datetime
    end: datetime


def free_of(
    rows: TimesRows,
    period: PeriodConfig,
    teacher_id: int,
    *,
    own_meeting: tuple[int, str] | None = None,
    replaced: Collection[int] = (),
) -> tuple[list[Interval], int]:
    """The teacher's free grid slots and how many active meetings they have — what
    :func:`times_of` and the slot engine give, made straight from ``rows`` for the one
    teacher a booking decision asks about (same rules, see :func:`times_of`)."""
    own_id, own_uid = own_meeting if own_meeting else (None, None)
    spans: list[_Span] = [
        _Span(b_start, b_end)
        for tid, b_start, b_end, uid in rows.busy
        if tid == teacher_id and not (own_uid is not None and uid == own_uid)
    ]
    if teacher_id not in rows.synced:
        spans.append(_Span(*period_span(period)))
    meetings = [
        _Span(m_start, m_end)
        for meeting_id, tid, m_start, m_end, _ in rows.meetings
        if tid == teacher_id and meeting_id != own_id and meeting_id not in replaced
    ]
    cells = engine.grid(period.windows, period.slot_minutes, period.buffer_minutes)
    return engine.free_slots(cells, [*spans, *meetings]), len(meetings)


def teacher_times(
    session: Session,
    period: PeriodConfig,
    selected: Sequence[Teacher],
    *,
    own_meeting: tuple[int, str] | None = None,
) -> list[TeacherTimes]:
    """Busy times (our own meeting events excluded) and active meetings of each teacher
    (see :func:`times_of` for ``own_meeting``)."""
    rows = times_rows(session, period, [t.id for t in selected])
    return times_of(rows, period, selected, own_meeting=own_meeting)


def period_slots(
    session: Session,
    config: Config,
    period: PeriodConfig,
    *,
    now: datetime,
    teacher_email: str | None = None,
) -> list[SlotRow]:
    """Every bookable slot of the period, ordered by teacher then time; none in the past."""
    tz = config.tz
    rows: list[SlotRow] = []
    for times in teacher_times(session, period, teachers(session, teacher_email)):
        free = engine.teacher_slots(
            period.windows,
            period.slot_minutes,
            period.buffer_minutes,
            times.busy,
            times.held + times.booked,
        )
        t = times.teacher
        rows += [
            SlotRow(t.email, t.key, t.name, period.id, s.start.astimezone(tz), s.end.astimezone(tz))
            for s in free
            if s.start >= now
        ]
    return rows


def period_matrix(
    session: Session, config: Config, period: PeriodConfig, *, teacher_email: str | None = None
) -> list[MatrixRow]:
    """One row per (grid slot, teacher): available, busy, held, booked, or not_synced
    for every slot of a teacher whose calendar was never read, and every slot that a span
    without free/busy data touches, that no meeting of ours holds (DESIGN §5, §7)."""
    tz = config.tz
    grid = engine.grid(period.windows, period.slot_minutes, period.buffer_minutes)
    rows: list[MatrixRow] = []
    for times in teacher_times(session, period, teachers(session, teacher_email)):
        t = times.teacher
        for slot, status in engine.matrix(grid, times.busy, times.held, times.booked):
            if status == SlotStatus.BUSY and (
                not times.synced or any(slot.overlaps(u) for u in times.unknown)
            ):
                status = SlotStatus.NOT_SYNCED
            start, end = slot.start.astimezone(tz), slot.end.astimezone(tz)
            rows.append(MatrixRow(start.date().isoformat(), start, end, t.email, t.name, status))
    # By the instant, not the wall clock: on the night clocks go back, 01:15 EST comes
    # after 01:45 EDT although it reads earlier.
    rows.sort(key=lambda r: (r.start.astimezone(UTC), r.teacher_name, r.teacher))
    return rows
