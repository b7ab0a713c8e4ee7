"""`purge --before DATE` and the retention period (DESIGN §3, §7, §8 ``[retention]``; issue
16 item 9) on Radicale and aiosmtpd: the personal data of meetings that ended before DATE
goes — notes, feedback, the senders and bodies of messages, history texts, what was sent,
our copies of the teacher's events, and the names and addresses of a family that left the
roster (SQLite: the database file's bytes are searched for them; PostgreSQL: its tables) —
while the states, the history's transitions and `report` stay the same.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ptm_sync.adapters.store import Database, Feedback, Guardian
from ptm_sync.config import settings as config_mod
from ptm_sync.demo import parents
from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import at, ptm_sync
from tests.support.factories import make_invitation
from tests.support.mailservers import SmtpSink
from tests.support.school import FAMILIES, ORGANIZER, TZ, Run, School

pytestmark = [pytest.mark.radicale, pytest.mark.slow]

PAT, SAM = "pat@example.net", "sam@example.com"
ADA = "ada@lincoln.example.org"
#: Sam Smith and Ava Smith leave the roster; what names them must go with the purge.
SAMS = [b"sam@example.com", b"Sam Smith", b"Ava Smith"]
NOTE = "Sam Smith worries about Ava's reading"
FEEDBACK = "Thank you, from Sam Smith"


class PurgeSchool(School):
    """The test school with a retention period, on ``database`` ("" for its SQLite file)."""

    database: str = ""

    def write(self) -> None:
        super().write()
        if self.database:
            text = self.config.read_text()
            self.config.write_text(text.replace('"sqlite:///ptm.db"', f'"{self.database}"'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def school(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    radicale_server: EmbeddedCalDAV,
    smtp_sink: Callable[..., SmtpSink],
) -> tuple[PurgeSchool, SmtpSink]:
    sink = smtp_sink(mode="plain")
    s = PurgeSchool(
        tmp_path,
        radicale_server,
        sink.port,
        extra_config="\n[retention]\nmeetings_days = 30\nquarantine_days = 10\n",
    )
    if request.param == "postgresql":
        s.database = str(request.getfixturevalue("postgres_url"))
    s.setup()
    return s, sink


def when(day: date, clock: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=TZ)


def run_at(s: School, moment: datetime, *args: str) -> Run:
    done = ptm_sync(s.config, *args, env=at(moment))
    assert done.returncode == 0, done.stderr
    return Run(done.returncode, done.stdout, done.stderr)


def open_database(s: School) -> Database:
    return Database(config_mod.load(str(s.config)).database.url)


#: Every text the school keeps, table by table: where a name or an address could be.
TEXTS = [
    "SELECT email || ' ' || name FROM guardians",
    "SELECT student_id || ' ' || name FROM students",
    "SELECT reason FROM meeting_history",
    "SELECT location || ' ' || organizer FROM meetings",
    "SELECT text FROM meeting_notes",
    "SELECT text FROM feedback",
    "SELECT sender FROM inbound",
    "SELECT payload FROM outbox",
    "SELECT ics FROM calendar_events",
]


def database_bytes(s: PurgeSchool) -> bytes:
    """What the database holds: SQLite's file and write-ahead log as they lie on disk (what
    was deleted may linger in free pages); for PostgreSQL the texts of its tables, and the
    quarantined bodies."""
    if not s.database:
        files = [s.folder / "ptm.db", s.folder / "ptm.db-wal"]
        return b"".join(f.read_bytes() for f in files if f.exists())
    found = [str(v).encode() for query in TEXTS for (v,) in rows(s, query)]
    found += [bytes(raw) for (raw,) in rows(s, "SELECT raw FROM inbound WHERE raw IS NOT NULL")]
    return b"\n".join(found)


def rows(s: School, query: str) -> list[tuple[Any, ...]]:
    db = open_database(s)
    try:
        with db.read() as session:
            return [tuple(row) for row in session.execute(text(query))]
    finally:
        db.dispose()


def counts(s: School) -> tuple[Any, ...]:
    """What must survive a purge: the meetings' states and times, every transition of the
    history, the parties' ids, and `report`."""
    return (
        rows(s, 'SELECT id, state, start, "end", sequence FROM meetings ORDER BY id'),
        rows(
            s,
            "SELECT meeting_id, actor, from_state, to_state, old_start, new_start "
            "FROM meeting_history ORDER BY id",
        ),
        rows(s, "SELECT meeting_id, guardian_id FROM meeting_guardians ORDER BY 1, 2"),
        rows(s, "SELECT meeting_id, student_id FROM meeting_students ORDER BY 1, 2"),
        s.run("report", "--format", "json").json(),
    )


