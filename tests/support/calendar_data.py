"""iCalendar objects for tests, written the way real clients write them.

``ics(*blocks)`` wraps components in a VCALENDAR.  :data:`SCENARIOS` are the busy-time cases
that both the unit tests of ``ptm_sync.core.ical.busy`` and the CalDAV integration tests use: each
has
the object, the window and the busy spans expected in the school's zone :data:`SCHOOL_TZ`.

:func:`sabre_invitation` and :func:`sabre_series_one_declined` are someone else's meetings
in the teacher's calendar as CalDAV scheduling servers (Nextcloud, sabre/dav) store them,
the teacher an ATTENDEE with her answer; :data:`DECLINED_SCENARIOS` are the cases built
from them, busy spans as expected when the teacher's address is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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


# --- invitations as CalDAV scheduling servers store them ---------------------------------

#: The teacher's address as the Xandikos principal's calendar-user-address-set gives it
#: (tests/support/caldav_servers.py), in the case Nextcloud writes it into invitations.
PRINCIPAL_ADDRESS = "Ada.Lovelace@School.test"
#: The teacher's roster email: another address of the same person.
ROSTER_EMAIL = "ada@school.test"
ORGANIZER = "grace.hopper@school.test"


def fold(line: str) -> str:
    """One content line folded as sabre/vobject writes it (RFC 5545 §3.1): physical lines
    of at most 75 octets, each continuation led by one space."""
    raw = line.encode("utf-8")
    parts = [raw[:75]]
    raw = raw[75:]
    while raw:
        parts.append(b" " + raw[:74])
        raw = raw[74:]
    return "\r\n".join(part.decode("utf-8", "ignore") for part in parts)


def _attendees(teacher: str, partstat: str, *, replied: bool, other: str = "ACCEPTED") -> list[str]:
    """The ORGANIZER and ATTENDEE lines of the teacher's copy of an invitation.  Once the
    teacher answered, sabre records the delivery of the REPLY (RFC 6638 §3.2.9) on the
    ORGANIZER: ``SCHEDULE-STATUS=1.1`` (sent by email)."""
    status = ";SCHEDULE-STATUS=1.1" if replied else ""
    rsvp = "FALSE" if replied else "TRUE"
    return [
        f"ORGANIZER;CN=Grace Hopper{status}:mailto:{ORGANIZER}",
        "ATTENDEE;CN=Grace Hopper;CUTYPE=INDIVIDUAL;PARTSTAT=ACCEPTED;ROLE=CHAIR:"
        f"mailto:{ORGANIZER}",
        # Folded inside "PARTSTAT=DECLINED", as sabre's 75-octet folding may fall.
        "ATTENDEE;CN=Ada Lovelace;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;"
        f"PARTSTAT={partstat};LANGUAGE=de;RSVP={rsvp}:mailto:{teacher}",
        f"ATTENDEE;CN=Alan Turing;CUTYPE=INDIVIDUAL;PARTSTAT={other};ROLE=REQ-PARTICIPANT;"
        "RSVP=TRUE:mailto:alan.turing@school.test",
    ]


def _stored(*events: list[str]) -> str:
    """A VCALENDAR as Nextcloud stores the teacher's copy: Nextcloud's PRODID, the Berlin
    VTIMEZONE, every line folded at 75 octets, CRLF."""
    lines = [
        "BEGIN:VCALENDAR",
        "PRODID:-//IDN nextcloud.com//Calendar app 4.7.16//EN",
        "CALSCALE:GREGORIAN",
        "VERSION:2.0",
    ]
    for event in events:
        lines += ["BEGIN:VEVENT", *event, "END:VEVENT"]
    lines += [*VTIMEZONE_BERLIN.splitlines(), "END:VCALENDAR"]
    return "".join(fold(line) + "\r\n" for line in lines)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(SCHOOL_TZ).strftime("%Y%m%dT%H%M%S")


def sabre_invitation(
    uid: str,
    start: datetime,
    end: datetime,
    *,
    partstat: str,
    teacher: str = PRINCIPAL_ADDRESS,
    other: str = "ACCEPTED",
) -> str:
    """Someone else's meeting in the teacher's calendar as Nextcloud/sabre store it
    (RFC 6638 §3.2: the organizer's event, the teacher an ATTENDEE with ``partstat``;
    ``other``: another attendee's answer).  Times in Europe/Berlin."""
    return _stored(
        [
            "CREATED:20270301T081500Z",
            "DTSTAMP:20270302T091000Z",
            "LAST-MODIFIED:20270302T091000Z",
            "SEQUENCE:1",
            f"UID:{uid}",
            f"DTSTART;TZID=Europe/Berlin:{_stamp(start)}",
            f"DTEND;TZID=Europe/Berlin:{_stamp(end)}",
            "STATUS:CONFIRMED",
            "SUMMARY:Fachkonferenz Mathematik",
            "LOCATION:Raum 204",
            *_attendees(teacher, partstat, replied=partstat != "NEEDS-ACTION", other=other),
        ]
    )


def sabre_series_one_declined(
    uid: str, first: datetime, *, declined: int, teacher: str = PRINCIPAL_ADDRESS
) -> str:
    """A weekly series of four one-hour meetings from ``first`` that the teacher accepted,
    but for occurrence number ``declined`` (from 0), which she declined alone: as sabre
    stores it, an overridden instance (RECURRENCE-ID, RFC 5545 §3.8.4.4) carrying her
    ``PARTSTAT=DECLINED`` (RFC 6638 §3.2.2.1)."""
    hour = timedelta(hours=1)
    instance = first + timedelta(weeks=declined)
    common = ["DTSTAMP:20270302T091000Z", "SEQUENCE:1", f"UID:{uid}", "SUMMARY:Jour fixe"]
    master = [
        *common,
        f"DTSTART;TZID=Europe/Berlin:{_stamp(first)}",
        f"DTEND;TZID=Europe/Berlin:{_stamp(first + hour)}",
        "RRULE:FREQ=WEEKLY;COUNT=4",
        *_attendees(teacher, "ACCEPTED", replied=True),
    ]
    override = [
        *common,
        f"RECURRENCE-ID;TZID=Europe/Berlin:{_stamp(instance)}",
        f"DTSTART;TZID=Europe/Berlin:{_stamp(instance)}",
        f"DTEND;TZID=Europe/Berlin:{_stamp(instance + hour)}",
        *_attendees(teacher, "DECLINED", replied=True),
    ]
    return _stored(master, override)


def _berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SCHOOL_TZ)


