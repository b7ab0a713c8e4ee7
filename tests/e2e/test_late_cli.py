"""`ptm-sync late` (DESIGN §3 "Running late", §7) through the command line, on Radicale and
an aiosmtpd sink, on SQLite and on PostgreSQL (whose exclusion constraint refuses two of a
teacher's meetings overlapping, even for a moment inside the transaction).

Ada Lovelace has six confirmed meetings and runs 10 minutes late from 15:15: the meetings
from then on are decided from the last one backwards.  The last three move (REQUEST updates
with the same UID, SEQUENCE + 1 and the new time; her calendar follows; the 15:45 one moves
into the 16:00 one's old time, which only writing the later one first makes possible on
PostgreSQL), the one whose
family sees Alan Turing right after it cannot move (its family would be closer to that
meeting than the 10-minute gap), so it and the one before it stay and their families are
told by a plain email; the 15:00 meeting, before 15:15, is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from icalendar import Event

from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import at, ptm_sync
from tests.support.mailservers import SmtpSink
from tests.support.school import (
    TZ,
    Family,
    School,
    calendar_part,
    parse,
    plain_body,
    teacher_events,
    to_address,
)

pytestmark = [pytest.mark.radicale, pytest.mark.slow]

ADA, ALAN = "ada@lincoln.example.org", "alan@lincoln.example.org"
SAM, PAT, MARIA, KIM, LEE, ZOE = (
    "sam@example.com",
    "pat@example.net",
    "maria@example.org",
    "kim@example.org",
    "lee@example.org",
    "zoe@example.org",
)
FAMILIES: list[Family] = [
    ("S3", "Ava Smith", SAM, "Sam Smith", [0]),
    ("S1", "Mia Johnson", PAT, "Pat Johnson", [0]),
    ("S4", "Noah Garcia", MARIA, "Maria Garcia", [0, 1]),
    ("S6", "Ivy Park", KIM, "Kim Park", [0]),
    ("S7", "Eli Chen", LEE, "Lee Chen", [0]),
    ("S8", "Max Roe", ZOE, "Zoe Roe", [0]),
]


class LateSchool(School):
    """The test school with a 10-minute gap between a family's meetings, on ``database``
    ("" for its SQLite file), its evening's window ``window`` (local times)."""

    database: str = ""
    window: str = "15:00/17:00"

    def write(self) -> None:
        super().write()
        text = self.config.read_text().replace("gap_minutes = 5", "gap_minutes = 10")
        text = text.replace(f"{self.day}T15:00/17:00", f"{self.day}T{self.window}")
        if self.database:
            text = text.replace('url = "sqlite:///ptm.db"', f'url = "{self.database}"')
        self.config.write_text(text)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def school(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    radicale_server: EmbeddedCalDAV,
    smtp_sink: Callable[..., SmtpSink],
) -> tuple[LateSchool, SmtpSink]:
    sink = smtp_sink(mode="plain")
    s = LateSchool(tmp_path, radicale_server, sink.port, families=list(FAMILIES))
    if request.param == "postgresql":
        s.database = str(request.getfixturevalue("postgres_url"))
    s.setup()
    return s, sink


