"""Busy times from iCalendar text: the local expansion behind every CalDAV free/busy answer.

PURE: no I/O, no clock.  The school's zone ``tz`` is an argument; it gives floating times and
all-day events their meaning (RFC 5545 §3.3.5 form #1 "floating" times, §3.6.1 all-day
events), which a server cannot know.

Parsing and time zones are :mod:`ptm_sync.core.ical.parse`'s, shared with the iTIP reader: one
parser (bytes unfolded before decoding, TZIDs that cannot apply dropped) and one TZID
resolver per calendar object (IANA, in-file VTIMEZONE, Windows names, globally unique
TZIDs, else the school's zone).  ``parse_calendar`` and ``zone_resolver`` stay importable
from here.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import recurring_ical_events
import x_wr_timezone
from icalendar import Calendar, Component, Event
from icalendar.enums import PARTSTAT, STATUS, TRANSP

from ptm_sync.core.errors import BadCalendarData, PtmError
from ptm_sync.core.ical.parse import localize, parse_calendar, zone_resolver
from ptm_sync.core.model import Busy, as_utc

__all__ = ["busy_times", "event_uid", "localize_zones", "parse_calendar", "zone_resolver"]

#: Properties of a VEVENT whose date-time values carry a TZID (RFC 5545 §3.2.19).
_ZONED_PROPERTIES = ("DTSTART", "DTEND", "RECURRENCE-ID", "EXDATE", "RDATE")

#: Expansion looks this far beyond the window on either side: an all-day event or a floating
#: time may lie up to a day (UTC-12…UTC+14) away from where a naive comparison puts it.
_PADDING = timedelta(days=2)

_ONE_DAY = timedelta(days=1)

log = logging.getLogger(__name__)


def event_uid(ics: str | bytes) -> str:
    """The UID of a calendar object resource (RFC 4791 §4.1: one UID per resource)."""
    calendar = parse_calendar(ics)
    for component in calendar.subcomponents:
        if component.name in ("VEVENT", "VTODO", "VJOURNAL") and "UID" in component:
            return str(component["UID"])
    raise BadCalendarData("calendar object has no component with a UID")


def busy_times(
    ics: str | bytes,
    start: datetime,
    end: datetime,
    tz: zoneinfo.ZoneInfo,
    *,
    ignore_uids: Collection[str] = (),
    owner: Collection[str] = (),
) -> list[Busy]:
    """The spans of ``[start, end)`` that the VEVENTs of one calendar object make busy.

    Recurrences are expanded locally (RRULE, RDATE, EXDATE and RECURRENCE-ID overrides,
    including instances moved into or out of the window).  Transparent and cancelled events
    are free; tentative ones are busy with ``Busy.tentative``.  An all-day event blocks whole
    local days in ``tz``; floating times are read in ``tz``.  Events whose UID is in
    ``ignore_uids`` are skipped.

    ``owner``: the calendar owner's addresses (the teacher's roster email and the CalDAV
    principal's calendar-user-address-set; ``mailto:`` optional, any case).  An occurrence
    in which one of them is an ATTENDEE with ``PARTSTAT=DECLINED`` is free (DESIGN §5: the
    teacher's own answer counts; RFC 5545 §3.2.12).  The occurrence's own ATTENDEE list
    decides, so one declined instance of a series (an overridden RECURRENCE-ID, as CalDAV
    scheduling servers store it, RFC 6638 §3.2.2) frees that instance alone; NEEDS-ACTION
    and TENTATIVE stay busy.

    Returns:
        UTC datetimes, sorted, clipped to the window.  Overlapping spans are not merged.

    Raises:
        BadCalendarData: the object cannot be parsed or expanded.
        ValueError: ``start`` or ``end`` is naive, or ``end`` is before ``start``.
    """
    window_start, window_end = as_utc(start), as_utc(end)
    if window_end < window_start:
        raise ValueError(f"window ends before it starts: {start} > {end}")
    calendar = parse_calendar(ics)
    if "X-WR-TIMEZONE" in calendar:
        # Google and Apple exports name the calendar's zone here and leave times floating
        # or in UTC; read them as that zone says, not as the school's.
        try:
            calendar = x_wr_timezone.to_standard(calendar)
        except Exception as exc:  # noqa: BLE001 - an unknown zone name: keep RFC 5545 rules
            log.debug("ignoring X-WR-TIMEZONE: %s", exc)
    if ignore_uids:
        ignored = frozenset(ignore_uids)
        calendar.subcomponents = [
            component
            for component in calendar.subcomponents
            if component.name != "VEVENT" or str(component.get("UID", "")) not in ignored
        ]
    addresses = frozenset(_address(a) for a in owner if a)
    try:
        localize_zones(calendar, tz)
        occurrences: Iterable[Component] = recurring_ical_events.of(
            calendar, components=["VEVENT"]
        ).between(window_start - _PADDING, window_end + _PADDING)
        spans = []
        for occurrence in occurrences:
            answer = _owner_answer(occurrence, addresses)
            if answer == PARTSTAT.DECLINED:
                continue
            busy = _busy_of(occurrence, window_start, window_end, tz)
            if busy is not None and answer in _UNSURE and not busy.tentative:
                busy = Busy(busy.start, busy.end, tentative=True)
            if busy is not None:
                spans.append(busy)
    except PtmError:
        raise
    except Exception as exc:  # recurring-ical-events and dateutil raise many kinds
        raise BadCalendarData(f"calendar data cannot be expanded: {exc}") from exc
    return sorted(spans, key=lambda busy: (busy.start, busy.end, busy.tentative))


def _busy_of(occurrence: Component, start: datetime, end: datetime, tz: tzinfo) -> Busy | None:
    """One occurrence as a clipped busy span, or None when it leaves the time free."""
    if str(occurrence.get("TRANSP", TRANSP.OPAQUE)).upper() == TRANSP.TRANSPARENT:
        return None
    status = str(occurrence.get("STATUS", "")).upper()
    if status == STATUS.CANCELLED:
        return None
    if not isinstance(occurrence, Event):
        return None
    first, last = occurrence.start, occurrence.end
    if isinstance(first, datetime):
        busy_start = _aware(first, tz)
        busy_end = _aware(last, tz) if isinstance(last, datetime) else busy_start
    else:
        # RFC 5545 §3.6.1: DTEND of an all-day event is exclusive; none means one day.
        last_day = last if isinstance(last, date) and last > first else first + _ONE_DAY
        busy_start, busy_end = _local_midnight(first, tz), _local_midnight(last_day, tz)
    busy_start, busy_end = max(busy_start, start), min(busy_end, end)
    if busy_end <= busy_start:
        return None  # outside the window, or a zero-length event (RFC 4791 §9.9 line 4)
    return Busy(busy_start, busy_end, tentative=status == STATUS.TENTATIVE)


def _address(value: object) -> str:
    """A calendar user address as compared here: lower case, without ``mailto:``."""
    text = str(value).strip().lower()
    return text[len("mailto:") :] if text.startswith("mailto:") else text


#: The owner's answers that leave an invitation busy but tentative (as Exchange and Google
#: show an invitation not yet accepted).
_UNSURE = frozenset({PARTSTAT.NEEDS_ACTION, PARTSTAT.TENTATIVE})


def _owner_answer(occurrence: Component, owner: frozenset[str]) -> str | None:
    """The owner's PARTSTAT in this occurrence (RFC 5545 §3.2.12: NEEDS-ACTION when the
    parameter is absent), None when the owner is not one of its attendees.  A DECLINED
    among several entries for the owner wins (the owner said no)."""
    if not owner:
        return None
    found = occurrence.get("ATTENDEE")
    answers = [
        str(getattr(attendee, "params", {}).get("PARTSTAT", PARTSTAT.NEEDS_ACTION)).upper()
        for attendee in (found if isinstance(found, list) else [found] if found else [])
        if _address(attendee) in owner
    ]
    if not answers:
        return None
    return PARTSTAT.DECLINED if PARTSTAT.DECLINED in answers else answers[0]


def _aware(moment: datetime, tz: tzinfo) -> datetime:
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)).astimezone(UTC)


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


# --- time zones --------------------------------------------------------------------------


def localize_zones(calendar: Calendar, tz: tzinfo) -> None:
    """Give every date-time of every VEVENT a definite zone, resolved within this object.

    Values with a TZID get the zone the module docstring describes; floating values get
    ``tz``; UTC values and dates stay as they are.  Mutates ``calendar``.
    """
    resolve = zone_resolver(calendar, tz)
    for event in calendar.walk("VEVENT"):
        for name in _ZONED_PROPERTIES:
            value = event.get(name)
            for prop in value if isinstance(value, list) else [value]:
                if prop is not None:
                    _localize_property(prop, resolve, tz)


def _localize_property(prop: Any, resolve: Callable[[str], tzinfo], tz: tzinfo) -> None:
    tzid = prop.params.get("TZID") if hasattr(prop, "params") else None
    if hasattr(prop, "dts"):  # EXDATE / RDATE lists
        for item in prop.dts:
            item.dt = localize(item.dt, tzid, resolve, tz)
    elif hasattr(prop, "dt"):
        prop.dt = localize(prop.dt, tzid, resolve, tz)
