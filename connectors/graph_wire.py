"""Microsoft Graph v1.0 JSON for the Graph connector: what we send and how we read answers.

PURE: no I/O, no clock.  Each function names the Graph documentation page it follows
(learn.microsoft.com/graph/api/…).  getSchedule's request and answers:
:mod:`connectors.graph_schedule`.

How ptm-sync tells its events from the teacher's own (DESIGN §5):

* ``transactionId`` (resources/event: "a custom identifier specified by a client app for the
  server to avoid redundant POST operations … cannot be changed in a subsequent update") is
  ``ptm-sync/<sequence>/<meeting UID>``.  The calendar-view delta answer carries it (it
  returns what ``GET /calendarView`` returns: event-delta, "OData query parameters"), so the
  change feed keeps only events whose transactionId has our prefix and reads the UID from it.
* A ``singleValueExtendedProperties`` entry (a String property in our own GUID namespace,
  value = the meeting UID) finds the event again with ``$filter`` after a crash between the
  POST and recording its id (singlevaluelegacyextendedproperty-get, "Get resource instances
  filtered by string property").  Delta cannot ``$expand`` it, hence both tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from icalendar import Calendar, Event
from icalendar.enums import CLASS, STATUS

from connectors.base import MeetingEvent, RemoteEvent, RemoteRef
from ptm_sync.core.errors import BadCalendarData
from ptm_sync.core.ical.parse import zone_resolver
from ptm_sync.core.model import as_utc

#: Our String property (a GUID namespace of ours, then the name): the meeting UID.
UID_PROPERTY = "String {a4437ab7-5970-4ab8-b729-e83ed2ea4e6a} Name ptm-sync-uid"
TRANSACTION_PREFIX = "ptm-sync/"

#: Prefer header values (event-delta, "Request headers"; outlook-get-free-busy-schedule).
PREFER_UTC = 'outlook.timezone="UTC"'
PREFER_TEXT_BODY = 'outlook.body-content-type="text"'


def transaction_id(event: MeetingEvent) -> str:
    """The transactionId we create ``event`` with; :func:`uid_of` reads the UID back."""
    return f"{TRANSACTION_PREFIX}{event.sequence}/{event.uid}"


def uid_of(transaction: object) -> str | None:
    """The meeting UID of an event of ours, from its transactionId; None for anybody else's."""
    if not isinstance(transaction, str) or not transaction.startswith(TRANSACTION_PREFIX):
        return None
    _sequence, slash, uid = transaction.removeprefix(TRANSACTION_PREFIX).partition("/")
    return uid if slash and uid else None


def uid_filter(uid: str) -> str:
    """``$filter`` finding the event tagged with ``uid`` (OData string literal quoting)."""
    literal = uid.replace("'", "''")
    return (
        f"singleValueExtendedProperties/Any(ep: ep/id eq '{UID_PROPERTY}' "
        f"and ep/value eq '{literal}')"
    )


def utc_text(moment: datetime) -> str:
    """A dateTimeTimeZone ``dateTime`` in UTC (no offset, as Graph writes it)."""
    return as_utc(moment).replace(tzinfo=None).isoformat(timespec="seconds")


def date_time_time_zone(moment: datetime) -> dict[str, str]:
    """resources/datetimetimezone in UTC."""
    return {"dateTime": utc_text(moment), "timeZone": "UTC"}


def event_body(event: MeetingEvent, *, create: bool) -> dict[str, Any]:
    """The event JSON for user-post-events (``create``) or event-update.

    No ``attendees`` at all: Exchange then sends no invitation (DESIGN §4).  Private,
    busy, no reminder.  A create asks for a Teams meeting when ``event.online_meeting``
    (resources/event ``isOnlineMeeting`` + ``onlineMeetingProvider``).
    """
    body: dict[str, Any] = {
        "subject": event.summary,
        "body": {"contentType": "text", "content": body_text(event)},
        "start": date_time_time_zone(event.start),
        "end": date_time_time_zone(event.end),
        "location": {"displayName": event.location},
        "sensitivity": "private" if event.private else "normal",
        "showAs": "busy",
        "isReminderOn": False,
    }
    if create:
        body["transactionId"] = transaction_id(event)
        body["singleValueExtendedProperties"] = [{"id": UID_PROPERTY, "value": event.uid}]
    if event.online_meeting:
        body["isOnlineMeeting"] = True
        body["onlineMeetingProvider"] = "teamsForBusiness"
    return body


def body_text(event: MeetingEvent) -> str:
    """The event's text: the description, and the video link when it does not hold it
    (a Graph event has no URL property; Outlook shows the body)."""
    if event.video_url and event.video_url not in event.description:
        return f"{event.description}\n\n{event.video_url}".strip()
    return event.description


