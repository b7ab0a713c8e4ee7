"""The inputs of ``shared/cases`` and a booking address, through the command line.

On the embedded Radicale and SMTP sink, as a school runs it: the calendar object of
``tzid-z-on-utc-value.ics`` in a teacher's calendar, the reply of
``reply-folded-inside-utf8.eml`` through ``mail deliver``, and a parent's invitation to a
teacher's booking address, granted and then refused when another family asks for the
same time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import caldav
import pytest

from ptm_sync.demo import organizers, parents
from tests.support.caldav_servers import EmbeddedCalDAV, make_calendar
from tests.support.cases import CASES, case_bytes
from tests.support.mailservers import SmtpSink
from tests.support.school import TEACHERS, TZ, School, calendar_part, now_utc, parse

pytestmark = [pytest.mark.radicale, pytest.mark.slow]


def method_of(raw: bytes) -> str | None:
    """The iTIP method of an email's calendar part; None for a plain email."""
    for part in parse(raw).walk():
        if part.get_content_type() == "text/calendar":
            return str(part.get_param("method") or "").upper() or None
    return None


@pytest.fixture
def sink(smtp_sink: Callable[..., SmtpSink]) -> SmtpSink:
    return smtp_sink(mode="plain")


@pytest.fixture
def school(tmp_path: Path, radicale_server: EmbeddedCalDAV, sink: SmtpSink) -> Iterator[School]:
    s = School(tmp_path, radicale_server, sink.port)
    s.setup()
    yield s


def test_a_utc_value_with_a_tzid_is_busy_at_its_utc_time(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, sink: SmtpSink
) -> None:
    """cases/tzid-z-on-utc-value.ics: 20:00Z daily is 16:00-17:00 in New York in March."""
    ada = make_calendar(radicale_server)
    ics = (CASES / "tzid-z-on-utc-value.ics").read_bytes()
    client = caldav.DAVClient(
        radicale_server.url,
        username=radicale_server.username,
        password=radicale_server.password or "",
    )
    client.calendar(url=ada).save_event(ics.decode("utf-8"))
    s = School(tmp_path, radicale_server, sink.port, calendars={TEACHERS[0][0]: ada})
    s.day = datetime(2027, 3, 16).date()
    s.setup()

    slots = s.run("slots", "--teacher", TEACHERS[0][0], "--format", "json").json()
    starts = {x["start"][11:16] for x in slots}

    assert {"16:00", "16:15", "16:30", "16:45"}.isdisjoint(starts)
    assert {"15:00", "15:45"} <= starts


def test_a_reply_folded_inside_a_utf8_character_keeps_the_parents_note(
    school: School, sink: SmtpSink
) -> None:
    """cases/reply-folded-inside-utf8.eml through `mail deliver`."""
    school.run("invite")
    invitation = next(m.raw for m in sink.received if method_of(m.raw) == "REQUEST")
    event = calendar_part(invitation).events[0]
    organizer = str(event["ORGANIZER"]).removeprefix("mailto:").removeprefix("MAILTO:")
    attendee = str(event.attendees[0]).removeprefix("mailto:").removeprefix("MAILTO:")
    raw = case_bytes(
        "reply-folded-inside-utf8.eml",
        uid=str(event["UID"]),
        organizer=organizer,
        attendee=attendee,
    )

    out = school.run("mail", "deliver", stdin=raw).out.strip()

    assert out == "applied (declined)"
    [meeting] = [m for m in school.meetings() if m["uid"] == str(event["UID"])]
    assert meeting["state"] == "declined"
    with sqlite3.connect(school.folder / "ptm.db") as db:
        [reason] = db.execute(
            "SELECT reason FROM meeting_history WHERE to_state = 'declined'"
        ).fetchone()
    # Recorded exactly as the parent wrote it (RFC 5545 §3.1: unfolded, then decoded).
    note = (
        "Hélas........... Désolé, nous sommes en déplacement ce soir-là ; pourriez-vous "
        "proposer un créneau plus tôt ? Merci beaucoup"
    )
    assert reason.endswith(f": {note}")


def test_a_parent_books_through_the_booking_address_first_come_first_served(
    school: School, sink: SmtpSink
) -> None:
    start = datetime.combine(school.day, datetime.min.time(), TZ).replace(hour=16)
    now = now_utc()

    def ask(parent: str, name: str) -> str:
        booking = organizers.Booking(
            parent=parent,
            parent_name=name,
            booking_address="book+ada@lincoln.example.org",
            start=start,
            end=start + timedelta(minutes=15),
        )
        raw = organizers.request("outlook", booking, tz=TZ, now=now)
        return school.run("mail", "deliver", stdin=raw).out.strip()

    assert ask("sam@example.com", "Sam Smith") == "applied (booked)"
    assert ask("pat@example.net", "Pat Johnson") == (
        "applied (request declined: the teacher is not free then)"
    )
    school.run("outbox", "flush")
    replies = {
        parse(m.raw)["To"].addresses[0].addr_spec: calendar_part(m.raw)
        for m in sink.received
        if method_of(m.raw) == "REPLY"
    }
    assert replies["sam@example.com"].events[0].attendees[0].params["PARTSTAT"] == "ACCEPTED"
    declined = replies["pat@example.net"].events[0]
    assert declined.attendees[0].params["PARTSTAT"] == "DECLINED"
    assert "These times are free" in str(declined["COMMENT"])
    [booked] = [m for m in school.meetings() if m["state"] == "confirmed"]
    assert booked["guardian"] == "sam@example.com" and booked["start"].startswith(
        start.isoformat()[:16]
    )


