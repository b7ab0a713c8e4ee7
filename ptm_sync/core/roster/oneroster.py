"""OneRoster 1.1 CSV exports → roster entries (pure; see :mod:`ptm_sync.core.roster.parse`).

An export is a folder or a .zip holding ``users.csv``, ``enrollments.csv`` and
``classes.csv``; ``manifest.csv`` is checked when present, and the other tables
(``orgs.csv``, ``demographics.csv``, ``academicSessions.csv``…) are ignored.  Columns are
those of the OneRoster 1.1 CSV binding: list fields such as ``agentSourcedIds`` hold
comma-separated sourcedIds inside one quoted cell.

The mapping:

* Rows with ``status`` ``tobedeleted`` and users with ``enabledUser`` ``false`` are
  skipped, and so is every enrollment that points at a skipped user or class.
* **Teachers** are users with ``role`` ``teacher`` that have at least one enrollment with
  ``role`` ``teacher``; they need an email.  OneRoster does not know their calendars: a
  teachers.csv given in the same import supplies ``account``, ``calendar`` and ``room`` for
  the same emails (and wins over the export).  A teacher already in the database keeps
  what is stored.  Any other teacher gets the default account — the only ``[[accounts]]``
  entry of the config (with several, the import reports it) — and the teacher's email as
  calendar, which is the calendar id on Google and the mailbox on Graph and EWS.
* **Students** are the users with ``role`` ``student``; the student id is the sourcedId.
* **Guardians** are the users with ``role`` ``parent``, ``guardian`` or ``relative`` linked
  to a student through ``agentSourcedIds`` — on either side: a student lists its guardians
  or a guardian lists its students.  A guardian without an email is skipped with a note;
  guardians sharing one email address are one guardian, named as the first of them.
* **Links**: a guardian of a student enrolled (``role`` ``student``) in a class sees each
  teacher enrolled in that class with ``role`` ``teacher``.
* A ``manifest.csv`` that marks users, enrollments or classes as ``delta`` is refused: the
  import replaces the links of the students it describes and needs a bulk export.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ptm_sync.core.roster.tables import (
    ID_LIMIT,
    NAME_LIMIT,
    Entries,
    GuardianEntry,
    LinkEntry,
    OneRosterExport,
    Problems,
    Row,
    StudentEntry,
    Table,
    TeacherEntry,
    Where,
    is_email,
    normal_email,
    read_table,
)

REQUIRED_FILES = ("users.csv", "enrollments.csv", "classes.csv")
GUARDIAN_ROLES = frozenset({"parent", "guardian", "relative"})
# Header names are compared in lower case (roster_input.read_table).
_COLUMNS = {
    "users.csv": ("sourcedid", "role", "givenname", "familyname", "email"),
    "enrollments.csv": ("classsourcedid", "usersourcedid", "role"),
    "classes.csv": ("sourcedid",),
}


@dataclass(frozen=True, slots=True)
class _User:
    where: Where
    id: str
    role: str
    name: str
    email: str
    agents: tuple[str, ...]
    active: bool


def read_export(export: OneRosterExport, entries: Entries, problems: Problems) -> None:
    """Read one export into ``entries``; every problem goes to ``problems``.  An export is
    the roster of both kinds (teachers, families)."""
    entries.kinds |= {"teachers", "families"}
    tables: dict[str, Table] = {}
    for name in REQUIRED_FILES:
        if name not in export.files:
            problems.add(Where(export.name), f"no {name} in this OneRoster export")
    for name in ("manifest.csv", *REQUIRED_FILES):
        source = export.files.get(name)
        table = read_table(source, problems) if source else None
        if table is None:
            continue
        missing = table.missing(_COLUMNS.get(name, ()))
        for column in missing:
            problems.add(Where(table.file, 1), f"missing column {column}")
        if not missing:
            tables[name] = table
    if "manifest.csv" in tables:
        _check_manifest(tables["manifest.csv"], problems)
    if not all(name in tables for name in REQUIRED_FILES):
        return
    users = _users(tables["users.csv"], problems)
    classes = _classes(tables["classes.csv"], problems)
    teaching, learning = _enrollments(tables["enrollments.csv"], users, classes, problems)
    teachers = _teachers(users, teaching, entries, problems)
    students = _students(users, entries, problems)
    guardians_of = _guardians(users, students, entries, problems)
    for student in students:
        for class_id in learning.get(student, ()):
            for teacher in teaching.get(class_id, ()):
                if teacher not in teachers:
                    continue
                for guardian in guardians_of.get(student, ()):
                    entries.links.append(
                        LinkEntry(users[student].where, guardian, student, teachers[teacher])
                    )


def _deleted(row: Row) -> bool:
    return row.get("status").lower() == "tobedeleted"


def _ids(cell: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in cell.split(",") if part.strip())


def _check_manifest(table: Table, problems: Problems) -> None:
    if table.missing(("propertyname", "value")):
        return
    bulk_only = ("file.users", "file.enrollments", "file.classes")
    for row in table.rows:
        prop = row.get("propertyname")
        if prop.lower() in bulk_only and row.get("value").lower() == "delta":
            problems.add(row.where, f"{prop} is a delta export: export it in bulk mode")


def _first_seen(row: Row, key: str, seen: dict[str, Where], problems: Problems) -> bool:
    """Record ``key``; a repeated sourcedId is a problem and the row is skipped."""
    if key in seen:
        problems.add(row.where, f"sourcedId {key} appears again (first at line {seen[key].line})")
        return False
    seen[key] = row.where
    return True


def _users(table: Table, problems: Problems) -> dict[str, _User]:
    users: dict[str, _User] = {}
    seen: dict[str, Where] = {}
    for row in table.rows:
        sid = row.get("sourcedid")
        if not sid:
            problems.add(row.where, "empty sourcedId")
            continue
        if not _first_seen(row, sid, seen, problems):
            continue
        name = " ".join(p for p in (row.get("givenname"), row.get("familyname")) if p)
        users[sid] = _User(
            where=row.where,
            id=sid,
            role=row.get("role").lower(),
            name=name,
            email=normal_email(row.get("email")),
            agents=_ids(row.get("agentsourcedids")),
            active=not _deleted(row) and row.get("enableduser").lower() != "false",
        )
    return users


def _classes(table: Table, problems: Problems) -> dict[str, bool]:
    """Every class by sourcedId: True when active."""
    classes: dict[str, bool] = {}
    seen: dict[str, Where] = {}
    for row in table.rows:
        sid = row.get("sourcedid")
        if not sid:
            problems.add(row.where, "empty sourcedId")
        elif _first_seen(row, sid, seen, problems):
            classes[sid] = not _deleted(row)
    return classes


def _enrollments(
    table: Table, users: dict[str, _User], classes: dict[str, bool], problems: Problems
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Teachers by class and classes by student, from the active enrollments."""
    teaching: dict[str, list[str]] = defaultdict(list)
    learning: dict[str, list[str]] = defaultdict(list)
    for row in table.rows:
        if _deleted(row):
            continue
        class_id, user_id = row.get("classsourcedid"), row.get("usersourcedid")
        role = row.get("role").lower()
        for column, value in (("classSourcedId", class_id), ("userSourcedId", user_id)):
            if not value:
                problems.add(row.where, f"empty {column}")
        if not (class_id and user_id):
            continue
        if user_id not in users:
            problems.add(row.where, f"userSourcedId {user_id} is not in users.csv")
        if class_id not in classes:
            problems.add(row.where, f"classSourcedId {class_id} is not in classes.csv")
        if user_id not in users or class_id not in classes:
            continue
        if not (users[user_id].active and classes[class_id]):
            continue
        if role == "teacher":
            teaching[class_id].append(user_id)
        elif role == "student":
            learning[user_id].append(class_id)
    return teaching, learning


