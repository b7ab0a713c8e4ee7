"""Roster files as offices save them (DESIGN §8): Excel's "CSV" with semicolons between
fields (the comma is the decimal mark in much of Europe), with a byte order mark and CRLF
line ends; a teachers file without the optional ``room`` column.  Real files, the command
line as a process, the database read back."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from ptm_sync.adapters.store import Database, Guardian, Link, Student, Teacher
from tests.support.cli import config_text, ptm_sync, write_config

SCHOOL = {"name": "Lincoln High School", "timezone": "Europe/Berlin", "contact": "o@l.org"}
PERIOD = {"id": "spring", "title": "Spring conferences", "windows": ["2027-04-10T15:00/19:00"]}
ACCOUNT = {"id": "district", "type": "caldav", "url": "https://dav.example.org/"}


def school(folder: Path) -> Path:
    return write_config(
        folder,
        config_text(
            school=SCHOOL, database_url="sqlite:///ptm.db", periods=[PERIOD], accounts=[ACCOUNT]
        ),
    )


def excel_csv(path: Path, rows: list[str]) -> None:
    """As Excel writes "CSV (semicolon separated)" saved as UTF-8: BOM, CRLF."""
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode("utf-8") + b"\r\n")


def test_a_semicolon_separated_roster_without_rooms_is_read_as_meant(tmp_path: Path) -> None:
    config = school(tmp_path)
    excel_csv(
        tmp_path / "teachers.csv",
        [
            "Email;Name;Account;Calendar",  # no room column: it is optional
            "ada@l.org;Lovelace, Ada;district;https://dav.example.org/ada/",
            "alan@l.org;Turing, Alan;district;https://dav.example.org/alan/",
        ],
    )
    excel_csv(
        tmp_path / "families.csv",
        [
            "student_id;student_name;guardian_email;guardian_name;teacher_email",
            'S1;Mia Johnson;pat@example.net;"Johnson; Pat";ada@l.org',
            'S1;Mia Johnson;pat@example.net;"Johnson; Pat";alan@l.org',
        ],
    )
    done = ptm_sync(config, "roster", "import", "teachers.csv", "families.csv")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "teachers: 2 (2 added, 0 updated)"
    db = Database(f"sqlite:///{tmp_path / 'ptm.db'}")
    try:
        with db.read() as session:
            teachers = {
                t.email: (t.name, t.calendar, t.room) for t in session.scalars(select(Teacher))
            }
            guardians = [g.name for g in session.scalars(select(Guardian))]
            links = len(list(session.scalars(select(Link))))
            students = [s.student_id for s in session.scalars(select(Student))]
    finally:
        db.dispose()
    assert teachers == {
        "ada@l.org": ("Lovelace, Ada", "https://dav.example.org/ada/", ""),
        "alan@l.org": ("Turing, Alan", "https://dav.example.org/alan/", ""),
    }
    assert students == ["S1"] and links == 2 and guardians == ["Johnson; Pat"]


def test_a_later_file_without_rooms_keeps_the_rooms_already_stored(tmp_path: Path) -> None:
    config = school(tmp_path)
    (tmp_path / "with.csv").write_text(
        "email,name,account,calendar,room\nada@l.org,Ada,district,/ada/,B12\n", encoding="utf-8"
    )
    (tmp_path / "without.csv").write_text(
        "email,name,account,calendar\nada@l.org,Ada L.,district,/ada/\n", encoding="utf-8"
    )
    for name in ("with.csv", "without.csv"):
        done = ptm_sync(config, "roster", "import", name)
        assert done.returncode == 0, done.stderr
    db = Database(f"sqlite:///{tmp_path / 'ptm.db'}")
    try:
        with db.read() as session:
            ada = session.scalars(select(Teacher)).one()
            assert (ada.name, ada.room) == ("Ada L.", "B12")
    finally:
        db.dispose()