@pytest.fixture
def night_school(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> tuple[LateSchool, SmtpSink]:
    """An evening that runs until 23:45, on SQLite."""
    sink = smtp_sink(mode="plain")
    s = LateSchool(tmp_path, radicale_server, sink.port, families=list(FAMILIES))
    s.window = "21:00/23:45"
    s.setup()
    return s, sink


def local(s: School, clock: str) -> datetime:
    return datetime.combine(s.day, time.fromisoformat(clock), tzinfo=TZ)


def book(s: School, guardian: str, teacher: str, clock: str) -> dict[str, Any]:
    done = s.run(
        "book", "--guardian", guardian, "--teacher", teacher, "--start", f"{s.day}T{clock}"
    )
    meeting_id = int(done.out.split("meeting ", 1)[1].split()[0])
    return next(m for m in s.meetings() if m["id"] == meeting_id)


def late(s: School, *args: str, clock: str = "15:12", when: datetime | None = None) -> Any:
    """`late ARGS` with the commands' clock at ``clock`` on the school's evening (or at
    ``when``)."""
    return ptm_sync(s.config, "late", *args, env=at(when or local(s, clock)))


def received(sink: SmtpSink, since: int) -> dict[str, list[tuple[str | None, Event | None, str]]]:
    """Per recipient, (iTIP method, event, plain text) of each email after the first
    ``since``."""
    found: dict[str, list[tuple[str | None, Event | None, str]]] = {}
    for mail in sink.received[since:]:
        has_calendar = any(p.get_content_type() == "text/calendar" for p in parse(mail.raw).walk())
        cal = calendar_part(mail.raw) if has_calendar else None
        method = str(cal["METHOD"]) if cal is not None else None
        event = cal.events[0] if cal is not None else None
        found.setdefault(to_address(mail.raw), []).append((method, event, plain_body(mail.raw)))
    return found


def in_calendar(server: EmbeddedCalDAV, s: School, uid: str) -> list[datetime]:
    return [e.start for e in teacher_events(server, s.calendars[ADA]) if str(e["UID"]) == uid]


def test_a_teacher_running_late_moves_the_later_meetings_and_tells_the_families_that_wait(
    school: tuple[LateSchool, SmtpSink], radicale_server: EmbeddedCalDAV
) -> None:
    s, sink = school
    sam = book(s, SAM, ADA, "15:00")
    pat = book(s, PAT, ADA, "15:15")
    maria = book(s, MARIA, ADA, "15:30")
    book(s, MARIA, ALAN, "16:00")  # 15 minutes after her meeting with Ada ends
    kim = book(s, KIM, ADA, "15:45")
    lee = book(s, LEE, ADA, "16:00")
    zoe = book(s, ZOE, ADA, "16:45")  # the evening's last slot
    before = len(sink.received)

    done = late(s, "--teacher", ADA, "--minutes", "10", "--from", "15:15")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(" ", 3)[:3] for line in lines[:5]] == [
        ["told:", "meeting", str(pat["id"])],
        ["told:", "meeting", str(maria["id"])],
        ["moved:", "meeting", str(kim["id"])],
        ["moved:", "meeting", str(lee["id"])],
        ["moved:", "meeting", str(zoe["id"])],
    ]
    assert lines[2].endswith("(from 15:45-16:00 to 15:55-16:10)")
    assert lines[3].endswith("(from 16:00-16:15 to 16:10-16:25)")
    assert lines[4].endswith("(from 16:45-17:00 to 16:55-17:10)")
    assert f"{ADA} runs 10 minutes late from {s.day} 15:15: 3 meetings moved, 2 stay" in done.stdout
    # Three REQUEST updates, two plain emails, three events moved in Ada's calendar.
    assert "delivered 8; 0 will be retried; 0 failed" in done.stdout
    mail = received(sink, before)
    assert sorted(mail) == sorted([PAT, MARIA, KIM, LEE, ZOE])
    for family, meeting in ((KIM, kim), (LEE, lee), (ZOE, zoe)):
        [(method, event, text)] = mail[family]
        assert method == "REQUEST" and event is not None
        assert (str(event["UID"]), int(event["SEQUENCE"])) == (meeting["uid"], 1)
        old = datetime.fromisoformat(meeting["start"])
        assert event.start == old + timedelta(minutes=10)
        assert event.end == old + timedelta(minutes=25)
        assert "Ada Lovelace is running about 10 minutes late. Your meeting" in text
        assert f"{s.day:%A %d %B %Y}, " in text and "(Eastern Time)" in text
        assert "today" not in text
    for family in (PAT, MARIA):
        [(method, event, text)] = mail[family]
        assert (method, event) == (None, None)
        assert "running about 10 minutes late." in text and "stays booked for" in text
        assert "it may start up to about 10 minutes later than planned" in text
    assert SAM not in mail

    now = {m["id"]: m for m in s.meetings(teacher=ADA)}
    for meeting in (sam, pat, maria):
        assert (now[meeting["id"]]["start"], now[meeting["id"]]["sequence"]) == (
            meeting["start"],
            0,
        )
    # Off the grid, and past the window's end (17:00).
    assert datetime.fromisoformat(now[zoe["id"]]["start"]) == local(s, "16:55")
    assert datetime.fromisoformat(now[zoe["id"]]["end"]) == local(s, "17:10")
    assert {m["state"] for m in now.values()} == {"confirmed"}
    assert in_calendar(radicale_server, s, kim["uid"]) == [local(s, "15:55")]
    assert in_calendar(radicale_server, s, lee["uid"]) == [local(s, "16:10")]
    assert in_calendar(radicale_server, s, zoe["uid"]) == [local(s, "16:55")]
    assert in_calendar(radicale_server, s, maria["uid"]) == [local(s, "15:30")]
    assert in_calendar(radicale_server, s, sam["uid"]) == [local(s, "15:00")]

    shown = s.run("meetings", "show", str(kim["id"])).out
    [moved] = [line for line in shown.splitlines() if "late" in line]
    assert "staff" in moved.split() and "confirmed -> confirmed" in moved
    assert f"{s.day} 15:45 -> 15:55" in moved and "running 10 minutes late" in moved
    told = s.run("meetings", "show", str(maria["id"])).out
    assert "could not move (told by email)" in told

    # A second run moves again from the new times: ISO --from, no offset (school's zone).
    before = len(sink.received)
    again = late(s, "--teacher", ADA, "--minutes", "5", "--from", f"{s.day}T15:50")
    assert again.returncode == 0, again.stderr
    assert "3 meetings moved, 0 stay" in again.stdout
    mail = received(sink, before)
    assert sorted(mail) == sorted([KIM, LEE, ZOE])
    [(method, event, _)] = mail[KIM]
    assert method == "REQUEST" and event is not None
    assert (str(event["UID"]), int(event["SEQUENCE"])) == (kim["uid"], 2)
    assert event.start == local(s, "16:00")
    assert in_calendar(radicale_server, s, kim["uid"]) == [local(s, "16:00")]
    assert in_calendar(radicale_server, s, lee["uid"]) == [local(s, "16:15")]
    assert in_calendar(radicale_server, s, zoe["uid"]) == [local(s, "17:00")]
    history = s.run("meetings", "show", str(kim["id"])).out
    assert f"{s.day} 15:55 -> 16:00" in history


