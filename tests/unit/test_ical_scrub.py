"""Our copy of an event loses what names people when its meeting is purged (DESIGN §3)."""

from __future__ import annotations

from datetime import UTC, datetime

from icalendar import Calendar

from ptm_sync.core.ical.scrub import without_people

EVENT = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Lincoln//ptm-sync//EN
X-WR-TIMEZONE:America/New_York
BEGIN:VEVENT
UID:m1@lincoln.example.org
DTSTAMP:20270401T120000Z
DTSTART:20270410T190000Z
DTEND:20270410T191500Z
SEQUENCE:2
STATUS:CONFIRMED
SUMMARY:Conference: Ada Lovelace (Mia)
DESCRIPTION:Pat Johnson asks about maths
LOCATION:Room 101
ORGANIZER;CN=Lincoln High School:mailto:conferences@lincoln.example.org
ATTENDEE;CN=Pat Johnson;PARTSTAT=ACCEPTED:mailto:pat@example.net
ATTENDEE;CN=Chris Brown:mailto:chris@example.org
X-ALT-DESC;FMTTYPE=text/html:<p>Pat Johnson</p>
X-MICROSOFT-CDO-BUSYSTATUS:BUSY
BEGIN:VALARM
ACTION:DISPLAY
DESCRIPTION:Meeting with Pat Johnson
TRIGGER:-PT15M
END:VALARM
END:VEVENT
END:VCALENDAR
"""


def test_people_and_what_was_written_about_them_go_the_time_stays() -> None:
    scrubbed = without_people(EVENT)

    assert scrubbed is not None
    for gone in ("Pat", "pat@example.net", "Chris", "Mia", "Room 101", "X-MICROSOFT"):
        assert gone not in scrubbed
    event = Calendar.from_ical(scrubbed).events[0]
    assert str(event["UID"]) == "m1@lincoln.example.org"
    assert (event.start, event.end) == (
        datetime(2027, 4, 10, 19, 0, tzinfo=UTC),
        datetime(2027, 4, 10, 19, 15, tzinfo=UTC),
    )
    assert (int(event["SEQUENCE"]), str(event["STATUS"])) == (2, "CONFIRMED")
    assert "X-WR-TIMEZONE:America/New_York" in scrubbed  # the calendar's, not a person's


def test_text_that_is_no_calendar_is_left_to_the_caller() -> None:
    assert without_people("not a calendar") is None
    assert without_people(without_people(EVENT) or "") == without_people(EVENT)
