"""``roster import --replace``: who is missing from the files leaves the roster (DESIGN §7).

The files are the whole roster of the kinds they hold (:attr:`Roster.kinds`): a teachers
file stands for every teacher, a families file (or a OneRoster export) for every guardian,
student and link.  Whoever of those kinds is missing from them is *retired*: ``retired_at``
is set, nobody is deleted (their meetings are the school's record), and a later import that
names them again brings them back (:mod:`ptm_sync.app.roster_import`).

A retired family's or teacher's open proposals are withdrawn through the booking core (the
:class:`~ptm_sync.core.booking.events.Retire` event, decided and written by the applier: a
CANCEL to the family); its confirmed meetings are kept, and listed for staff by ``meetings
--retired`` and the staff digest (:mod:`ptm_sync.app.read.retired`).  Families waiting for
a teacher who left, or who left themselves, no longer wait.

A truncated export must not empty a school: retiring more than half of the teachers, of
the families (the guardians) or of the students in the roster before the import needs
``force`` (a teachers file holding its header alone would otherwise retire every teacher).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import Guardian, Meeting, Student, Teacher, WaitlistEntry
from ptm_sync.app.booking.apply import Applier
from ptm_sync.app.read.retired import Who, retired_meetings
from ptm_sync.core.booking.decide import APPLIED
from ptm_sync.core.booking.events import Retire
from ptm_sync.core.errors import BookingRefused, UserError
from ptm_sync.core.model import MeetingState, WaitlistState
from ptm_sync.core.roster.parse import Roster

R = TypeVar("R", Teacher, Guardian, Student)

#: What the family is told when its teacher left the roster (its own leaving: the event's
#: default reason).
TEACHER_LEFT = "the teacher is no longer on the school's roster"


@dataclass(frozen=True, slots=True)
class Replace:
    """How ``roster import --replace`` runs: ``now`` (aware, UTC) is the time of the
    retirements; ``applier`` withdraws the open proposals (None: ``[mail]`` is not
    configured); ``force``: more than half of the teachers, families or students may be
    retired."""

    now: datetime
    applier: Applier | None = None
    force: bool = False


@dataclass(frozen=True, slots=True)
class Headcount:
    """Who is on the roster (not retired): how many teachers, guardians (the families)
    and students."""

    teachers: int = 0
    guardians: int = 0
    students: int = 0


@dataclass(frozen=True, slots=True)
class Retirement:
    """Who an import retired: teachers' and guardians' emails, student ids (never names);
    ``before``: who was on the roster before the import; ``withdrawn``: open proposals
    withdrawn; ``kept``: confirmed meetings of retired people (all of them, not only this
    import's)."""

    teachers: tuple[str, ...] = ()
    guardians: tuple[str, ...] = ()
    students: tuple[str, ...] = ()
    before: Headcount = Headcount()
    withdrawn: int = 0
    kept: int = 0

    @property
    def over_half(self) -> tuple[str, ...]:
        """For each kind of which more than half of those on the roster would leave it,
        what leaves, e.g. "6 of the 6 teachers in the roster (more than half of the
        teachers)"; empty when no kind would."""
        return tuple(
            f"{retired} of the {on_roster} {kind} in the roster (more than half of the {whole})"
            for retired, on_roster, kind, whole in (
                (len(self.teachers), self.before.teachers, "teachers", "teachers"),
                (len(self.guardians), self.before.guardians, "guardians", "families"),
                (len(self.students), self.before.students, "students", "students"),
            )
            if 2 * retired > on_roster
        )

    def lines(self, *, dry_run: bool = False) -> list[str]:
        """What the command prints: counts, then who, then the meetings."""
        would = "would be " if dry_run else ""
        counts = ", ".join(
            _count(len(people), kind)
            for kind, people in (
                ("teacher", self.teachers),
                ("guardian", self.guardians),
                ("student", self.students),
            )
        )
        out = [f"retired{' (would be)' if dry_run else ''}: {counts}"]
        out += [f"  teacher {email}" for email in self.teachers]
        out += [f"  guardian {email}" for email in self.guardians]
        out += [f"  student {sid}" for sid in self.students]
        if self.withdrawn:
            out.append(
                f"{_count(self.withdrawn, 'open proposal')} {would}withdrawn "
                "(a cancellation to each family)"
            )
        if self.kept:
            out.append(
                f"{_count(self.kept, 'confirmed meeting')} of people who left the roster "
                f"{'are' if self.kept != 1 else 'is'} kept: see `ptm-sync meetings --retired`"
            )
        return out


def headcount(session: Session) -> Headcount:
    """Who is on the roster now (not retired)."""

    def on_roster(table: type[R]) -> int:
        count = session.scalar(select(func.count(table.id)).where(table.retired_at.is_(None)))
        return int(count or 0)

    return Headcount(on_roster(Teacher), on_roster(Guardian), on_roster(Student))


def retire(
    session: Session,
    roster: Roster,
    replace: Replace,
    *,
    before: Headcount,
    dry_run: bool = False,
) -> Retirement:
    """Retire whoever of the kinds ``roster`` holds is missing from it, withdraw their open
    proposals (unless ``dry_run``: then only counted) and let their waiting go.

    Raises:
        UserError: more than half of the teachers, guardians or students on the roster
            ``before`` would be retired without ``replace.force`` (and not ``dry_run``);
            nothing is written then.
        BookingRefused: an open proposal must be withdrawn and ``[mail]`` is not
            configured.
    """
    now = replace.now
    teachers: list[str] = []
    guardians: list[str] = []
    students: list[str] = []
    if "teachers" in roster.kinds:
        present = {t.email for t in roster.teachers}
        for teacher in _active(session, Teacher):
            if teacher.email.lower() not in present:
                teacher.retired_at = now
                teachers.append(teacher.email)
    if "families" in roster.kinds:
        present = {g.email for g in roster.guardians}
        for guardian in _active(session, Guardian):
            if guardian.email.lower() not in present:
                guardian.retired_at = now
                guardians.append(guardian.email)
        present = {s.id for s in roster.students}
        for student in _active(session, Student):
            if student.student_id not in present:
                student.retired_at = now
                students.append(student.student_id)
    done = Retirement(
        tuple(sorted(teachers)), tuple(sorted(guardians)), tuple(sorted(students)), before
    )
    if done.over_half and not replace.force and not dry_run:
        raise UserError(
            f"this import retires {' and '.join(done.over_half)}: if the files are the whole "
            "roster, run it again with --force; nothing was changed"
        )
    session.flush()
    withdrawn = _withdraw(session, replace.applier, dry_run=dry_run)
    _stop_waiting(session)
    kept = len(retired_meetings(session, (MeetingState.CONFIRMED,)))
    return Retirement(done.teachers, done.guardians, done.students, before, withdrawn, kept)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def _active(session: Session, table: type[R]) -> list[R]:
    """The rows of ``table`` not retired, in the order they were added."""
    return list(session.scalars(select(table).where(table.retired_at.is_(None)).order_by(table.id)))


def _withdraw(session: Session, applier: Applier | None, *, dry_run: bool) -> int:
    """Withdraw (or, in a dry run, count) the open proposals of retired people."""
    proposals = retired_meetings(session, (MeetingState.PROPOSED,))
    if dry_run or not proposals:
        return len(proposals)
    if applier is None:
        raise BookingRefused(
            "[mail] is not configured: the open proposals of who leaves the roster cannot "
            "be withdrawn (the families must be told)"
        )
    withdrawn = 0
    for meeting_id, who in sorted(proposals.items()):
        meeting = session.get(Meeting, meeting_id, with_for_update=True)
        assert meeting is not None
        event = Retire(reason=TEACHER_LEFT) if who is Who.TEACHER else Retire()
        withdrawn += applier.handle(session, meeting, event).outcome == APPLIED
    return withdrawn


def _stop_waiting(session: Session) -> None:
    """Families who left, or who wait for a teacher who left, wait no more."""
    retired_guardians = select(Guardian.id).where(Guardian.retired_at.is_not(None))
    retired_teachers = select(Teacher.id).where(Teacher.retired_at.is_not(None))
    session.execute(
        update(WaitlistEntry)
        .where(
            WaitlistEntry.state == WaitlistState.WAITING,
            WaitlistEntry.guardian_id.in_(retired_guardians)
            | WaitlistEntry.teacher_id.in_(retired_teachers),
        )
        .values(state=WaitlistState.LEFT)
    )