def test_bad_input_changes_nothing(school: tuple[LateSchool, SmtpSink]) -> None:
    s, sink = school
    kim = book(s, KIM, ADA, "15:45")
    before = len(sink.received)

    for args, code, said in (
        (["--teacher", ADA, "--minutes", "0"], 2, "--minutes: not a positive number of minutes"),
        (["--teacher", ADA, "--minutes", "ten"], 2, "--minutes: not a positive number"),
        (["--teacher", ADA, "--minutes", "100000"], 2, "more than 240: a teacher that late"),
        (["--teacher", ADA, "--minutes", "241"], 2, "cancel the evening (cancel --teacher"),
        (["--teacher", ADA, "--minutes", "10", "--from", "soon"], 2, "--from: not HH:MM"),
        (["--minutes", "10"], 2, "--teacher"),
        (["--teacher", "nobody@lincoln.example.org", "--minutes", "10"], 1, ""),
    ):
        done = late(s, *args)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert said in done.stderr and "Traceback" not in done.stderr
    # A teacher more than 4 hours late cancels the evening instead: said, exit 2.
    typo = late(s, "--teacher", ADA, "--minutes", "100000")
    assert "cancel the evening (cancel --teacher EMAIL --date DATE)" in typo.stderr
    helped = late(s, "--help")
    assert helped.returncode == 0
    assert "have not started yet" in helped.stdout and "1 to 240" in helped.stdout
    unknown = late(s, "--teacher", "nobody@lincoln.example.org", "--minutes", "10")
    assert unknown.stderr.strip() == (
        "ptm-sync: no teacher 'nobody@lincoln.example.org' in the roster"
    )
    # Nothing from 16:00 on: said, and nothing changes.
    nothing = late(s, "--teacher", ADA, "--minutes", "10", "--from", "16:00")
    assert nothing.returncode == 0
    assert f"no confirmed meetings of {ADA} from {s.day} 16:00 that day" in nothing.stdout
    assert len(sink.received) == before
    [after] = s.meetings(teacher=ADA)
    assert (after["start"], after["sequence"]) == (kim["start"], kim["sequence"])
    assert datetime.fromisoformat(after["start"]).astimezone(UTC) == local(s, "15:45")