def _teachers(
    users: dict[str, _User],
    teaching: dict[str, list[str]],
    entries: Entries,
    problems: Problems,
) -> dict[str, str]:
    """The teachers' emails by sourcedId; their entries go to ``entries``."""
    ids = {u for members in teaching.values() for u in members if users[u].role == "teacher"}
    emails: dict[str, str] = {}
    for user in sorted((users[u] for u in ids), key=lambda u: u.where.line):
        if not _named(user, "teacher", problems):
            continue
        if not user.email:
            problems.add(user.where, f"teacher {user.id} has class enrollments but no email")
        elif not is_email(user.email):
            problems.add(user.where, f"email: not an email address: {user.email!r}")
        else:
            emails[user.id] = user.email
            entries.teachers.append(
                TeacherEntry(user.where, user.email, user.name, None, None, None, None, "oneroster")
            )
    return emails


def _named(user: _User, what: str, problems: Problems) -> bool:
    """True when the user's name (and a student's id) can be stored."""
    if not user.name:
        problems.add(user.where, f"{what} {user.id} has an empty givenName and familyName")
        return False
    if len(user.name) > NAME_LIMIT:
        problems.add(user.where, f"{what} {user.id}: name longer than {NAME_LIMIT} characters")
        return False
    if what == "student" and len(user.id) > ID_LIMIT:
        problems.add(user.where, f"sourcedId longer than {ID_LIMIT} characters")
        return False
    return True


def _students(users: dict[str, _User], entries: Entries, problems: Problems) -> list[str]:
    found: list[str] = []
    for user in users.values():
        if user.active and user.role == "student" and _named(user, "student", problems):
            found.append(user.id)
            entries.students.append(StudentEntry(user.where, user.id, user.name))
    return found


def _guardians(
    users: dict[str, _User], students: list[str], entries: Entries, problems: Problems
) -> dict[str, list[str]]:
    """The guardians' emails of each student; their entries go to ``entries``."""
    student_set = set(students)

    def is_guardian(uid: str) -> bool:
        user = users.get(uid)
        return user is not None and user.active and user.role in GUARDIAN_ROLES

    pairs: set[tuple[str, str]] = set()  # (guardian sourcedId, student sourcedId)
    for uid, user in users.items():
        if uid in student_set:
            pairs.update((agent, uid) for agent in user.agents if is_guardian(agent))
        elif is_guardian(uid):
            pairs.update((uid, agent) for agent in user.agents if agent in student_set)
    emails: dict[str, str] = {}
    by_email: set[str] = set()
    for user in sorted((users[g] for g in {g for g, _ in pairs}), key=lambda u: u.where.line):
        if not user.email:
            entries.notes.append(f"{user.where}: guardian {user.id} has no email: skipped")
        elif not is_email(user.email):
            problems.add(user.where, f"email: not an email address: {user.email!r}")
        elif _named(user, "guardian", problems):
            emails[user.id] = user.email
            if user.email not in by_email:  # one guardian per address; the first names it
                by_email.add(user.email)
                entries.guardians.append(GuardianEntry(user.where, user.email, user.name, ""))
    guardians_of: dict[str, list[str]] = defaultdict(list)
    for guardian, student in sorted(pairs):
        if guardian in emails and emails[guardian] not in guardians_of[student]:
            guardians_of[student].append(emails[guardian])
    return guardians_of
