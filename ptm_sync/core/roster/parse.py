"""Roster import, the pure part: files in, a validated :class:`Roster` out (DESIGN §8).

Nothing here touches the database; what the database already knows comes in as a
:class:`RosterContext`.  :func:`parse_roster` validates every row of every file first and
raises :class:`~ptm_sync.core.errors.RosterError` with one ``file:line: reason`` per problem (the
header is line 1), so that an import is all or nothing.

Formats — the kind of a CSV file is told by its headers, never by its name; UTF-8 with or
without a byte order mark; header names are matched without regard to case; columns we do
not know are ignored:

* **teachers**: ``email,name,account,calendar,room`` and optionally ``booking_address``.
  ``account`` is the id of an ``[[accounts]]`` entry of the config; ``calendar`` the
  teacher's calendar within it; ``room`` may be empty.  Without a ``booking_address``
  column a stored booking address is kept; an empty cell clears it.
* **families**: ``student_id,student_name,guardian_email,guardian_name,teacher_email`` and
  optionally ``language`` and ``meeting_mode`` (``joint`` | ``separate``: whether the
  student's guardians meet a teacher together or each on their own; empty follows the
  period's ``meeting_mode``) — one row per student, guardian and teacher.  Every
  ``teacher_email`` must be a teacher of the files given or of the database.
* **OneRoster 1.1 CSV** (a folder or a .zip): see :mod:`ptm_sync.core.roster.oneroster`.

Merging: the same teacher in several teachers rows must have the same data; a student id
keeps one name and at most one meeting mode; a guardian email one name and at most one
language.  Emails are compared
case-insensitively and kept lower-cased.

Links: the families rows (and OneRoster enrollments) are the whole truth about the students
they mention: the import replaces the set of links of every student it describes, adding
new ones and removing those that are no longer listed.  It never deletes a teacher, a
guardian or a student.  :attr:`Roster.kinds` says which kinds of roster the files held,
for ``roster import --replace`` (the application retires who of those kinds is missing).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TypeVar

from ptm_sync.core.model import MEETING_MODES
from ptm_sync.core.roster import oneroster
from ptm_sync.core.roster.tables import (
    ID_LIMIT,
    NAME_LIMIT,
    Entries,
    GuardianEntry,
    LinkEntry,
    OneRosterExport,
    Problems,
    Row,
    Source,
    SourceFile,
    StudentEntry,
    Table,
    TeacherEntry,
    Where,
    is_email,
    normal_email,
    read_sources,
    read_table,
)

__all__ = [
    "FAMILY_COLUMNS",
    "TEACHER_COLUMNS",
    "Roster",
    "RosterContext",
    "RosterGuardian",
    "RosterLink",
    "RosterStudent",
    "RosterTeacher",
    "load_roster",
    "parse_roster",
    "read_sources",
]

TEACHER_COLUMNS = ("email", "name", "account", "calendar", "room")
FAMILY_COLUMNS = ("student_id", "student_name", "guardian_email", "guardian_name", "teacher_email")
_KINDS = {"teachers": TEACHER_COLUMNS, "families": FAMILY_COLUMNS}
#: Columns a file of each kind must have; ``room`` may be left out (DESIGN §8).
_REQUIRED = {"teachers": TEACHER_COLUMNS[:4], "families": FAMILY_COLUMNS}
#: Column sizes of store/tables.py (emails are checked by is_email).
_LIMITS = {
    "name": NAME_LIMIT,
    "account": 64,
    "room": 100,
    "student_id": ID_LIMIT,
    "student_name": NAME_LIMIT,
    "guardian_name": NAME_LIMIT,
    "language": 35,
    "meeting_mode": 10,
}
_LANGUAGE = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*")  # a BCP 47 tag, loosely


@dataclass(frozen=True, slots=True)
class RosterContext:
    """What the parser needs to know beyond the files.

    ``accounts``: the ids of the config's ``[[accounts]]``.  ``known_teachers``: the
    (lower-cased) emails of the teachers already in the database.
    """

    accounts: tuple[str, ...] = ()
    known_teachers: frozenset[str] = frozenset()
    #: ``roster import --replace``: a teachers file given is the whole list of teachers, so
    #: a family row may name only a teacher of the files (one missing from them is retired).
    replace: bool = False


@dataclass(frozen=True, slots=True)
class RosterTeacher:
    """A teacher to add or update.  A None field keeps the stored value."""

    email: str
    name: str
    account: str | None
    calendar: str | None
    room: str | None
    booking_address: str | None
    #: Where the teacher's row was read (``teachers.csv:3``), for messages naming it.
    source: str = ""


@dataclass(frozen=True, slots=True)
class RosterStudent:
    id: str
    name: str
    meeting_mode: str = ""  # joint | separate; "" keeps the stored mode (or the period's)


@dataclass(frozen=True, slots=True)
class RosterGuardian:
    email: str
    name: str
    language: str = ""  # "" keeps the stored language


@dataclass(frozen=True, slots=True, order=True)
class RosterLink:
    guardian: str
    student: str
    teacher: str


@dataclass(frozen=True, slots=True)
class Roster:
    """A validated roster.  ``links`` replace the links of every student in ``students``.

    ``kinds``: the kinds of roster the files held (``teachers``, ``families``): with
    ``roster import --replace``, who of such a kind is missing from the files is retired.
    """

    teachers: tuple[RosterTeacher, ...] = ()
    students: tuple[RosterStudent, ...] = ()
    guardians: tuple[RosterGuardian, ...] = ()
    links: tuple[RosterLink, ...] = ()
    notes: tuple[str, ...] = ()
    kinds: frozenset[str] = frozenset()


def load_roster(paths: Sequence[str | Path], context: RosterContext) -> Roster:
    """Read the named files and parse them; raises RosterError naming every problem."""
    return parse_roster(read_sources(paths), context)


def parse_roster(sources: Sequence[Source], context: RosterContext) -> Roster:
    """Validate every row of every source and merge them into one :class:`Roster`.

    Raises:
        RosterError: with every problem as ``file:line: reason``; nothing is returned then.
    """
    problems = Problems()
    entries = Entries()
    for source in sources:
        if isinstance(source, OneRosterExport):
            oneroster.read_export(source, entries, problems)
        else:
            _read_csv(source, context, entries, problems)
    roster = _merge(entries, context, problems)
    problems.raise_if_any()
    return roster


# --- teachers and families CSV --------------------------------------------------------


def kind_of(columns: Iterable[str]) -> str | None:
    """``teachers``, ``families``, ``oneroster`` or None, told by the header alone.

    A file is of the kind whose required columns it shares most (at least three of five),
    so that a teachers file missing a column is still reported as such.
    """
    given = set(columns)
    if "sourcedid" in given:
        return "oneroster"
    scores = {kind: len(given & set(required)) for kind, required in _KINDS.items()}
    best = max(scores.values())
    winners = [kind for kind, score in scores.items() if score == best]
    return winners[0] if best >= 3 and len(winners) == 1 else None


def _read_csv(
    source: SourceFile, context: RosterContext, entries: Entries, problems: Problems
) -> None:
    table = read_table(source, problems)
    if table is None:
        return
    kind = kind_of(table.columns)
    header = Where(table.file, 1)
    if kind is None:
        problems.add(
            header,
            "the headers match no roster file: expected teachers ("
            + ",".join(TEACHER_COLUMNS)
            + ") or families ("
            + ",".join(FAMILY_COLUMNS)
            + ")",
        )
        return
    if kind == "oneroster":
        problems.add(
            header,
            "a OneRoster table: give the folder or .zip that holds users.csv, "
            "enrollments.csv and classes.csv",
        )
        return
    missing = table.missing(_REQUIRED[kind])
    for column in missing:
        problems.add(header, f"missing column {column}")
    if missing:
        return
    entries.kinds.add(kind)
    if kind == "teachers":
        _read_teachers(table, context, entries, problems)
    else:
        _read_families(table, entries, problems)


def _required(row: Row, column: str, problems: Problems) -> str:
    value = _value(row, column, problems)
    if not value:
        problems.add(row.where, f"empty {column}")
    return value


def _value(row: Row, column: str, problems: Problems) -> str:
    value = row.get(column)
    limit = _LIMITS.get(column)
    if limit and len(value) > limit:
        problems.add(row.where, f"{column}: longer than {limit} characters")
    return value


def _email(row: Row, column: str, problems: Problems, *, required: bool = True) -> str:
    value = normal_email(row.get(column))
    if not value:
        if required:
            problems.add(row.where, f"empty {column}")
    elif not is_email(value):
        problems.add(row.where, f"{column}: not an email address: {row.get(column)!r}")
        return ""
    return value


def _read_teachers(
    table: Table, context: RosterContext, entries: Entries, problems: Problems
) -> None:
    has_booking = "booking_address" in table.columns
    has_room = "room" in table.columns  # without the column: the stored room is kept
    for row in table.rows:
        email = _email(row, "email", problems)
        name = _required(row, "name", problems)
        account = _required(row, "account", problems)
        calendar = _required(row, "calendar", problems)
        booking = _email(row, "booking_address", problems, required=False)
        if account and account not in context.accounts:
            known = ", ".join(context.accounts) or "none configured"
            problems.add(row.where, f"unknown account {account!r} ([[accounts]] ids: {known})")
            account = ""
        if not (email and name and account and calendar):
            entries.faulty_teachers.add(email)
        else:
            entries.teachers.append(
                TeacherEntry(
                    row.where,
                    email,
                    name,
                    account,
                    calendar,
                    _value(row, "room", problems) if has_room else None,
                    booking if has_booking else None,
                    "csv",
                )
            )


def _read_families(table: Table, entries: Entries, problems: Problems) -> None:
    for row in table.rows:
        student_id = _required(row, "student_id", problems)
        student_name = _required(row, "student_name", problems)
        guardian = _email(row, "guardian_email", problems)
        guardian_name = _required(row, "guardian_name", problems)
        teacher = _email(row, "teacher_email", problems)
        language = _value(row, "language", problems)
        if language and not _LANGUAGE.fullmatch(language):
            problems.add(row.where, f"language: not a language tag like en or pt-BR: {language!r}")
        mode = (_value(row, "meeting_mode", problems) or "").lower()
        if mode and mode not in MEETING_MODES:
            problems.add(row.where, f"meeting_mode: must be joint or separate, not {mode!r}")
            mode = ""
        if student_id and student_name:
            entries.students.append(StudentEntry(row.where, student_id, student_name, mode))
        if guardian and guardian_name:
            entries.guardians.append(GuardianEntry(row.where, guardian, guardian_name, language))
        if student_id and guardian and teacher:
            entries.links.append(LinkEntry(row.where, guardian, student_id, teacher))


# --- merging and cross-checks ---------------------------------------------------------

E = TypeVar("E", TeacherEntry, StudentEntry, GuardianEntry)


def _unique(
    found: Iterable[E],
    key: Callable[[E], str],
    differences: Callable[[E, E], list[str]],
    describe: Callable[[str], str],
    problems: Problems,
) -> dict[str, E]:
    """The first entry per key; a later entry that differs is a problem at its line."""
    first: dict[str, E] = {}
    for entry in found:
        seen = first.setdefault(key(entry), entry)
        if seen is entry:
            continue
        differ = differences(seen, entry)
        if differ:
            problems.add(
                entry.where,
                f"{describe(key(entry))} has a different {', '.join(differ)} than at {seen.where}",
            )
    return first


def _teacher_differences(a: TeacherEntry, b: TeacherEntry) -> list[str]:
    skip = {"where", "origin", "email"}
    return [
        f.name
        for f in fields(TeacherEntry)
        if f.name not in skip
        and getattr(a, f.name) is not None
        and getattr(b, f.name) is not None
        and getattr(a, f.name) != getattr(b, f.name)
    ]


def _student_differences(a: StudentEntry, b: StudentEntry) -> list[str]:
    differ = ["name"] if a.name != b.name else []
    if a.meeting_mode and b.meeting_mode and a.meeting_mode != b.meeting_mode:
        differ.append("meeting_mode")
    return differ


def _guardian_differences(a: GuardianEntry, b: GuardianEntry) -> list[str]:
    differ = ["name"] if a.name != b.name else []
    if a.language and b.language and a.language != b.language:
        differ.append("language")
    return differ


def _merge(entries: Entries, context: RosterContext, problems: Problems) -> Roster:
    csv_teachers = _unique(
        (t for t in entries.teachers if t.origin == "csv"),
        lambda t: t.email,
        _teacher_differences,
        lambda email: f"teacher {email}",
        problems,
    )
    or_teachers = _unique(
        (t for t in entries.teachers if t.origin != "csv"),
        lambda t: t.email,
        _teacher_differences,
        lambda email: f"teacher {email}",
        problems,
    )
    teachers: dict[str, RosterTeacher] = {}
    for email, entry in or_teachers.items():
        if email not in csv_teachers:
            teachers[email] = _oneroster_teacher(entry, context, problems)
    for email, entry in csv_teachers.items():
        # A teachers.csv row given with a OneRoster export completes and overrides it.
        teachers[email] = RosterTeacher(
            email,
            entry.name,
            entry.account,
            entry.calendar,
            entry.room,
            entry.booking_address,
            source=str(entry.where),
        )
    students = _unique(
        entries.students,
        lambda s: s.id,
        _student_differences,
        lambda sid: f"student {sid}",
        problems,
    )
    modes: dict[str, str] = {}
    for student in entries.students:
        if student.meeting_mode:
            modes.setdefault(student.id, student.meeting_mode)
    guardians = _unique(
        entries.guardians,
        lambda g: g.email,
        _guardian_differences,
        lambda email: f"guardian {email}",
        problems,
    )
    languages: dict[str, str] = {}
    for guardian in entries.guardians:
        if guardian.language:
            languages.setdefault(guardian.email, guardian.language)
    links: set[RosterLink] = set()
    # Replacing the teachers: the files are the whole list, the database's others retire.
    whole_list = context.replace and "teachers" in entries.kinds
    for link in entries.links:
        if link.teacher in entries.faulty_teachers:
            continue
        if whole_list and link.teacher not in teachers:
            problems.add(
                link.where,
                f"teacher_email {link.teacher} is not in the teachers files given "
                "(with --replace they are the whole list of teachers)",
            )
            continue
        if link.teacher not in teachers and link.teacher not in context.known_teachers:
            problems.add(
                link.where,
                f"teacher_email {link.teacher} is not a teacher "
                "(neither in the teachers files given nor in the database)",
            )
            continue
        links.add(RosterLink(link.guardian, link.student, link.teacher))
    return Roster(
        teachers=tuple(teachers[e] for e in sorted(teachers)),
        students=tuple(
            RosterStudent(s.id, s.name, modes.get(s.id, "")) for _, s in sorted(students.items())
        ),
        guardians=tuple(
            RosterGuardian(g.email, g.name, languages.get(g.email, ""))
            for _, g in sorted(guardians.items())
        ),
        links=tuple(sorted(links)),
        notes=tuple(entries.notes),
        kinds=frozenset(entries.kinds),
    )


def _oneroster_teacher(
    entry: TeacherEntry, context: RosterContext, problems: Problems
) -> RosterTeacher:
    """A OneRoster teacher has no calendar account; keep the stored one or use the default.

    The default is the only ``[[accounts]]`` entry, with the teacher's email as calendar;
    a teachers.csv row for the same email, given in the same import, overrides this.
    """
    if entry.email in context.known_teachers:
        return RosterTeacher(entry.email, entry.name, None, None, None, None)
    if len(context.accounts) != 1:
        problems.add(
            entry.where,
            f"teacher {entry.email} has no calendar account: give a teachers.csv row for "
            "this email with the OneRoster export, or configure exactly one [[accounts]]",
        )
    account = context.accounts[0] if context.accounts else ""
    return RosterTeacher(entry.email, entry.name, account, entry.email, "", None)