DECLINED_INVITATION = Scenario(
    "an invitation the teacher declined",
    sabre_invitation(
        "declined-1@cloud.school.test",
        _berlin("2027-03-10T14:00"),
        _berlin("2027-03-10T15:30"),
        partstat="DECLINED",
    ),
    (),
)

SERIES_ONE_DECLINED = Scenario(
    "a series with one occurrence declined",
    sabre_series_one_declined(
        "series-1@cloud.school.test", _berlin("2027-03-09T10:00"), declined=1
    ),
    (
        ("2027-03-09T09:00", "2027-03-09T10:00", False),
        ("2027-03-23T09:00", "2027-03-23T10:00", False),
        ("2027-03-30T08:00", "2027-03-30T09:00", False),  # CEST from 03-28
    ),
)

DECLINED_BY_ANOTHER = Scenario(
    "an invitation another attendee declined",
    sabre_invitation(
        "other-declined@cloud.school.test",
        _berlin("2027-03-11T14:00"),
        _berlin("2027-03-11T15:30"),
        partstat="ACCEPTED",
        other="DECLINED",
    ),
    (("2027-03-11T13:00", "2027-03-11T14:30", False),),
)

UNANSWERED_INVITATION = Scenario(
    "an invitation not answered yet",
    sabre_invitation(
        "unanswered@cloud.school.test",
        _berlin("2027-03-12T14:00"),
        _berlin("2027-03-12T15:30"),
        partstat="NEEDS-ACTION",
    ),
    (("2027-03-12T13:00", "2027-03-12T14:30", True),),
)

#: Invitations with a declined attendee, busy spans as expected when the teacher's address
#: is known.  (:data:`UNANSWERED_INVITATION` is busy either way, tentative only when it is.)
DECLINED_SCENARIOS = (DECLINED_INVITATION, SERIES_ONE_DECLINED, DECLINED_BY_ANOTHER)


def vevents_of(calendar: str) -> str:
    """The VEVENT blocks of a VCALENDAR's text, as they are (to publish in a feed)."""
    out: list[str] = []
    inside = False
    for line in calendar.splitlines(keepends=True):
        inside = inside or line.startswith("BEGIN:VEVENT")
        if inside:
            out.append(line)
        if line.startswith("END:VEVENT"):
            inside = False
    return "".join(out)
