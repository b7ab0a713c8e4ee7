"""Meetings of people who left the roster (DESIGN §7 ``roster import --replace``,
``meetings --retired``, the staff digest).

A meeting is *retired* when its teacher, one of its guardians or one of its students was
retired by a ``roster import --replace`` (``retired_at`` set).  An open proposal of such a
meeting is withdrawn by the import; a confirmed one is kept, and staff see it here to
decide with the family (or the teacher's replacement) what happens to it.

Read model only: it writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import (
    Guardian,
    Meeting,
    MeetingGuardian,
    MeetingStudent,
    Student,
    Teacher,
)
from ptm_sync.core.model import MeetingState


class Who(StrEnum):
    """Who of a meeting left the roster (the teacher wins over the family: it decides
    what staff must do)."""

    TEACHER = "teacher"
    FAMILY = "family"


def retired_meetings(
    session: Session, states: Iterable[MeetingState] = (MeetingState.CONFIRMED,)
) -> dict[int, Who]:
    """Meeting id → who left the roster, for the meetings in ``states`` whose teacher, or
    one of whose guardians or students, is retired."""
    wanted = [s.value for s in states]
    found: dict[int, Who] = {}
    family = (
        select(Meeting.id)
        .join(MeetingGuardian, MeetingGuardian.meeting_id == Meeting.id)
        .join(Guardian, Guardian.id == MeetingGuardian.guardian_id)
        .where(Meeting.state.in_(wanted), Guardian.retired_at.is_not(None))
    ).union(
        select(Meeting.id)
        .join(MeetingStudent, MeetingStudent.meeting_id == Meeting.id)
        .join(Student, Student.id == MeetingStudent.student_id)
        .where(Meeting.state.in_(wanted), Student.retired_at.is_not(None))
    )
    for meeting_id in session.scalars(family):
        found[int(meeting_id)] = Who.FAMILY
    teacher = (
        select(Meeting.id)
        .join(Teacher, Teacher.id == Meeting.teacher_id)
        .where(Meeting.state.in_(wanted), Teacher.retired_at.is_not(None))
    )
    for meeting_id in session.scalars(teacher):
        found[int(meeting_id)] = Who.TEACHER
    return found
