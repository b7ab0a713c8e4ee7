"""iTIP (RFC 5546) as pure functions: build what we send, read what we receive.

Modelled on sabre/vobject's ITip Broker and xandikos' ``itip.py``: values in, values out, no
I/O, no clock.  ``dtstamp`` and the school's time zone are arguments.

* Builders return :class:`icalendar.Calendar` objects: :func:`build_request`,
  :func:`build_cancel`, :func:`build_decline_counter` (the service as ORGANIZER) and
  :func:`build_reply` (the service as ATTENDEE, for requests sent to a booking address).
* :func:`read_itip` turns a parsed calendar into a frozen :class:`ItipMessage`, or raises
  :class:`~ptm_sync.core.errors.Unusable` with a short, stable reason for quarantine.
* :func:`is_newer` is the per-attendee ordering rule of RFC 5546 §2.1.5 (DESIGN §4).

The module is longer than the house's 300 lines on purpose: the value types, the reader and
the builders of one RFC share their helpers, and callers import one name, ``itip``.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Component, Event, vCalAddress
from icalendar.enums import CLASS, PARTSTAT, ROLE, STATUS, TRANSP
from icalendar.prop import vBroken, vUnknown
from icalendar.prop.conference import Conference

from ptm_sync.core.emailaddress import address_of
from ptm_sync.core.errors import QuarantineReason, Unusable
from ptm_sync.core.ical.parse import is_date, localize, parse_calendar, zone_resolver
from ptm_sync.core.ical.text import vtimezone

__all__ = [
    "CONFERENCE_LABEL",
    "MAX_UID_LENGTH",
    "PRODID",
    "READABLE_METHODS",
    "REQUEST_STATUS_CONFLICT",
    "REQUEST_STATUS_INVALID_PROPERTY",
    "REQUEST_STATUS_INVALID_USER",
    "REQUEST_STATUS_NO_AUTHORITY",
    "REQUEST_STATUS_REPEATING_IGNORED",
    "REQUEST_STATUS_SUCCESS",
    "REQUEST_STATUS_UNSUPPORTED",
    "Attendee",
    "Invitation",
    "ItipMessage",
    "Method",
    "address_of",
    "build_cancel",
    "build_decline_counter",
    "build_reply",
    "build_request",
    "is_newer",
    "parse_calendar",
    "read_itip",
]

PRODID = "-//ptm-sync//Parent-teacher conferences//EN"
CONFERENCE_LABEL = "Video meeting"

# REQUEST-STATUS values (RFC 5546 §3.6): "statcode;statdesc".
REQUEST_STATUS_SUCCESS = "2.0;Success"
REQUEST_STATUS_REPEATING_IGNORED = (
    "2.8;Success, repeating event ignored. Scheduled as a single component"
)
REQUEST_STATUS_INVALID_PROPERTY = "3.1;Invalid property value"  # ";PROPERTY" follows
REQUEST_STATUS_INVALID_USER = "3.7;Invalid calendar user"
REQUEST_STATUS_NO_AUTHORITY = "3.8;No authority"
REQUEST_STATUS_UNSUPPORTED = "3.14;Unsupported capability"
REQUEST_STATUS_CONFLICT = "4.0;Event conflict. Date/time is busy"

#: The longest UID we keep (the meetings table's column).  RFC 5545 §3.8.4.7 sets no
#: limit; clients write 36 to about 200 characters.
MAX_UID_LENGTH = 255


class Method(StrEnum):
    """iTIP methods (RFC 5546 §1.4)."""

    PUBLISH = "PUBLISH"
    REQUEST = "REQUEST"
    REPLY = "REPLY"
    ADD = "ADD"
    CANCEL = "CANCEL"
    REFRESH = "REFRESH"
    COUNTER = "COUNTER"
    DECLINECOUNTER = "DECLINECOUNTER"


#: Methods :func:`read_itip` accepts; the others are refused as ``unsupported-method``.
#: REQUEST and CANCEL come from parents organizing an event with a booking address.
READABLE_METHODS = frozenset(
    {Method.REQUEST, Method.REPLY, Method.CANCEL, Method.REFRESH, Method.COUNTER}
)
#: Methods whose DTSTART/DTEND we act on; a broken time there makes the message unusable.
_TIMED_METHODS = frozenset({Method.REQUEST, Method.COUNTER})


@dataclass(frozen=True, slots=True)
class Attendee:
    """One ATTENDEE of a received message; addresses lowercased, without ``mailto:``."""

    email: str
    partstat: str = PARTSTAT.NEEDS_ACTION
    cn: str | None = None
    role: str | None = None
    delegated_from: tuple[str, ...] = ()
    delegated_to: tuple[str, ...] = ()
    sent_by: str | None = None
    comment: str | None = None  # Google's X-RESPONSE-COMMENT: the note sent with an answer


@dataclass(frozen=True, slots=True)
class ItipMessage:
    """What a received iTIP message says, as read by :func:`read_itip`.

    ``start`` and ``end`` are aware UTC datetimes (or None when absent): for a COUNTER the
    proposed time (RFC 5546 §3.2.7), for a REQUEST the requested time, for a REPLY the time
    the attendee's copy of the meeting has (read leniently: a broken one is None).
    ``organizer`` is None when the sender left it out (Outlook replies do): match such
    messages by UID.

    ``proposes_time`` is True when the sender marks the message as a proposal of another
    time: METHOD:COUNTER (RFC 5546 §3.2.7).  That is what Outlook and Exchange send for
    "Propose new time" (with ``X-MS-OLK-ORIGINALSTART``, MS-OXCICAL §2.1.3.1.1.20.58), and
    what Google Calendar sends too (``PRODID:-//Google Inc//Google Calendar…``, PARTSTAT
    TENTATIVE, the note in ``X-RESPONSE-COMMENT``; seen in the Google COUNTER samples of
    linagora/tmail-backend's tests).  A REPLY carries no such marker: a REPLY whose time
    differs from the meeting's is found with :meth:`proposal`.
    """

    method: Method
    uid: str
    sequence: int = 0
    dtstamp: datetime | None = None
    recurrence_id: datetime | None = None
    organizer: str | None = None
    organizer_name: str | None = None
    attendees: tuple[Attendee, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    all_day: bool = False
    recurring: bool = False
    summary: str | None = None
    location: str | None = None
    status: str | None = None
    comment: str | None = None
    request_status: tuple[str, ...] = ()
    proposes_time: bool = False

    def attendee(self, email: str) -> Attendee | None:
        """The ATTENDEE with this address (any case, with or without ``mailto:``), if any."""
        wanted = address_of(email)
        return next((a for a in self.attendees if a.email == wanted), None)

    @property
    def replying_attendee(self) -> Attendee | None:
        """The one ATTENDEE of a REPLY/COUNTER/REFRESH (RFC 5546 §3.2.3); None if not one."""
        return self.attendees[0] if len(self.attendees) == 1 else None

    def proposal(self, start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
        """The other time this answer asks for, given the meeting's ``start`` and ``end``.

        A COUNTER or REPLY that carries a whole timed span (DTSTART and DTEND or DURATION,
        not all-day) different from the meeting's asks for that span; anything else asks
        for nothing (None).  A REPLY to the meeting as it is echoes the meeting's time, so a
        different time in a REPLY is a proposal (a guest's "Propose a new time" sent as a
        REPLY) or an answer to an older version of the meeting.

        Call it only for a message :func:`is_newer` than the last one applied: a REPLY to
        an outdated SEQUENCE (RFC 5546 §2.1.5) carries that version's time, not a wish.
        """
        if self.method not in (Method.COUNTER, Method.REPLY) or self.all_day:
            return None
        if self.start is None or self.end is None or self.end <= self.start:
            return None
        if (self.start, self.end) == (start.astimezone(UTC), end.astimezone(UTC)):
            return None
        return self.start, self.end


def is_newer(
    seq: int, dtstamp: datetime | None, last_seq: int | None, last_dtstamp: datetime | None
) -> bool:
    """Whether a message from an attendee supersedes the last one we applied.

    RFC 5546 §2.1.5 and DESIGN §4: a higher SEQUENCE wins, then a later DTSTAMP; an equal
    pair is a duplicate and a lower one is stale.  A missing DTSTAMP counts as the oldest.
    ``last_seq`` None means nothing was applied yet.
    """
    if last_seq is None:
        return True
    if seq != last_seq:
        return seq > last_seq
    if dtstamp is None:
        return False
    return last_dtstamp is None or dtstamp > last_dtstamp


# --- reading ------------------------------------------------------------------------------


def read_itip(cal: Calendar, method_hint: str | None, tz: tzinfo) -> ItipMessage:
    """Read an iTIP message from a parsed calendar.

    Args:
        cal: the calendar from the message's calendar part.
        method_hint: the MIME ``method=`` parameter (RFC 6047 §2.4), used when the
            VCALENDAR has no METHOD (seen in Lotus/HCL Notes output).
        tz: the school's zone, for floating times and TZIDs nobody defines.

    Raises:
        Unusable: ``no-vevent``, ``no-uid``, ``uid-too-long``, ``multiple-uids``,
            ``no-method``, ``unsupported-method`` or ``broken-icalendar``.
    """
    events = [c for c in cal.subcomponents if c.name == "VEVENT"]
    if not events:
        kinds = ",".join(sorted({str(c.name) for c in cal.subcomponents})) or "nothing"
        raise Unusable(QuarantineReason.NO_VEVENT, f"calendar holds {kinds}")
    # RFC 5546 §2.1.1: one UID per message; the master comes first, overrides after it.
    main = next((e for e in events if "RECURRENCE-ID" not in e), events[0])
    uid = str(main.get("UID") or "").strip()
    if not uid:
        raise Unusable(QuarantineReason.NO_UID, "VEVENT without UID")
    if len(uid) > MAX_UID_LENGTH:
        raise Unusable(QuarantineReason.UID_TOO_LONG, f"over {MAX_UID_LENGTH} characters")
    if len({str(e.get("UID") or "").strip() for e in events}) > 1:
        raise Unusable(QuarantineReason.MULTIPLE_UIDS, "one message must carry one UID")
    attendees = tuple(_attendee(a) for a in _as_list(main.get("ATTENDEE")))
    method = _method(cal, method_hint, main)
    timed = method in _TIMED_METHODS
    resolve = zone_resolver(cal, tz)
    start_prop = main.get("DTSTART")
    start = _moment(start_prop, "DTSTART", resolve, tz, strict=timed)
    end = _moment(main.get("DTEND"), "DTEND", resolve, tz, strict=timed)
    if end is None and start is not None and main.get("DURATION") is not None:
        duration = _dt(main["DURATION"])
        if isinstance(duration, timedelta):
            end = start + duration
    organizer = main.get("ORGANIZER")
    # Outlook sends COMMENT:\n when the attendee wrote nothing.
    comments = [text for c in _as_list(main.get("COMMENT")) if (text := str(c).strip())]
    if not comments and len(attendees) == 1 and attendees[0].comment:
        comments = [attendees[0].comment]
    return ItipMessage(
        method=method,
        uid=uid,
        sequence=_sequence(main),
        # RFC 5545 §3.8.7.2: DTSTAMP is UTC; a floating one is read as UTC too.
        dtstamp=_moment(main.get("DTSTAMP"), "DTSTAMP", resolve, UTC, strict=False),
        recurrence_id=_moment(
            main.get("RECURRENCE-ID"), "RECURRENCE-ID", resolve, tz, strict=False
        ),
        organizer=_email(organizer) if organizer is not None else None,
        organizer_name=_param(organizer, "CN"),
        attendees=attendees,
        start=start,
        end=end,
        all_day=is_date(_dt(start_prop)),
        recurring="RRULE" in main or "RDATE" in main,
        summary=_text(main.get("SUMMARY")),
        location=_text(main.get("LOCATION")),
        status=(_text(main.get("STATUS")) or "").upper() or None,
        comment="\n".join(comments) if comments else None,
        request_status=tuple(str(r) for r in _as_list(main.get("REQUEST-STATUS"))),
        proposes_time=method is Method.COUNTER,
    )


def _method(cal: Calendar, hint: str | None, main: Component) -> Method:
    raw = str(cal.get("METHOD") or "").strip().upper() or (hint or "").strip().upper()
    if not raw:
        # No METHOD anywhere: one ATTENDEE carrying a PARTSTAT is an answer (RFC 5546 §3.2.3).
        attendees = _as_list(main.get("ATTENDEE"))
        if len(attendees) == 1 and _param(attendees[0], "PARTSTAT"):
            return Method.REPLY
        raise Unusable(QuarantineReason.NO_METHOD, "no METHOD in the calendar or the MIME type")
    try:
        method = Method(raw)
    except ValueError:
        raise Unusable(QuarantineReason.UNSUPPORTED_METHOD, raw[:40]) from None
    if method not in READABLE_METHODS:
        raise Unusable(QuarantineReason.UNSUPPORTED_METHOD, raw)
    return method


def _sequence(event: Component) -> int:
    prop = event.get("SEQUENCE")
    if prop is None:
        return 0  # RFC 5545 §3.8.7.4: absent means 0
    if isinstance(prop, vBroken):
        raise Unusable(QuarantineReason.BROKEN_ICALENDAR, f"SEQUENCE: {str(prop)[:40]}")
    try:
        return int(prop)
    except (TypeError, ValueError):
        raise Unusable(QuarantineReason.BROKEN_ICALENDAR, f"SEQUENCE: {str(prop)[:40]}") from None


def _moment(
    prop: object, name: str, resolve: Callable[[str], tzinfo], floating: tzinfo, *, strict: bool
) -> datetime | None:
    """A date or date-time property as an instant (RFC 5545 §3.3.4, §3.3.5), None if absent.

    TZIDs go through the calendar's resolver (:func:`~ptm_sync.core.ical.parse.zone_resolver`:
    in-file VTIMEZONEs, Windows and IANA names); floating times and dates are ``floating``'s.
    """
    value = _dt(prop)
    if not isinstance(value, date):
        if prop is not None and strict:
            raise Unusable(QuarantineReason.BROKEN_ICALENDAR, f"{name}: {str(prop)[:40]}")
        return None
    if isinstance(value, datetime):
        tzid = getattr(prop, "params", {}).get("TZID")
        return localize(value, tzid, resolve, floating).astimezone(UTC)
    return datetime.combine(value, time(0), floating).astimezone(UTC)


def _dt(prop: object) -> object:
    """The ``.dt`` value of a date/time property; None when absent or unparseable."""
    if prop is None or isinstance(prop, vBroken):
        return None
    return getattr(prop, "dt", None)


def _attendee(value: object) -> Attendee:
    return Attendee(
        email=_email(value),
        partstat=(_param(value, "PARTSTAT") or PARTSTAT.NEEDS_ACTION).upper(),
        cn=_param(value, "CN"),
        role=(_param(value, "ROLE") or "").upper() or None,
        delegated_from=_addresses(value, "DELEGATED-FROM"),
        delegated_to=_addresses(value, "DELEGATED-TO"),
        sent_by=address_of(sent_by) if (sent_by := _param(value, "SENT-BY")) else None,
        comment=_response_comment(value),
    )


def _response_comment(value: object) -> str | None:
    # Google Calendar puts the attendee's note in this parameter, HTML-escaped, instead of
    # a COMMENT property.
    raw = _param(value, "X-RESPONSE-COMMENT")
    if not raw:
        return None
    text = raw.replace("\\;", ";").replace("\\,", ",").replace("\\n", "\n")
    return html.unescape(text).strip() or None


def _email(value: object) -> str:
    # Prefer the mailto: value; some clients put a non-mailto URI there and the address in
    # an EMAIL parameter (RFC 7986 §6.2).
    text = str(value).strip()
    email = _param(value, "EMAIL")
    if not text.lower().startswith("mailto:") and email:
        return address_of(email)
    return address_of(text)


def _param(value: object, name: str) -> str | None:
    params = getattr(value, "params", None)
    if not params or name not in params:
        return None
    raw = params[name]
    if isinstance(raw, list | tuple):
        raw = ",".join(str(v) for v in raw)
    text = str(raw).strip()
    return text or None


def _addresses(value: object, name: str) -> tuple[str, ...]:
    params = getattr(value, "params", None)
    if not params or name not in params:
        return ()
    raw = params[name]
    items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
    return tuple(address_of(str(i).strip().strip('"')) for i in items if str(i).strip())


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


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
