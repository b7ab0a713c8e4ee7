"""Simulated parents: answers to our invitations shaped like real mail clients' replies.

The demo uses them to play the parents' part, and the tests use them to show that every
client's reply is understood.  Each builder takes the invitation email we sent (raw bytes as
the parent's mail server received it) and returns the raw reply a client would send:

* ``outlook``: no ORGANIZER, Windows time-zone name with its VTIMEZONE, base64
  ``text/calendar; method=REPLY`` in multipart/alternative (Outlook / Exchange Online);
* ``gmail``: sent by calendar-notification@google.com with the parent in Reply-To, UTC
  times, the calendar inline and again as an ``invite.ics`` attachment;
* ``apple``: quoted-printable ``.ics`` attachment nested inside multipart/alternative,
  ``X-Mail-Calendar-Part: Yes``;
* ``thunderbird``: 8-bit inline ``text/calendar`` plus ``invite.ics``, folded lines;
* ``proton``: ``text/calendar`` without the ``method=`` parameter, base64.
"""

from __future__ import annotations

import base64
import email
import quopri
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import Message
from email.utils import format_datetime, parseaddr
from zoneinfo import ZoneInfo

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from ptm_sync.core import imip
from ptm_sync.core.ical import itip

CRLF = "\r\n"
_OLSON_TO_WINDOWS: dict[str, str] = {}
for _windows, _olson in WINDOWS_TO_OLSON.items():
    _OLSON_TO_WINDOWS.setdefault(str(_olson), _windows)


