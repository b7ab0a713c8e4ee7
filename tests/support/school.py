"""A small school on the embedded servers, driven through the real command line.

``School`` writes a config file, a roster and teachers' calendars (one calendar per teacher
on the embedded Radicale), and runs ``ptm-sync`` as a user would, with ``--config``: in this
process by default, in a subprocess where a test needs one (:mod:`tests.support.cli`).
Tests of the booking life cycle build on it.

The ``imap_school`` fixture (registered in tests/conftest.py) builds the school whose
replies arrive by IMAP: a plain SMTP sink for what it sends and ``[mail.imap]`` pointing
at a fresh Dovecot mailbox (:class:`ImapSchool`).
"""

from __future__ import annotations

import email
import email.policy
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar, Event

from connectors.base import CalendarRef, Horizon
from connectors.caldav import CalDAVConnector
from ptm_sync.config.settings import ImapConfig
from tests.support.caldav_servers import EmbeddedCalDAV, account_for, make_calendar
from tests.support.cli import ptm_sync

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.support.mailservers import Mailbox, SmtpSink

TZ = ZoneInfo("America/New_York")
ORGANIZER = "conferences@lincoln.example.org"
CONTACT = "office@lincoln.example.org"
VIDEO_BASE = "https://meet.lincoln.example.org"

TEACHERS = [
    ("ada@lincoln.example.org", "Ada Lovelace", "101"),
    ("alan@lincoln.example.org", "Alan Turing", "102"),
    ("grace@lincoln.example.org", "Grace Hopper", "103"),
]
Family = tuple[str, str, str, str, list[int]]
# student id, student name, guardian email, guardian name, teacher indexes
FAMILIES: list[Family] = [
    ("S1", "Mia Johnson", "pat@example.net", "Pat Johnson", [0, 1]),
    ("S2", "Leo Johnson", "pat@example.net", "Pat Johnson", [2]),
    ("S3", "Ava Smith", "sam@example.com", "Sam Smith", [0]),
    ("S4", "Noah Garcia", "maria@example.org", "Maria Garcia", [1, 2]),
]


def evening(today: date | None = None) -> date:
    """A weekday at least 10 days ahead, so every slot is in the future."""
    day = (today or date.today()) + timedelta(days=10)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class School:
    folder: Path
    caldav: EmbeddedCalDAV
    smtp_port: int
    imap: dict[str, Any] | None = None
    day: date = field(default_factory=evening)
    calendars: dict[str, str] = field(default_factory=dict)
    extra_config: str = ""
    families: list[Family] = field(default_factory=lambda: list(FAMILIES))
    #: The ``[video]`` table's keys.
    video: str = f'provider = "jitsi"\nbase_url = "{VIDEO_BASE}"'
    #: More ``[[accounts]]`` tables, and the teachers whose calendar is there:
    #: email -> (account id, calendar).
    accounts: str = ""
    elsewhere: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: The period's ``format`` ("" for the default).
    period_format: str = ""

    @property
    def config(self) -> Path:
        return self.folder / "ptm-sync.toml"

    def write(self) -> None:
        for email_, _, _ in TEACHERS:
            if email_ in self.elsewhere:
                self.calendars[email_] = self.elsewhere[email_][1]
            elif email_ not in self.calendars:
                self.calendars[email_] = make_calendar(self.caldav)
        lines = ["email,name,account,calendar,room"]
        lines += [
            f"{e},{n},{self.elsewhere.get(e, ('dav', ''))[0]},{self.calendars[e]},{r}"
            for e, n, r in TEACHERS
        ]
        (self.folder / "teachers.csv").write_text("\n".join(lines) + "\n")
        rows = ["student_id,student_name,guardian_email,guardian_name,teacher_email"]
        for sid, student, g_email, g_name, teachers in self.families:
            rows += [f"{sid},{student},{g_email},{g_name},{TEACHERS[i][0]}" for i in teachers]
        (self.folder / "families.csv").write_text("\n".join(rows) + "\n")
        imap = ""
        if self.imap:
            imap = "[mail.imap]\n" + "".join(
                f"{k} = {json.dumps(v)}\n" for k, v in self.imap.items()
            )
        self.config.write_text(
            f"""
[school]
name = "Lincoln High School"
timezone = "{TZ.key}"
contact = "{CONTACT}"

[database]
url = "sqlite:///ptm.db"

[mail]
organizer = "{ORGANIZER}"

[mail.smtp]
host = "127.0.0.1"
port = {self.smtp_port}

{imap}
[video]
{self.video}

[[accounts]]
id = "dav"
type = "caldav"
url = "{self.caldav.url}"
username = "{self.caldav.username}"
password = "{self.caldav.password or ""}"
{self.accounts}

[[periods]]
id = "spring"
title = "Spring conferences"
slot_minutes = 15
gap_minutes = 5
hold_hours = 48
windows = ["{self.day}T15:00/17:00"]
{f'format = "{self.period_format}"' if self.period_format else ""}
{self.extra_config}
"""
        )

    def run(
        self, *args: str, stdin: bytes | None = None, check: bool = True, fast: bool = True
    ) -> Run:
        """``ptm-sync --config ... ARGS`` as the user types it: the command line's entry
        point called in this process (:func:`tests.support.cli.run_here`: its output, exit
        code and stdin as a process has them; a fresh interpreter proves nothing more for
        most commands), or with ``fast=False`` in a subprocess (what a process's own life
        decides: signals, crashes, the installed entry point)."""
        done = ptm_sync(self.config, *args, stdin=stdin, process=not fast)
        result = Run(done.returncode, done.stdout, done.stderr)
        if check:
            assert result.code == 0, f"ptm-sync {' '.join(args)} failed:\n{result.err}"
        return result

    def setup(self) -> None:
        """Roster imported, calendars synced: ready to invite."""
        self.write()
        teachers, families = self.folder / "teachers.csv", self.folder / "families.csv"
        self.run("roster", "import", str(teachers), str(families), fast=True)
        self.run("sync", fast=True)

    def meetings(self, **filters: str) -> list[dict[str, Any]]:
        args = ["meetings", "--format", "json"]
        for key, value in filters.items():
            args += [f"--{key}", value]
        data: list[dict[str, Any]] = self.run(*args, fast=True).json()
        return data