def test_meetings_already_started_or_over_are_left_alone_and_not_told(
    school: tuple[LateSchool, SmtpSink], radicale_server: EmbeddedCalDAV
) -> None:
    s, sink = school
    sam = book(s, SAM, ADA, "15:00")  # over at 15:25
    pat = book(s, PAT, ADA, "15:15")  # in progress at 15:25
    kim = book(s, KIM, ADA, "15:30")
    lee = book(s, LEE, ADA, "15:45")
    before = len(sink.received)

    # At 15:25, "late from 14:00": only the meetings not started yet move.
    done = late(s, "--teacher", ADA, "--minutes", "10", "--from", "14:00", clock="15:25")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(" ", 3)[:3] for line in lines[:2]] == [
        ["moved:", "meeting", str(kim["id"])],
        ["moved:", "meeting", str(lee["id"])],
    ]
    assert (
        f"{ADA} runs 10 minutes late from {s.day} 14:00: 2 meetings moved, 0 stay; "
        "2 meetings already started, left as they are"
    ) in done.stdout
    assert len(lines) == 4  # the two moves, the summary, the delivery
    mail = received(sink, before)
    assert sorted(mail) == sorted([KIM, LEE])  # Sam and Pat are told nothing
    now = {m["id"]: m for m in s.meetings(teacher=ADA)}
    for meeting in (sam, pat):
        assert (now[meeting["id"]]["start"], now[meeting["id"]]["sequence"]) == (
            meeting["start"],
            0,
        )
    assert in_calendar(radicale_server, s, pat["uid"]) == [local(s, "15:15")]
    assert datetime.fromisoformat(now[kim["id"]]["start"]) == local(s, "15:40")

    # At 21:00 every meeting from 15:00 is over: nothing moves, nobody is emailed.
    before = len(sink.received)
    over = late(s, "--teacher", ADA, "--minutes", "10", "--from", "15:00", clock="21:00")
    assert over.returncode == 0, over.stderr
    assert over.stdout == (
        f"nothing to move: the 4 meetings of {ADA} from {s.day} 15:00 that day have all started\n"
    )
    assert len(sink.received) == before
    assert {m["id"]: m["start"] for m in s.meetings(teacher=ADA)} == {
        i: m["start"] for i, m in now.items()
    }


def test_a_move_never_passes_midnight_and_the_letters_name_the_day(
    night_school: tuple[LateSchool, SmtpSink], radicale_server: EmbeddedCalDAV
) -> None:
    s, sink = night_school
    zoe = book(s, ZOE, ADA, "23:15")
    kim = book(s, KIM, ADA, "23:30")  # the evening's last slot, to 23:45
    the_evening_before = datetime.combine(s.day - timedelta(days=1), time(18), tzinfo=TZ)
    before = len(sink.received)

    # Said the day before, for the evening: 15 minutes later, the last one ends at midnight.
    done = late(
        s, "--teacher", ADA, "--minutes", "15", "--from", f"{s.day}T23:00", when=the_evening_before
    )

    assert done.returncode == 0, done.stderr
    assert "2 meetings moved, 0 stay" in done.stdout
    assert done.stdout.splitlines()[1].endswith("(from 23:30-23:45 to 23:45-00:00)")
    mail = received(sink, before)
    [(method, _, text)] = mail[KIM]
    assert method == "REQUEST"
    # The letter is read the day before: no "today", the day in words.
    assert "Ada Lovelace is running about 15 minutes late. Your meeting" in text
    assert f"{s.day:%A %d %B %Y}, 23:45–00:00 (Eastern Time)" in text and "today" not in text

    # 45 minutes more would take the last meeting into the next day: it stays, and so does
    # the one before it; both families are told how much later it may start.
    before = len(sink.received)
    stuck = late(
        s, "--teacher", ADA, "--minutes", "45", "--from", f"{s.day}T23:00", when=the_evening_before
    )
    assert stuck.returncode == 0, stuck.stderr
    assert [line.split(" ", 3)[:3] for line in stuck.stdout.splitlines()[:2]] == [
        ["told:", "meeting", str(zoe["id"])],
        ["told:", "meeting", str(kim["id"])],
    ]
    assert "0 meetings moved, 2 stay (the families told)" in stuck.stdout
    mail = received(sink, before)
    assert sorted(mail) == sorted([ZOE, KIM])
    [(method, event, text)] = mail[KIM]
    assert (method, event) == (None, None)
    assert "Ada Lovelace is running about 45 minutes late." in text
    assert f"stays booked for {s.day:%A %d %B %Y}, 23:45–00:00 (Eastern Time)" in text
    assert "it may start up to about 45 minutes later than planned" in text
    assert "a little later" not in text and "today" not in text
    now = {m["id"]: datetime.fromisoformat(m["start"]) for m in s.meetings(teacher=ADA)}
    assert now == {zoe["id"]: local(s, "23:30"), kim["id"]: local(s, "23:45")}
    assert in_calendar(radicale_server, s, kim["uid"]) == [local(s, "23:45")]