def sams_evening(s: School, sink: SmtpSink) -> dict[str, Any]:
    """Sam's meeting with Ada: invited, accepted by mail, written to Ada's calendar (and
    read back by sync), a staff note and Sam's feedback on it; then Sam's family leaves the
    roster (`roster import --replace`), the meeting kept.  Returns the meeting."""
    meeting, invitation = make_invitation(s, sink, teacher=ADA, guardian=SAM)
    reply = parents.reply("outlook", invitation, "ACCEPTED", tz=TZ, now=datetime.now(TZ))
    assert s.run("mail", "deliver", stdin=reply).out.strip() == "applied (accepted)"
    s.run("outbox", "flush")
    s.run("sync")
    s.run("meetings", "note", str(meeting["id"]), NOTE)
    db = open_database(s)
    try:
        with db.write() as session:
            sam = session.query(Guardian).filter_by(email=SAM).one()
            session.add(
                Feedback(
                    meeting_id=meeting["id"], guardian_id=sam.id, at=datetime.now(TZ), text=FEEDBACK
                )
            )
    finally:
        db.dispose()
    rest = s.folder / "families-2.csv"
    lines = ["student_id,student_name,guardian_email,guardian_name,teacher_email"]
    teachers = ["ada@lincoln.example.org", "alan@lincoln.example.org", "grace@lincoln.example.org"]
    for sid, student, g_email, g_name, which in FAMILIES:
        if g_email != SAM:
            lines += [f"{sid},{student},{g_email},{g_name},{teachers[i]}" for i in which]
    rest.write_text("\n".join(lines) + "\n")
    s.run("roster", "import", "--replace", str(s.folder / "teachers.csv"), str(rest))
    assert [m["id"] for m in s.run("meetings", "--retired", "--format", "json").json()] == [
        meeting["id"]
    ]
    return meeting


