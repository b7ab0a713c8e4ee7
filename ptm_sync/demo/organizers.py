"""Simulated parents who organize: invitations sent to a teacher's booking address.

A parent creates an event in their own calendar at a free time and invites the teacher's
booking address (DESIGN §3).  The builders return the raw email a client sends for that,
modeled on the shapes of real clients' invitations (see ``tests/fixtures/imip`` and the
shared fixtures from Google and Outlook):

* ``gmail``: ``calendar-notification@google.com`` as Sender, the parent in From, times with
  the IANA TZID and its VTIMEZONE, the calendar inline (7bit) and as ``invite.ics``;
* ``outlook``: a Windows time-zone name with its VTIMEZONE, base64 ``text/calendar;
  method=REQUEST`` in multipart/alternative, an Outlook-style UID.

``method="CANCEL"`` gives the parent's cancellation of the same event (RFC 5546 §3.2.5).
Used by the demo and the tests.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from icalendar import Timezone
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

CRLF = "\r\n"
_WINDOWS = {str(olson): name for name, olson in reversed(list(WINDOWS_TO_OLSON.items()))}


@dataclass(frozen=True, slots=True, kw_only=True)
class Booking:
    """The event a parent creates: who, which booking address, when (aware datetimes)."""

    parent: str
    parent_name: str
    booking_address: str
    start: datetime
    end: datetime
    uid: str = ""
    sequence: int = 0
    summary: str = "Parent-teacher conference"
    description: str = ""

    def event_uid(self, client: str) -> str:
        if self.uid:
            return self.uid
        seed = uuid.uuid5(uuid.NAMESPACE_URL, f"{self.parent}/{self.start.isoformat()}")
        if client == "outlook":
            return "040000008200E00074C5B7101A82E008" + seed.hex.upper()
        return f"{seed.hex[:26]}@google.com"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _fold(line: str) -> str:
    """RFC 5545 §3.1: lines longer than 75 octets are folded (ASCII content here)."""
    if len(line) <= 75:
        return line
    parts, rest = [line[:75]], line[75:]
    while rest:
        parts.append(" " + rest[:74])
        rest = rest[74:]
    return CRLF.join(parts)


def _calendar(booking: Booking, tz: ZoneInfo, now: datetime, *, client: str, method: str) -> str:
    tzid = _WINDOWS.get(tz.key, tz.key) if client == "outlook" else tz.key
    prodid = (
        "-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN"
        if client == "outlook"
        else "-//Google Inc//Google Calendar 70.9054//EN"
    )
    zone = Timezone.from_tzinfo(
        tz,
        tzid=tzid,
        first_date=booking.start.date().replace(month=1, day=1),
        last_date=booking.end.date().replace(month=12, day=31),
    )
    lines = ["BEGIN:VCALENDAR", f"PRODID:{prodid}", "VERSION:2.0", f"METHOD:{method}"]
    lines += [line for line in zone.to_ical().decode().split(CRLF) if line]
    start = booking.start.astimezone(tz).strftime("%Y%m%dT%H%M%S")
    end = booking.end.astimezone(tz).strftime("%Y%m%dT%H%M%S")
    status = "CANCELLED" if method == "CANCEL" else "CONFIRMED"
    lines += [
        "BEGIN:VEVENT",
        f"DTSTART;TZID={tzid}:{start}",
        f"DTEND;TZID={tzid}:{end}",
        f"DTSTAMP:{_stamp(now)}",
        f"ORGANIZER;CN={booking.parent_name}:mailto:{booking.parent}",
        f"UID:{booking.event_uid(client)}",
        "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE"
        f";CN={booking.booking_address}:mailto:{booking.booking_address}",
        "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;RSVP=TRUE"
        f";CN={booking.parent_name}:mailto:{booking.parent}",
        f"SEQUENCE:{booking.sequence}",
        f"STATUS:{status}",
        f"SUMMARY:{booking.summary}",
    ]
    if booking.description:
        lines.append("DESCRIPTION:" + booking.description.replace(",", "\\,"))
    lines += ["TRANSP:OPAQUE", "END:VEVENT", "END:VCALENDAR"]
    return CRLF.join(_fold(line) for line in lines) + CRLF


def request(
    client: str, booking: Booking, *, tz: ZoneInfo, now: datetime, method: str = "REQUEST"
) -> bytes:
    """The raw email ``client`` ("gmail" or "outlook") sends for ``booking``."""
    cal = _calendar(booking, tz, now, client=client, method=method)
    verb = "Canceled event" if method == "CANCEL" else "Invitation"
    when = booking.start.astimezone(tz).strftime("%a %b %d, %Y %H:%M")
    message_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{booking.event_uid(client)}/{method}/{now}")
    head = [
        ("Date", now.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")),
        ("From", f"{booking.parent_name} <{booking.parent}>"),
        ("To", booking.booking_address),
        ("Subject", f"{verb}: {booking.summary} @ {when}"),
        ("MIME-Version", "1.0"),
    ]
    if client == "gmail":
        head.insert(1, ("Sender", "Google Calendar <calendar-notification@google.com>"))
        head.append(("Message-ID", f"<{message_id.hex}@google.com>"))
        boundary = f"00000000000{message_id.hex[:16]}"
        body = (
            f"--{boundary}{CRLF}Content-Type: text/plain; charset=UTF-8{CRLF}{CRLF}"
            f"You have been invited to {booking.summary}.{CRLF}{CRLF}"
            f"--{boundary}{CRLF}Content-Type: text/calendar; charset=UTF-8; method={method}"
            f"{CRLF}Content-Transfer-Encoding: 7bit{CRLF}{CRLF}{cal}{CRLF}"
            f"--{boundary}{CRLF}Content-Type: application/ics; name=invite.ics{CRLF}"
            f"Content-Disposition: attachment; filename=invite.ics{CRLF}"
            f"Content-Transfer-Encoding: base64{CRLF}{CRLF}{_b64(cal)}{CRLF}--{boundary}--{CRLF}"
        )
        head.append(("Content-Type", f'multipart/mixed; boundary="{boundary}"'))
    else:
        head.append(("Message-ID", f"<{message_id.hex}@outlook.com>"))
        boundary = f"_000_{message_id.hex[:20]}_"
        body = (
            f"--{boundary}{CRLF}Content-Type: text/plain; charset=utf-8{CRLF}{CRLF}"
            f"{booking.description or booking.summary}{CRLF}{CRLF}"
            f"--{boundary}{CRLF}Content-Type: text/calendar; charset=utf-8; method={method}"
            f"{CRLF}Content-Transfer-Encoding: base64{CRLF}{CRLF}{_b64(cal)}{CRLF}"
            f"--{boundary}--{CRLF}"
        )
        head.append(("Content-Type", f'multipart/alternative; boundary="{boundary}"'))
    return ("".join(f"{k}: {v}{CRLF}" for k, v in head) + CRLF + body).encode("utf-8")


def _b64(text: str) -> str:
    return base64.encodebytes(text.encode("utf-8")).decode("ascii").replace("\n", CRLF)