class Invitation:
    """What a parent's client reads from our invitation email."""

    def __init__(self, raw: bytes, tz: ZoneInfo) -> None:
        inbound = imip.extract(raw, tz=tz)
        message = inbound.require_itip()
        if message.method != itip.Method.REQUEST or message.start is None or not message.end:
            raise ValueError("not an invitation")
        self.message = message
        self.tz = tz
        parsed = email.message_from_bytes(raw)
        self.subject = str(parsed.get("Subject", ""))
        self.reply_to = parseaddr(str(parsed.get("From", "")))[1]
        attendee = message.attendees[0]
        self.attendee = attendee.email
        self.attendee_name = attendee.cn or attendee.email
        self.organizer = message.organizer or self.reply_to

    @property
    def uid(self) -> str:
        return self.message.uid


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _local(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y%m%dT%H%M%S")


def _fold(line: str) -> str:
    """RFC 5545 §3.1 folding at 75 octets (ASCII content here)."""
    if len(line) <= 75:
        return line
    parts = [line[:75]]
    rest = line[75:]
    while rest:
        parts.append(" " + rest[:74])
        rest = rest[74:]
    return CRLF.join(parts)


def _vtimezone(tzid: str, tz: ZoneInfo, year: int) -> list[str]:
    """A VTIMEZONE with the zone's current rules, written the way clients do."""
    from icalendar import Timezone

    component = Timezone.from_tzinfo(
        tz,
        tzid=tzid,
        first_date=datetime(year - 1, 1, 1).date(),
        last_date=datetime(year + 1, 12, 31).date(),
    )
    text = component.to_ical().decode()
    return [line for line in text.split(CRLF) if line]


def _reply_calendar(
    inv: Invitation,
    partstat: str,
    now: datetime,
    *,
    prodid: str,
    organizer: bool,
    tzid: str | None,
    comment: str = "",
    extra_attendee: str = "",
    method: str = "REPLY",
    when: tuple[datetime, datetime] | None = None,
) -> str:
    msg = inv.message
    assert msg.start is not None and msg.end is not None
    begins, ends = when or (msg.start, msg.end)
    lines = ["BEGIN:VCALENDAR", f"METHOD:{method}", f"PRODID:{prodid}", "VERSION:2.0"]
    if tzid is not None:
        lines += _vtimezone(tzid, inv.tz, begins.year)
        start = f"DTSTART;TZID={tzid}:{_local(begins, inv.tz)}"
        end = f"DTEND;TZID={tzid}:{_local(ends, inv.tz)}"
    else:
        start, end = f"DTSTART:{_stamp(begins)}", f"DTEND:{_stamp(ends)}"
    lines += ["BEGIN:VEVENT", f"UID:{msg.uid}", f"DTSTAMP:{_stamp(now)}", start, end]
    if organizer:
        lines.append(f"ORGANIZER;CN=Conferences:mailto:{inv.organizer}")
    lines.append(
        f"ATTENDEE;PARTSTAT={partstat};CN={inv.attendee_name}{extra_attendee}:mailto:{inv.attendee}"
    )
    if comment:
        lines.append("COMMENT:" + comment.replace(",", "\\,").replace(";", "\\;"))
    lines += [
        f"SEQUENCE:{msg.sequence}",
        f"SUMMARY:{msg.summary or 'Conference'}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return CRLF.join(_fold(line) for line in lines) + CRLF


def _headers(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"{k}: {v}{CRLF}" for k, v in pairs)


def _b64(text: str) -> str:
    encoded = base64.encodebytes(text.encode("utf-8")).decode("ascii")
    return encoded.replace("\n", CRLF)


def _verb(partstat: str) -> str:
    return {"ACCEPTED": "Accepted", "DECLINED": "Declined", "TENTATIVE": "Tentative"}.get(
        partstat, partstat.title()
    )


def outlook(
    inv: Invitation,
    partstat: str,
    now: datetime,
    comment: str = "",
    *,
    counter: tuple[datetime, datetime] | None = None,
) -> bytes:
    """Outlook's answer; with ``counter``, its "Propose new time" (METHOD:COUNTER, which
    keeps the ORGANIZER and carries the proposed DTSTART/DTEND)."""
    method = "COUNTER" if counter else "REPLY"
    tzid = _OLSON_TO_WINDOWS.get(inv.tz.key)
    cal = _reply_calendar(
        inv,
        "TENTATIVE" if counter else partstat,
        now,
        prodid="Microsoft Exchange Server 2010",
        organizer=counter is not None,
        tzid=tzid,
        comment=comment or "\\n",
        method=method,
        when=counter,
    )
    boundary = f"_000_{uuid.uuid4().hex.upper()}_"
    head = _headers(
        [
            ("From", f"{inv.attendee_name} <{inv.attendee}>"),
            ("To", f"Conferences <{inv.reply_to}>"),
            ("Subject", f"{_verb(partstat)}: {inv.message.summary}"),
            ("Thread-Topic", str(inv.message.summary)),
            ("Date", format_datetime(now)),
            ("Message-ID", f"<{uuid.uuid4().hex.upper()}@DB9P189MB1675.EURP189.PROD.OUTLOOK.COM>"),
            ("Content-Language", "en-US"),
            ("X-MS-Has-Attach", ""),
            ("Content-Type", f'multipart/alternative;{CRLF}\tboundary="{boundary}"'),
            ("MIME-Version", "1.0"),
        ]
    )
    body = (
        f'--{boundary}{CRLF}Content-Type: text/plain; charset="us-ascii"{CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}{comment}{CRLF}{CRLF}"
        f'--{boundary}{CRLF}Content-Type: text/html; charset="us-ascii"{CRLF}'
        f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}<html><body>{comment}"
        f"</body></html>{CRLF}{CRLF}"
        f'--{boundary}{CRLF}Content-Type: text/calendar; charset="utf-8"; method={method}{CRLF}'
        f"Content-Transfer-Encoding: base64{CRLF}{CRLF}{_b64(cal)}{CRLF}--{boundary}--{CRLF}"
    )
    return (head + CRLF + body).encode("utf-8")


def gmail(
    inv: Invitation,
    partstat: str,
    now: datetime,
    comment: str = "",
    *,
    proposal: tuple[datetime, datetime] | None = None,
) -> bytes:
    """Gmail's answer; with ``proposal``, its "Propose a new time" sent as a REPLY that
    carries the proposed DTSTART/DTEND (PARTSTAT TENTATIVE, the note in
    X-RESPONSE-COMMENT)."""
    note = f';X-RESPONSE-COMMENT="{comment}"' if comment else ""
    cal = _reply_calendar(
        inv,
        partstat,
        now,
        prodid="-//Google Inc//Google Calendar 70.9054//EN",
        organizer=True,
        tzid=None,
        extra_attendee=f";X-NUM-GUESTS=0{note}",
        when=proposal,
    )
    outer, inner = f"0000000000{uuid.uuid4().hex[:16]}", f"0000000000{uuid.uuid4().hex[:16]}"
    head = _headers(
        [
            ("Reply-To", f"{inv.attendee_name} <{inv.attendee}>"),
            ("Sender", "Google Calendar <calendar-notification@google.com>"),
            ("Message-ID", f"<calendar-{uuid.uuid4()}@google.com>"),
            ("Date", format_datetime(now)),
            ("Subject", f"{_verb(partstat)}: {inv.message.summary}"),
            ("From", f'"{inv.attendee_name} (Google Calendar)" <calendar-notification@google.com>'),
            ("To", inv.reply_to),
            ("Content-Type", f'multipart/mixed; boundary="{outer}"'),
            ("MIME-Version", "1.0"),
        ]
    )
    text = f"{inv.attendee_name} has {_verb(partstat).lower()} this invitation.{CRLF}"
    body = (
        f'--{outer}{CRLF}Content-Type: multipart/alternative; boundary="{inner}"{CRLF}{CRLF}'
        f'--{inner}{CRLF}Content-Type: text/plain; charset="UTF-8"; format=flowed; delsp=yes'
        f"{CRLF}Content-Transfer-Encoding: base64{CRLF}{CRLF}{_b64(text)}"
        f'--{inner}{CRLF}Content-Type: text/calendar; charset="UTF-8"; method=REPLY{CRLF}'
        f"Content-Transfer-Encoding: 7bit{CRLF}{CRLF}{cal}{CRLF}--{inner}--{CRLF}{CRLF}"
        f'--{outer}{CRLF}Content-Type: application/ics; name="invite.ics"{CRLF}'
        f'Content-Disposition: attachment; filename="invite.ics"{CRLF}'
        f"Content-Transfer-Encoding: base64{CRLF}{CRLF}{_b64(cal)}{CRLF}--{outer}--{CRLF}"
    )
    return (head + CRLF + body).encode("utf-8")


def apple(inv: Invitation, partstat: str, now: datetime, comment: str = "") -> bytes:
    cal = _reply_calendar(
        inv,
        partstat,
        now,
        prodid="-//Apple Inc.//macOS 15.3//EN",
        organizer=True,
        tzid=inv.tz.key,
        comment=comment,
    )
    # Apple Mail writes each iCalendar line as one quoted-printable line ending in an
    # encoded CRLF and a soft line break.
    qp = CRLF.join(
        quopri.encodestring(line.encode("utf-8")).decode("ascii").replace("\n", CRLF) + "=0D=0A="
        for line in cal.split(CRLF)
        if line
    )
    outer = f"Apple-Mail={uuid.uuid4()}".upper()
    inner = f"Apple-Mail={uuid.uuid4()}".upper()
    sentence = (
        f"{inv.attendee_name} has {_verb(partstat).lower()} your event invitation to the event: "
        f"{inv.message.summary}."
    )
    head = _headers(
        [
            ("From", f"{inv.attendee_name} <{inv.attendee}>"),
            ("Content-Type", f'multipart/alternative; boundary="{outer}"'),
            ("Mime-Version", "1.0 (Mac OS X Mail 16.0 \\(3826.400.131.1.6\\))"),
            ("Subject", f"Invitation: {inv.message.summary} has been {_verb(partstat).lower()}"),
            ("Date", format_datetime(now)),
            ("X-Mail-Calendar-Part", "Yes"),
            ("To", f"Conferences <{inv.reply_to}>"),
            ("Message-Id", f"<{str(uuid.uuid4()).upper()}@icloud.com>"),
            ("X-Mailer", "Apple Mail (2.3826.400.131.1.6)"),
        ]
    )
    body = (
        f"{CRLF}--{outer}{CRLF}Content-Transfer-Encoding: 7bit{CRLF}Content-Type: text/plain;"
        f"{CRLF}\tcharset=us-ascii{CRLF}{CRLF}{sentence}{CRLF}{CRLF}"
        f'--{outer}{CRLF}Content-Type: multipart/mixed;{CRLF}\tboundary="{inner}"{CRLF}{CRLF}'
        f"{CRLF}--{inner}{CRLF}Content-Transfer-Encoding: 7bit{CRLF}Content-Type: text/html;"
        f"{CRLF}\tcharset=us-ascii{CRLF}{CRLF}<html><body>{sentence}</body></html>{CRLF}"
        f"--{inner}{CRLF}Content-Disposition: attachment;{CRLF}\tfilename=iCal-"
        f"{now:%Y%m%d-%H%M%S}.ics{CRLF}Content-Type: text/calendar;{CRLF}\tname=iCal-"
        f"{now:%Y%m%d-%H%M%S}.ics{CRLF}Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
        f"{qp}{CRLF}--{inner}--{CRLF}{CRLF}--{outer}--{CRLF}"
    )
    return (head + body).encode("utf-8")


def thunderbird(inv: Invitation, partstat: str, now: datetime, comment: str = "") -> bytes:
    cal = _reply_calendar(
        inv,
        partstat,
        now,
        prodid="-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN",
        organizer=True,
        tzid=inv.tz.key,
        comment=comment,
    )
    boundary = f"------------{uuid.uuid4().hex[:24]}"
    head = _headers(
        [
            ("Message-ID", f"<{uuid.uuid4()}@example.net>"),
            ("Date", format_datetime(now)),
            ("MIME-Version", "1.0"),
            ("User-Agent", "Mozilla Thunderbird"),
            ("From", f"{inv.attendee_name} <{inv.attendee}>"),
            ("To", inv.reply_to),
            ("Subject", f"{_verb(partstat)}: {inv.message.summary}"),
            ("Content-Type", f'multipart/mixed; boundary="{boundary}"'),
        ]
    )
    body = (
        f"This is a multi-part message in MIME format.{CRLF}--{boundary}{CRLF}"
        f"Content-Type: text/calendar; charset=UTF-8; method=REPLY{CRLF}"
        f"Content-Transfer-Encoding: 8bit{CRLF}{CRLF}{cal}{CRLF}--{boundary}{CRLF}"
        f'Content-Type: application/ics; name="invite.ics"{CRLF}'
        f'Content-Disposition: attachment; filename="invite.ics"{CRLF}'
        f"Content-Transfer-Encoding: base64{CRLF}{CRLF}{_b64(cal)}{CRLF}--{boundary}--{CRLF}"
    )
    return (head + CRLF + body).encode("utf-8")


def proton(inv: Invitation, partstat: str, now: datetime, comment: str = "") -> bytes:
    cal = _reply_calendar(
        inv,
        partstat,
        now,
        prodid="-//Proton AG//WebCalendar 5.0.31.2//EN",
        organizer=True,
        tzid=inv.tz.key,
        comment=comment,
    )
    boundary = f"---------------------{uuid.uuid4().hex}"
    head = _headers(
        [
            ("Date", format_datetime(now)),
            ("To", inv.reply_to),
            ("From", f"{inv.attendee_name} <{inv.attendee}>"),
            ("Subject", f"{_verb(partstat)}: {inv.message.summary}"),
            ("Message-ID", f"<{uuid.uuid4().hex}@proton.me>"),
            ("MIME-Version", "1.0"),
            ("Content-Type", f"multipart/mixed;boundary={boundary}"),
        ]
    )
    body = (
        f"--{boundary}{CRLF}Content-Type: text/plain; charset=utf-8{CRLF}{CRLF}"
        f"{inv.attendee_name} has {_verb(partstat).lower()} your invitation.{CRLF}"
        f"--{boundary}{CRLF}Content-Type: text/calendar; charset=utf-8{CRLF}"
        f"Content-Transfer-Encoding: base64{CRLF}{CRLF}{_b64(cal)}{CRLF}--{boundary}--{CRLF}"
    )
    return (head + CRLF + body).encode("utf-8")


Client = Callable[[Invitation, str, datetime, str], bytes]
CLIENTS: dict[str, Client] = {
    "outlook": outlook,
    "gmail": gmail,
    "apple": apple,
    "thunderbird": thunderbird,
    "proton": proton,
}


def reply(
    client: str, invitation: bytes, partstat: str, *, tz: ZoneInfo, now: datetime, comment: str = ""
) -> bytes:
    """The raw reply ``client`` would send to ``invitation`` with ``partstat``."""
    return CLIENTS[client](Invitation(invitation, tz), partstat, now, comment)


def propose_new_time(
    invitation: bytes,
    start: datetime,
    end: datetime,
    *,
    tz: ZoneInfo,
    now: datetime,
    comment: str = "",
) -> bytes:
    """Outlook's "Propose new time" for ``invitation``: an iTIP COUNTER."""
    return outlook(Invitation(invitation, tz), "TENTATIVE", now, comment, counter=(start, end))


def gmail_propose_new_time(
    invitation: bytes,
    start: datetime,
    end: datetime,
    *,
    tz: ZoneInfo,
    now: datetime,
    comment: str = "",
) -> bytes:
    """Gmail's "Propose a new time" for ``invitation``: a REPLY carrying the new time."""
    return gmail(Invitation(invitation, tz), "TENTATIVE", now, comment, proposal=(start, end))


def is_invitation(raw: bytes) -> bool:
    message: Message = email.message_from_bytes(raw)
    return any(part.get_content_type() == "text/calendar" for part in message.walk())
