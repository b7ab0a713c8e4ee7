"""iCalendar for the CalDAV connector: the event we write, and free-busy answers we read.

PURE: no I/O, no clock (``stamp`` is an argument).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress
from icalendar.enums import CLASS, FBTYPE, STATUS
from icalendar.prop.conference import Conference

from connectors.base import Attendee, MeetingEvent
from ptm_sync.emailaddress import EmailAddress
from ptm_sync.errors import BadCalendarData
from ptm_sync.icalparse import parse_calendar
from ptm_sync.model import Busy, as_utc

PRODID = "-//ptm-sync//ptm-sync//EN"

#: RFC 6638 §7.1: the client, not the server, handles scheduling for this calendar user, so
#: the server never emails the parent on our behalf.
SCHEDULE_AGENT_CLIENT = ("SCHEDULE-AGENT", "CLIENT")


def meeting_to_ical(event: MeetingEvent, tz: ZoneInfo, *, stamp: datetime) -> Calendar:
    """The VCALENDAR we store in a teacher's calendar for one meeting.

    Times are written in the school's zone with its VTIMEZONE; a video link becomes URL and an
    RFC 7986 CONFERENCE (VALUE=URI, FEATURE=VIDEO); a private meeting is CLASS:PRIVATE.
    Organizer and attendees carry ``SCHEDULE-AGENT=CLIENT``.
    """
    start, end = as_utc(event.start).astimezone(tz), as_utc(event.end).astimezone(tz)
    vevent = Event.new(
        uid=event.uid,
        stamp=as_utc(stamp),
        start=start,
        end=end,
        summary=event.summary,
        description=event.description or None,
        location=event.location or None,
        url=event.video_url or None,
        conferences=[Conference(event.video_url, feature="VIDEO")] if event.video_url else None,
        sequence=event.sequence,
        status=STATUS(event.status.upper()),
        classification=CLASS.PRIVATE if event.private else None,
        organizer=_address(Attendee(event.organizer)) if event.organizer else None,
        attendees=[_address(attendee) for attendee in event.attendees] or None,
    )
    calendar = Calendar.new(prodid=PRODID, subcomponents=[vevent])
    del calendar["UID"]  # Calendar.new() invents a random RFC 7986 calendar UID; keep it pure.
    # A VTIMEZONE covering a year either side is enough for any client to place the meeting.
    calendar.add_missing_timezones(
        first_date=start.date() - timedelta(days=366), last_date=end.date() + timedelta(days=366)
    )
    return calendar


def _address(person: Attendee) -> vCalAddress:
    address = vCalAddress.new(person.email, cn=person.name or None)
    address.params[SCHEDULE_AGENT_CLIENT[0]] = SCHEDULE_AGENT_CLIENT[1]
    return address


def meeting_matches(ics: str | bytes, event: MeetingEvent, tz: ZoneInfo) -> bool:
    """Whether a stored object already says what ``event`` says (DTSTAMP aside).

    Used after a create finds the UID taken: an equal object is left alone, a different one
    is updated.  Servers may re-serialize what we wrote, so the comparison is on meaning.

    Raises:
        BadCalendarData: the stored object cannot be parsed.
    """
    stored = _main_event(parse_calendar(ics), event.uid)
    if stored is None:
        return False
    ours = _main_event(
        meeting_to_ical(event, tz, stamp=datetime(2000, 1, 1, tzinfo=UTC)), event.uid
    )
    assert ours is not None
    return _meaning(stored) == _meaning(ours)


def _main_event(calendar: Calendar, uid: str) -> Event | None:
    for component in calendar.walk("VEVENT"):
        if (
            isinstance(component, Event)
            and str(component.get("UID", "")) == uid
            and "RECURRENCE-ID" not in component
        ):
            return component
    return None


def _meaning(event: Event) -> tuple[Any, ...]:
    def text(name: str) -> str:
        return str(event.get(name, ""))

    def instant(value: date | datetime) -> Any:
        return as_utc(value) if isinstance(value, datetime) and value.tzinfo else value

    def emails(values: Iterable[Any]) -> frozenset[EmailAddress]:
        return frozenset(EmailAddress.parse(value) for value in values)

    attendees = event.get("ATTENDEE", [])
    organizer = [event["ORGANIZER"]] if "ORGANIZER" in event else []
    return (
        instant(event.start),
        instant(event.end),
        text("SUMMARY"),
        text("DESCRIPTION"),
        text("LOCATION"),
        text("URL"),
        int(event.get("SEQUENCE", 0)),
        text("STATUS").upper(),
        text("CLASS").upper(),
        frozenset(str(conference.uri) for conference in event.conferences),
        emails(organizer),
        emails(attendees if isinstance(attendees, list) else [attendees]),
    )


def parse_free_busy(ics: str | bytes, start: datetime, end: datetime) -> list[Busy]:
    """Busy spans from a free-busy-query answer (RFC 4791 §7.10, RFC 5545 §3.8.2.6).

    FBTYPE BUSY and BUSY-UNAVAILABLE are busy, BUSY-TENTATIVE is tentative, FREE is free.
    Periods may be ``start/end`` or ``start/duration``.  Results are UTC, clipped, sorted.
    """
    window_start, window_end = as_utc(start), as_utc(end)
    spans: list[Busy] = []
    for component in parse_calendar(ics).walk("VFREEBUSY"):
        values = component.get("FREEBUSY", [])
        for period in values if isinstance(values, list) else [values]:
            kind = str(period.params.get("FBTYPE", FBTYPE.BUSY)).upper()
            if kind == FBTYPE.FREE:
                continue
            try:
                first, last = period.dt
                first = as_utc(first)
                last = first + last if isinstance(last, timedelta) else as_utc(last)
            except (TypeError, ValueError) as exc:
                raise BadCalendarData(f"free-busy period cannot be read: {exc}") from exc
            first, last = max(first, window_start), min(last, window_end)
            if first < last:
                spans.append(Busy(first, last, tentative=kind == FBTYPE.BUSY_TENTATIVE))
    return sorted(spans, key=lambda busy: (busy.start, busy.end, busy.tentative))