def says_the_same(found: Mapping[str, Any], event: MeetingEvent) -> bool:
    """Whether a Graph event already says what ``event`` says (times, texts, privacy)."""
    try:
        start, end = read_time(found.get("start")), read_time(found.get("end"))
    except BadCalendarData:
        return False
    body = found.get("body") or {}
    text = str(body.get("content") or "")
    same_body = body.get("contentType", "text") != "text" or text.strip() == (
        body_text(event).strip()
    )
    return (
        start == as_utc(event.start)
        and end == as_utc(event.end)
        and str(found.get("subject") or "") == event.summary
        and str((found.get("location") or {}).get("displayName") or "") == event.location
        and str(found.get("sensitivity") or "normal") == ("private" if event.private else "normal")
        and (bool(found.get("isOnlineMeeting")) or not event.online_meeting)
        and same_body
    )


def ref_of(found: Mapping[str, Any]) -> RemoteRef:
    """RemoteRef of a Graph event: its id, its ``@odata.etag`` and the Teams joining URL."""
    meeting = found.get("onlineMeeting") or {}
    return RemoteRef(
        str(found["id"]),
        found.get("@odata.etag") or found.get("changeKey"),
        str(meeting.get("joinUrl") or ""),
    )


_UTC_NAMES = frozenset({"utc", "z", "etc/utc", "gmt", "coordinated universal time"})


def read_time(value: object, *, fallback: tzinfo = UTC) -> datetime:
    """A dateTimeTimeZone as an aware UTC datetime.

    ``timeZone`` is UTC when we sent ``Prefer: outlook.timezone="UTC"``; anything else (an
    IANA name or a Windows name such as ``W. Europe Standard Time``) is resolved the way
    :func:`ptm_sync.core.ical.parse.zone_resolver` resolves a TZID.  Graph writes seven digits
    of fractions ("2019-03-15T12:00:00.0000000"); Python reads six.

    Raises:
        BadCalendarData: the value is not a dateTimeTimeZone.
    """
    if not isinstance(value, Mapping) or not isinstance(value.get("dateTime"), str):
        raise BadCalendarData(f"not a dateTimeTimeZone: {value!r}")
    text = value["dateTime"]
    head, dot, fraction = text.partition(".")
    try:
        moment = datetime.fromisoformat(head + (dot + fraction[:6] if dot else ""))
    except ValueError as exc:
        raise BadCalendarData(f"unreadable dateTime {text!r}") from exc
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    name = str(value.get("timeZone") or "UTC")
    zone: tzinfo = UTC if name.lower() in _UTC_NAMES else zone_resolver(Calendar(), fallback)(name)
    return moment.replace(tzinfo=zone).astimezone(UTC)


def to_remote_event(found: Mapping[str, Any], uid: str, *, fallback: tzinfo = UTC) -> RemoteEvent:
    """One Graph event of ours as the contract's RemoteEvent: a VCALENDAR with one VEVENT
    (UID = the meeting UID, DTSTART/DTEND in UTC, SUMMARY, STATUS).

    Raises:
        BadCalendarData: its times cannot be read.
    """
    start = read_time(found.get("start"), fallback=fallback)
    end = read_time(found.get("end"), fallback=fallback)
    try:
        stamp = _instant(str(found["lastModifiedDateTime"]))
    except (KeyError, ValueError):
        stamp = start
    vevent = Event.new(
        uid=uid,
        stamp=stamp,
        start=start,
        end=end,
        summary=str(found.get("subject") or ""),
        location=str((found.get("location") or {}).get("displayName") or "") or None,
        status=STATUS.CANCELLED if found.get("isCancelled") else STATUS.CONFIRMED,
        classification=CLASS.PRIVATE if found.get("sensitivity") == "private" else None,
    )
    calendar = Calendar.new(prodid="-//ptm-sync//graph//EN", subcomponents=[vevent])
    del calendar["UID"]
    ref = ref_of(found)
    return RemoteEvent(ref.href, ref.etag, calendar.to_ical().decode())


def _instant(text: str) -> datetime:
    """An Edm.DateTimeOffset such as ``2019-03-15T16:40:36.4183813Z`` as UTC."""
    head, dot, rest = text.removesuffix("Z").partition(".")
    moment = datetime.fromisoformat(head + (dot + rest[:6] if dot else ""))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def error_code(payload: object) -> tuple[str, str]:
    """``(code, message)`` of a Graph error body ({"error": {"code", "message"}}), or
    empty strings (errors: "Error resource type")."""
    if isinstance(payload, Mapping):
        error = payload.get("error")
        if isinstance(error, Mapping):
            return str(error.get("code") or ""), str(error.get("message") or "")
    return "", ""
