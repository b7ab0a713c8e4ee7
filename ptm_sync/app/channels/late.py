"""A teacher running late (DESIGN §3 "Running late"): the use case behind `late`.

In one write transaction: the teacher's confirmed meetings on that local day starting at or
after the given time, and not started yet (a meeting in progress or over is left alone, its
family not told), are loaded and locked, with what may stop them moving — their
families' other active meetings (any teacher) and the teacher's other active meetings and
holds that day; :func:`ptm_sync.core.booking.late.plan` decides the whole evening from the
last meeting backwards, and each meeting's
:class:`~ptm_sync.core.booking.events.RunningLate` event is then handed to the applier,
the LAST one first: the later meeting has left the time the earlier one moves into, so
neither the unique index on (teacher, start) nor PostgreSQL's exclusion constraint ever
sees two of the teacher's meetings overlap mid-way.  A late move is exempt from the grid
and may pass the window's end, never the day's end (the school's midnight); a meeting the
parent organizes (booking address) cannot move, and its family is told.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from ptm_sync.adapters.store import Database, Meeting, MeetingGuardian
from ptm_sync.adapters.video.providers import VideoProvider
from ptm_sync.app.booking.apply import Applier
from ptm_sync.app.channels.staff import teacher_by_email
from ptm_sync.config.settings import Config
from ptm_sync.core.booking import late
from ptm_sync.core.booking.decide import APPLIED
from ptm_sync.core.booking.events import RunningLate
from ptm_sync.core.booking.values import Decision, Origin, Rule
from ptm_sync.core.errors import BookingRefused, SlotTaken
from ptm_sync.core.model import ACTIVE_STATES, Interval, MeetingState

_ACTIVE = [s.value for s in ACTIVE_STATES]
_HELD = [MeetingState.CONFIRMED.value, MeetingState.COMPLETED.value, MeetingState.NO_SHOW.value]


@dataclass
class RanLate:
    """What `late` did: the decisions, in the meetings' time order (``late``: moved,
    ``late-told``: stayed, the family told), the meetings the core refused (id, why), and
    ``started``: how many meetings (confirmed, completed or missed) from the given time on
    had already started at ``now`` (in progress or over: left alone)."""

    decisions: list[Decision] = field(default_factory=list)
    left: list[tuple[int, str]] = field(default_factory=list)
    started: int = 0

    @property
    def moved(self) -> list[Decision]:
        return [d for d in self.decisions if d.rule == Rule.LATE]

    @property
    def told(self) -> list[Decision]:
        return [d for d in self.decisions if d.rule == Rule.LATE_TOLD]


def run_late(
    db: Database,
    config: Config,
    *,
    teacher: str,
    minutes: int,
    since: datetime,
    now: datetime,
    video: VideoProvider,
) -> RanLate:
    """``teacher`` runs ``minutes`` late from ``since`` (aware) on, that day (the school's
    local date of ``since``): their confirmed meetings from then on that have not started
    at ``now`` move by ``minutes`` where they can (REQUEST updates, the teacher's events
    follow; never past the day's end), the others stay and their families are told
    (DESIGN §3).  Meetings already started are left alone and only counted.

    Raises:
        NotFoundError: no such teacher.
        BookingRefused: ``minutes`` is not in 1..:data:`late.MAX_MINUTES`, or another
            meeting of the teacher took a time meanwhile (nothing was changed; run it
            again).
    """
    if minutes <= 0:
        raise BookingRefused(f"--minutes must be a positive number of minutes, not {minutes}")
    if minutes > late.MAX_MINUTES:
        raise BookingRefused(
            f"--minutes must be at most {late.MAX_MINUTES}, not {minutes}: a teacher that "
            "late should cancel the evening (cancel --teacher EMAIL --date DATE)"
        )
    tz = config.tz
    day = since.astimezone(tz).date()
    day_start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    day_end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    # No move passes the day's end: what can be in the way lies within the day.
    reach = Interval(day_start, day_end)
    since, now = since.astimezone(UTC), now.astimezone(UTC)
    applier = Applier(config, now=now, video=video)
    result = RanLate()
    try:
        with db.write() as session:
            the_teacher = teacher_by_email(session, teacher)
            if since < now:
                result.started = _started(session, the_teacher.id, since, min(now, day_end))
            rows = _late_meetings(session, the_teacher.id, max(since, now), day_end)
            if not rows:
                return result
            late_ids = {m.id for m in rows}
            occupied = _teacher_times(session, the_teacher.id, reach, late_ids)
            family = _family_times(session, rows, reach, late_ids)
            gap = max(config.period(m.period_id).gap_minutes for m in rows)
            planned = late.plan(
                [
                    late.LateMeeting(
                        id=m.id,
                        slot=Interval(m.start, m.end),
                        family=family.get(m.id, ()),
                        movable=m.origin != Origin.BOOKING_ADDRESS,
                    )
                    for m in rows
                ],
                minutes=minutes,
                gap_minutes=gap,
                day_end=day_end,
                occupied=occupied,
            )
            # The last meeting first: it leaves the time the one before it moves into.
            for meeting in reversed(rows):
                event = RunningLate(minutes=minutes, slot=planned[meeting.id])
                decision = applier.handle(session, meeting, event)
                if decision.outcome == APPLIED:
                    result.decisions.append(decision)
                else:
                    result.left.append((meeting.id, decision.reason))
    except SlotTaken:
        raise BookingRefused(
            "another meeting of the teacher took one of the new times meanwhile; nothing "
            "was changed: run `late` again"
        ) from None
    result.decisions.reverse()
    result.left.reverse()
    return result


def _late_meetings(
    session: Session, teacher_id: int, since: datetime, until: datetime
) -> list[Meeting]:
    """The teacher's confirmed meetings starting in [since, until), in time order, locked:
    an answer arriving meanwhile waits for this change (or was decided first)."""
    return list(
        session.scalars(
            select(Meeting)
            .where(
                Meeting.teacher_id == teacher_id,
                Meeting.state == MeetingState.CONFIRMED.value,
                Meeting.start >= since,
                Meeting.start < until,
            )
            .options(selectinload(Meeting.guardians))
            .order_by(Meeting.start, Meeting.id)
            .with_for_update(of=Meeting)
        )
    )


def _started(session: Session, teacher_id: int, since: datetime, now: datetime) -> int:
    """How many of the teacher's meetings held (confirmed, or completed or missed since)
    started in [since, now): in progress or over, they are no part of running late."""
    counted = session.scalar(
        select(func.count(Meeting.id)).where(
            Meeting.teacher_id == teacher_id,
            Meeting.state.in_(_HELD),
            Meeting.start >= since,
            Meeting.start < now,
        )
    )
    return int(counted or 0)


def _teacher_times(
    session: Session, teacher_id: int, reach: Interval, late_ids: Iterable[int]
) -> list[Interval]:
    """The teacher's other active meetings and holds (proposals) around that day (UTC)."""
    rows = session.execute(
        select(Meeting.start, Meeting.end).where(
            Meeting.teacher_id == teacher_id,
            Meeting.state.in_(_ACTIVE),
            Meeting.end > reach.start,
            Meeting.start < reach.end,
            Meeting.id.not_in(list(late_ids)),
        )
    )
    return [Interval(start, end).utc() for start, end in rows]


def _family_times(
    session: Session, rows: list[Meeting], reach: Interval, late_ids: Iterable[int]
) -> dict[int, tuple[Interval, ...]]:
    """Per late meeting, its guardians' other active meetings around that day (any
    teacher, UTC).  The teacher's own late meetings are left out: the plan places them."""
    guardians_of = {m.id: {link.guardian_id for link in m.guardians} for m in rows}
    everyone = sorted({g for gs in guardians_of.values() for g in gs})
    found = session.execute(
        select(MeetingGuardian.guardian_id, Meeting.id, Meeting.start, Meeting.end)
        .join(Meeting, Meeting.id == MeetingGuardian.meeting_id)
        .where(
            MeetingGuardian.guardian_id.in_(everyone),
            Meeting.state.in_(_ACTIVE),
            Meeting.end > reach.start,
            Meeting.start < reach.end,
            Meeting.id.not_in(list(late_ids)),
        )
    )
    by_guardian: dict[int, dict[int, Interval]] = {}
    for guardian_id, meeting_id, start, end in found:
        by_guardian.setdefault(guardian_id, {})[meeting_id] = Interval(start, end).utc()
    family: dict[int, tuple[Interval, ...]] = {}
    for meeting_id, guardians in guardians_of.items():
        theirs: dict[int, Interval] = {}
        for guardian_id in guardians:
            theirs.update(by_guardian.get(guardian_id, {}))
        family[meeting_id] = tuple(theirs[k] for k in sorted(theirs))
    return family
