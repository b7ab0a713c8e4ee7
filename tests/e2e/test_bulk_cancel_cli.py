"""`cancel --teacher EMAIL --date DATE` (DESIGN §3 "Bulk disruption", §7) through the
command line, on Radicale and an aiosmtpd sink.

Ada Lovelace is ill on the period's first evening.  Every meeting of hers that day is
cancelled (a CANCEL per meeting and guardian, her events removed); each family is proposed
a replacement time on the period's second evening where Ada is free and the admission rule
allows it (a new invitation), else put on her waiting list; and each guardian gets ONE
plain notice about all of their meetings that day: Pat, whose two children both see Ada,
gets one, naming both.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from icalendar import Event

from tests.support.caldav_servers import EmbeddedCalDAV, make_calendar, put_ics
from tests.support.calendar_data import ics, vevent
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

ADA = "ada@lincoln.example.org"
PAT, SAM = "pat@example.net", "sam@example.com"
CHRIS, ALEX = "chris.brown@example.org", "alex.brown@example.org"
FAMILIES: list[Family] = [
    ("S1", "Mia Johnson", PAT, "Pat Johnson", [0]),
    ("S2", "Leo Johnson", PAT, "Pat Johnson", [0]),
    ("S3", "Ava Smith", SAM, "Sam Smith", [0]),
    ("S5", "Zoe Brown", CHRIS, "Chris Brown", [0]),
    ("S5", "Zoe Brown", ALEX, "Alex Brown", [0]),
]
ILL = "Ms Lovelace is ill"


class TwoEvenings(School):
    """The test school with a second evening, the day after the first, 15:00–17:00, on
    ``database`` ("" for its SQLite file)."""

    database: str = ""

    @property
    def second(self) -> Any:
        return self.day + timedelta(days=1)

    def write(self) -> None:
        super().write()
        one = f'windows = ["{self.day}T15:00/17:00"]'
        two = f'windows = ["{self.day}T15:00/17:00", "{self.second}T15:00/17:00"]'
        text = self.config.read_text()
        assert one in text
        text = text.replace(one, two)
        if self.database:
            text = text.replace('url = "sqlite:///ptm.db"', f'url = "{self.database}"')
        self.config.write_text(text)


def stamp(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def school(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    radicale_server: EmbeddedCalDAV,
    smtp_sink: Callable[..., SmtpSink],
) -> tuple[TwoEvenings, SmtpSink]:
    sink = smtp_sink(mode="plain")
    s = TwoEvenings(tmp_path, radicale_server, sink.port, families=list(FAMILIES))
    if request.param == "postgresql":
        s.database = str(request.getfixturevalue("postgres_url"))
    # On the second evening Ada is busy from 15:30: two slots stay free there.
    url = make_calendar(radicale_server)
    busy_from = datetime.combine(s.second, time(15, 30), tzinfo=TZ)
    put_ics(
        radicale_server,
        url,
        ics(
            vevent(
                "parents-evening-elsewhere",
                f"DTSTART:{stamp(busy_from)}",
                f"DTEND:{stamp(busy_from + timedelta(minutes=90))}",
                "SUMMARY:Year 9 evening",
            )
        ),
    )
    s.calendars[ADA] = url
    s.setup()
    return s, sink


def book(s: School, guardian: str, clock: str, *student: str) -> dict[str, Any]:
    args = ["book", "--guardian", guardian, "--teacher", ADA, "--start", f"{s.day}T{clock}"]
    done = s.run(*args, *(("--student", student[0]) if student else ()))
    meeting_id = int(done.out.split("meeting ", 1)[1].split()[0])
    return next(m for m in s.meetings() if m["id"] == meeting_id)


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


def test_a_cancelled_day_sends_cancels_one_notice_per_family_and_replacement_times(
    school: tuple[TwoEvenings, SmtpSink], radicale_server: EmbeddedCalDAV
) -> None:
    s, sink = school
    mia = book(s, PAT, "15:00", "S1")
    leo = book(s, PAT, "15:30", "S2")
    ava = book(s, SAM, "15:45")
    zoe = book(s, CHRIS, "16:00")  # Zoe's guardians meet Ada together
    assert sorted(zoe["guardians"]) == sorted([CHRIS, ALEX])
    ours = {m["uid"] for m in (mia, leo, ava, zoe)}
    assert ours <= {str(e["UID"]) for e in teacher_events(radicale_server, s.calendars[ADA])}
    before = len(sink.received)

    done = s.run("cancel", "--teacher", ADA, "--date", str(s.day), "--reason", ILL)

    second = f"{s.second}"
    assert f"cancelled 4 meetings of {ADA} on {s.day}" in done.out
    assert (
        "2 replacement times proposed, 2 on the waiting list; 4 guardians sent the day's notice"
        in done.out
    )
    now = {m["id"]: m for m in s.meetings(teacher=ADA)}
    assert [now[m["id"]]["state"] for m in (mia, leo, ava, zoe)] == ["cancelled"] * 4
    proposed = sorted(
        (m for m in now.values() if m["state"] == "proposed"), key=lambda m: m["start"]
    )
    # On the second evening only: the first evening's freed times go to nobody.
    assert [(m["guardian"], m["students"]) for m in proposed] == [(PAT, ["S1"]), (SAM, ["S3"])]
    starts = [datetime.fromisoformat(m["start"]) for m in proposed]
    assert starts == [
        datetime.combine(s.second, time(15, 0), tzinfo=TZ),
        datetime.combine(s.second, time(15, 15), tzinfo=TZ),
    ]
    lines = done.out.splitlines()
    assert lines[:8] == [
        f"cancelled: meeting {mia['id']} {s.day} 15:00-15:15 {ADA} with {PAT} (S1): cancelled",
        f"  proposed instead: meeting {proposed[0]['id']} {second} 15:00-15:15 {ADA} with "
        f"{PAT} (S1): proposed",
        f"cancelled: meeting {leo['id']} {s.day} 15:30-15:45 {ADA} with {PAT} (S2): cancelled",
        "  no other time free: the family is on the teacher's waiting list",
        f"cancelled: meeting {ava['id']} {s.day} 15:45-16:00 {ADA} with {SAM} (S3): cancelled",
        f"  proposed instead: meeting {proposed[1]['id']} {second} 15:15-15:30 {ADA} with "
        f"{SAM} (S3): proposed",
        f"cancelled: meeting {zoe['id']} {s.day} 16:00-16:15 {ADA} with {CHRIS}, {ALEX} (S5): "
        "cancelled",
        "  no other time free: the family is on the teacher's waiting list",
    ]
    waiting = s.run("waitlist", "--format", "json").json()
    assert [(w["guardian"], w["students"], w["position"]) for w in waiting] == [
        (PAT, ["S2"], 1),
        (CHRIS, ["S5"], 2),
    ]

    mail = received(sink, before)
    assert sorted(mail) == sorted([PAT, SAM, CHRIS, ALEX])
    for guardian, cancelled in ((PAT, [mia, leo]), (SAM, [ava]), (CHRIS, [zoe]), (ALEX, [zoe])):
        cancels = [
            (str(e["UID"]), int(e["SEQUENCE"])) for m, e, _ in mail[guardian] if m == "CANCEL" and e
        ]
        assert sorted(cancels) == sorted((c["uid"], c["sequence"] + 1) for c in cancelled)
        notices = [text for m, _, text in mail[guardian] if m is None]
        assert len(notices) == 1, (guardian, notices)  # one notice, never a "waitlisted" email
        assert f"Ada Lovelace cannot meet families on {s.day:%A %d %B %Y} ({ILL})" in notices[0]
    for guardian, new in ((PAT, proposed[0]), (SAM, proposed[1])):
        [(_, event, text)] = [x for x in mail[guardian] if x[0] == "REQUEST"]
        assert event is not None and str(event["UID"]) == new["uid"]
        assert (int(event["SEQUENCE"]), str(event["STATUS"])) == (0, "TENTATIVE")
        assert event.start == datetime.fromisoformat(new["start"])
        assert text.startswith(f"{ILL}. We have reserved another time")
    assert not [x for x in mail[CHRIS] + mail[ALEX] if x[0] == "REQUEST"]

    [pat_notice] = [text for m, _, text in mail[PAT] if m is None]
    assert "your meetings that day are cancelled:" in pat_notice
    assert "- 15:00–15:15 (Eastern Time), about Mia" in pat_notice
    assert "- 15:30–15:45 (Eastern Time), about Leo" in pat_notice
    assert f"About Mia: we have reserved {s.second:%A %d %B %Y}, 15:00–15:15" in pat_notice
    assert "About Leo: no other time with Ada Lovelace is free for you now" in pat_notice
    assert "waiting list" in pat_notice
    [sam_notice] = [text for m, _, text in mail[SAM] if m is None]
    assert (
        "about Ava" in sam_notice and "Mia" not in sam_notice and "waiting list" not in sam_notice
    )

    left = {str(e["UID"]) for e in teacher_events(radicale_server, s.calendars[ADA])}
    assert not ours & left and "parents-evening-elsewhere" in left


def test_a_family_that_left_the_roster_is_proposed_nothing_and_waits_for_nothing(
    school: tuple[TwoEvenings, SmtpSink],
) -> None:
    """The review's finding: after Sam's family was retired by `roster import --replace`, a
    cancelled day proposed Sam a replacement time (a REQUEST).  Sam's kept meeting is
    cancelled (a CANCEL, and the notice saying so, with the office's contact); the
    replacement and the waiting list are for who stays."""
    s, sink = school
    ava = book(s, SAM, "15:00")
    mia = book(s, PAT, "15:30", "S1")
    rows = ["student_id,student_name,guardian_email,guardian_name,teacher_email"]
    rows += [f"{sid},{name},{g},{gn},{ADA}" for sid, name, g, gn, _ in FAMILIES if g != SAM]
    (s.folder / "families-2.csv").write_text("\n".join(rows) + "\n")
    s.run("roster", "import", "--replace", str(s.folder / "families-2.csv"))
    assert [m["id"] for m in s.run("meetings", "--retired", "--format", "json").json()] == [
        ava["id"]
    ]
    before = len(sink.received)

    done = s.run("cancel", "--teacher", ADA, "--date", str(s.day), "--reason", ILL)

    lines = done.out.splitlines()
    assert lines[:2] == [
        f"cancelled: meeting {ava['id']} {s.day} 15:00-15:15 {ADA} with {SAM} (S3): cancelled",
        "  left the roster (roster import --replace): no replacement, no waiting list",
    ]
    assert (
        "1 replacement time proposed, 0 on the waiting list; 2 guardians sent the day's notice"
        in done.out
    )
    theirs = [m for m in s.meetings(teacher=ADA) if m["guardian"] == SAM]
    assert [(m["id"], m["state"]) for m in theirs] == [(ava["id"], "cancelled")]
    assert [m["guardian"] for m in s.meetings(state="proposed")] == [PAT]
    assert s.run("waitlist", "--format", "json").json() == []

    mail = received(sink, before)
    assert sorted(mail) == sorted([PAT, SAM])
    # A CANCEL of the kept meeting and the day's notice: no REQUEST.
    assert sorted((m or "", str(e["UID"]) if e else "") for m, e, _ in mail[SAM]) == [
        ("", ""),
        ("CANCEL", ava["uid"]),
    ]
    [notice] = [text for m, _, text in mail[SAM] if m is None]
    assert f"Ada Lovelace cannot meet families on {s.day:%A %d %B %Y} ({ILL})" in notice
    assert "your meeting that day is cancelled:" in notice
    assert "Questions: office@lincoln.example.org" in notice
    for said in ("What happens next", "reserved", "waiting list", "invitation", "book+"):
        assert said not in notice, said
    assert [m for m, _, _ in mail[PAT]].count("REQUEST") == 1
    [pat_notice] = [text for m, _, text in mail[PAT] if m is None]
    assert f"About Mia: we have reserved {s.second:%A %d %B %Y}, 15:00–15:15" in pat_notice
    assert mia["id"] not in {m["id"] for m in s.meetings(state="confirmed")}
