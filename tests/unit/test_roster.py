"""Roster parsing: CSV and OneRoster files in, a validated roster or every problem out."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ptm_sync.core.errors import RosterError
from ptm_sync.core.roster.parse import (
    Roster,
    RosterContext,
    RosterGuardian,
    RosterLink,
    RosterStudent,
    RosterTeacher,
    kind_of,
    load_roster,
    parse_roster,
)
from ptm_sync.core.roster.tables import OneRosterExport, Source, SourceFile, read_sources

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"

TEACHERS = """\
email,name,account,calendar,room
m.okafor@lincoln.example.org,Michael Okafor,district,/cal/okafor/,B-204
a.lindqvist@lincoln.example.org,Anna Lindqvist,district,/cal/lindqvist/,
"""

FAMILIES = """\
student_id,student_name,guardian_email,guardian_name,teacher_email
S1,Emma Johnson,karen@example.com,Karen Johnson,m.okafor@lincoln.example.org
S1,Emma Johnson,karen@example.com,Karen Johnson,a.lindqvist@lincoln.example.org
S2,Lucas Johnson,karen@example.com,Karen Johnson,a.lindqvist@lincoln.example.org
"""

CONTEXT = RosterContext(accounts=("district",))


def csv(name: str, text: str) -> SourceFile:
    return SourceFile(name, text.encode("utf-8"))


def parse(*sources: Source, context: RosterContext = CONTEXT) -> Roster:
    return parse_roster(list(sources), context)


def problems(*sources: Source, context: RosterContext = CONTEXT) -> list[str]:
    with pytest.raises(RosterError) as caught:
        parse_roster(list(sources), context)
    return caught.value.problems


# --- teachers and families ------------------------------------------------------------


def test_teachers_and_families_are_told_apart_by_headers_not_by_file_names() -> None:
    roster = parse(csv("teachers.csv", FAMILIES), csv("families.csv", TEACHERS))
    assert [t.email for t in roster.teachers] == [
        "a.lindqvist@lincoln.example.org",
        "m.okafor@lincoln.example.org",
    ]
    assert roster.students == (
        RosterStudent("S1", "Emma Johnson"),
        RosterStudent("S2", "Lucas Johnson"),
    )
    assert roster.guardians == (RosterGuardian("karen@example.com", "Karen Johnson"),)
    assert RosterLink("karen@example.com", "S2", "a.lindqvist@lincoln.example.org") in roster.links
    assert len(roster.links) == 3


def test_teacher_row_becomes_a_teacher_with_every_field() -> None:
    roster = parse(csv("t.csv", TEACHERS))
    assert roster.teachers[1] == RosterTeacher(
        email="m.okafor@lincoln.example.org",
        name="Michael Okafor",
        account="district",
        calendar="/cal/okafor/",
        room="B-204",
        booking_address=None,  # no column: keep what is stored
        source="t.csv:2",  # the row's file and line (the header is line 1)
    )
    assert roster.teachers[0].room == ""


def test_header_case_column_order_and_unknown_columns_do_not_matter() -> None:
    text = (
        "Room,NAME,Calendar,Email,Account,Phone\n"
        "B-1,Ann Lee,/cal/ann/,ann@school.test,district,555\n"
    )
    (teacher,) = parse(csv("t.csv", text)).teachers
    assert (teacher.email, teacher.name, teacher.room) == ("ann@school.test", "Ann Lee", "B-1")


def test_utf8_byte_order_mark_is_accepted() -> None:
    source = SourceFile("t.csv", b"\xef\xbb\xbf" + TEACHERS.encode("utf-8"))
    assert len(parse(source).teachers) == 2


def test_emails_are_stripped_and_lower_cased() -> None:
    text = "email,name,account,calendar,room\n  Ann.Lee@School.TEST ,Ann Lee,district,/c/,\n"
    families = (
        "student_id,student_name,guardian_email,guardian_name,teacher_email\n"
        "S1,Kid,Parent@Example.COM,Pat,ANN.LEE@school.test\n"
    )
    roster = parse(csv("t.csv", text), csv("f.csv", families))
    assert roster.teachers[0].email == "ann.lee@school.test"
    assert roster.links == (RosterLink("parent@example.com", "S1", "ann.lee@school.test"),)


def test_booking_address_column_is_optional_and_an_empty_cell_clears_it() -> None:
    text = (
        "email,name,account,calendar,room,booking_address\n"
        "a@school.test,A,district,/a/,,Book-A@School.test\n"
        "b@school.test,B,district,/b/,,\n"
    )
    a, b = parse(csv("t.csv", text)).teachers
    assert (a.booking_address, b.booking_address) == ("book-a@school.test", "")


def test_guardian_language_is_optional() -> None:
    text = FAMILIES.replace("teacher_email\n", "teacher_email,language\n", 1)
    text = text.replace("lincoln.example.org\n", "lincoln.example.org,pt-BR\n", 1)
    roster = parse(csv("t.csv", TEACHERS), csv("f.csv", text))
    assert roster.guardians[0].language == "pt-BR"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (",Ann,district,/c/,", "t.csv:2: empty email"),
        ("ann@school.test,,district,/c/,", "t.csv:2: empty name"),
        ("ann@school.test,Ann,,/c/,", "t.csv:2: empty account"),
        ("ann@school.test,Ann,district,,", "t.csv:2: empty calendar"),
        (
            "Ann at school,Ann,district,/c/,",
            "t.csv:2: email: not an email address: 'Ann at school'",
        ),
        ("ann@school,Ann,district,/c/,", "t.csv:2: email: not an email address: 'ann@school'"),
        (
            "ann@school.test,Ann,elsewhere,/c/,",
            "t.csv:2: unknown account 'elsewhere' ([[accounts]] ids: district)",
        ),
        ("ann@school.test,Ann,district,/c/,,extra", "t.csv:2: 6 fields, but the header has 5"),
        (f"ann@school.test,{'A' * 201},district,/c/,", "t.csv:2: name: longer than 200 characters"),
        (
            f"ann@school.test,Ann,district,/c/,{'9' * 101}",
            "t.csv:2: room: longer than 100 characters",
        ),
        (
            f"{'a' * 250}@school.test,Ann,district,/c/,",
            f"t.csv:2: email: not an email address: '{'a' * 250}@school.test'",
        ),
    ],
)
def test_bad_teacher_row_is_reported_with_file_and_line(row: str, reason: str) -> None:
    assert problems(csv("t.csv", f"email,name,account,calendar,room\n{row}\n")) == [reason]


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (",Kid,p@x.org,Pat,t@school.test", "f.csv:2: empty student_id"),
        ("S1,,p@x.org,Pat,t@school.test", "f.csv:2: empty student_name"),
        ("S1,Kid,,Pat,t@school.test", "f.csv:2: empty guardian_email"),
        ("S1,Kid,p@x.org,,t@school.test", "f.csv:2: empty guardian_name"),
        ("S1,Kid,p@x.org,Pat,", "f.csv:2: empty teacher_email"),
        (
            "S1,Kid,p.x.org,Pat,t@school.test",
            "f.csv:2: guardian_email: not an email address: 'p.x.org'",
        ),
        (
            "S1,Kid,p@x.org,Pat,t@school.test,english please",
            "f.csv:2: language: not a language tag like en or pt-BR: 'english please'",
        ),
    ],
)
def test_bad_family_row_is_reported_with_file_and_line(row: str, reason: str) -> None:
    header = "student_id,student_name,guardian_email,guardian_name,teacher_email,language\n"
    context = RosterContext(("district",), frozenset({"t@school.test"}))
    assert problems(csv("f.csv", header + row + "\n"), context=context) == [reason]


def test_every_bad_row_of_every_file_is_reported_at_its_physical_line() -> None:
    teachers = (
        "email,name,account,calendar,room\n"
        '"a@school.test","Ann\nLee",district,/a/,\n'  # a quoted field spanning lines 2-3
        "\n"  # a blank line 4 is skipped
        "b@school.test,,district,/b/,\n"
    )
    families = (
        "student_id,student_name,guardian_email,guardian_name,teacher_email\nS1,Kid,bad,Pat,\n"
    )
    assert problems(csv("t.csv", teachers), csv("f.csv", families)) == [
        "t.csv:5: empty name",
        "f.csv:2: guardian_email: not an email address: 'bad'",
        "f.csv:2: empty teacher_email",
    ]


def test_missing_column_is_reported_on_line_1() -> None:
    """``room`` is optional (DESIGN §8: it may be left out): only calendar is missing."""
    assert problems(csv("t.csv", "email,name,account\nann@school.test,Ann,district\n")) == [
        "t.csv:1: missing column calendar",
    ]


def test_file_whose_headers_match_no_kind_is_reported() -> None:
    (reason,) = problems(csv("phones.csv", "name,phone\nAnn,555\n"))
    assert reason.startswith("phones.csv:1: the headers match no roster file")


def test_empty_file_is_reported() -> None:
    assert problems(csv("t.csv", "")) == ["t.csv:1: empty file: expected a header row"]


def test_bytes_that_are_not_utf8_are_reported_at_their_line() -> None:
    data = b"email,name,account,calendar,room\nann@school.test,Ann,district,/c/,\n"
    data += "bo@school.test,Bo Ström,district,/c/,\n".encode("latin-1")
    assert problems(SourceFile("t.csv", data)) == [
        "t.csv:3: not UTF-8 (byte 0xf6 at column 22); save the file as UTF-8"
    ]


def test_same_teacher_twice_with_the_same_data_is_one_teacher() -> None:
    again = TEACHERS.replace("m.okafor@", "M.Okafor@")
    roster = parse(csv("t.csv", TEACHERS), csv("more.csv", again))
    assert len(roster.teachers) == 2


def test_same_teacher_twice_with_conflicting_data_is_reported() -> None:
    other = TEACHERS.replace("/cal/okafor/,B-204", "/x/,B-9").replace("m.okafor", "M.Okafor")
    assert problems(csv("t.csv", TEACHERS), csv("t2.csv", other)) == [
        "t2.csv:2: teacher m.okafor@lincoln.example.org "
        "has a different calendar, room than at t.csv:2"
    ]


def test_student_id_with_two_names_is_reported_without_naming_either() -> None:
    text = (
        FAMILIES + "S2,Luke Johnson,karen@example.com,Karen Johnson,m.okafor@lincoln.example.org\n"
    )
    reasons = problems(csv("t.csv", TEACHERS), csv("f.csv", text))
    assert reasons == ["f.csv:5: student S2 has a different name than at f.csv:4"]
    assert not any(name in reasons[0] for name in ("Luke", "Lucas", "Johnson"))


def test_guardian_email_with_two_names_or_languages_is_reported() -> None:
    text = (
        "student_id,student_name,guardian_email,guardian_name,teacher_email,language\n"
        "S1,Kid,p@x.org,Pat Doe,a.lindqvist@lincoln.example.org,en\n"
        "S2,Kid Two,p@x.org,Pat Doe,a.lindqvist@lincoln.example.org,\n"  # no language: fine
        "S3,Kid Three,P@x.org,Sam Doe,a.lindqvist@lincoln.example.org,es\n"
    )
    assert problems(csv("t.csv", TEACHERS), csv("f.csv", text)) == [
        "f.csv:4: guardian p@x.org has a different name, language than at f.csv:2"
    ]


def test_family_row_naming_someone_who_is_not_a_teacher_is_reported() -> None:
    text = FAMILIES + "S3,Mia Park,jin@example.com,Jin Park,nobody@lincoln.example.org\n"
    assert problems(csv("t.csv", TEACHERS), csv("f.csv", text)) == [
        "f.csv:5: teacher_email nobody@lincoln.example.org is not a teacher "
        "(neither in the teachers files given nor in the database)"
    ]


def test_family_row_naming_a_teacher_whose_row_is_bad_adds_no_second_problem() -> None:
    teachers = TEACHERS.replace(
        "a.lindqvist@lincoln.example.org,Anna Lindqvist,district",
        "a.lindqvist@lincoln.example.org,Anna Lindqvist,nowhere",
    )
    assert problems(csv("t.csv", teachers), csv("f.csv", FAMILIES)) == [
        "t.csv:3: unknown account 'nowhere' ([[accounts]] ids: district)"
    ]


def test_family_rows_may_name_teachers_already_in_the_database() -> None:
    known = frozenset({"m.okafor@lincoln.example.org", "a.lindqvist@lincoln.example.org"})
    roster = parse(csv("f.csv", FAMILIES), context=RosterContext(("district",), known))
    assert roster.teachers == ()
    assert len(roster.links) == 3


def test_a_loose_oneroster_table_asks_for_the_whole_export() -> None:
    (reason,) = problems(csv("users.csv", "sourcedId,role,givenName,familyName,email\n"))
    assert reason.startswith("users.csv:1: a OneRoster table: give the folder or .zip")


def test_example_rosters_in_config_are_valid() -> None:
    roster = load_roster(
        [EXAMPLES / "teachers.csv", EXAMPLES / "families.csv"], RosterContext(("district",))
    )
    assert len(roster.teachers) == 6 and len(roster.students) >= 5 and roster.links


def test_unreadable_paths_are_all_reported(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(RosterError) as caught:
        read_sources([tmp_path / "nope.csv", tmp_path / "empty"])
    assert caught.value.problems == [
        f"{tmp_path / 'nope.csv'}: no such file or folder",
        f"{tmp_path / 'empty'}: a folder without users.csv: not a OneRoster 1.1 CSV export",
    ]


def test_kind_needs_three_of_the_five_columns_of_a_kind() -> None:
    assert kind_of(["email", "name", "room"]) == "teachers"
    assert kind_of(["student_id", "guardian_email", "teacher_email"]) == "families"
    assert kind_of(["email", "name"]) is None


# --- OneRoster 1.1 CSV ----------------------------------------------------------------

USERS_HEADER = (
    "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,"
    "givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password"
)


def user(
    sid: str,
    role: str,
    given: str,
    family: str,
    email: str = "",
    agents: str = "",
    status: str = "",
    enabled: str = "true",
) -> str:
    return f'{sid},{status},,{enabled},sch1,{role},{sid},,{given},{family},,,{email},,,"{agents}",,'


USERS = [
    user("t1", "teacher", "Michael", "Okafor", "M.Okafor@lincoln.example.org"),
    user("t2", "teacher", "Anna", "Lindqvist", "a.lindqvist@lincoln.example.org"),
    user("t3", "teacher", "Nora", "Idle", "n.idle@lincoln.example.org"),  # teaches no class
    user("s1", "student", "Emma", "Johnson", agents="p1,p2"),  # student names its guardians
    user("s2", "student", "Lucas", "Johnson"),  # p1 names this student instead
    user("s3", "student", "Off", "Line", agents="p1", enabled="false"),
    user("s4", "student", "Gone", "Away", agents="p1", status="tobedeleted"),
    user("p1", "parent", "Karen", "Johnson", "karen@example.com", agents="s1,s2"),
    user("p2", "guardian", "Mark", "Johnson"),  # no email
    user("p3", "relative", "Old", "Aunt", "aunt@example.com", agents="s1", status="tobedeleted"),
]
CLASSES = [
    "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,"
    "location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods",
    "c1,,,Biology 9A,09,k1,BIO9A,scheduled,B-204,sch1,term1,,,1",
    "c2,,,Algebra 9,09,k2,ALG9,scheduled,B-112,sch1,term1,,,2",
    "c3,tobedeleted,,Old class,09,k3,OLD,scheduled,,sch1,term1,,,3",
]
ENROLLMENTS = [
    "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,"
    "primary,beginDate,endDate",
    "e1,,,c1,sch1,t1,teacher,true,,",
    "e2,,,c1,sch1,s1,student,false,,",
    "e3,,,c2,sch1,t2,teacher,true,,",
    "e4,,,c2,sch1,s2,student,false,,",
    "e5,tobedeleted,,c2,sch1,s1,student,false,,",
    "e6,,,c3,sch1,t1,teacher,true,,",
    "e7,,,c3,sch1,s2,student,false,,",
    "e8,,,c1,sch1,s3,student,false,,",
]
MANIFEST = [
    "propertyName,value",
    "manifest.version,1.0",
    "oneroster.version,1.1",
    "file.users,bulk",
    "file.enrollments,bulk",
    "file.classes,bulk",
    "file.orgs,bulk",
]


def export_files(**changes: list[str]) -> dict[str, str]:
    tables = {
        "manifest.csv": MANIFEST,
        "users.csv": [USERS_HEADER, *USERS],
        "classes.csv": CLASSES,
        "enrollments.csv": ENROLLMENTS,
        "orgs.csv": ["sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId"],
    }
    tables.update({f"{name}.csv": lines for name, lines in changes.items()})
    return {name: "\n".join(lines) + "\n" for name, lines in tables.items()}


def export(name: str = "sis", **changes: list[str]) -> OneRosterExport:
    files = {
        n: SourceFile(f"{name}/{n}", text.encode()) for n, text in export_files(**changes).items()
    }
    return OneRosterExport(name, files)


def test_oneroster_export_maps_to_teachers_students_guardians_and_links() -> None:
    roster = parse(export())
    assert [t.email for t in roster.teachers] == [
        "a.lindqvist@lincoln.example.org",
        "m.okafor@lincoln.example.org",
    ]  # t3 has no class
    assert roster.students == (
        RosterStudent("s1", "Emma Johnson"),
        RosterStudent("s2", "Lucas Johnson"),
    )
    assert roster.guardians == (RosterGuardian("karen@example.com", "Karen Johnson"),)
    # s1 in c1 (Okafor); s2 in c2 (Lindqvist); s1's c2 enrollment and s2's class c3 are deleted
    assert roster.links == (
        RosterLink("karen@example.com", "s1", "m.okafor@lincoln.example.org"),
        RosterLink("karen@example.com", "s2", "a.lindqvist@lincoln.example.org"),
    )


def test_oneroster_guardian_without_email_is_skipped_with_a_note() -> None:
    assert parse(export()).notes == ("sis/users.csv:10: guardian p2 has no email: skipped",)


def test_oneroster_teacher_gets_the_only_account_and_its_email_as_calendar() -> None:
    teacher = parse(export()).teachers[1]
    assert teacher == RosterTeacher(
        "m.okafor@lincoln.example.org",
        "Michael Okafor",
        account="district",
        calendar="m.okafor@lincoln.example.org",
        room="",
        booking_address=None,
    )


def test_oneroster_teacher_without_account_is_a_problem_when_several_accounts_exist() -> None:
    context = RosterContext(("caldav", "m365"))
    assert problems(export(), context=context) == [
        f"sis/users.csv:{line}: teacher {email} has no calendar account: give a teachers.csv "
        "row for this email with the OneRoster export, or configure exactly one [[accounts]]"
        for line, email in (
            (2, "m.okafor@lincoln.example.org"),
            (3, "a.lindqvist@lincoln.example.org"),
        )
    ]


def test_companion_teachers_csv_supplies_the_calendars_of_oneroster_teachers() -> None:
    context = RosterContext(("caldav", "m365"))
    roster = parse(
        export(), csv("teachers.csv", TEACHERS.replace("district", "m365")), context=context
    )
    assert {(t.email, t.account, t.calendar) for t in roster.teachers} == {
        ("m.okafor@lincoln.example.org", "m365", "/cal/okafor/"),
        ("a.lindqvist@lincoln.example.org", "m365", "/cal/lindqvist/"),
    }


def test_oneroster_teacher_already_in_the_database_keeps_its_calendar() -> None:
    context = RosterContext(("district",), frozenset({"m.okafor@lincoln.example.org"}))
    teacher = parse(export(), context=context).teachers[1]
    assert (teacher.name, teacher.account, teacher.calendar, teacher.room) == (
        "Michael Okafor",
        None,
        None,
        None,
    )


def test_oneroster_guardians_sharing_an_email_are_one_guardian() -> None:
    users = [
        USERS_HEADER,
        *USERS,
        user("p4", "parent", "Kurt", "Johnson", "KAREN@example.com", "s2"),
    ]
    roster = parse(export(users=users))
    assert roster.guardians == (RosterGuardian("karen@example.com", "Karen Johnson"),)


def test_oneroster_folder_and_zip_read_the_same(tmp_path: Path) -> None:
    folder = tmp_path / "sis"
    folder.mkdir()
    with zipfile.ZipFile(tmp_path / "sis.zip", "w") as archive:
        for name, text in export_files().items():
            (folder / name).write_text(text, encoding="utf-8")
            archive.writestr(f"export-2027/{name}", text)  # wrapped in one folder
    from_folder = load_roster([folder], CONTEXT)
    from_zip = load_roster([tmp_path / "sis.zip"], CONTEXT)
    assert from_folder.links == from_zip.links == parse(export()).links
    assert from_zip.notes == (
        f"{tmp_path / 'sis.zip'}/export-2027/users.csv:10: guardian p2 has no email: skipped",
    )


def test_oneroster_delta_export_is_refused() -> None:
    manifest = [
        line.replace("file.enrollments,bulk", "file.enrollments,delta") for line in MANIFEST
    ]
    assert problems(export(manifest=manifest)) == [
        "sis/manifest.csv:5: file.enrollments is a delta export: export it in bulk mode"
    ]


def test_oneroster_export_missing_a_table_is_reported() -> None:
    files = {n: f for n, f in export().files.items() if n != "classes.csv"}
    assert problems(OneRosterExport("sis", files)) == [
        "sis: no classes.csv in this OneRoster export"
    ]


def test_oneroster_bad_rows_are_reported_with_file_and_line() -> None:
    users = [
        USERS_HEADER,
        *USERS,
        user("t4", "teacher", "No", "Mail"),
        user("t1", "teacher", "Again", "Twice", "again@lincoln.example.org"),
        user("p5", "parent", "Bad", "Mail", "not-an-address", "s1"),
    ]
    enrollments = [*ENROLLMENTS, "e9,,,c1,sch1,t4,teacher,true,,", "e10,,,c9,sch1,ghost,student,,,"]
    assert problems(export(users=users, enrollments=enrollments)) == [
        "sis/users.csv:12: teacher t4 has class enrollments but no email",
        "sis/users.csv:13: sourcedId t1 appears again (first at line 2)",
        "sis/users.csv:14: email: not an email address: 'not-an-address'",
        "sis/enrollments.csv:11: userSourcedId ghost is not in users.csv",
        "sis/enrollments.csv:11: classSourcedId c9 is not in classes.csv",
    ]


def test_oneroster_missing_column_is_reported_on_line_1() -> None:
    header = USERS_HEADER.replace("email,", "mail,")
    assert problems(export(users=[header, *USERS])) == ["sis/users.csv:1: missing column email"]


def test_roster_parsing_is_pure_no_database_no_network() -> None:
    code = (
        "import sys, ptm_sync.core.roster.parse\n"
        "bad = [m for m in ('sqlalchemy', 'ptm_sync.adapters.store', 'socket', 'connectors') "
        "if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_students_meeting_mode_is_read_and_checked() -> None:
    text = (
        "student_id,student_name,guardian_email,guardian_name,teacher_email,meeting_mode\n"
        "S1,Kid,p@x.org,Pat Doe,a.lindqvist@lincoln.example.org,Separate\n"
        "S1,Kid,q@x.org,Quinn Doe,a.lindqvist@lincoln.example.org,\n"  # empty: fine
        "S2,Kid Two,p@x.org,Pat Doe,a.lindqvist@lincoln.example.org,joint\n"
    )
    roster = parse(csv("t.csv", TEACHERS), csv("f.csv", text))
    assert {s.id: s.meeting_mode for s in roster.students} == {"S1": "separate", "S2": "joint"}

    wrong = text.replace(",joint\n", ",apart\n") + (
        "S1,Kid,q@x.org,Quinn Doe,a.lindqvist@lincoln.example.org,joint\n"
    )
    assert problems(csv("t.csv", TEACHERS), csv("f.csv", wrong)) == [
        "f.csv:4: meeting_mode: must be joint or separate, not 'apart'",
        "f.csv:5: student S1 has a different meeting_mode than at f.csv:2",
    ]
