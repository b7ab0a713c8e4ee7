"""`invite`: plan each family's itinerary and propose the meetings.

A family is every guardian and student joined by the roster's links (siblings, two
guardians of one child).  Each (student, teacher) link needs one meeting, to which every
guardian linked to that student and teacher is invited; the first of them (in the order of
the stored links) is the meeting's primary guardian.  Each guardian is told, in one
notification, about the meetings proposed for their children.  A need that ever had a
meeting in the period is never proposed again by `invite` — running it twice proposes
nothing twice, and a parent's "no" stays a no.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ptm_sync import slots as engine
from ptm_sync.availability import teacher_times, teachers
from ptm_sync.booking import Booking, require_open
from ptm_sync.config import Config, PeriodConfig
from ptm_sync.errors import SlotTaken
from ptm_sync.model import ACTIVE_STATES, Interval
from ptm_sync.planner import Need, Plan, Proposal, plan
from ptm_sync.store import Database, Guardian, Link, Meeting, MeetingStudent, Student, Teacher
from ptm_sync.video import VideoProvider

log = logging.getLogger(__name__)


@dataclass
class InviteResult:
    plan: Plan
    proposed: list[Meeting] = field(default_factory=list)
    lost_races: int = 0
    notified: int = 0


class _Families:
    """Union-find over guardians and students: who belongs to one family."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def join(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def needs(session: Session, period: PeriodConfig) -> tuple[list[Need], dict[str, list[Interval]]]:
    """What each family still needs in the period, and the meetings it already has."""
    links = session.execute(
        select(Link.id, Guardian.email, Student.student_id, Teacher.email)
        .join(Guardian, Guardian.id == Link.guardian_id)
        .join(Student, Student.id == Link.student_id)
        .join(Teacher, Teacher.id == Link.teacher_id)
        .order_by(Link.id)
    ).all()
    families = _Families()
    # Every guardian linked to the student and the teacher, in roster order.
    guardians: dict[tuple[str, str], list[str]] = defaultdict(list)
    for _, guardian, student, teacher in links:
        families.join(f"g:{guardian}", f"s:{student}")
        guardians[(teacher, student)].append(guardian)
    had = {
        (teacher, student)
        for teacher, student in session.execute(
            select(Teacher.email, Student.student_id)
            .join(Meeting, Meeting.teacher_id == Teacher.id)
            .join(MeetingStudent, MeetingStudent.meeting_id == Meeting.id)
            .join(Student, Student.id == MeetingStudent.student_id)
            .where(Meeting.period_id == period.id)
        )
    }
    result: list[Need] = []
    seen: set[tuple[str, str]] = set()
    for _, _, student, teacher in links:
        if (teacher, student) in had or (teacher, student) in seen:
            continue
        seen.add((teacher, student))
        family = families.find(f"s:{student}")
        primary, *others = guardians[(teacher, student)]
        result.append(Need(family, primary, teacher, (student,), tuple(others)))
    existing: dict[str, list[Interval]] = defaultdict(list)
    for guardian, start, end in session.execute(
        select(Guardian.email, Meeting.start, Meeting.end)
        .join(Meeting, Meeting.guardian_id == Guardian.id)
        .where(
            Meeting.period_id == period.id,
            Meeting.state.in_([s.value for s in ACTIVE_STATES]),
        )
    ):
        existing[families.find(f"g:{guardian}")].append(Interval(start, end))
    return result, dict(existing)


def make_plan(session: Session, config: Config, period: PeriodConfig, *, now: datetime) -> Plan:
    wanted, existing = needs(session, period)
    free: dict[str, list[Interval]] = {}
    for times in teacher_times(session, period, teachers(session)):
        slots = engine.teacher_slots(
            period.windows,
            period.slot_minutes,
            period.buffer_minutes,
            times.busy,
            times.held + times.booked,
        )
        free[times.teacher.email] = [s for s in slots if s.start >= now]
    return plan(
        wanted,
        free,
        period.windows,
        gap=timedelta(minutes=period.gap_minutes),
        existing=existing,
    )


def invite(
    db: Database,
    config: Config,
    period: PeriodConfig,
    *,
    now: datetime,
    video: VideoProvider,
    dry_run: bool = False,
) -> InviteResult:
    """Plan and (unless ``dry_run``) propose every meeting, one family per transaction.

    Raises:
        BookingRefused: the period's booking has closed.
    """
    require_open(period, now, config.tz)
    with db.read() as session:
        the_plan = make_plan(session, config, period, now=now)
    result = InviteResult(the_plan)
    if dry_run:
        return result
    booking = Booking(config, now=now, video=video)
    by_family: dict[str, list[Proposal]] = defaultdict(list)
    for proposal in the_plan.proposals:
        by_family[proposal.need.family].append(proposal)
    for family in sorted(by_family):
        with db.write() as session:
            # Each guardian of the family is told about the meetings of their children.
            made: dict[str, list[Meeting]] = defaultdict(list)
            people: dict[str, Guardian] = {}
            for proposal in by_family[family]:
                need = proposal.need
                teacher = session.scalars(
                    select(Teacher).where(Teacher.email == need.teacher)
                ).one()
                found = session.scalars(select(Guardian).where(Guardian.email.in_(need.guardians)))
                people.update((g.email, g) for g in found)
                invited = [people[email] for email in need.guardians]
                students = list(
                    session.scalars(select(Student).where(Student.student_id.in_(need.students)))
                )
                try:
                    with session.begin_nested():
                        meeting = booking.propose(
                            session,
                            period=period,
                            teacher=teacher,
                            guardian=invited[0],
                            guardians=invited,
                            students=students,
                            slot=proposal.slot,
                        )
                except SlotTaken:
                    # Someone booked that slot since we planned: the next run re-plans.
                    result.lost_races += 1
                    continue
                for guardian in invited:
                    made[guardian.email].append(meeting)
                result.proposed.append(meeting)
            for email, meetings in made.items():
                booking.notify_family(
                    session, period=period, guardian=people[email], meetings=meetings
                )
                result.notified += 1
    return result