def meeting_by_uid(school: School, uid: str) -> dict[str, Any]:
    """The meeting with ``uid`` as ``meetings --format json`` lists it now."""
    return next(m for m in school.meetings() if m["uid"] == uid)


def teacher_events(server: EmbeddedCalDAV, calendar_url: str) -> list[Event]:
    """The events in a teacher's calendar on ``server`` now, read as the sync reads them."""
    start = datetime.now(UTC) - timedelta(days=1)
    connector = CalDAVConnector(account_for(server), TZ, Horizon(start, start + timedelta(days=60)))
    try:
        changes = connector.changes(CalendarRef("dav", calendar_url), None)
    finally:
        connector.close()
    return [e for c in changes.changed for e in Calendar.from_ical(c.ics).events]


def imap_table(imap: ImapConfig) -> dict[str, Any]:
    """The ``[mail.imap]`` keys of a plain-IMAP test server, for :attr:`School.imap`."""
    return {
        "host": imap.host,
        "port": imap.port,
        "ssl": False,
        "username": imap.username,
        "password": imap.password.reveal() if imap.password else "",
    }


class ImapSchool(NamedTuple):
    """A school with an inbox: what it sends reaches ``sink``; replies put in ``mailbox``
    are what `mail fetch` and the daemon read."""

    school: School
    sink: SmtpSink
    mailbox: Mailbox


@pytest.fixture
def imap_school(
    tmp_path: Path,
    radicale_server: EmbeddedCalDAV,
    smtp_sink: Callable[..., SmtpSink],
    mailbox: Mailbox,
) -> Callable[..., ImapSchool]:
    """Builds this test's IMAP school: ``imap_school(**fields)`` makes a :class:`School`
    in ``tmp_path`` on Radicale with a plain SMTP sink and ``[mail.imap]`` for a fresh
    Dovecot mailbox (:func:`imap_table`), and sets it up (roster imported, calendars
    synced).  ``fields`` are more :class:`School` fields; ``kind``: a subclass of School
    to make; ``setup=False`` leaves the setting up to the test."""

    def build(*, kind: type[School] = School, setup: bool = True, **fields: Any) -> ImapSchool:
        sink = smtp_sink(mode="plain")
        school = kind(
            tmp_path, radicale_server, sink.port, imap=imap_table(mailbox.config()), **fields
        )
        if setup:
            school.setup()
        return ImapSchool(school, sink, mailbox)

    return build


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def plain_body(raw: bytes) -> str:
    body = parse(raw).get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def calendar_part(raw: bytes, content_type: str = "text/calendar") -> Calendar:
    for part in parse(raw).walk():
        if part.get_content_type() == content_type:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return Calendar.from_ical(payload)
    raise AssertionError(f"no {content_type} part")


def to_address(raw: bytes) -> str:
    return email.utils.parseaddr(str(parse(raw)["To"]))[1].lower()


def now_utc() -> datetime:
    return datetime.now(ZoneInfo("UTC"))
