"""Google Calendar API v3 JSON for the Google connector: what we send and what we read back.

PURE: no I/O, no clock.  References are to Google's Calendar API v3 reference (the
``Events`` resource, ``events.list``; ``freebusy.query`` is read in
:mod:`connectors.google_freebusy`) and its guides "Synchronize
resources efficiently", "Create events" (conferencing) and "Handle API errors".

* Event ids: we choose them (``events.insert`` takes a client-chosen ``id``: base32hex
  characters ``a–v 0–9``, 5 to 1024 of them), derived from the meeting UID, so a create
  retried after a crash meets the first one as 409 ``duplicate``.  They start with
  :data:`ID_PREFIX`, which also tells our cancelled events apart in a sync answer (Google
  returns a deleted event with little more than its id and ``status: cancelled``).
* Tags: every event we write carries private extended properties :data:`TAG` = ``"1"`` (the
  full sync filters on it with ``privateExtendedProperty``) and :data:`UID_KEY` = the UID.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from connectors.base import MeetingEvent
from connectors.ical import meeting_to_ical
from ptm_sync.core.errors import (
    AuthFailed,
    ConnectorError,
    NotFound,
    PtmError,
    Unavailable,
    WrongEtag,
)
from ptm_sync.core.model import as_utc

#: Private extended property that marks an event as ours (value "1"), and the one that holds
#: the meeting UID (Google's own ``iCalUID`` is derived from the event id we choose).
TAG = "ptmSync"
UID_KEY = "ptmSyncUid"
#: Our event ids start so ("ptm" is base32hex too); the rest is the UID's SHA-256.
ID_PREFIX = "ptm0"

#: Reasons of a 403 that mean "slow down", not "forbidden" (Handle API errors).
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})
#: HTTP statuses worth trying again after a wait.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

_B32HEX = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "abcdefghijklmnopqrstuv0123456789")


def event_id(uid: str) -> str:
    """The event id we give the meeting with ``uid``: :data:`ID_PREFIX` and 52 base32hex
    characters of the UID's SHA-256 (Google: ``a–v``, ``0–9``, 5–1024 characters)."""
    digest = hashlib.sha256(uid.encode("utf-8")).digest()
    return ID_PREFIX + base64.b32encode(digest).decode("ascii").rstrip("=").translate(_B32HEX)


def is_our_id(value: str) -> bool:
    return value.startswith(ID_PREFIX) and len(value) == len(ID_PREFIX) + 52


def rfc3339(moment: datetime) -> str:
    """``2027-04-13T13:00:00Z``: the UTC form Google's date-time fields take."""
    return as_utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    """An RFC 3339 date-time from Google (``Z`` or an offset) as an aware UTC datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


_STATUS = {"TENTATIVE": "tentative", "CANCELLED": "cancelled"}


def event_body(event: MeetingEvent) -> dict[str, Any]:
    """The Events resource we write for ``event`` (without ``id`` and conference data).

    No attendees, so Google sends nobody an invitation; ``visibility: private``;
    ``transparency: opaque`` (the time shows busy); the video link, when one is given and it
    is not a Meet link Google makes, ends the description.
    """
    description = event.description
    if event.video_url and event.video_url not in description:
        description = f"{description}\n\n{event.video_url}".strip()
    return {
        "summary": event.summary,
        "description": description,
        "location": event.location,
        "start": {"dateTime": rfc3339(event.start), "timeZone": "UTC"},
        "end": {"dateTime": rfc3339(event.end), "timeZone": "UTC"},
        "status": _STATUS.get(event.status.upper(), "confirmed"),
        "visibility": "private" if event.private else "default",
        "transparency": "opaque",
        "extendedProperties": {"private": {TAG: "1", UID_KEY: event.uid}},
    }


def meet_request(uid: str) -> dict[str, Any]:
    """``conferenceData`` asking for a Meet conference; the requestId is stable per UID so a
    repeated request does not make a second conference (Create events, "Conferencing")."""
    request_id = "ptm-" + hashlib.sha256(uid.encode("utf-8")).hexdigest()[:40]
    return {
        "createRequest": {
            "requestId": request_id,
            "conferenceSolutionKey": {"type": "hangoutsMeet"},
        }
    }


def says(stored: Mapping[str, Any], event: MeetingEvent) -> bool:
    """Whether a stored Google event already says what ``event`` says (and, when ``event``
    wants an online meeting, has one or has it on the way)."""
    if stored.get("status") == "cancelled":
        return False
    ours = event_body(event)
    try:
        same_times = all(
            parse_time(stored[key]["dateTime"]) == parse_time(ours[key]["dateTime"])
            for key in ("start", "end")
        )
    except (KeyError, TypeError, ValueError):
        return False
    fields = ("summary", "description", "location", "status", "visibility")
    same = same_times and all(stored.get(k, "") == ours[k] for k in fields)
    tags = stored.get("extendedProperties", {}).get("private", {})
    if tags.get(UID_KEY) != event.uid:
        return False
    if event.online_meeting and not (join_url(stored) or conference_status(stored) == "pending"):
        return False
    return same


def join_url(stored: Mapping[str, Any]) -> str:
    """The Meet joining URL: ``hangoutLink``, else the ``video`` entry point's URI."""
    if stored.get("hangoutLink"):
        return str(stored["hangoutLink"])
    for point in stored.get("conferenceData", {}).get("entryPoints", []):
        if point.get("entryPointType") == "video" and point.get("uri"):
            return str(point["uri"])
    return ""


