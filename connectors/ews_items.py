"""Exchange items and ptm-sync meetings: the fields we write, what we read back, the UID
property that marks our events, and the UTC values GetUserAvailability is asked in
(free/busy itself is read in :mod:`connectors.ews_freebusy`).

PURE apart from exchangelib's value types (no requests).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from exchangelib import UTC as EWS_UTC
from exchangelib import Body, CalendarItem, EWSDateTime, ExtendedProperty
from exchangelib.properties import DaylightTime, StandardTime
from exchangelib.properties import TimeZone as AvailabilityTimeZone

from connectors.base import MeetingEvent
from connectors.ical import meeting_to_ical

#: The fields we read back from an item (FindItem / SyncFolderItems cannot return Body).
SYNC_FIELDS = ("subject", "start", "end", "location", "sensitivity", "is_cancelled", "ptm_uid")
#: What GetItem reads to compare an item with a meeting.
FETCH_FIELDS = (*SYNC_FIELDS, "body")
STAMP = datetime(2000, 1, 1, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")


class PtmUid(ExtendedProperty):
    """The named property holding the :attr:`MeetingEvent.uid` of an event we wrote."""

    distinguished_property_set_id = "PublicStrings"
    property_name = "ptm-sync-uid"
    property_type = "String"


with contextlib.suppress(ValueError):  # registered already (the module was reloaded)
    CalendarItem.register("ptm_uid", PtmUid)


def utc_timezone() -> AvailabilityTimeZone:
    """The availability TimeZone element for UTC (no daylight saving): times in the
    request and the answer are UTC, and no GetServerTimeZones request is needed."""

    def rule(cls: Any) -> Any:
        return cls(bias=0, time=time(0), occurrence=1, iso_month=1, weekday=1)

    return AvailabilityTimeZone(
        bias=0, standard_time=rule(StandardTime), daylight_time=rule(DaylightTime)
    )


def ews_time(value: datetime) -> EWSDateTime:
    return EWSDateTime.from_datetime(value.astimezone(UTC)).astimezone(EWS_UTC)


def utc(value: datetime) -> datetime:
    """A plain UTC datetime from exchangelib's EWSDateTime."""
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)


def _text(value: Any) -> str:
    return str(value) if value is not None else ""


def as_meeting(item: Any) -> MeetingEvent:
    return MeetingEvent(
        uid=item.ptm_uid,
        start=utc(item.start),
        end=utc(item.end),
        summary=_text(item.subject),
        description=_text(getattr(item, "body", None)),
        location=_text(item.location),
        status="CANCELLED" if item.is_cancelled else "CONFIRMED",
        private=item.sensitivity == "Private",
    )


def item_ics(item: Any) -> str:
    """The VCALENDAR of one of our items (UTC times; no DESCRIPTION: SyncFolderItems does
    not return the body)."""
    event = as_meeting(item)
    return meeting_to_ical(event, UTC_ZONE, stamp=STAMP).to_ical().decode()


def item_body(event: MeetingEvent) -> str:
    """The item body: the description, and the video link when it does not hold it yet."""
    if event.video_url and event.video_url not in event.description:
        return f"{event.description}\n\n{event.video_url}".strip()
    return event.description


def says(item: Any, event: MeetingEvent) -> bool:
    """Whether the stored item (read with GetItem, body included) already says ``event``."""
    stored = as_meeting(item)
    return (
        stored.start == event.start.astimezone(UTC)
        and stored.end == event.end.astimezone(UTC)
        and stored.summary == event.summary
        and stored.location == event.location
        and stored.description.strip() == item_body(event).strip()
        and stored.private == event.private
        and not item.is_cancelled
    )


def item_fields(event: MeetingEvent) -> dict[str, Any]:
    """The CalendarItem fields for ``event``: no attendees, private, busy, no reminder."""
    return {
        "subject": event.summary,
        "body": Body(item_body(event)),
        "location": event.location or None,
        "start": ews_time(event.start),
        "end": ews_time(event.end),
        "sensitivity": "Private" if event.private else "Normal",
        "legacy_free_busy_status": "Busy",
        "reminder_is_set": False,
    }
