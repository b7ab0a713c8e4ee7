"""`ptm-sync roster import` as a school's IT person runs it."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import zipfile
from pathlib import Path

from tests.support import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"

CONFIG = """\
[school]
name = "Lincoln High School"
timezone = "America/New_York"
contact = "office@lincoln.example.org"

[database]
url = "sqlite:///ptm.db"

[[accounts]]
id = "district"
type = "caldav"
url = "https://dav.lincoln.example.org/"
{more_accounts}
[[periods]]
id = "spring-2027"
title = "Spring parent-teacher conferences"
windows = ["2027-04-10T15:00/19:00"]
"""

M365 = """
[[accounts]]
id = "m365"
type = "graph"
tenant_id = "contoso"
client_id = "ptm"
client_secret_env = "PTM_TEST_GRAPH_SECRET"
"""


def config(tmp_path: Path, more_accounts: str = "") -> Path:
    path = tmp_path / "ptm-sync.toml"
    path.write_text(CONFIG.format(more_accounts=more_accounts), encoding="utf-8")
    return path


def ptm_sync(
    tmp_path: Path, *args: str | Path, process: bool = False
) -> subprocess.CompletedProcess[str]:
    """``ptm-sync --config TMP/ptm-sync.toml ARGS`` in TMP: in this process, or in a fresh
    one with ``process`` (where its whole log is the point)."""
    return cli.ptm_sync(tmp_path / "ptm-sync.toml", *args, cwd=tmp_path, process=process)


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def names_in(path: Path, *columns: str) -> set[str]:
    with path.open(encoding="utf-8") as f:
        return {row[c] for row in csv.DictReader(f) for c in columns}


def test_importing_the_example_rosters_twice_reports_counts_then_no_change(tmp_path: Path) -> None:
    config(tmp_path)
    files = (EXAMPLES / "teachers.csv", EXAMPLES / "families.csv")
    first = ptm_sync(tmp_path, "-vv", "roster", "import", *files, process=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "teachers: 6 (6 added, 0 updated)",
        "students: 6 (6 added, 0 updated)",
        "guardians: 7 (7 added, 0 updated)",
        "links: 13 (13 added, 0 removed)",
    ]
    second = ptm_sync(tmp_path, "-vv", "roster", "import", *files, process=True)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines() == [
        "teachers: 6 (0 added, 0 updated)",
        "students: 6 (0 added, 0 updated)",
        "guardians: 7 (0 added, 0 updated)",
        "links: 13 (0 added, 0 removed)",
    ]
    private = names_in(EXAMPLES / "families.csv", "student_name", "guardian_name")
    for run in (first, second):
        leaked = [name for name in private if name in run.stdout + run.stderr]
        assert not leaked, f"names in the output or log: {leaked}"
    assert rows(
        tmp_path / "ptm.db", "SELECT key FROM teachers WHERE email = 's.oneil@lincoln.example.org'"
    ) == [("s-oneil",)]


def test_bad_rows_exit_1_with_every_problem_on_stderr_and_nothing_imported(tmp_path: Path) -> None:
    config(tmp_path)
    (tmp_path / "staff.csv").write_text(
        "email,name,account,calendar,room\n"
        "ann@lincoln.example.org,Ann Lee,district,/cal/ann/,A-1\n"
        "bo@lincoln.example.org,Bo Berg,elsewhere,/cal/bo/,A-2\n",
        encoding="utf-8",
    )
    (tmp_path / "parents.csv").write_bytes(
        b"\xef\xbb\xbfstudent_id,student_name,guardian_email,guardian_name,teacher_email\n"
        b"S1,Kim Lee,kim.parent@example.com,Pat Lee,ann@lincoln.example.org\n"
        b"S2,Sam Ode,not-an-email,Ola Ode,ann@lincoln.example.org\n"
        b"S3,Tia Roe,tia.parent@example.com,Una Roe,zed@lincoln.example.org\n"
    )
    result = ptm_sync(tmp_path, "roster", "import", "staff.csv", "parents.csv")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "ptm-sync: roster not imported: 3 problems",
        "staff.csv:3: unknown account 'elsewhere' ([[accounts]] ids: district)",
        "parents.csv:3: guardian_email: not an email address: 'not-an-email'",
        "parents.csv:4: teacher_email zed@lincoln.example.org is not a teacher "
        "(neither in the teachers files given nor in the database)",
    ]
    assert rows(tmp_path / "ptm.db", "SELECT count(*) FROM teachers") == [(0,)]
    assert rows(tmp_path / "ptm.db", "SELECT count(*) FROM students") == [(0,)]


def test_a_missing_file_exits_1_and_no_files_at_all_is_a_usage_error(tmp_path: Path) -> None:
    config(tmp_path)
    missing = ptm_sync(tmp_path, "roster", "import", "teachers.csv")
    assert (missing.returncode, missing.stderr.splitlines()) == (
        1,
        ["ptm-sync: roster not imported: 1 problem", "teachers.csv: no such file or folder"],
    )
    assert ptm_sync(tmp_path, "roster", "import").returncode == 2


def test_oneroster_zip_with_a_companion_teachers_csv(tmp_path: Path) -> None:
    config(tmp_path, M365)
    users = (
        "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,"
        "givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,"
        "password\n"
        "t1,active,2027-01-05,true,sch1,teacher,mokafor,,Michael,Okafor,,,"
        "m.okafor@lincoln.example.org,,,,,\n"
        's1,active,2027-01-05,true,sch1,student,ejohnson,,Emma,Johnson,,,,,,"p1,p2",09,\n'
        "p1,active,2027-01-05,true,sch1,parent,kjohnson,,Karen,Johnson,,,karen@example.com,,,s1,,\n"
        "p2,active,2027-01-05,true,sch1,guardian,mjohnson,,Mark,Johnson,,,,,,s1,,\n"
    )
    classes = (
        "sourcedId,status,dateLastModified,title,schoolSourcedId\nc1,active,,Biology 9A,sch1\n"
    )
    enrollments = (
        "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,"
        "primary,beginDate,endDate\n"
        "e1,active,,c1,sch1,t1,teacher,true,,\n"
        "e2,active,,c1,sch1,s1,student,false,,\n"
    )
    with zipfile.ZipFile(tmp_path / "oneroster.zip", "w") as archive:
        archive.writestr("manifest.csv", "propertyName,value\nfile.users,bulk\n")
        archive.writestr("users.csv", users)
        archive.writestr("classes.csv", classes)
        archive.writestr("enrollments.csv", enrollments)
        archive.writestr(
            "orgs.csv", "sourcedId,status,dateLastModified,name,type\nsch1,,,Lincoln,school\n"
        )
    (tmp_path / "teachers.csv").write_text(
        "email,name,account,calendar,room\nM.Okafor@lincoln.example.org,Michael Okafor,m365,"
        "m.okafor@lincoln.example.org,B-204\n",
        encoding="utf-8",
    )
    result = ptm_sync(tmp_path, "roster", "import", "oneroster.zip", "teachers.csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "teachers: 1 (1 added, 0 updated)",
        "students: 1 (1 added, 0 updated)",
        "guardians: 1 (1 added, 0 updated)",
        "links: 1 (1 added, 0 removed)",
    ]
    assert result.stderr == "note: oneroster.zip/users.csv:5: guardian p2 has no email: skipped\n"
    assert rows(tmp_path / "ptm.db", "SELECT key, account, room FROM teachers") == [
        ("m-okafor", "m365", "B-204")
    ]
