"""Roster import, the database part: apply a validated :class:`~ptm_sync.core.roster.parse.Roster`.

Everything happens in ONE write transaction, so an import is all or nothing even when the
database refuses a row.  Applying the same roster twice changes nothing.

* Teachers, students and guardians are matched by email (lower case) or student id, added
  when new and updated in place when a field differs.  A None field of a
  :class:`~ptm_sync.core.roster.parse.RosterTeacher` and an empty guardian language keep what
  is stored.
* A new teacher gets the key :func:`~ptm_sync.core.model.teacher_key_for` derives from the email,
  with ``-2``, ``-3``… appended when another teacher holds it; a stored key never changes.
* The links of every student in the roster are replaced by the roster's links: new ones are
  added, those no longer listed removed (and counted; a removed link whose family still has an
  active meeting with that teacher is counted apart, since staff may want to cancel it).
* Nobody is ever deleted: a teacher, guardian or student missing from the files stays, with
  their meetings.  With ``replace`` (``roster import --replace``) the files are the whole
  roster of the kinds they hold: who of those kinds is missing is retired, every link not in
  them removed (:mod:`ptm_sync.app.roster_retire`); anyone retired who is in the files again
  is brought back, whether or not the import replaces.
* ``dry_run``: everything is worked out in the transaction, which is then rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ptm_sync.adapters.store import (
    Database,
    Guardian,
    Link,
    Meeting,
    MeetingStudent,
    Student,
    Teacher,
)
from ptm_sync.app.roster_retire import Replace, Retirement, headcount, retire
from ptm_sync.core.errors import RosterError
from ptm_sync.core.model import ACTIVE_STATES, teacher_key_for
from ptm_sync.core.roster.parse import Roster, RosterContext, RosterTeacher, parse_roster
from ptm_sync.core.roster.tables import Source

log = logging.getLogger(__name__)

_KEY_ROOM = 90  # teachers.key holds 100 characters; leave room for a "-NN" suffix
_CHUNK = 500  # ids per DELETE … IN (…), well under SQLite's limit on bound parameters


@dataclass(frozen=True, slots=True)
class Tally:
    """People of one kind in the import: how many, how many new, how many changed (one
    retired before and back on the roster is changed)."""

    total: int = 0
    added: int = 0
    updated: int = 0


@dataclass(frozen=True, slots=True)
class LinkTally:
    total: int = 0
    added: int = 0
    removed: int = 0


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did.  ``removed_with_meetings``: removed links with an active meeting;
    ``retired``: who a ``--replace`` import retired (None: it did not replace);
    ``dry_run``: nothing was written."""

    teachers: Tally
    students: Tally
    guardians: Tally
    links: LinkTally
    removed_with_meetings: int = 0
    notes: tuple[str, ...] = ()
    retired: Retirement | None = None
    dry_run: bool = False

    @property
    def changed(self) -> bool:
        people = (self.teachers, self.students, self.guardians)
        return any(t.added or t.updated for t in people) or bool(
            self.links.added or self.links.removed
        )

    def lines(self) -> list[str]:
        """The summary the command prints, one line per kind."""
        out = [
            f"{kind}: {t.total} ({t.added} added, {t.updated} updated)"
            for kind, t in (
                ("teachers", self.teachers),
                ("students", self.students),
                ("guardians", self.guardians),
            )
        ]
        out.append(
            f"links: {self.links.total} ({self.links.added} added, {self.links.removed} removed)"
        )
        if self.retired is not None:
            out += self.retired.lines(dry_run=self.dry_run)
        return out


def stored_teachers(db: Database) -> frozenset[str]:
    """The emails (lower case) of the teachers in the database."""
    with db.read() as session:
        return frozenset(e.lower() for e in session.scalars(select(Teacher.email)))


def import_roster(
    db: Database,
    sources: Sequence[Source],
    accounts: Iterable[str],
    *,
    replace: Replace | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Validate ``sources`` against the config's account ids and the database, then apply
    (additively, or replacing the kinds of roster the files hold: ``replace``).

    Raises:
        RosterError: every problem of every file; nothing was written.
        UserError: ``replace`` would retire more than half of the teachers, families or
            students without ``replace.force``; nothing was written.
    """
    context = RosterContext(tuple(accounts), stored_teachers(db), replace=replace is not None)
    return apply_roster(db, parse_roster(sources, context), replace=replace, dry_run=dry_run)


class _DryRun(Exception):
    """Rolls a dry run's transaction back, carrying what it would have done."""

    def __init__(self, report: ImportReport) -> None:
        self.report = report


def apply_roster(
    db: Database, roster: Roster, *, replace: Replace | None = None, dry_run: bool = False
) -> ImportReport:
    """Write ``roster`` in one transaction and say what changed (``dry_run``: what would
    change; nothing is written).

    Raises:
        RosterError: when the roster names a teacher the database does not have and the
            roster cannot create (no account), e.g. because one was deleted meanwhile.
        UserError: see :func:`import_roster`.
    """
    try:
        with db.write() as session:
            report = _apply(session, roster, replace, dry_run)
            if dry_run:
                raise _DryRun(report)
    except _DryRun as done:
        return done.report
    log.info("roster imported: %s", "; ".join(_counts(report)))
    return report


def _counts(report: ImportReport) -> list[str]:
    """The summary for the log: counts only, never who (emails name people)."""
    retired = report.retired
    return report.lines()[:4] + (
        [
            f"retired {len(retired.teachers)} teachers, {len(retired.guardians)} guardians, "
            f"{len(retired.students)} students; {retired.withdrawn} proposals withdrawn"
        ]
        if retired is not None
        else []
    )


def unique_key(email: str, taken: set[str]) -> str:
    """The teacher key for ``email``: the derived one, or the first free ``key-N``."""
    base = teacher_key_for(email)[:_KEY_ROOM].rstrip("-") or "teacher"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}-{n}", n + 1
    return key