def test_purge_deletes_the_personal_data_of_ended_meetings_and_keeps_the_counts(
    school: tuple[PurgeSchool, SmtpSink],
) -> None:
    s, sink = school
    meeting = sams_evening(s, sink)
    on_disk = database_bytes(s)
    assert all(name in on_disk for name in SAMS)  # the search below can fail
    assert NOTE.encode() in on_disk and FEEDBACK.encode() in on_disk
    before = counts(s)
    every = len(s.meetings())

    # A DATE after today is refused, even before the evening (it would purge the evening's
    # meetings the moment they end), and after it (tomorrow is still ahead).
    for clock, ahead in (("09:00", 90), ("18:00", 1)):
        refused = ptm_sync(
            s.config,
            "purge",
            "--before",
            str(s.day + timedelta(days=ahead)),
            env=at(when(s.day, clock)),
        )
        assert (refused.returncode, refused.stdout) == (1, "")
        assert refused.stderr.strip() == (
            f"ptm-sync: {s.day + timedelta(days=ahead)} is in the future: purge deletes the "
            "personal data of meetings that ended before DATE; give today's date or earlier"
        )
    # Today, before the evening: nothing has ended before today.
    today = run_at(s, when(s.day, "09:00"), "purge", "--before", str(s.day))
    assert "meetings purged: 0" in today.out
    assert NOTE in s.run("meetings", "show", str(meeting["id"])).out
    assert counts(s) == before

    # The next morning: --dry-run says what a purge would do and changes nothing.
    next_morning = when(s.day + timedelta(days=1), "09:00")
    cutoff = str(s.day + timedelta(days=1))
    dry = run_at(s, next_morning, "purge", "--before", cutoff, "--dry-run")
    header, *would = dry.out.splitlines()
    assert header == (
        "dry run: nothing was changed; a purge would delete the personal data of meetings "
        f"that ended before {cutoff}"
    )
    assert would[0] == f"meetings would be purged: {every}"
    assert would[1].startswith("  notes would be deleted: 1; feedback texts: 1; ")
    assert would[2] == "people who left the roster would be made anonymous: 1 guardians, 1 students"
    assert "Sam" not in dry.out
    assert NOTE in s.run("meetings", "show", str(meeting["id"])).out
    assert rows(s, "SELECT count(*) FROM meetings WHERE purged_at IS NULL") == [(every,)]
    assert all(name in database_bytes(s) for name in SAMS)
    assert counts(s) == before

    done = run_at(s, next_morning, "purge", "--before", cutoff)
    assert done.out.splitlines() == [
        f"purged the personal data of meetings that ended before {cutoff}",
        *(line.replace("would be ", "") for line in would),
    ]
    assert "people who left the roster made anonymous: 1 guardians, 1 students" in done.out
    assert "Sam" not in done.out

    on_disk = database_bytes(s)
    assert [name for name in SAMS if name in on_disk] == []
    assert NOTE.encode() not in on_disk and FEEDBACK.encode() not in on_disk
    assert PAT.encode() in on_disk  # Pat is still on the roster: his address stays
    assert counts(s) == before
    assert rows(s, "SELECT count(*) FROM meetings WHERE purged_at IS NULL") == [(0,)]
    assert rows(s, "SELECT count(*) FROM meeting_history WHERE reason != ''") == [(0,)]
    assert rows(s, "SELECT count(*) FROM outbox WHERE payload != '{}'") == [(0,)]
    assert rows(s, f"SELECT sender FROM inbound WHERE meeting_id = {meeting['id']}") == [("",)]

    shown = s.run("meetings", "show", str(meeting["id"])).out
    assert "personal data purged" in shown
    assert "Notes:" not in shown and "Feedback:" not in shown
    assert "purged-" in shown and SAM not in shown
    note = s.run("meetings", "note", str(meeting["id"]), "again", check=False)
    assert note.code == 1 and "purged" in note.err

    again = run_at(s, next_morning, "purge", "--before", cutoff)
    assert "meetings purged: 0" in again.out
    assert counts(s) == before


def test_the_purge_job_keeps_meetings_days_and_deletes_old_quarantined_bodies(
    school: tuple[PurgeSchool, SmtpSink],
) -> None:
    s, sink = school
    meeting = sams_evening(s, sink)
    stranger = (
        b"From: Sam Smith <sam.smith@work.example>\r\nTo: " + ORGANIZER.encode() + b"\r\n"
        b"Subject: Accepted\r\nMessage-ID: <q-1@work.example>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/calendar; charset=utf-8; method=REPLY\r\n\r\n"
        b"BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\nUID:"
        + meeting["uid"].encode()
        + b"\r\nATTENDEE;CN=Sam Smith;PARTSTAT=ACCEPTED:mailto:sam@example.com\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    received = when(s.day, "19:00")
    quarantined = ptm_sync(s.config, "mail", "deliver", stdin=stranger, env=at(received))
    assert quarantined.stdout.strip() == "quarantined (sender-not-attendee)"
    before = counts(s)

    # 29 days after the evening: no meeting is past meetings_days, the body is past 10 days.
    soon = run_at(s, when(s.day + timedelta(days=29), "12:00"), "jobs", "run", "purge")
    assert "0 meetings purged" in soon.out and "1 quarantined body deleted" in soon.out
    assert NOTE in s.run("meetings", "show", str(meeting["id"])).out
    assert rows(s, "SELECT count(*) FROM inbound WHERE raw IS NOT NULL") == [(0,)]

    later = run_at(s, when(s.day + timedelta(days=31), "12:00"), "jobs", "run", "purge")
    assert f"{len(s.meetings())} meetings purged" in later.out
    assert NOTE not in s.run("meetings", "show", str(meeting["id"])).out
    assert counts(s) == before
    on_disk = database_bytes(s)
    # The quarantined message's sender (a stranger's address) stays for `quarantine`; what
    # names Sam's family is gone.
    assert [name for name in SAMS if name in on_disk] == []
