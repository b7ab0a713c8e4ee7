"""An event with what names people taken out, for the retention purge (DESIGN §3).  PURE.

Our copy of a teacher's event (the sync's mirror) names the family: its attendees and
organizer (RFC 5545 §3.8.4.1, §3.8.4.3: addresses and common names), and its summary,
description, location and comments, which we wrote with the family's and the student's
names.  Once a meeting's personal data is purged, the copy keeps only what says *when*
(UID, DTSTART, DTEND, RRULE, STATUS, TRANSP …): the busy time it stands for stays known.
"""

from __future__ import annotations

from icalendar import Calendar

__all__ = ["PERSONAL", "without_people"]

#: Properties that may name a person or hold what was written about them.
PERSONAL = (
    "ATTENDEE",
    "ORGANIZER",
    "CONTACT",
    "SUMMARY",
    "DESCRIPTION",
    "LOCATION",
    "COMMENT",
    "CONFERENCE",
    "URL",
    "X-ALT-DESC",
)


def without_people(ics: str) -> str | None:
    """``ics`` (one calendar object) with the :data:`PERSONAL` properties, and the ``X-``
    properties of its events and alarms, removed; None when ``ics`` is no iCalendar text."""
    try:
        calendar = Calendar.from_ical(ics)
    except ValueError:
        return None
    for component in calendar.walk():
        extensions = component.name not in ("VCALENDAR", "VTIMEZONE")
        for name in list(component):
            if name.upper() in PERSONAL or (extensions and name.upper().startswith("X-")):
                del component[name]
    return calendar.to_ical().decode("utf-8")
