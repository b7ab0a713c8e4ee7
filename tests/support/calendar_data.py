"""iCalendar objects for tests, written the way real clients write them.

``ics(*blocks)`` wraps components in a VCALENDAR.  :data:`SCENARIOS` are the busy-time cases
that both the unit tests of ``ptm_sync.busy`` and the CalDAV integration tests use: each has
the object, the window and the busy spans expected in the school's zone :data:`SCHOOL_TZ`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

SCHOOL_TZ = ZoneInfo("Europe/Berlin")

#: 2027-03-28 is the last Sunday of March: Berlin moves from +01:00 to +02:00.
WINDOW = (datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 4, 10, tzinfo=UTC))

VTIMEZONE_BERLIN = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE"""

#: Outlook / Exchange write Windows names with a VTIMEZONE of their own.
VTIMEZONE_OUTLOOK_WEST_EUROPE = """BEGIN:VTIMEZONE
TZID:W. Europe Standard Time
BEGIN:STANDARD
DTSTART:16010101T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE"""


def ics(*blocks: str) -> str:
    """A VCALENDAR holding ``blocks`` (components as text), with CRLF line ends."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//ptm-sync tests//EN", *blocks]
    lines.append("END:VCALENDAR")
    return "\r\n".join("\n".join(lines).splitlines()) + "\r\n"


def vevent(uid: str, *lines: str) -> str:
    """A VEVENT with ``uid``, a DTSTAMP and the given property lines."""
    return "\n".join(
        ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20270101T000000Z", *lines, "END:VEVENT"]
    )


def utc(text: str) -> datetime:
    """``"2027-03-08T15:00"`` → that moment in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Scenario:
    """A calendar object and the busy spans it should give in :data:`WINDOW`."""

    name: str
    ics: str
    expected: tuple[tuple[str, str, bool], ...]  # (start UTC, end UTC, tentative)

    @property
    def expected_spans(self) -> list[tuple[datetime, datetime, bool]]:
        return [(utc(start), utc(end), tentative) for start, end, tentative in self.expected]


WEEKLY_ACROSS_DST = Scenario(
    "weekly across DST with EXDATE and a moved instance",
    ics(
        VTIMEZONE_BERLIN,
        vevent(
            "weekly-dst",
            "SUMMARY:Staff meeting",
            "DTSTART;TZID=Europe/Berlin:20270308T160000",
            "DTEND;TZID=Europe/Berlin:20270308T170000",
            "RRULE:FREQ=WEEKLY;COUNT=6",
            "EXDATE;TZID=Europe/Berlin:20270315T160000",
        ),
        vevent(
            "weekly-dst",
            "SUMMARY:Staff meeting (moved)",
            "RECURRENCE-ID;TZID=Europe/Berlin:20270322T160000",
            "DTSTART;TZID=Europe/Berlin:20270323T090000",
            "DTEND;TZID=Europe/Berlin:20270323T100000",
        ),
    ),
    (
        ("2027-03-08T15:00", "2027-03-08T16:00", False),
        ("2027-03-23T08:00", "2027-03-23T09:00", False),
        ("2027-03-29T14:00", "2027-03-29T15:00", False),  # 16:00 CEST, not 15:00 CEST
        ("2027-04-05T14:00", "2027-04-05T15:00", False),
    ),
)

ALL_DAY = Scenario(
    "all-day event",
    ics(
        vevent(
            "all-day",
            "SUMMARY:School trip",
            "DTSTART;VALUE=DATE:20270310",
            "DTEND;VALUE=DATE:20270311",
        )
    ),
    (("2027-03-09T23:00", "2027-03-10T23:00", False),),  # the local day in Berlin
)

TRANSPARENT = Scenario(
    "transparent event",
    ics(
        vevent(
            "transparent",
            "DTSTART;TZID=Europe/Berlin:20270310T100000",
            "DTEND;TZID=Europe/Berlin:20270310T110000",
            "TRANSP:TRANSPARENT",
        ),
        VTIMEZONE_BERLIN,
    ),
    (),
)

CANCELLED = Scenario(
    "cancelled event",
    ics(
        vevent(
            "cancelled",
            "DTSTART:20270310T100000Z",
            "DTEND:20270310T110000Z",
            "STATUS:CANCELLED",
        )
    ),
    (),
)

TENTATIVE = Scenario(
    "tentative event",
    ics(
        vevent(
            "tentative",
            "DTSTART:20270310T100000Z",
            "DTEND:20270310T110000Z",
            "STATUS:TENTATIVE",
        )
    ),
    (("2027-03-10T10:00", "2027-03-10T11:00", True),),
)

WINDOWS_TZID = Scenario(
    "Windows zone name without VTIMEZONE",
    ics(
        vevent(
            "windows-tzid",
            'DTSTART;TZID="Eastern Standard Time":20270316T090000',
            'DTEND;TZID="Eastern Standard Time":20270316T100000',
        )
    ),
    (("2027-03-16T13:00", "2027-03-16T14:00", False),),  # New York is on EDT since 03-14
)

FLOATING = Scenario(
    "floating time",
    ics(vevent("floating", "DTSTART:20270316T090000", "DTEND:20270316T100000")),
    (("2027-03-16T08:00", "2027-03-16T09:00", False),),  # 09:00 CET in the school's zone
)

SCENARIOS = (WEEKLY_ACROSS_DST, ALL_DAY, TRANSPARENT, CANCELLED, TENTATIVE, WINDOWS_TZID, FLOATING)
