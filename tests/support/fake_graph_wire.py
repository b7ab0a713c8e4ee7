"""The wire side of the fake Graph (:mod:`tests.support.fake_graph`): stored events, how
they are written as Graph JSON (resources/event, resources/datetimetimezone), what a create or
update body may hold, and Graph's and Entra ID's error bodies (errors; AADSTS error
responses of v2-oauth2-client-creds-grant-flow)."""

from __future__ import annotations

import base64
import json
import math
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

UTC_NAMES = {"utc", "etc/utc", "z"}


@dataclass(frozen=True)
class Logged:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any
    kind: str  # "graph", "token" or "discovery"


@dataclass
class StoredEvent:
    id: str
    mailbox: str
    start: datetime
    end: datetime
    subject: str = ""
    body: dict[str, str] = field(default_factory=lambda: {"contentType": "text", "content": ""})
    location: str = ""
    sensitivity: str = "normal"
    show_as: str = "busy"
    is_reminder_on: bool = True
    is_cancelled: bool = False
    online: bool = False
    provider: str = ""
    join_url: str = ""
    transaction_id: str | None = None
    extended: dict[str, str] = field(default_factory=dict)
    attendees: list[Any] = field(default_factory=list)
    change_key: str = ""
    version: int = 0
    deleted: bool = False
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


EVENT_KEYS = {
    "subject",
    "body",
    "start",
    "end",
    "location",
    "sensitivity",
    "showAs",
    "isReminderOn",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "transactionId",
    "singleValueExtendedProperties",
    "attendees",
    "categories",
    "importance",
}


def event_problem(body: Any, *, create: bool) -> str:
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    unknown = set(body) - EVENT_KEYS
    if unknown:
        return f"Properties not known on microsoft.graph.event: {sorted(unknown)}"
    if not create and "transactionId" in body:
        return "transactionId cannot be changed after the event is created."
    for key in ("start", "end"):
        if key in body or create:
            try:
                read_time(body.get(key))
            except ValueError as exc:
                return str(exc)
    if body.get("onlineMeetingProvider") not in (None, "teamsForBusiness", "unknown"):
        return "onlineMeetingProvider is not allowed for this mailbox."
    return ""


def apply_body(event: StoredEvent, body: dict[str, Any]) -> None:
    if "start" in body:
        event.start = read_time(body["start"])
    if "end" in body:
        event.end = read_time(body["end"])
    event.subject = body.get("subject", event.subject)
    if "body" in body:
        event.body = {
            "contentType": body["body"].get("contentType", "text"),
            "content": body["body"].get("content", ""),
        }
    if "location" in body:
        event.location = (body["location"] or {}).get("displayName", "")
    event.sensitivity = body.get("sensitivity", event.sensitivity)
    event.show_as = body.get("showAs", event.show_as)
    event.is_reminder_on = body.get("isReminderOn", event.is_reminder_on)
    event.attendees = body.get("attendees", event.attendees)
    if body.get("isOnlineMeeting") and not event.online:
        event.online = True
        event.provider = body.get("onlineMeetingProvider", "teamsForBusiness")
        event.join_url = f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{event.id}"


@dataclass(frozen=True)
class View:
    """How this request wants events: its time zone and body content type."""

    zone: str
    text_body: bool

    def time(self, moment: datetime) -> dict[str, str]:
        if self.zone.lower() in UTC_NAMES:
            local = moment.astimezone(UTC)
        else:
            local = moment.astimezone(ZoneInfo(WINDOWS_TO_OLSON.get(self.zone, self.zone)))
        return {
            "dateTime": local.replace(tzinfo=None).isoformat() + ".0000000",
            "timeZone": self.zone,
        }

    def event(self, e: StoredEvent) -> dict[str, Any]:
        content = e.body.get("content", "")
        body = dict(e.body)
        if not self.text_body and e.body.get("contentType") == "text":
            body = {"contentType": "html", "content": f"<html><body>{content}</body></html>"}
        found: dict[str, Any] = {
            "@odata.etag": etag(e),
            "id": e.id,
            "changeKey": e.change_key,
            "createdDateTime": e.created.isoformat().replace("+00:00", "Z"),
            "lastModifiedDateTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "iCalUId": f"040000008200E00074C5B7101A82E008{e.id[:16]}",
            "type": "singleInstance",
            "subject": e.subject,
            "body": body,
            "bodyPreview": content[:255],
            "start": self.time(e.start),
            "end": self.time(e.end),
            "location": {"displayName": e.location},
            "sensitivity": e.sensitivity,
            "showAs": e.show_as,
            "isReminderOn": e.is_reminder_on,
            "isCancelled": e.is_cancelled,
            "isOnlineMeeting": e.online,
            "onlineMeetingProvider": e.provider or "unknown",
            "onlineMeeting": {"joinUrl": e.join_url} if e.online else None,
            "attendees": e.attendees,
        }
        if e.transaction_id:
            found["transactionId"] = e.transaction_id
        return found


