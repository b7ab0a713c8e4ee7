"""The wire side of the fake Graph (:mod:`tests.support.fake_graph`): stored events, how
they are written as Graph JSON (resources/event, resources/datetimetimezone), what a create or
update body may hold, and Graph's and Entra ID's error bodies (errors; AADSTS error
responses of v2-oauth2-client-creds-grant-flow)."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
