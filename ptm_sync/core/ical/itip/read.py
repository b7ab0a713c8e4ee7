"""Reading a received iTIP message (RFC 5546) into a frozen :class:`ItipMessage`.

Lenient where the message only informs, strict where we act on it: a broken time in a
REQUEST or COUNTER, a broken SEQUENCE, no UID or no METHOD make the message unusable, with
a short, stable reason for quarantine.  Properties and parameters are read the way the
clients seen in the field write them (Outlook, Google, Lotus/HCL Notes).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from icalendar import Calendar, Component
from icalendar.enums import PARTSTAT
from icalendar.prop import vBroken

from ptm_sync.core.emailaddress import address_of
from ptm_sync.core.errors import QuarantineReason, Unusable
from ptm_sync.core.ical.itip.message import (
    MAX_UID_LENGTH,
    READABLE_METHODS,
    Attendee,
    ItipMessage,
    Method,
)
from ptm_sync.core.ical.parse import is_date, localize, zone_resolver

#: Methods whose DTSTART/DTEND we act on; a broken time there makes the message unusable.
_TIMED_METHODS = frozenset({Method.REQUEST, Method.COUNTER})


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