def etag(event: StoredEvent) -> str:
    return f'W/"{event.change_key}"'


def read_time(value: Any) -> datetime:
    if not isinstance(value, dict) or "dateTime" not in value or "timeZone" not in value:
        raise ValueError("A dateTimeTimeZone needs dateTime and timeZone.")
    moment = datetime.fromisoformat(str(value["dateTime"]).split(".")[0])
    name = str(value["timeZone"])
    zone = UTC if name.lower() in UTC_NAMES else ZoneInfo(WINDOWS_TO_OLSON.get(name, name))
    return moment.replace(tzinfo=zone).astimezone(UTC)


def iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def prefer(header: str) -> dict[str, str]:
    found = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name:
            found[name.strip().lower()] = value.strip().strip('"')
    return found


def error(code: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "request-id": secrets.token_hex(8),
                "client-request-id": secrets.token_hex(8),
            },
        }
    }


def aad(error: str, code: int, text: str) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {text}\r\nTrace ID: "
        f"{secrets.token_hex(8)}\r\nCorrelation ID: {secrets.token_hex(8)}\r\n"
        f"Timestamp: {now}",
        "error_codes": [code],
        "timestamp": now,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


def b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def new_id() -> str:
    return "AAMkAG" + secrets.token_urlsafe(24)


# --- getSchedule ------------------------------------------------------------------------

#: availabilityView digits (resources/scheduleinformation: "0 = free or working elsewhere,
#: 1 = tentative, 2 = busy, 3 = out of office"; working elsewhere "is set to 0 instead of
#: 4 for backward compatibility").  Graph documents no digit for time without data; the
#: fake writes 4, which is "no data" in Exchange's merged free/busy string.
VIEW_DIGITS = {"free": "0", "workingElsewhere": "0", "tentative": "1", "busy": "2", "oof": "3"}
NO_DATA_DIGIT = "4"
#: Which digit wins where spans overlap in one slot.
_DIGIT_RANK = {"0": 0, "4": 1, "1": 2, "2": 3, "3": 4}


@dataclass(frozen=True)
class ScheduleShape:
    """How the fake answers one mailbox's schedule (resources/scheduleinformation).

    ``error``: (responseCode, message) of a freeBusyError instead of any data;
    ``view_only``: availabilityView without scheduleItems; ``bare``: neither of them;
    ``unknown``: spans answered as scheduleItems with status ``unknown``."""

    error: tuple[str, str] | None = None
    view_only: bool = False
    bare: bool = False
    unknown: tuple[tuple[datetime, datetime], ...] = ()


def schedule_information(
    schedule: str,
    events: list[StoredEvent],
    start: datetime,
    end: datetime,
    interval: int,
    view: View,
    shape: ScheduleShape = ScheduleShape(),
) -> dict[str, Any]:
    """One scheduleInformation for ``schedule`` over ``[start, end)``: its events that are
    not free (status = showAs) and its unknown spans as scheduleItems, and the merged
    availabilityView at ``interval`` minutes (one digit per slot, the last one partial)."""
    if shape.error is not None:
        code, message = shape.error
        return {"scheduleId": schedule, "error": {"message": message, "responseCode": code}}
    found: dict[str, Any] = {"scheduleId": schedule}
    if not shape.bare:
        spans = [
            (e.start, e.end, e.show_as)
            for e in sorted(events, key=lambda e: e.start)
            if not e.deleted and not e.is_cancelled and e.show_as != "free"
        ]
        spans += [(s, e, "unknown") for s, e in shape.unknown]
        spans = [(s, e, status) for s, e, status in spans if s < end and e > start]
        found["availabilityView"] = _view(spans, start, end, interval)
        if not shape.view_only:
            found["scheduleItems"] = [
                {"isPrivate": False, "status": status, "start": view.time(s), "end": view.time(e)}
                for s, e, status in spans
            ]
    found["workingHours"] = {
        "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
        "startTime": "08:00:00.0000000",
        "endTime": "17:00:00.0000000",
        "timeZone": {"name": "UTC"},
    }
    return found


def _view(
    spans: list[tuple[datetime, datetime, str]], start: datetime, end: datetime, interval: int
) -> str:
    step = timedelta(minutes=interval)
    count = math.ceil((end - start) / step)
    if not spans:
        return "0" * count
    digits = []
    for index in range(count):
        slot_start, slot_end = start + index * step, start + (index + 1) * step
        marks = [
            VIEW_DIGITS.get(status, NO_DATA_DIGIT)
            for s, e, status in spans
            if s < slot_end and e > slot_start
        ]
        digits.append(max(marks, key=_DIGIT_RANK.__getitem__, default="0"))
    return "".join(digits)