def conference_status(stored: Mapping[str, Any]) -> str:
    """``pending`` | ``success`` | ``failure`` of the conference create request, or ""."""
    data = stored.get("conferenceData", {})
    return str(data.get("createRequest", {}).get("status", {}).get("statusCode", ""))


def uid_of(stored: Mapping[str, Any]) -> str | None:
    """The meeting UID of an event of ours (its tag), else None."""
    tags = stored.get("extendedProperties", {}).get("private", {})
    uid = tags.get(UID_KEY)
    return str(uid) if uid and tags.get(TAG) == "1" else None


def span(stored: Mapping[str, Any]) -> tuple[datetime, datetime] | None:
    """Start and end of a timed event in UTC; None for an all-day or unreadable one."""
    try:
        return parse_time(stored["start"]["dateTime"]), parse_time(stored["end"]["dateTime"])
    except (KeyError, TypeError, ValueError):
        return None


_ICAL_STATUS = {"tentative": "TENTATIVE", "cancelled": "CANCELLED"}


def to_ical(stored: Mapping[str, Any], uid: str, start: datetime, end: datetime) -> str:
    """The VCALENDAR (one VEVENT, UID = the meeting's, times in UTC) for a stored event."""
    updated = stored.get("updated")
    stamp = parse_time(updated) if isinstance(updated, str) else start
    meeting = MeetingEvent(
        uid=uid,
        start=start,
        end=end,
        summary=str(stored.get("summary", "")),
        description=str(stored.get("description", "")),
        location=str(stored.get("location", "")),
        video_url=join_url(stored),
        status=_ICAL_STATUS.get(str(stored.get("status", "")), "CONFIRMED"),
        private=stored.get("visibility") in ("private", "confidential"),
    )
    ics = meeting_to_ical(meeting, ZoneInfo("UTC"), stamp=stamp).to_ical()
    return ics.decode("utf-8")


# --- errors ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """The ``error`` object of a Google API error answer (status, first reason, message)."""

    status: int
    reason: str
    message: str

    @classmethod
    def parse(cls, status: int, content: bytes | str) -> ErrorBody:
        try:
            data = json.loads(content)
            error = data.get("error", {}) if isinstance(data, dict) else {}
        except (TypeError, ValueError):
            error = {}
        if not isinstance(error, dict):  # the token endpoint's {"error": "invalid_grant"}
            return cls(status, str(error), "")
        errors = error.get("errors") or [{}]
        reason = str(errors[0].get("reason", "")) if isinstance(errors[0], dict) else ""
        return cls(status, reason, str(error.get("message", "")))


class GoogleRefused(ConnectorError):
    """Raised for an API answer a caller may expect (409 duplicate, 410 gone) and that has
    no ptm-sync meaning of its own; carries the HTTP status and Google's reason."""

    def __init__(self, message: str, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def translate(body: ErrorBody, what: str, retry_after: float | None) -> PtmError:
    """The ptm-sync error for a Google API error answer to ``what`` (a plain phrase)."""
    status, reason = body.status, body.reason
    detail = f"{what}: Google answered {status} {reason or 'error'}"
    if status in RETRY_STATUSES or (status == 403 and reason in RATE_REASONS):
        return Unavailable(f"{detail} (try again later)", retry_after=retry_after)
    if status == 401:
        return AuthFailed(f"{detail}: the access token was refused after one renewal")
    if status == 403 and reason == "accessNotConfigured":
        return AuthFailed(
            f"{what}: the Google Calendar API is not enabled for the service account's "
            "project (enable it in the Google Cloud console, APIs & Services)"
        )
    if status == 403:
        return AuthFailed(f"{detail}: the account may not do this ({body.message})")
    if status == 404:
        return NotFound(f"{what}: not found")
    if status == 412:
        return WrongEtag(f"{what}: the event changed since we last saw it")
    return GoogleRefused(f"{detail} ({body.message})", status, reason)
