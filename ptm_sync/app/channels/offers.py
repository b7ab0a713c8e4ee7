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

from ptm_sync.adapters.store import (
    Database,
    Guardian,
    Link,
    Meeting,
    MeetingGuardian,
    MeetingStudent,
    Student,
    Teacher,
)
from ptm_sync.adapters.video.providers import VideoProvider
from ptm_sync.app.booking import load
from ptm_sync.app.booking.apply import Applier
from ptm_sync.app.read.availability import free_of, teachers, times_rows
from ptm_sync.config.settings import Config, PeriodConfig
from ptm_sync.core.booking.decide import APPLIED
from ptm_sync.core.booking.events import Offer
from ptm_sync.core.booking.values import MeetingView
from ptm_sync.core.errors import BookingRefused
from ptm_sync.core.model import ACTIVE_STATES, Interval
from ptm_sync.core.planner import Need, Plan, Proposal, plan

log = logging.getLogger(__name__)


@dataclass
class InviteResult:
    plan: Plan
    proposed: list[MeetingView] = field(default_factory=list)
    lost_races: int = 0
    notified: int = 0
    waitlisted: int = 0


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


def needs(
    session: Session, config: Config, period: PeriodConfig
) -> tuple[list[Need], dict[str, list[Interval]]]:
    """What each family still needs in the period, and the meetings it already has.

    Joint students (the default) need one meeting per teacher with every guardian invited;
    a ``separate`` student (roster ``meeting_mode``, or the period's default) needs one
    meeting per guardian and teacher.
    """
    links = session.execute(
        select(Guardian.email, Student.student_id, Teacher.email, Student.meeting_mode)
        .select_from(Link)
        .join(Guardian, Guardian.id == Link.guardian_id)
        .join(Student, Student.id == Link.student_id)
        .join(Teacher, Teacher.id == Link.teacher_id)
        # Who left the roster (`roster import --replace`) is invited no more.
        .where(
            Guardian.retired_at.is_(None),
            Student.retired_at.is_(None),
            Teacher.retired_at.is_(None),
        )
        .order_by(Link.id)
    ).all()
    families = _Families()
    # Every guardian linked to the student and the teacher, in roster order.
    guardians: dict[tuple[str, str], list[str]] = defaultdict(list)
    for guardian, student, teacher, _ in links:
        families.join(f"g:{guardian}", f"s:{student}")
        guardians[(teacher, student)].append(guardian)
    had = {
        (teacher, student, guardian)
        for teacher, student, guardian in session.execute(
            select(Teacher.email, Student.student_id, Guardian.email)
            .select_from(Teacher)
            .join(Meeting, Meeting.teacher_id == Teacher.id)
            .join(MeetingStudent, MeetingStudent.meeting_id == Meeting.id)
            .join(Student, Student.id == MeetingStudent.student_id)
            .join(MeetingGuardian, MeetingGuardian.meeting_id == Meeting.id)
            .join(Guardian, Guardian.id == MeetingGuardian.guardian_id)
            .where(Meeting.period_id == period.id)
        )
    }
    result: list[Need] = []
    seen: set[tuple[str, str, str]] = set()
    for guardian, student, teacher, mode in links:
        separate = (mode or period.meeting_mode) == "separate"
        invited = [guardian] if separate else guardians[(teacher, student)]
        key = (teacher, student, guardian if separate else "")
        if key in seen or any((teacher, student, g) in had for g in invited):
            continue
        seen.add(key)
        family = families.find(f"s:{student}")
        primary, *others = invited
        result.append(Need(family, primary, teacher, (student,), tuple(others)))
    existing: dict[str, list[Interval]] = defaultdict(list)
    for guardian, start, end in session.execute(
        select(Guardian.email, Meeting.start, Meeting.end)
        .select_from(Guardian)
        .join(MeetingGuardian, MeetingGuardian.guardian_id == Guardian.id)
        .join(Meeting, Meeting.id == MeetingGuardian.meeting_id)
        .where(
            Meeting.period_id == period.id,
            Meeting.state.in_([s.value for s in ACTIVE_STATES]),
        )
    ):
        existing[families.find(f"g:{guardian}")].append(Interval(start, end))
    return result, dict(existing)


def make_plan(session: Session, config: Config, period: PeriodConfig, *, now: datetime) -> Plan:
    wanted, existing = needs(session, config, period)
    everybody = teachers(session)
    # The free times of the admission rule (one source: load's free_of), for every teacher
    # at once: a teacher never synced has none.
    rows = times_rows(session, period, [t.id for t in everybody])
    free: dict[str, list[Interval]] = {}
    unsynced = {t.email for t in everybody if t.id not in rows.synced}
    for teacher in everybody:
        slots, _ = free_of(rows, period, teacher.id)
        free[teacher.email] = [s for s in slots if s.start >= now]
    return plan(
        wanted,
        free,
        period.windows,
        gap=timedelta(minutes=period.gap_minutes),
        existing=existing,
        unsynced=unsynced,
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

    A need the plan could not place puts the family on the teacher's waiting list.

    Raises:
        BookingRefused: the period's booking has closed.
    """
    closes = period.booking_closes
    if load.rules(config, period).closed(now):
        assert closes is not None
        raise BookingRefused(
            f"booking for {period.id} closed at {closes.astimezone(config.tz):%Y-%m-%d %H:%M}"
        )
    with db.read() as session:
        the_plan = make_plan(session, config, period, now=now)
    result = InviteResult(the_plan)
    if dry_run:
        return result
    applier = Applier(config, now=now, video=video, render=True)
    by_family: dict[str, list[Proposal]] = defaultdict(list)
    for proposal in the_plan.proposals:
        by_family[proposal.need.family].append(proposal)
    for family in sorted(by_family):
        with db.write() as session:
            _propose_family(session, applier, config, period, by_family[family], result)
    if the_plan.unplaced:
        with db.write() as session:
            for need, _ in the_plan.unplaced:
                result.waitlisted += applier.wait(session, period, *_people(session, need))
    return result


def _people(session: Session, need: Need) -> tuple[Teacher, list[Guardian], list[Student]]:
    teacher = session.scalars(select(Teacher).where(Teacher.email == need.teacher)).one()
    found = {
        g.email: g
        for g in session.scalars(select(Guardian).where(Guardian.email.in_(need.guardians)))
    }
    students = list(session.scalars(select(Student).where(Student.student_id.in_(need.students))))
    return teacher, [found[e] for e in need.guardians if e in found], students


def _propose_family(
    session: Session,
    applier: Applier,
    config: Config,
    period: PeriodConfig,
    proposals: list[Proposal],
    result: InviteResult,
) -> None:
    """Propose a family's meetings; each guardian is told about their children's."""
    made: dict[str, list[MeetingView]] = defaultdict(list)
    people: dict[str, Guardian] = {}
    for proposal in proposals:
        teacher, invited, students = _people(session, proposal.need)
        people.update((g.email, g) for g in invited)
        draft = load.draft(
            config,
            period,
            teacher,
            invited,
            students,
            proposal.slot,
            fresh=applier.fresh(session, period.id, teacher.account),
        )
        decision = applier.handle(session, draft, Offer(slot=proposal.slot))
        if decision.outcome != APPLIED or decision.after is None:
            # Someone took that slot since we planned (or a cap forbids it): the next run
            # re-plans.
            result.lost_races += 1
            continue
        for guardian in invited:
            made[guardian.email].append(decision.after)
        result.proposed.append(decision.after)
    for email, meetings in made.items():
        applier.notify_family(session, period=period, guardian=people[email], meetings=meetings)
        result.notified += 1
