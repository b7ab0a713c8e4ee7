"""The record the school keeps (DESIGN §1, §7 ``report``): meetings scheduled, held, moved
and missed per period and teacher, and the uptake — which households have booked.

A read model: it writes nothing.  SQL counts the meetings (a few GROUP BY queries over
``meetings`` and ``meeting_history``, whatever the number of meetings); the roster's links
and the booked meetings' parties are read once each and handed to the pure rules of
:mod:`ptm_sync.core.booking.record` (what a household is, when it has booked).

Only what the roster holds now makes a household: a retired guardian, student or teacher
(``retired_at`` set by ``roster import --replace``) stands for none.  Meetings count
whoever they were with: the record keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, distinct, func, or_, select
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import (
    Guardian,
    Link,
    Meeting,
    MeetingGuardian,
    MeetingHistory,
    MeetingStudent,
    Student,
    Teacher,
)
from ptm_sync.config.settings import Config, PeriodConfig
from ptm_sync.core.booking import record
from ptm_sync.core.booking.record import Counts, Household, Party, ReportRow, Tie, Unbooked
from ptm_sync.core.model import MeetingState

#: :func:`ptm_sync.core.booking.record.moved` in SQL: the history row moved its meeting.
MOVED_SQL: ColumnElement[bool] = and_(
    MeetingHistory.old_start.is_not(None),
    or_(MeetingHistory.new_start.is_(None), MeetingHistory.old_start != MeetingHistory.new_start),
)


def periods_of(config: Config, period_id: str | None) -> list[PeriodConfig]:
    """The period named ``period_id``, or every configured period when None.

    Raises:
        ConfigError: no such period (the message names the configured ones).
    """
    return [config.period(period_id)] if period_id is not None else list(config.periods)


def report(session: Session, periods: Sequence[PeriodConfig]) -> list[ReportRow]:
    """DESIGN §7 ``report``: per period, a row per teacher and the school's row (last)."""
    ids = [p.id for p in periods]
    by_state: dict[tuple[str, str], dict[MeetingState, int]] = {}
    for period_id, teacher, state, count in session.execute(
        select(Meeting.period_id, Teacher.email, Meeting.state, func.count())
        .join(Teacher, Teacher.id == Meeting.teacher_id)
        .where(Meeting.period_id.in_(ids))
        .group_by(Meeting.period_id, Teacher.email, Meeting.state)
    ):
        by_state.setdefault((period_id, teacher), {})[MeetingState(state)] = int(count)
    moved: dict[tuple[str, str], int] = {
        (period_id, teacher): int(count)
        for period_id, teacher, count in session.execute(
            select(
                Meeting.period_id, Teacher.email, func.count(distinct(MeetingHistory.meeting_id))
            )
            .join(Meeting, Meeting.id == MeetingHistory.meeting_id)
            .join(Teacher, Teacher.id == Meeting.teacher_id)
            .where(Meeting.period_id.in_(ids), MOVED_SQL)
            .group_by(Meeting.period_id, Teacher.email)
        )
    }
    ties = roster_ties(session)
    booked = booked_parties(session, ids)
    rows: list[ReportRow] = []
    for period in periods:
        counts = {
            teacher: Counts.of(states, moved.get((period.id, teacher), 0))
            for (pid, teacher), states in by_state.items()
            if pid == period.id
        }
        households = record.households(ties, period.meeting_mode)
        rows += record.report(period.id, counts, households, booked.get(period.id, ()))
    return rows


def unbooked(session: Session, periods: Sequence[PeriodConfig]) -> list[Unbooked]:
    """DESIGN §7 ``report --unbooked``: the households with no confirmed or completed
    meeting with a teacher they need, per period, by teacher."""
    ties = roster_ties(session)
    booked = booked_parties(session, [p.id for p in periods])
    found: list[Unbooked] = []
    for period in periods:
        households = record.households(ties, period.meeting_mode)
        found += record.unbooked(period.id, households, booked.get(period.id, ()))
    return found


def households_of(session: Session, period: PeriodConfig) -> dict[str, tuple[Household, ...]]:
    """Each teacher's households in ``period`` (by teacher email)."""
    return record.households(roster_ties(session), period.meeting_mode)


def roster_ties(session: Session) -> list[Tie]:
    """The roster's links whose guardian, student and teacher are all in the roster now."""
    return [
        Tie(teacher, student, guardian, mode or "")
        for teacher, student, guardian, mode in session.execute(
            select(Teacher.email, Student.student_id, Guardian.email, Student.meeting_mode)
            .select_from(Link)
            .join(Guardian, Guardian.id == Link.guardian_id)
            .join(Student, Student.id == Link.student_id)
            .join(Teacher, Teacher.id == Link.teacher_id)
            .where(
                Guardian.retired_at.is_(None),
                Student.retired_at.is_(None),
                Teacher.retired_at.is_(None),
            )
        )
    ]


def booked_parties(session: Session, period_ids: Sequence[str]) -> dict[str, list[Party]]:
    """The meetings of ``period_ids`` in a booked state (confirmed, completed) as parties,
    by period: one query, a row per meeting, student and guardian."""
    students: dict[int, set[str]] = {}
    guardians: dict[int, set[str]] = {}
    where: dict[int, tuple[str, str]] = {}
    for meeting_id, period_id, teacher, student, guardian in session.execute(
        select(Meeting.id, Meeting.period_id, Teacher.email, Student.student_id, Guardian.email)
        .join(Teacher, Teacher.id == Meeting.teacher_id)
        .join(MeetingStudent, MeetingStudent.meeting_id == Meeting.id)
        .join(Student, Student.id == MeetingStudent.student_id)
        .join(MeetingGuardian, MeetingGuardian.meeting_id == Meeting.id)
        .join(Guardian, Guardian.id == MeetingGuardian.guardian_id)
        .where(
            Meeting.period_id.in_(list(period_ids)),
            Meeting.state.in_([s.value for s in record.BOOKED]),
        )
    ):
        where[meeting_id] = (period_id, teacher)
        students.setdefault(meeting_id, set()).add(student)
        guardians.setdefault(meeting_id, set()).add(guardian)
    parties: dict[str, list[Party]] = {}
    for meeting_id, (period_id, teacher) in sorted(where.items()):
        parties.setdefault(period_id, []).append(
            Party(teacher, frozenset(students[meeting_id]), frozenset(guardians[meeting_id]))
        )
    return parties
