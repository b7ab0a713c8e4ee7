"""Applying a roster to the database: one transaction, idempotent, updates in place.

Every test runs on SQLite and on PostgreSQL (the ``db`` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from ptm_sync.adapters.store import (
    Database,
    Guardian,
    Link,
    Meeting,
    MeetingStudent,
    Student,
    Teacher,
)
from ptm_sync.app.roster_import import ImportReport, LinkTally, Tally, import_roster
from ptm_sync.core.errors import RosterError
from ptm_sync.core.roster.tables import OneRosterExport, SourceFile
from tests.support.factories import make_meeting, make_period

ACCOUNTS = ("district", "m365")

TEACHERS = """\
email,name,account,calendar,room
m.okafor@lincoln.example.org,Michael Okafor,district,/cal/okafor/,B-204
a.lindqvist@lincoln.example.org,Anna Lindqvist,district,/cal/lindqvist/,B-112
"""

FAMILIES = """\
student_id,student_name,guardian_email,guardian_name,teacher_email,language
S1,Emma Johnson,karen@example.com,Karen Johnson,m.okafor@lincoln.example.org,en
S1,Emma Johnson,mark@example.net,Mark Johnson,m.okafor@lincoln.example.org,
S2,Lucas Johnson,karen@example.com,Karen Johnson,a.lindqvist@lincoln.example.org,en
S3,Mia Park,jin@example.com,Jin Park,a.lindqvist@lincoln.example.org,ko
"""


def csv(name: str, text: str) -> SourceFile:
    return SourceFile(name, text.encode("utf-8"))


def run(db: Database, *files: tuple[str, str]) -> ImportReport:
    return import_roster(db, [csv(name, text) for name, text in files], ACCOUNTS)


def links(db: Database) -> set[tuple[str, str, str]]:
    with db.read() as s:
        rows = s.execute(
            select(Guardian.email, Student.student_id, Teacher.email)
            .join(Link, Link.guardian_id == Guardian.id)
            .join(Student, Link.student_id == Student.id)
            .join(Teacher, Link.teacher_id == Teacher.id)
        )
        return {(g, s_, t) for g, s_, t in rows}


def count(db: Database, table: type) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(table)) or 0


def test_first_import_adds_everyone_and_counts_them(db: Database) -> None:
    report = run(db, ("teachers.csv", TEACHERS), ("families.csv", FAMILIES))
    assert report == ImportReport(
        teachers=Tally(2, 2, 0),
        students=Tally(3, 3, 0),
        guardians=Tally(3, 3, 0),
        links=LinkTally(4, 4, 0),
    )
    assert report.lines() == [
        "teachers: 2 (2 added, 0 updated)",
        "students: 3 (3 added, 0 updated)",
        "guardians: 3 (3 added, 0 updated)",
        "links: 4 (4 added, 0 removed)",
    ]
    with db.read() as s:
        okafor = s.scalars(select(Teacher).where(Teacher.key == "m-okafor")).one()
        assert (okafor.email, okafor.account, okafor.calendar, okafor.room) == (
            "m.okafor@lincoln.example.org",
            "district",
            "/cal/okafor/",
            "B-204",
        )
        assert (
            s.scalars(select(Guardian.language).where(Guardian.email == "jin@example.com")).one()
            == "ko"
        )
    assert ("mark@example.net", "S1", "m.okafor@lincoln.example.org") in links(db)


def test_importing_the_same_files_twice_changes_nothing(db: Database) -> None:
    files = (("teachers.csv", TEACHERS), ("families.csv", FAMILIES))
    run(db, *files)
    before = links(db)
    again = run(db, *files)
    assert not again.changed
    assert again.lines() == [
        "teachers: 2 (0 added, 0 updated)",
        "students: 3 (0 added, 0 updated)",
        "guardians: 3 (0 added, 0 updated)",
        "links: 4 (0 added, 0 removed)",
    ]
    assert links(db) == before


def test_changed_teacher_is_updated_in_place_and_keeps_its_key(db: Database) -> None:
    run(db, ("teachers.csv", TEACHERS))
    changed = TEACHERS.replace(
        "Michael Okafor,district,/cal/okafor/,B-204", "Mike Okafor,m365,okafor@m365,C-1"
    )
    report = run(db, ("teachers.csv", changed.replace("m.okafor@", "M.OKAFOR@")))
    assert report.teachers == Tally(2, 0, 1)
    with db.read() as s:
        (teacher,) = s.scalars(
            select(Teacher).where(Teacher.email == "m.okafor@lincoln.example.org")
        )
        assert (teacher.key, teacher.name, teacher.account, teacher.calendar, teacher.room) == (
            "m-okafor",
            "Mike Okafor",
            "m365",
            "okafor@m365",
            "C-1",
        )
    assert count(db, Teacher) == 2


def test_colliding_teacher_keys_get_numeric_suffixes_that_never_change(db: Database) -> None:
    header = "email,name,account,calendar,room\n"
    run(db, ("t.csv", header + "ann.lee@north.example.org,Ann Lee,district,/n/,\n"))
    both = header + (
        "ann.lee@north.example.org,Ann Lee,district,/n/,\n"
        "ann.lee@south.example.org,Ann Lee,district,/s/,\n"
        "ann-lee@west.example.org,Ann Lee,district,/w/,\n"
    )
    run(db, ("t.csv", both))
    run(db, ("t.csv", both))
    with db.read() as s:
        keys = {e: k for e, k in s.execute(select(Teacher.email, Teacher.key))}
    assert keys == {
        "ann.lee@north.example.org": "ann-lee",
        # new teachers of one import take the free suffixes in the order of their emails
        "ann-lee@west.example.org": "ann-lee-2",
        "ann.lee@south.example.org": "ann-lee-3",
    }


def test_families_import_replaces_the_links_of_the_students_it_mentions(db: Database) -> None:
    run(db, ("teachers.csv", TEACHERS), ("families.csv", FAMILIES))
    # S1 now sees Lindqvist instead of Okafor, and only with Karen; S2 and S3 are not mentioned.
    update = (
        "student_id,student_name,guardian_email,guardian_name,teacher_email\n"
        "S1,Emma Johnson,karen@example.com,Karen Johnson,a.lindqvist@lincoln.example.org\n"
    )
    report = run(db, ("families.csv", update))
    assert report.links == LinkTally(1, 1, 2)
    assert report.students == Tally(1, 0, 0)
    assert links(db) == {
        ("karen@example.com", "S1", "a.lindqvist@lincoln.example.org"),
        ("karen@example.com", "S2", "a.lindqvist@lincoln.example.org"),
        ("jin@example.com", "S3", "a.lindqvist@lincoln.example.org"),
    }
    assert count(db, Guardian) == 3  # mark@example.net lost his link but is kept


def test_a_new_family_row_adds_a_link(db: Database) -> None:
    run(db, ("teachers.csv", TEACHERS), ("families.csv", FAMILIES))
    more = FAMILIES + "S3,Mia Park,jin@example.com,Jin Park,m.okafor@lincoln.example.org,ko\n"
    report = run(db, ("families.csv", more))
    assert report.links == LinkTally(5, 1, 0)
    assert (report.students.updated, report.guardians.updated) == (0, 0)


def test_removed_link_keeps_people_and_meetings_and_is_counted(db: Database) -> None:
    run(db, ("teachers.csv", TEACHERS), ("families.csv", FAMILIES))
    now = datetime(2027, 4, 10, 19, 0, tzinfo=UTC)
    with db.write() as s:
        teacher = s.scalars(select(Teacher).where(Teacher.key == "a-lindqvist")).one()
        guardian = s.scalars(select(Guardian).where(Guardian.email == "jin@example.com")).one()
        student = s.scalars(select(Student).where(Student.student_id == "S3")).one()
        make_period(s, "spring", title="Spring")
        meeting = make_meeting(
            s, teacher=teacher, guardian=guardian, start=now, state="confirmed", period_id="spring"
        )
        s.add(MeetingStudent(meeting_id=meeting.id, student_id=student.id))
    moved = FAMILIES.replace(
        "S3,Mia Park,jin@example.com,Jin Park,a.lindqvist",
        "S3,Mia Park,jin@example.com,Jin Park,m.okafor",
    )
    report = run(db, ("families.csv", moved))
    assert report.links == LinkTally(4, 1, 1)
    assert report.removed_with_meetings == 1
    people = (count(db, Teacher), count(db, Guardian), count(db, Student))
    assert people == (2, 3, 3)
    assert count(db, Meeting) == 1


def test_a_problem_in_any_file_writes_nothing(db: Database) -> None:
    bad = FAMILIES + "S4,Leo Diaz,leo@example.com,Ana Diaz,nobody@lincoln.example.org,es\n"
    with pytest.raises(RosterError) as caught:
        run(db, ("teachers.csv", TEACHERS), ("families.csv", bad))
    assert caught.value.problems == [
        "families.csv:6: teacher_email nobody@lincoln.example.org is not a teacher "
        "(neither in the teachers files given nor in the database)"
    ]
    assert count(db, Teacher) == count(db, Student) == count(db, Guardian) == count(db, Link) == 0


def test_family_rows_may_name_teachers_imported_earlier(db: Database) -> None:
    run(db, ("teachers.csv", TEACHERS))
    report = run(db, ("families.csv", FAMILIES))
    assert report.teachers == Tally(0, 0, 0)
    assert report.links == LinkTally(4, 4, 0)


def test_empty_language_keeps_the_stored_one_and_a_new_one_replaces_it(db: Database) -> None:
    run(db, ("teachers.csv", TEACHERS), ("families.csv", FAMILIES))
    report = run(db, ("families.csv", FAMILIES.replace(",ko\n", ",\n").replace(",en\n", ",es\n")))
    assert report.guardians == Tally(3, 0, 1)  # karen: en → es; jin keeps ko
    with db.read() as s:
        languages = {e: g for e, g in s.execute(select(Guardian.email, Guardian.language))}
    assert languages == {
        "karen@example.com": "es",
        "mark@example.net": "",
        "jin@example.com": "ko",
    }


def test_booking_address_is_kept_without_its_column_and_cleared_by_an_empty_cell(
    db: Database,
) -> None:
    with_booking = (
        TEACHERS.replace("room\n", "room,booking_address\n", 1)
        .replace("B-204\n", "B-204,book-okafor@lincoln.example.org\n")
        .replace("B-112\n", "B-112,\n")
    )
    run(db, ("teachers.csv", with_booking))
    assert run(db, ("teachers.csv", TEACHERS)).teachers.updated == 0
    cleared = with_booking.replace(",book-okafor@lincoln.example.org", ",")
    assert run(db, ("teachers.csv", cleared)).teachers.updated == 1
    with db.read() as s:
        assert set(s.scalars(select(Teacher.booking_address))) == {""}


def oneroster(teacher_email: str) -> OneRosterExport:
    tables = {
        "users.csv": "sourcedId,role,givenName,familyName,email,agentSourcedIds\n"
        f"t1,teacher,Michael,Okafor,{teacher_email},\n"
        "s1,student,Emma,Johnson,,p1\n"
        "p1,parent,Karen,Johnson,karen@example.com,\n",
        "classes.csv": "sourcedId,title\nc1,Biology\n",
        "enrollments.csv": "sourcedId,classSourcedId,userSourcedId,role\n"
        "e1,c1,t1,teacher\ne2,c1,s1,student\n",
    }
    return OneRosterExport(
        "sis", {name: SourceFile(f"sis/{name}", text.encode()) for name, text in tables.items()}
    )


def test_oneroster_import_keeps_the_stored_calendar_of_a_known_teacher(db: Database) -> None:
    run(db, ("teachers.csv", TEACHERS))
    report = import_roster(db, [oneroster("M.Okafor@lincoln.example.org")], ["district"])
    assert report.teachers == Tally(1, 0, 0)
    assert report.links == LinkTally(1, 1, 0)
    with db.read() as s:
        teacher = s.scalars(select(Teacher).where(Teacher.key == "m-okafor")).one()
        assert (teacher.account, teacher.calendar, teacher.room) == (
            "district",
            "/cal/okafor/",
            "B-204",
        )


def test_oneroster_import_gives_a_new_teacher_the_default_account(db: Database) -> None:
    import_roster(db, [oneroster("n.new@lincoln.example.org")], ["district"])
    with db.read() as s:
        teacher = s.scalars(select(Teacher)).one()
        assert (teacher.key, teacher.account, teacher.calendar) == (
            "n-new",
            "district",
            "n.new@lincoln.example.org",
        )