def _assign(row: Any, **values: str | None) -> bool:
    """Set the given values that are not None, and bring back a retired person (in the
    files again); True when anything changed."""
    changed = row.retired_at is not None
    row.retired_at = None
    for name, value in values.items():
        if value is not None and getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _apply(
    session: Session, roster: Roster, replace: Replace | None, dry_run: bool
) -> ImportReport:
    before = headcount(session)
    teachers, teacher_tally = _teachers(session, roster.teachers)
    students = {s.student_id: s for s in session.scalars(select(Student))}
    added = updated = 0
    for rs in roster.students:
        student = students.get(rs.id)
        if student is None:
            students[rs.id] = student = Student(
                student_id=rs.id, name=rs.name, meeting_mode=rs.meeting_mode
            )
            session.add(student)
            added += 1
        else:
            updated += _assign(student, name=rs.name, meeting_mode=rs.meeting_mode or None)
    student_tally = Tally(len(roster.students), added, updated)
    guardians = {g.email.lower(): g for g in session.scalars(select(Guardian))}
    added = updated = 0
    for rg in roster.guardians:
        guardian = guardians.get(rg.email)
        if guardian is None:
            guardians[rg.email] = guardian = Guardian(
                email=rg.email, name=rg.name, language=rg.language
            )
            session.add(guardian)
            added += 1
        else:
            updated += _assign(guardian, name=rg.name, language=rg.language or None)
    guardian_tally = Tally(len(roster.guardians), added, updated)
    session.flush()  # ids for the links

    missing = sorted({link.teacher for link in roster.links} - teachers.keys())
    if missing:
        raise RosterError([f"teacher {email} is not in the database" for email in missing])
    wanted = {
        (guardians[link.guardian].id, students[link.student].id, teachers[link.teacher].id)
        for link in roster.links
    }
    scope = {students[s.id].id for s in roster.students} | {s for _, s, _ in wanted}
    existing = {
        (k.guardian_id, k.student_id, k.teacher_id): k.id for k in session.scalars(select(Link))
    }
    new = wanted - existing.keys()
    session.add_all(Link(guardian_id=g, student_id=s, teacher_id=t) for g, s, t in sorted(new))
    # Replacing the families: the files hold every link there is.
    everyone = replace is not None and "families" in roster.kinds
    gone = {t for t in existing if (everyone or t[1] in scope) and t not in wanted}
    ids = sorted(existing[triple] for triple in gone)
    for start in range(0, len(ids), _CHUNK):
        session.execute(delete(Link).where(Link.id.in_(ids[start : start + _CHUNK])))
    retired = None
    if replace is not None:
        retired = retire(session, roster, replace, before=before, dry_run=dry_run)
    return ImportReport(
        teachers=teacher_tally,
        students=student_tally,
        guardians=guardian_tally,
        links=LinkTally(len(wanted), len(new), len(gone)),
        removed_with_meetings=_with_active_meetings(session, gone),
        notes=roster.notes,
        retired=retired,
        dry_run=dry_run,
    )


def _teachers(
    session: Session, wanted: Sequence[RosterTeacher]
) -> tuple[dict[str, Teacher], Tally]:
    teachers = {t.email.lower(): t for t in session.scalars(select(Teacher))}
    keys = {t.key for t in teachers.values()}
    added = updated = 0
    problems: list[str] = []
    for rt in wanted:
        teacher = teachers.get(rt.email)
        if teacher is not None:
            updated += _assign(
                teacher,
                name=rt.name,
                account=rt.account,
                calendar=rt.calendar,
                room=rt.room,
                booking_address=rt.booking_address,
            )
            if rt.source and teacher.source != rt.source:
                teacher.source = rt.source  # where the row is now: not a change to count
            continue
        if rt.account is None or rt.calendar is None:
            problems.append(f"teacher {rt.email} is not in the database and has no account")
            continue
        key = unique_key(rt.email, keys)
        keys.add(key)
        teachers[rt.email] = teacher = Teacher(
            email=rt.email,
            name=rt.name,
            key=key,
            account=rt.account,
            calendar=rt.calendar,
            room=rt.room or "",
            booking_address=rt.booking_address or "",
            source=rt.source,
        )
        session.add(teacher)
        added += 1
    if problems:
        raise RosterError(problems)
    return teachers, Tally(len(wanted), added, updated)


def _with_active_meetings(session: Session, gone: set[tuple[int, int, int]]) -> int:
    """How many removed (guardian, student, teacher) links still have an active meeting."""
    if not gone:
        return 0
    active = session.execute(
        select(Meeting.guardian_id, MeetingStudent.student_id, Meeting.teacher_id)
        .join(MeetingStudent, MeetingStudent.meeting_id == Meeting.id)
        .where(Meeting.state.in_([s.value for s in ACTIVE_STATES]))
    )
    return len(gone & {(g, s, t) for g, s, t in active})
