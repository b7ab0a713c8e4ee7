"""`nudge` through the command line (DESIGN §7, issue 16 item 6), on Radicale and aiosmtpd:
the households that have not booked are emailed how to book, at most once a day.

Staff book three meetings by phone; `invite` proposes the rest; Sam's proposal is then
cancelled.  The four households still unbooked each get one email (the Browns, two
guardians of one child, one email to both) naming only the teachers they still need: the
invitation waiting for its answer, the teacher's booking address, the period's page and
the office.  A second run the same day sends nothing; the next day they are nudged again,
except whoever booked meanwhile.  `--dry-run` lists them and sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import at, ptm_sync
from tests.support.mailservers import ReceivedMail, SmtpSink
from tests.support.school import FAMILIES, TEACHERS, TZ, School, evening, parse, plain_body

pytestmark = [pytest.mark.radicale, pytest.mark.slow]

ADA, ALAN, GRACE = (t[0] for t in TEACHERS)
PAT, SAM, MARIA = "pat@example.net", "sam@example.com", "maria@example.org"
CHRIS, ALEX = "chris.brown@example.org", "alex.brown@example.org"
BROWNS = [
    ("S5", "Zoe Brown", CHRIS, "Chris Brown", [0]),
    ("S5", "Zoe Brown", ALEX, "Alex Brown", [0]),
]
PAGE = "https://conferences.lincoln.example.org/periods/spring"
#: The commands' clock: noon today in the school's zone (the evening is 10 days ahead).
TODAY = datetime.now(TZ).replace(hour=12, minute=0, second=0, microsecond=0)


def closes(day: date) -> date:
    """The period's booking deadline: 17:00 (school's zone) two days before the evening."""
    return day - timedelta(days=2)


def book(s: School, guardian: str, teacher: str, clock: str) -> int:
    done = s.run(
        "book", "--guardian", guardian, "--teacher", teacher, "--start", f"{s.day}T{clock}"
    )
    return int(done.out.split("meeting ", 1)[1].split()[0])


def nudge(s: School, *args: str, when: datetime = TODAY) -> str:
    done = ptm_sync(s.config, "nudge", *args, env=at(when))
    assert done.returncode == 0, done.stderr
    return done.stdout


def by_household(mails: list[ReceivedMail]) -> dict[tuple[str, ...], str]:
    """The plain text of each email, by its sorted recipients; each household once."""
    found = {tuple(sorted(m.rcpt_tos)): plain_body(m.raw) for m in mails}
    assert len(found) == len(mails), "a household got two emails"
    return found


@pytest.fixture
def school(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> tuple[School, SmtpSink]:
    sink = smtp_sink(mode="plain")
    day = evening()
    s = School(
        tmp_path,
        radicale_server,
        sink.port,
        day=day,
        families=[*FAMILIES, *BROWNS],
        extra_config=f"booking_closes = {closes(day)}T17:00:00\n"
        f'\n[web]\npublic_url = "{PAGE.rsplit("/periods", 1)[0]}"\n',
    )
    s.setup()
    book(s, PAT, ADA, "15:00")  # Mia's meeting with Ada
    book(s, PAT, GRACE, "15:30")  # Leo's with Grace
    book(s, MARIA, ALAN, "15:00")
    s.run("invite")  # proposes Mia's Alan, Ava's Ada, Noah's Grace, Zoe's Ada
    [sams] = [m for m in s.meetings() if m["guardian"] == SAM]
    s.run("cancel", str(sams["id"]))  # Sam has no invitation waiting any more
    return s, sink


def test_nudge_emails_each_unbooked_household_once_a_day_how_to_book(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    keys = {r["teacher"]: r["teacher_key"] for r in s.run("slots", "--format", "json").json()}
    proposed = {
        m["guardian"]: datetime.fromisoformat(m["start"]) for m in s.meetings(state="proposed")
    }
    before = len(sink.received)

    out = nudge(s)

    assert out.splitlines()[0] == "4 sent, 0 already nudged today"
    mails = by_household(sink.received[before:])
    assert sorted(mails) == [(ALEX, CHRIS), (MARIA,), (PAT,), (SAM,)]
    # Pat booked Ada and Grace: only Alan, about Mia, with the invitation still waiting.
    pat = mails[(PAT,)]
    alan_at = proposed[PAT].astimezone(TZ)
    assert (
        f"- Alan Turing about Mia Johnson: the invitation for {alan_at:%A %d %B %Y, %H:%M}" in pat
    )
    assert f"booking address book+{keys[ALAN]}@lincoln.example.org" in pat
    assert "Ada Lovelace" not in pat and "Grace Hopper" not in pat
    # Sam's proposal was cancelled: the booking address, no invitation.
    sam = mails[(SAM,)]
    assert f"- Ada Lovelace about Ava Smith: booking address book+{keys[ADA]}@" in sam
    assert "invitation for" not in sam
    assert "Grace Hopper about Noah Garcia: the invitation for" in mails[(MARIA,)]
    # The Browns: one email to both guardians, both named.
    browns = mails[(ALEX, CHRIS)]
    assert browns.startswith("Dear Alex Brown and Chris Brown,")
    assert "Ada Lovelace about Zoe Brown" in browns
    for text in mails.values():
        assert f"Free times: {PAGE}" in text and "office@lincoln.example.org" in text
        # The deadline in the school's zone, the zone named in words.
        assert f"Booking closes {closes(s.day):%A %d %B %Y}, 17:00 (Eastern Time)." in text
    raw = next(m.raw for m in sink.received[before:] if CHRIS in m.rcpt_tos)
    assert str(parse(raw)["To"]) == f"{ALEX}, {CHRIS}"
    assert str(parse(raw)["Subject"]) == "Please book: Spring conferences at Lincoln High School"

    # Again the same day: nothing.
    assert nudge(s).splitlines() == ["0 sent, 4 already nudged today"]
    assert len(sink.received) == before + 4

    # The next day they are nudged again, except Pat, who booked Alan meanwhile.
    book(s, PAT, ALAN, "16:30")
    after = len(sink.received)
    assert (
        nudge(s, when=TODAY + timedelta(days=1)).splitlines()[0] == "3 sent, 0 already nudged today"
    )
    assert sorted(by_household(sink.received[after:])) == [(ALEX, CHRIS), (MARIA,), (SAM,)]


def test_a_dry_run_lists_who_would_be_emailed_and_sends_nothing(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    before = len(sink.received)
    queued = s.run("outbox", "--format", "json").json()

    out = nudge(s, "--dry-run").splitlines()

    assert out == [
        f"spring: {ALEX}, {CHRIS}: {ADA}",
        f"spring: {MARIA}: {GRACE}",
        f"spring: {PAT}: {ALAN}",
        f"spring: {SAM}: {ADA}",
        "(dry run: nothing sent; 0 already nudged today)",
    ]
    assert len(sink.received) == before
    assert s.run("outbox", "--format", "json").json() == queued
    # Nothing was recorded either: the real run still sends all four; a dry run after it
    # lists nobody.
    assert nudge(s).splitlines()[0] == "4 sent, 0 already nudged today"
    assert nudge(s, "--dry-run").splitlines() == ["(dry run: nothing sent; 4 already nudged today)"]


def test_nudge_after_booking_closed_says_so_and_sends_nothing(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    before = len(sink.received)
    after_the_evening = datetime.combine(s.day + timedelta(days=1), TODAY.timetz())

    assert (
        nudge(s, when=after_the_evening) == "no period is open for booking now: nobody to nudge\n"
    )
    named = ptm_sync(s.config, "nudge", "--period", "spring", env=at(after_the_evening))
    assert named.returncode == 1
    assert named.stderr.strip() == "ptm-sync: booking for spring is over: nobody to nudge"
    assert len(sink.received) == before
