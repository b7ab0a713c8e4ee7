"""iCalendar for the CalDAV connector: the event we write, free-busy answers we read, and
whether an object holds a declined invitation.

PURE: no I/O, no clock (``stamp`` is an argument).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress
from icalendar.enums import CLASS, FBTYPE, STATUS
from icalendar.prop.conference import Conference

from connectors.base import Attendee, FreeBusy, MeetingEvent
from ptm_sync.core.emailaddress import EmailAddress
from ptm_sync.core.errors import BadCalendarData
from ptm_sync.core.ical.parse import parse_calendar
from ptm_sync.core.model import Busy, Interval, as_utc

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


def parse_free_busy(ics: str | bytes, start: datetime, end: datetime) -> FreeBusy:
    """A free-busy-query answer (RFC 4791 §7.10: one VFREEBUSY, RFC 5545 §3.6.4) as the
    calendar's :class:`FreeBusy` in ``[start, end)``.

    FBTYPE BUSY and BUSY-UNAVAILABLE are busy, BUSY-TENTATIVE is tentative, FREE is free.
    Periods may be ``start/end`` or ``start/duration``.  ``busy`` is UTC, clipped, sorted.
    The VFREEBUSY's DTSTART/DTEND say what the answer covers (RFC 4791 §7.10: the range
    asked); a part of the range it leaves out is ``unknown``, never free.

    Raises:
        BadCalendarData: the answer is not iCalendar, holds no VFREEBUSY (an answer that
            says nothing is no data, not a free calendar), or a period cannot be read.
    """
    window_start, window_end = as_utc(start), as_utc(end)
    found = parse_calendar(ics).walk("VFREEBUSY")
    if not found:
        raise BadCalendarData("the free-busy answer holds no VFREEBUSY")
    spans: list[Busy] = []
    covered: list[tuple[datetime, datetime]] = []
    for component in found:
        covered.append(_coverage(component, window_start, window_end))
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
    busy = sorted(spans, key=lambda b: (b.start, b.end, b.tentative))
    return FreeBusy(tuple(busy), tuple(_gaps(covered, window_start, window_end)))


def _coverage(component: Any, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The part of ``[start, end)`` a VFREEBUSY speaks for (all of it without DTSTART/DTEND)."""
    try:
        first = as_utc(component["DTSTART"].dt) if "DTSTART" in component else start
        last = as_utc(component["DTEND"].dt) if "DTEND" in component else end
    except (AttributeError, TypeError, ValueError) as exc:
        raise BadCalendarData(f"free-busy range cannot be read: {exc}") from exc
    return max(first, start), min(last, end)


def _gaps(
    covered: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime
) -> list[Interval]:
    """The parts of ``[start, end)`` that no span of ``covered`` holds."""
    gaps: list[Interval] = []
    at = start
    for first, last in sorted(covered):
        if last <= first:
            continue  # covers nothing of the range
        if first > at:
            gaps.append(Interval(at, min(first, end)))
        at = max(at, last)
    if at < end:
        gaps.append(Interval(at, end))
    return [gap for gap in gaps if gap.start < gap.end]


#: An ATTENDEE line (unfolded) whose PARTSTAT parameter is DECLINED (RFC 5545 §3.2.12).
_DECLINED = re.compile(
    r'^ATTENDEE;[^\r\n]*?PARTSTAT="?DECLINED"?[;:]', re.IGNORECASE | re.MULTILINE
)
_FOLD = re.compile(r"\r?\n[ \t]")


def declines(ics: str) -> bool:
    """Whether a calendar object holds an ATTENDEE with ``PARTSTAT=DECLINED`` (in any of its
    components): the only objects for which the owner's addresses matter.  A quick look at
    the text (RFC 5545 §3.1 unfolded), no parse; a false yes costs one cached lookup."""
    unfolded = _FOLD.sub("", ics)
    return "DECLINED" in unfolded.upper() and _DECLINED.search(unfolded) is not None
