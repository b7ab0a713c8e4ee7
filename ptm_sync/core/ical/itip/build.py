"""Building what the service sends (RFC 5546): REQUEST, CANCEL, DECLINECOUNTER and REPLY.

As ORGANIZER the service describes one meeting to one attendee with an :class:`Invitation`
and sends it as a REQUEST (§3.2.2), a CANCEL (§3.2.5) or a DECLINECOUNTER (§3.2.8); as
ATTENDEE, for a parent's request to a booking address, it answers with a REPLY (§3.2.3).
Each builder returns an :class:`icalendar.Calendar`; ``dtstamp`` and the zone are the
caller's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Event, vCalAddress
from icalendar.enums import CLASS, PARTSTAT, ROLE, STATUS, TRANSP
from icalendar.prop import vUnknown
from icalendar.prop.conference import Conference

from ptm_sync.core.emailaddress import address_of
from ptm_sync.core.errors import QuarantineReason, Unusable
from ptm_sync.core.ical.itip.message import (
    REQUEST_STATUS_CONFLICT,
    REQUEST_STATUS_SUCCESS,
    ItipMessage,
    Method,
)
from ptm_sync.core.ical.text import vtimezone

PRODID = "-//ptm-sync//Parent-teacher conferences//EN"
CONFERENCE_LABEL = "Video meeting"

_STATUSES = frozenset({STATUS.TENTATIVE, STATUS.CONFIRMED, STATUS.CANCELLED})


@dataclass(frozen=True, slots=True, kw_only=True)
class Invitation:
    """One meeting as the organizer (the service) describes it to one attendee (a parent).

    ``start``, ``end`` and ``dtstamp`` are aware datetimes; they are written in the school's
    zone by the builders.  ``sequence`` is the caller's: the booking core's transition
    table says when it goes up (RFC 5546 §2.1.4).  ``partstat`` is what we believe the
    attendee answered; ``NEEDS-ACTION`` asks them to answer (RSVP=TRUE).
    """

    uid: str
    sequence: int
    start: datetime
    end: datetime
    summary: str
    organizer: str
    attendee: str
    status: str
    dtstamp: datetime
    description: str = ""
    location: str = ""
    video_url: str = ""
    organizer_name: str = ""
    attendee_name: str = ""
    url: str = ""
    comment: str = ""
    partstat: str = PARTSTAT.NEEDS_ACTION
    reminder: timedelta | None = timedelta(minutes=15)

    def __post_init__(self) -> None:
        for name in ("start", "end", "dtstamp"):
            moment = getattr(self, name)
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError(f"Invitation.{name} must be an aware datetime")
        if self.end <= self.start:
            raise ValueError("Invitation ends before it starts")
        if self.status not in _STATUSES:
            raise ValueError(f"Invitation.status must be one of {sorted(_STATUSES)}")
        if self.sequence < 0:
            raise ValueError("Invitation.sequence must not be negative")


# --- builders -----------------------------------------------------------------------------


def build_request(inv: Invitation, tz: ZoneInfo) -> Calendar:
    """METHOD:REQUEST for one attendee (RFC 5546 §3.2.2), with VTIMEZONE, video link, VALARM.

    Used for the first proposal, for updates (reschedule, confirmation) and as the answer
    to a REFRESH (§3.2.6), which is "the current REQUEST again".
    """
    event = _event(inv, tz, partstat=inv.partstat, status=inv.status)
    if inv.reminder is not None:
        event.add_component(
            Alarm.new_display(description=f"Reminder: {inv.summary}", trigger=-inv.reminder)
        )
    return _calendar(Method.REQUEST, event, tz, inv)


def build_cancel(inv: Invitation, tz: ZoneInfo) -> Calendar:
    """METHOD:CANCEL (RFC 5546 §3.2.5); the caller has already bumped ``sequence``."""
    event = _event(inv, tz, partstat=None, status=STATUS.CANCELLED)
    return _calendar(Method.CANCEL, event, tz, inv)


def build_decline_counter(
    inv: Invitation,
    tz: ZoneInfo,
    comment: str,
    request_status: str = REQUEST_STATUS_CONFLICT,
) -> Calendar:
    """METHOD:DECLINECOUNTER (RFC 5546 §3.2.8): the proposed time is refused.

    The meeting keeps its current time (``inv``); ``comment`` says why and may list free
    alternatives.  SEQUENCE echoes the meeting's current one.
    """
    event = Event.new(
        uid=inv.uid,
        stamp=inv.dtstamp.astimezone(UTC),
        sequence=inv.sequence,
        start=inv.start.astimezone(tz),
        end=inv.end.astimezone(tz),
        summary=inv.summary,
        organizer=_address(inv.organizer, inv.organizer_name),
        attendees=[_address(inv.attendee, inv.attendee_name, role=ROLE.REQ_PARTICIPANT)],
        comments=comment or None,
    )
    _add_request_status(event, request_status)
    return _calendar(Method.DECLINECOUNTER, event, tz, inv)


def build_reply(
    request: ItipMessage,
    *,
    attendee: str,
    partstat: str,
    dtstamp: datetime,
    attendee_name: str = "",
    comment: str = "",
    request_status: str | None = None,
) -> Calendar:
    """METHOD:REPLY from the service as ATTENDEE (RFC 5546 §3.2.3).

    For a parent's REQUEST sent to a teacher's booking address: the parent stays organizer;
    we echo UID, SEQUENCE, RECURRENCE-ID and ORGANIZER and answer with ``partstat``
    (ACCEPTED or DECLINED), a COMMENT and a REQUEST-STATUS (default: 2.0 when accepted,
    4.0 conflict otherwise).

    Raises:
        Unusable: ``no-organizer`` when the request names nobody to reply to.
    """
    if request.organizer is None:
        raise Unusable(QuarantineReason.NO_ORGANIZER, f"request {request.uid} has no ORGANIZER")
    if dtstamp.tzinfo is None:
        raise ValueError("dtstamp must be an aware datetime")
    if request_status is None:
        accepted = partstat == PARTSTAT.ACCEPTED
        request_status = REQUEST_STATUS_SUCCESS if accepted else REQUEST_STATUS_CONFLICT
    event = Event.new(
        uid=request.uid,
        stamp=dtstamp.astimezone(UTC),
        sequence=request.sequence,
        summary=request.summary or None,
        start=request.start,
        end=request.end,
        organizer=_address(request.organizer, request.organizer_name or ""),
        attendees=[_address(attendee, attendee_name, partstat=partstat)],
        comments=comment or None,
    )
    if request.recurrence_id is not None:
        event.add("RECURRENCE-ID", request.recurrence_id)
    _add_request_status(event, request_status)
    calendar = Calendar.new(method=Method.REPLY, prodid=PRODID, subcomponents=[event])
    del calendar["UID"]  # RFC 7986 calendar UID: not wanted in an iTIP message
    return calendar


# --- helpers ------------------------------------------------------------------------------


def _event(inv: Invitation, tz: ZoneInfo, *, partstat: str | None, status: str) -> Event:
    description = inv.description
    location = inv.location
    conferences = None
    if inv.video_url:
        # RFC 7986 §5.11 CONFERENCE and URL carry the link; DESCRIPTION and LOCATION repeat
        # it for clients that show neither (DESIGN §4).
        conferences = [Conference(inv.video_url, feature="VIDEO", label=CONFERENCE_LABEL)]
        if inv.video_url not in description:
            description = f"{description}\n\n{CONFERENCE_LABEL}: {inv.video_url}".strip()
        if inv.video_url not in location:
            location = f"{location} / {inv.video_url}" if location else inv.video_url
    attendee = _address(
        inv.attendee,
        inv.attendee_name,
        role=ROLE.REQ_PARTICIPANT,
        partstat=partstat,
        rsvp=(partstat == PARTSTAT.NEEDS_ACTION) if partstat is not None else None,
    )
    return Event.new(
        uid=inv.uid,
        stamp=inv.dtstamp.astimezone(UTC),
        sequence=inv.sequence,
        start=inv.start.astimezone(tz),
        end=inv.end.astimezone(tz),
        summary=inv.summary,
        description=description or None,
        location=location or None,
        url=inv.video_url or inv.url or None,
        conferences=conferences,
        organizer=_address(inv.organizer, inv.organizer_name),
        attendees=[attendee],
        status=STATUS(status),
        classification=CLASS.PRIVATE,
        transparency=TRANSP.OPAQUE,
        comments=inv.comment or None,
    )


def _calendar(method: Method, event: Event, tz: ZoneInfo, inv: Invitation) -> Calendar:
    calendar = Calendar.new(method=method, prodid=PRODID)
    del calendar["UID"]  # RFC 7986 calendar UID: random, and not wanted in an iTIP message
    if tz.key in _tzids(event):
        # RFC 5545 §3.6.5: every TZID used needs its VTIMEZONE.  A VTIMEZONE covering the
        # meeting's calendar year(s) keeps the message small and the output deterministic.
        start, end = inv.start.astimezone(tz), inv.end.astimezone(tz)
        calendar.add_component(vtimezone(tz, start.year, end.year + 1))
    calendar.add_component(event)
    return calendar


def _tzids(event: Event) -> set[str]:
    """The TZIDs the event's date-times are written in."""
    tzids = set()
    for name in ("DTSTART", "DTEND"):
        prop = event.get(name)
        if prop is not None and "TZID" in prop.params:
            tzids.add(str(prop.params["TZID"]))
    return tzids


def _address(
    email: str,
    name: str = "",
    *,
    role: str | None = None,
    partstat: str | None = None,
    rsvp: bool | None = None,
) -> vCalAddress:
    return vCalAddress.new(
        address_of(email), cn=name or None, role=role, partstat=partstat, rsvp=rsvp
    )


def _add_request_status(event: Event, value: str) -> None:
    # RFC 5545 §3.8.8.3: statcode ";" statdesc [";" extdata].  The semicolons separate the
    # parts and must not be escaped, which icalendar's TEXT encoding would do.
    parts = [_escape_text(part) for part in value.split(";")]
    event.add("REQUEST-STATUS", vUnknown(";".join(parts)))


def _escape_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\n", "\\n")
