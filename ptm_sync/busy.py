"""Busy times from iCalendar text: the local expansion behind every CalDAV free/busy answer.

PURE: no I/O, no clock.  The school's zone ``tz`` is an argument; it gives floating times and
all-day events their meaning (RFC 5545 §3.3.5 form #1 "floating" times, §3.6.1 all-day
events), which a server cannot know.

Time zones are resolved per calendar object, never through icalendar's process-wide cache
(the first VTIMEZONE seen for a TZID would otherwise win for every later teacher):

1. an IANA name (``Europe/Berlin``) uses the tz database;
2. any other TZID defined by a VTIMEZONE in the same object uses that definition (Outlook's
   ``Customized Time Zone``, ``W. Europe Standard Time`` with its VTIMEZONE);
3. a Windows zone name without a VTIMEZONE uses CLDR's Windows→IANA table that icalendar
   ships (``Eastern Standard Time`` → ``America/New_York``);
4. a "globally unique" TZID (``/freeassociation.sourceforge.net/Europe/Berlin``, RFC 5545
   §3.2.19) uses its trailing IANA name;
5. anything else is read as the school's zone, like a floating time.
"""

from __future__ import annotations

import logging
import warnings
import zoneinfo
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

import recurring_ical_events
import x_wr_timezone
from icalendar import Calendar, Component, Event, Timezone
from icalendar.enums import STATUS, TRANSP
from icalendar.error import GloballyUniqueTZIDGuessed
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from ptm_sync.errors import BadCalendarData, PtmError
from ptm_sync.model import Busy, as_utc

#: Properties of a VEVENT whose date-time values carry a TZID (RFC 5545 §3.2.19).
_ZONED_PROPERTIES = ("DTSTART", "DTEND", "RECURRENCE-ID", "EXDATE", "RDATE")

#: Expansion looks this far beyond the window on either side: an all-day event or a floating
#: time may lie up to a day (UTC-12…UTC+14) away from where a naive comparison puts it.
_PADDING = timedelta(days=2)

_ONE_DAY = timedelta(days=1)

log = logging.getLogger(__name__)


def parse_calendar(ics: str | bytes) -> Calendar:
    """Parse one iCalendar object; raise :class:`BadCalendarData` with the reason if it fails."""
    if isinstance(ics, bytes):
        try:
            ics = ics.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadCalendarData(f"calendar data is not UTF-8: {exc}") from exc
    if not ics.strip():
        raise BadCalendarData("calendar data is empty")
    try:
        with warnings.catch_warnings():
            # A "globally unique" TZID is resolved by zone_resolver(), not by this guess.
            warnings.simplefilter("ignore", GloballyUniqueTZIDGuessed)
            calendar = Calendar.from_ical(ics)
    except Exception as exc:  # icalendar raises ValueError, KeyError, IndexError…
        raise BadCalendarData(f"calendar data cannot be parsed: {exc}") from exc
    if not isinstance(calendar, Calendar) or calendar.name != "VCALENDAR":
        raise BadCalendarData("calendar data holds no VCALENDAR")
    return calendar


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
) -> list[Busy]:
    """The spans of ``[start, end)`` that the VEVENTs of one calendar object make busy.

    Recurrences are expanded locally (RRULE, RDATE, EXDATE and RECURRENCE-ID overrides,
    including instances moved into or out of the window).  Transparent and cancelled events
    are free; tentative ones are busy with ``Busy.tentative``.  An all-day event blocks whole
    local days in ``tz``; floating times are read in ``tz``.  Events whose UID is in
    ``ignore_uids`` are skipped.

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
    try:
        localize_zones(calendar, tz)
        occurrences: Iterable[Component] = recurring_ical_events.of(
            calendar, components=["VEVENT"]
        ).between(window_start - _PADDING, window_end + _PADDING)
        spans = [
            busy
            for occurrence in occurrences
            if (busy := _busy_of(occurrence, window_start, window_end, tz)) is not None
        ]
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


def zone_resolver(calendar: Calendar, tz: tzinfo) -> Callable[[str], tzinfo]:
    """A TZID → tzinfo function for one calendar object (see the module docstring)."""
    definitions = {
        str(vtimezone["TZID"]).strip(): vtimezone
        for vtimezone in calendar.walk("VTIMEZONE")
        if isinstance(vtimezone, Timezone) and "TZID" in vtimezone
    }
    resolved: dict[str, tzinfo] = {}

    def resolve(tzid: str) -> tzinfo:
        name = tzid.strip().strip('"')
        if name not in resolved:
            resolved[name] = _resolve(name, definitions, tz)
        return resolved[name]

    return resolve


def _resolve(name: str, definitions: dict[str, Timezone], fallback: tzinfo) -> tzinfo:
    found = _iana(name)
    if found is not None:
        return found
    if name in definitions:
        try:
            custom: tzinfo = definitions[name].to_tz(lookup_tzid=False)
            return custom
        except Exception:  # noqa: BLE001 - a broken VTIMEZONE: fall back to what its name says
            pass
    if name in WINDOWS_TO_OLSON:
        return _iana(WINDOWS_TO_OLSON[name]) or fallback
    if name.startswith("/"):
        parts = name.strip("/").split("/")
        for first in range(1, len(parts)):
            found = _iana("/".join(parts[first:]))
            if found is not None:
                return found
    return fallback


def _iana(name: str) -> zoneinfo.ZoneInfo | None:
    if not name or name.startswith("/"):
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _localize_property(prop: Any, resolve: Callable[[str], tzinfo], tz: tzinfo) -> None:
    tzid = prop.params.get("TZID") if hasattr(prop, "params") else None
    zone = resolve(str(tzid)) if tzid else None
    if hasattr(prop, "dts"):  # EXDATE / RDATE lists
        for item in prop.dts:
            item.dt = _localize_value(item.dt, zone, tz)
    elif hasattr(prop, "dt"):
        prop.dt = _localize_value(prop.dt, zone, tz)


def _localize_value(value: Any, zone: tzinfo | None, tz: tzinfo) -> Any:
    if isinstance(value, tuple):  # an RDATE period: (start, end) or (start, duration)
        return tuple(_localize_value(part, zone, tz) for part in value)
    if not isinstance(value, datetime):
        return value  # a date, or a duration
    if zone is not None:
        return value.replace(tzinfo=zone)
    if value.tzinfo is None:
        return value.replace(tzinfo=tz)
    return value