def _ask(school: School, parent: str, start: datetime, minutes: int = 15) -> str:
    booking = organizers.Booking(
        parent=parent,
        parent_name=parent.split("@")[0].title(),
        booking_address="book+ada@lincoln.example.org",
        start=start,
        end=start + timedelta(minutes=minutes),
    )
    raw = organizers.request("gmail", booking, tz=TZ, now=now_utc())
    return school.run("mail", "deliver", stdin=raw).out.strip()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("stranger", "quarantined (stranger)"),
        ("off grid", "applied (request declined: meetings are 15 minutes long and start at the "
                     "listed times)"),
        ("too long", "applied (request declined: meetings are 15 minutes long)"),
        ("not their teacher", "applied (request declined: only the families of this teacher's "
                              "students can book here)"),
    ],
)  # fmt: skip
def test_a_booking_address_refuses_what_breaks_a_rule(
    school: School, sink: SmtpSink, case: str, expected: str
) -> None:
    start = datetime.combine(school.day, datetime.min.time(), TZ).replace(hour=16)
    parent, minutes = "sam@example.com", 15
    if case == "stranger":
        parent = "someone@example.org"
    elif case == "off grid":
        start += timedelta(minutes=5)
    elif case == "too long":
        minutes = 45
    else:
        parent = "maria@example.org"  # Noah is not in Ada's classes
    assert _ask(school, parent, start, minutes) == expected
    assert [m for m in school.meetings() if m["state"] == "confirmed"] == []
    quarantined = school.run("quarantine", "--format", "json").json()
    assert [q["reason"] for q in quarantined] == (["stranger"] if case == "stranger" else [])


def test_a_booking_address_refuses_after_booking_closed(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, sink: SmtpSink
) -> None:
    s = School(
        tmp_path, radicale_server, sink.port, extra_config="booking_closes = 2020-01-06T17:00:00"
    )
    s.setup()
    start = datetime.combine(s.day, datetime.min.time(), TZ).replace(hour=16)
    assert _ask(s, "sam@example.com", start) == "applied (request declined: booking has closed)"


def test_a_stale_decline_after_a_granted_counter_changes_nothing(
    school: School, sink: SmtpSink
) -> None:
    school.run("invite")
    first = next(m.raw for m in sink.received if method_of(m.raw) == "REQUEST")
    offered = calendar_part(first).events[0]
    uid = str(offered["UID"])
    later = offered.DTSTART + timedelta(hours=1)
    stale = parents.reply("outlook", first, "DECLINED", tz=TZ, now=now_utc())
    counter = parents.propose_new_time(
        first, later, later + timedelta(minutes=15), tz=TZ, now=now_utc() + timedelta(minutes=1)
    )
    assert school.run("mail", "deliver", stdin=counter).out.strip() == "applied (counter accepted)"

    out = school.run("mail", "deliver", stdin=stale).out.strip()

    assert out.startswith("stale (answers an older version of the meeting")
    [meeting] = [m for m in school.meetings() if m["uid"] == uid]
    assert (meeting["state"], meeting["sequence"]) == ("confirmed", 1)
    assert meeting["start"].startswith(later.isoformat()[:16])


def test_separated_parents_get_a_meeting_each_from_invite(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, sink: SmtpSink
) -> None:
    families = [("S9", "Kim Lee", "a.lee@example.org", "Ari Lee", [0]),
                ("S9", "Kim Lee", "b.lee@example.org", "Bo Lee", [0])]  # fmt: skip
    s = School(tmp_path, radicale_server, sink.port, families=families)
    s.write()
    rows = (s.folder / "families.csv").read_text().splitlines()
    rows = [rows[0] + ",meeting_mode"] + [r + ",separate" for r in rows[1:]]
    (s.folder / "families.csv").write_text("\n".join(rows) + "\n")
    s.run("roster", "import", str(s.folder / "teachers.csv"), str(s.folder / "families.csv"))
    s.run("sync")

    s.run("invite")

    meetings = s.meetings()
    assert sorted(m["guardians"] == [m["guardian"]] for m in meetings) == [True, True]
    assert sorted(m["guardian"] for m in meetings) == ["a.lee@example.org", "b.lee@example.org"]
    assert meetings[0]["start"] != meetings[1]["start"]
    invitations = [m for m in sink.received if method_of(m.raw) == "REQUEST"]
    assert sorted(parse(m.raw)["To"].addresses[0].addr_spec for m in invitations) == [
        "a.lee@example.org",
        "b.lee@example.org",
    ]
