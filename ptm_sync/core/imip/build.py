"""iMIP (RFC 6047): iTIP messages carried by email, both ways.  Pure: bytes in, values out.

Outbound, :func:`build_invitation_email` gives the shape of DESIGN §4 that Gmail, Outlook
and Apple Mail all show with RSVP buttons::

    multipart/mixed
      multipart/alternative
        text/plain; text/html; text/calendar; method=REQUEST; charset=utf-8
      application/ics; name=invite.ics   (attachment)

Inbound, :func:`extract` reads one raw message into an :class:`Inbound` value: who sent it,
to whom, and what kind of message it is.  The calendar part is found anywhere (inline or
attached, with or without ``method=``, ``application/ics``, ``.ics`` with a generic type,
inside a forwarded ``message/rfc822``), whatever its transfer encoding or charset, and is
unfolded before it is decoded (:mod:`ptm_sync.core.ical.parse`).  Delivery reports, auto-replies
and read receipts are told apart before any calendar data is trusted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from email import policy
from email.errors import MessageError
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses, parsedate_to_datetime
from enum import StrEnum

from icalendar import Calendar

from ptm_sync.core.emailaddress import EmailAddress
from ptm_sync.core.errors import Unusable
from ptm_sync.core.ical.itip import ItipMessage, Method, read_itip
from ptm_sync.core.ical.parse import decode_calendar, decode_line, parse_calendar
from ptm_sync.core.ical.text import serialize
from ptm_sync.core.imip.headers import BUILD_POLICY, READ_POLICY
from ptm_sync.core.imip.limits import (
    HEAD_BYTES,
    TOO_DEEP,
    TOO_LARGE,
    TOO_MANY_PARTS,
    CalendarTally,
    InputLimits,
    check_calendar_text,
)

__all__ = [
    "GOOGLE_NOTIFIER",
    "Inbound",
    "Kind",
    "as_bytes",
    "build_invitation_email",
    "build_plain_email",
    "calendar_digest",
    "calendar_text",
    "extract",
]

#: Google Calendar sends replies from this address with the attendee in Reply-To.
GOOGLE_NOTIFIER = "calendar-notification@google.com"


# Read with the standard policy's rules (``policy.default``), only faster.
_READ_POLICY = READ_POLICY
# Build with 7-bit transfer encodings so no relay needs 8BITMIME; send with CRLF.
_BUILD_POLICY = BUILD_POLICY
_CALENDAR_TYPES = frozenset(
    {"text/calendar", "application/ics", "text/x-vcalendar", "application/x-ics"}
)
_CALENDAR_SUFFIXES = (".ics", ".ical", ".ifb", ".vcs")
_DAEMONS = frozenset({"mailer-daemon", "postmaster"})
_DEFAULT_LIMITS = InputLimits()
#: Control characters left in a header value after unfolding (RFC 5322 §2.2 allows none
#: but HTAB); C1 ones too, which only a mis-decoded charset produces, and lone surrogates
#: (an encoded word in UTF-7 can decode to one).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
#: What the surrogateescape codec makes of octets over 127 in a header (``email`` reads
#: header bytes as ASCII with it).
_ESCAPED = re.compile(r"[\udc80-\udcff]")
#: The blank line that ends the header section (RFC 5322 §2.1), with either line end.
_HEADER_END = re.compile(rb"\r?\n\r?\n")
#: The text :func:`_decoded` decodes at most: the standard library takes quadratic time
#: over many encoded words (RFC 2047), and no subject or name is longer.
_MAX_DECODED = 4096
#: A multipart boundary parameter (RFC 2046 §5.1.1), counted before parsing.
_BOUNDARY = re.compile(rb"(?i)boundary\s*\*?\s*=")
#: RFC 5322 §2.1.1: a line holds at most 998 characters; no Message-ID is longer.
_MAX_ID = 998


class Kind(StrEnum):
    """What an inbound message is, decided before its calendar data is trusted."""

    ITIP = "itip"  # a usable iTIP message: ``Inbound.itip`` is set
    BOUNCE = "bounce"  # a delivery status notification (RFC 3464) or a daemon's bounce
    AUTO_REPLY = "auto_reply"  # out-of-office and other automatic answers (RFC 3834)
    READ_RECEIPT = "read_receipt"  # a message disposition notification (RFC 8098)
    NO_CALENDAR = "no_calendar"  # a person's email without any calendar part
    UNUSABLE = "unusable"  # a calendar part we cannot use: see ``reason``


_QUARANTINE_REASONS = {
    Kind.BOUNCE: "bounce",
    Kind.AUTO_REPLY: "auto-reply",
    Kind.READ_RECEIPT: "read-receipt",
    Kind.NO_CALENDAR: "no-calendar-part",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Inbound:
    """One received email as :func:`extract` read it.

    Addresses are lowercased.  ``sender`` is the effective sender the trust rules compare
    with the attendee: the From address, except for Google's notifier, where it is the
    Reply-To address (DESIGN §4).  ``calendar`` is the chosen calendar part as UTF-8, its
    lines unfolded (RFC 5545 §3.1) and decoded as :func:`~ptm_sync.core.ical.parse.decode_calendar`
    does.  For a bounce, ``bounced`` is the invitation that came back (never a reply) and
    ``original_message_id`` the Message-ID of what we had sent.
    """

    kind: Kind
    message_id: str | None = None
    from_address: str | None = None
    from_name: str | None = None
    reply_to: str | None = None
    sender: str | None = None
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    delivered_to: tuple[str, ...] = ()
    subject: str = ""
    date: datetime | None = None
    in_reply_to: str | None = None
    calendar: bytes | None = None
    method_hint: str | None = None
    itip: ItipMessage | None = None
    reason: str | None = None
    detail: str = ""
    authentication_results: tuple[str, ...] = ()
    auto_submitted: str | None = None
    original_message_id: str | None = None
    failed_recipients: tuple[str, ...] = ()
    bounced: ItipMessage | None = None

    @property
    def recipients(self) -> tuple[str, ...]:
        """To, Cc and the envelope recipients (Delivered-To, X-Original-To …), once each."""
        return tuple(dict.fromkeys(self.to + self.cc + self.delivered_to))

    @property
    def quarantine_reason(self) -> str | None:
        """The short reason to record when this message changes nothing; None for iTIP."""
        if self.kind is Kind.ITIP:
            return None
        return self.reason or _QUARANTINE_REASONS[self.kind]

    def require_itip(self) -> ItipMessage:
        """The iTIP message, or :class:`Unusable` with :attr:`quarantine_reason`."""
        if self.kind is Kind.ITIP and self.itip is not None:
            return self.itip
        raise Unusable(self.quarantine_reason or "unusable", self.detail)


def calendar_digest(inbound: Inbound) -> str:
    """SHA-256 of Message-ID and calendar part: one delivery processed once (DESIGN §4)."""
    digest = hashlib.sha256((inbound.message_id or "").encode("utf-8", "surrogateescape"))
    digest.update(b"\0")
    digest.update(inbound.calendar or b"")
    return digest.hexdigest()


# --- outbound -----------------------------------------------------------------------------


def build_invitation_email(
    *,
    cal: Calendar,
    method: str,
    sender: str,
    sender_name: str,
    to: str,
    to_name: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    date: datetime,
    reply_to: str | None = None,
) -> EmailMessage:
    """An invitation, update, cancellation or reply as one email (RFC 6047 §2.4, DESIGN §4).

    ``cal``'s METHOD must equal ``method`` (the MIME ``method=`` parameter, RFC 6047 §2.4).
    ``message_id`` is fixed by the caller so a redelivery is recognisably the same message.

    Raises:
        ValueError: when ``method`` and the calendar's METHOD differ.
    """
    cal_method = str(cal.get("METHOD") or "").upper()
    if cal_method != method.upper():
        raise ValueError(f"calendar METHOD {cal_method or 'missing'} != {method.upper()}")
    ics = serialize(cal).decode("utf-8")
    msg = _envelope(sender, sender_name, to, to_name, subject, message_id, date, reply_to)
    msg.set_content(text, subtype="plain", charset="utf-8")
    msg.add_alternative(html, subtype="html", charset="utf-8")
    msg.add_alternative(ics, subtype="calendar", charset="utf-8", params={"method": cal_method})
    # The attachment turns multipart/alternative into multipart/mixed around it.
    msg.add_attachment(
        ics.encode("utf-8"),
        maintype="application",
        subtype="ics",
        filename="invite.ics",
        params={"name": "invite.ics"},
    )
    _fix_boundaries(msg)
    return msg


def build_plain_email(
    *,
    sender: str,
    sender_name: str,
    to: str,
    to_name: str,
    subject: str,
    text: str,
    html: str = "",
    message_id: str,
    date: datetime,
    reply_to: str | None = None,
    in_reply_to: str | None = None,
) -> EmailMessage:
    """A notification without calendar data: text/plain, plus text/html when given."""
    msg = _envelope(sender, sender_name, to, to_name, subject, message_id, date, reply_to)
    if in_reply_to:
        msg["In-Reply-To"] = _bracketed(in_reply_to)
        msg["References"] = _bracketed(in_reply_to)
    msg.set_content(text, subtype="plain", charset="utf-8")
    if html:
        msg.add_alternative(html, subtype="html", charset="utf-8")
    _fix_boundaries(msg)
    return msg


def as_bytes(msg: EmailMessage) -> bytes:
    """The message as sent over SMTP (CRLF line ends)."""
    return msg.as_bytes(policy=policy.SMTP)


def _envelope(
    sender: str,
    sender_name: str,
    to: str,
    to_name: str,
    subject: str,
    message_id: str,
    date: datetime,
    reply_to: str | None,
) -> EmailMessage:
    if date.tzinfo is None:
        raise ValueError("date must be an aware datetime")
    msg = EmailMessage(policy=_BUILD_POLICY)
    # Set as text, which gives the same header and bytes as the Address object (both are
    # parsed from this text) but is parsed once, and only once per process for our From.
    msg["From"] = str(Address(display_name=sender_name, addr_spec=sender))
    msg["To"] = str(Address(display_name=to_name, addr_spec=to))
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = _bracketed(message_id)
    msg["MIME-Version"] = "1.0"
    return msg


def _fix_boundaries(msg: EmailMessage) -> None:
    """Boundaries derived from the Message-ID: the same message always has the same bytes."""
    seed = hashlib.sha256(str(msg["Message-ID"]).encode("utf-8")).hexdigest()[:24]
    for index, part in enumerate(msg.walk()):
        if part.is_multipart():
            part.set_boundary(f"=_ptm_{seed}_{index}")


def _bracketed(message_id: str) -> str:
    value = message_id.strip()
    return value if value.startswith("<") else f"<{value}>"


# --- inbound ------------------------------------------------------------------------------


def extract(raw: bytes, *, tz: tzinfo, limits: InputLimits = _DEFAULT_LIMITS) -> Inbound:
    """Read one raw email.  ``tz`` is the school's zone, for floating calendar times.

    Never raises on odd input but :class:`Unusable` (``not-an-email``) when the bytes are
    not an email at all; a message with an unusable calendar part comes back as
    :attr:`Kind.UNUSABLE` with its ``reason`` so the caller can quarantine it by sender
    and Message-ID.  So does a message over one of ``limits``
    (:mod:`ptm_sync.core.imip.limits`): one larger than ``max_message_bytes`` has only its
    headers read.

    Header values may hold raw UTF-8 (RFC 6532) or other 8-bit octets: they are read as
    UTF-8 where they are UTF-8 and as Windows-1252 where they are not, and control
    characters are replaced, so every text an :class:`Inbound` holds can be stored,
    logged and printed.
    """
    too_large = _too_large(raw, limits)
    if too_large:
        detail = too_large
        try:
            head = _head(_parse(bytes(raw[:HEAD_BYTES]), headers_only=True))
        except Unusable:
            raise Unusable(TOO_LARGE, detail) from None
        return replace(head, kind=Kind.UNUSABLE, reason=TOO_LARGE, detail=detail)
    if isinstance(raw, bytes | bytearray) and (len(_BOUNDARY.findall(raw)) > limits.max_multiparts):
        head = _head(_parse(raw, headers_only=True))
        detail = f"more than {limits.max_multiparts} multipart boundaries"
        return replace(head, kind=Kind.UNUSABLE, reason=TOO_MANY_PARTS, detail=detail)
    msg = _parse(raw)
    head = _head(msg)
    try:
        _check_structure(msg, limits)
        return _classify(msg, head, tz, limits)
    except Unusable as exc:  # over a limit: read no further
        return replace(head, kind=Kind.UNUSABLE, reason=exc.reason, detail=exc.detail)


def calendar_text(raw: bytes, limits: InputLimits = _DEFAULT_LIMITS) -> bytes | None:
    """The first calendar part of ``raw`` as :attr:`Inbound.calendar` holds it (UTF-8,
    unfolded), without reading it as iCalendar, for staff to look at a message refused for
    what its calendar holds (``recurrence-too-large``, ``line-too-long`` …); None when the
    message has none.

    The caps that keep parsing cheap still hold (size, multipart boundaries, the calendar
    parts' size); the count and depth of MIME parts do not (walking them is linear).

    Raises:
        Unusable: not an email, or over one of those caps (``too-large``,
            ``too-many-parts``, ``too-deep``): it is not read then.
    """
    too_large = _too_large(raw, limits)
    if too_large:
        raise Unusable(TOO_LARGE, too_large)
    if len(_BOUNDARY.findall(raw)) > limits.max_multiparts:
        raise Unusable(TOO_MANY_PARTS, f"more than {limits.max_multiparts} multipart boundaries")
    msg = _parse(raw)
    part = next(_calendar_parts(msg, limits), None)
    return part.data if part is not None else None


def _too_large(raw: bytes, limits: InputLimits) -> str:
    """Why the message is too large to read, or ""."""
    if not isinstance(raw, bytes | bytearray):
        return ""
    if len(raw) > limits.max_message_bytes:
        return f"over {limits.max_message_bytes} bytes"
    end = _HEADER_END.search(raw, 0, limits.max_header_bytes + 4)
    if end is None and len(raw) > limits.max_header_bytes:
        return f"headers over {limits.max_header_bytes} bytes"
    return ""


def _classify(msg: Message, head: Inbound, tz: tzinfo, limits: InputLimits) -> Inbound:
    reports = _report_types(msg)
    if "delivery-status" in reports or _is_daemon(msg, head):
        return _bounce(msg, head, tz, limits)
    if "disposition-notification" in reports:
        return replace(head, kind=Kind.READ_RECEIPT, original_message_id=_mdn_original(msg))
    auto = _auto_reply(msg)
    found = _find_calendar(msg, tz, limits)
    if found is None:
        return replace(head, kind=Kind.AUTO_REPLY if auto else Kind.NO_CALENDAR)
    data, hint, result = found
    if auto and not (isinstance(result, ItipMessage) and result.method is Method.REPLY):
        # RFC 3834 auto-replies may quote our invitation; only a calendar REPLY counts.
        return replace(head, kind=Kind.AUTO_REPLY, calendar=data, method_hint=hint)
    if isinstance(result, Unusable):
        return replace(
            head,
            kind=Kind.UNUSABLE,
            calendar=data,
            method_hint=hint,
            reason=result.reason,
            detail=result.detail,
        )
    return replace(head, kind=Kind.ITIP, calendar=data, method_hint=hint, itip=result)


def _parse(raw: bytes, *, headers_only: bool = False) -> Message:
    if not isinstance(raw, bytes | bytearray) or not raw.strip():
        raise Unusable("not-an-email", "empty input")
    try:
        msg = BytesParser(policy=_READ_POLICY).parsebytes(bytes(raw), headersonly=headers_only)
    except RecursionError as exc:  # multiparts nested beyond what the parser can follow
        raise Unusable(TOO_DEEP, "MIME parts nested too deep to read") from exc
    except Exception as exc:  # the parser is lenient; anything it raises means "not mail"
        raise Unusable("not-an-email", type(exc).__name__) from exc
    names = {name.lower() for name in msg}
    if not names & {"from", "sender", "message-id", "received", "return-path"}:
        raise Unusable("not-an-email", "no From, Message-ID or Received header")
    return msg


def _head(msg: Message) -> Inbound:
    """The header facts every Inbound carries, read from raw header values."""
    from_name, from_address = _first_address(msg, "From")
    _, reply_to = _first_address(msg, "Reply-To")
    sender = from_address
    if from_address == GOOGLE_NOTIFIER and reply_to:
        sender = reply_to  # DESIGN §4: Google replies name the attendee in Reply-To
    delivered = [
        *_addresses(msg, "Delivered-To"),
        *_addresses(msg, "X-Original-To"),
        *_addresses(msg, "Envelope-To"),
        *_addresses(msg, "X-Envelope-To"),
        *(_strip_type(v) for v in _raw(msg, "Original-Recipient")),
    ]
    auto = _raw(msg, "Auto-Submitted")
    subject = _raw(msg, "Subject")
    return Inbound(
        kind=Kind.NO_CALENDAR,
        message_id=_message_id(_raw(msg, "Message-ID")),
        from_address=from_address,
        from_name=from_name,
        reply_to=reply_to,
        sender=sender,
        to=tuple(dict.fromkeys(_addresses(msg, "To"))),
        cc=tuple(dict.fromkeys(_addresses(msg, "Cc"))),
        delivered_to=tuple(dict.fromkeys(a for a in delivered if a)),
        subject=_decoded(subject[0]) if subject else "",
        date=_date(_raw(msg, "Date")),
        in_reply_to=_message_id(_raw(msg, "In-Reply-To")),
        authentication_results=tuple(_raw(msg, "Authentication-Results")),
        auto_submitted=auto[0] if auto else None,
    )


def _raw(msg: Message, name: str) -> list[str]:
    # Raw values, unfolded: structured header parsing can raise on malformed input.
    wanted = name.lower()
    values = []
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            values.append(_text(re.sub(r"\r?\n[ \t]+", " ", str(value))).strip())
    return values


def _text(value: str) -> str:
    """A header value as text that can be stored and printed (RFC 6532 §3.2).

    ``email`` reads header octets over 127 as lone surrogates: they are decoded as UTF-8
    when they are UTF-8 (internationalised mail), else as Windows-1252 (a legacy client
    that sent 8-bit text without encoded words), as calendar lines are
    (:func:`~ptm_sync.core.ical.parse.decode_line`); control characters and lone surrogates
    become U+FFFD.
    """
    if _ESCAPED.search(value):
        value = decode_line(value.encode("utf-8", "surrogateescape"))
    return _CONTROL.sub("\ufffd", value)


def _addresses(msg: Message, name: str) -> list[str]:
    return [addr for _, addr in _address_pairs(msg, name)]


def _first_address(msg: Message, name: str) -> tuple[str | None, str | None]:
    pairs = _address_pairs(msg, name)
    return (pairs[0][0] or None, pairs[0][1]) if pairs else (None, None)


def _address_pairs(msg: Message, name: str) -> list[tuple[str, str]]:
    pairs = []
    for display, addr in getaddresses(_raw(msg, name)):
        address = EmailAddress.parse(addr)
        if address.is_valid:
            pairs.append((_decoded(display), address.value))
    return pairs


def _strip_type(value: str) -> str:
    # "rfc822;user@example.org" (RFC 3464 §2.3.2 address-type prefix)
    address = EmailAddress.parse(value.split(";", 1)[-1])
    return address.value if address.is_valid else ""


def _decoded(value: str) -> str:
    """A header's text with its encoded words (RFC 2047) decoded (its first 4096
    characters)."""
    value = value[:_MAX_DECODED]
    try:
        decoded = str(make_header(decode_header(value)))
    except (MessageError, ValueError, LookupError):  # bad encoded words, unknown charsets
        decoded = value
    return _text(decoded).strip()


def _message_id(values: list[str]) -> str | None:
    if not values:
        return None
    found = re.search(r"<[^<>\s]+>", values[0])
    value = found.group(0) if found else values[0].strip()
    return value[:_MAX_ID] or None


def _date(values: list[str]) -> datetime | None:
    if not values:
        return None
    try:
        moment = parsedate_to_datetime(values[0])
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _walk(part: Message, forwarded: bool = False) -> Iterator[tuple[Message, bool]]:
    """Every part, with whether it sits inside an attached message/rfc822 (depth first)."""
    for sub, inside, _ in _walk_depth(part, forwarded, 0):
        yield sub, inside


def _walk_depth(part: Message, forwarded: bool, depth: int) -> Iterator[tuple[Message, bool, int]]:
    # Iterative: nesting is bounded by _check_structure, but a stack costs nothing.
    stack = [(part, forwarded, depth)]
    while stack:
        current, inside, level = stack.pop()
        yield current, inside, level
        if current.is_multipart():
            inner = inside or current.get_content_type() == "message/rfc822"
            subs = [s for s in current.get_payload() if isinstance(s, Message)]
            stack.extend((sub, inner, level + 1) for sub in reversed(subs))


def _check_structure(msg: Message, limits: InputLimits) -> None:
    """MIME parts within ``limits``: their count and nesting depth.

    Raises:
        Unusable: ``too-many-parts`` or ``too-deep``.
    """
    for count, (_, _, depth) in enumerate(_walk_depth(msg, False, 0), start=1):
        if depth > limits.max_mime_depth:
            raise Unusable(TOO_DEEP, f"MIME parts nested over {limits.max_mime_depth}")
        if count > limits.max_mime_parts:
            raise Unusable(TOO_MANY_PARTS, f"more than {limits.max_mime_parts} MIME parts")


def _report_types(msg: Message) -> set[str]:
    """The report types (RFC 6522) the message carries outside any forwarded message.

    ``delivery-status`` for a DSN (RFC 3464), ``disposition-notification`` for an MDN
    (RFC 8098): named by a ``multipart/report`` or by a ``message/<type>`` part.
    """
    found = set()
    for part, forwarded in _walk(msg):
        if forwarded:
            continue
        ctype = part.get_content_type()
        if ctype == "multipart/report":
            found.add(str(part.get_param("report-type") or "").lower())
        elif ctype.startswith("message/"):
            found.add(ctype.removeprefix("message/"))
    return found


def _is_daemon(msg: Message, head: Inbound) -> bool:
    sender = EmailAddress.parse(head.from_address or "")
    return sender.local in _DAEMONS or bool(_raw(msg, "X-Failed-Recipients"))


def _auto_reply(msg: Message) -> bool:
    # RFC 3834 §5: Auto-Submitted other than "no"; plus the common vendor headers.
    for value in _raw(msg, "Auto-Submitted"):
        if value.split(";")[0].strip().lower() not in ("", "no"):
            return True
    if _raw(msg, "X-Autoreply") or _raw(msg, "X-Autorespond"):
        return True
    return any(v.strip().lower() == "auto_reply" for v in _raw(msg, "Precedence"))


def _bounce(msg: Message, head: Inbound, tz: tzinfo, limits: InputLimits) -> Inbound:
    """A DSN: which recipients failed, and which of our messages came back (RFC 3464)."""
    failed = [*_addresses(msg, "X-Failed-Recipients")]
    original: str | None = None
    for part, _ in _walk(msg):
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            failed.extend(_failed_recipients(part))
        elif ctype in ("message/rfc822", "text/rfc822-headers") and original is None:
            original = _returned_message_id(part)
    found = _find_calendar(msg, tz, limits)
    bounced = found[2] if found is not None and isinstance(found[2], ItipMessage) else None
    return replace(
        head,
        kind=Kind.BOUNCE,
        calendar=found[0] if found is not None else None,
        original_message_id=original,
        failed_recipients=tuple(dict.fromkeys(failed)),
        bounced=bounced,
    )


def _failed_recipients(part: Message) -> list[str]:
    failed = []
    for group in part.get_payload():
        if not isinstance(group, Message):
            continue
        action = next(iter(_raw(group, "Action")), "").lower() or "failed"
        recipient = _strip_type(next(iter(_raw(group, "Final-Recipient")), ""))
        if recipient and action == "failed":
            failed.append(recipient)
    return failed


def _returned_message_id(part: Message) -> str | None:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        returned = inner[0] if isinstance(inner, list) and inner else None
        return _message_id(_raw(returned, "Message-ID")) if isinstance(returned, Message) else None
    headers = part.get_payload(decode=True)
    if not isinstance(headers, bytes):
        return None
    parsed = BytesParser(policy=_READ_POLICY).parsebytes(headers, headersonly=True)
    return _message_id(_raw(parsed, "Message-ID"))


def _mdn_original(msg: Message) -> str | None:
    for part, _ in _walk(msg):
        if part.get_content_type() == "message/disposition-notification":
            body = part.get_payload(decode=True)
            if not isinstance(body, bytes):  # parsed as a message: fields are its headers
                payload = part.get_payload()
                fields = payload[0] if isinstance(payload, list) and payload else part
                if not isinstance(fields, Message):
                    return None
                return _message_id(_raw(fields, "Original-Message-ID"))
            found = re.search(rb"(?im)^Original-Message-ID:\s*(<[^<>\s]+>)", body)
            return found.group(1).decode("ascii", "replace") if found else None
    return None


@dataclass(frozen=True, slots=True)
class _Part:
    data: bytes
    method: str | None
    ctype: str
    attached: bool
    order: int


def _find_calendar(
    msg: Message, tz: tzinfo, limits: InputLimits
) -> tuple[bytes, str | None, ItipMessage | Unusable] | None:
    """The best calendar part: (UTF-8 bytes, MIME method hint, reading or its failure).

    When several parts hold a calendar (Google's inline part plus ``invite.ics``), the one
    that reads and whose ``method=`` matches its METHOD wins, inline before attached.

    Raises:
        Unusable: the calendar parts together exceed ``limits`` (checked before any is
            parsed; :func:`~ptm_sync.core.imip.limits.check_calendar_text`).
    """
    parts = list(_calendar_parts(msg, limits))
    if not parts:
        return None
    tally = CalendarTally()
    for text in dict.fromkeys(p.data for p in parts):
        check_calendar_text(text.decode("utf-8"), limits, tally)
    # RFC 6047 §2.4: the method= of one part describes the same iTIP message in the others.
    message_hint = next((p.method for p in parts if p.method), None)
    readings: list[tuple[tuple[int, int, int], _Part, ItipMessage | Unusable]] = []
    # Clients often send one calendar twice (inline and as invite.ics): read it once.
    read: dict[tuple[bytes, str | None], ItipMessage | Unusable] = {}
    for part in parts:
        hint = part.method or message_hint
        reading = read.get((part.data, hint))
        if reading is None:
            try:
                reading = read_itip(parse_calendar(part.data), hint, tz)
            except Unusable as exc:
                reading = exc
            read[(part.data, hint)] = reading
        ok = isinstance(reading, ItipMessage)
        matches = isinstance(reading, ItipMessage) and reading.method == part.method
        rank = (0 if ok else 1, 0 if matches else 1, 1 if part.attached else 0)
        readings.append(((*rank[:2], rank[2] * 1000 + part.order), part, reading))
    _, best, result = min(readings, key=lambda r: r[0])
    return best.data, best.method or message_hint, result


def _calendar_parts(msg: Message, limits: InputLimits) -> Iterator[_Part]:
    """The calendar parts, decoded; :class:`Unusable` (``too-large``) as soon as their
    payloads together exceed ``limits.max_calendar_bytes``, before they are decoded."""
    size = 0
    for order, (part, _) in enumerate(_walk(msg)):
        if part.is_multipart() or part.get_content_maintype() == "message":
            continue
        ctype = part.get_content_type()
        name = str(part.get_filename() or part.get_param("name") or "").lower()
        if ctype not in _CALENDAR_TYPES and not name.endswith(_CALENDAR_SUFFIXES):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        size += len(payload)
        if size > limits.max_calendar_bytes:
            raise Unusable(TOO_LARGE, f"calendar parts over {limits.max_calendar_bytes} bytes")
        # RFC 5545 §3.1: unfolded on octets, then decoded line by line (ptm_sync.core.ical.parse).
        text = decode_calendar(payload, part.get_content_charset())
        method = str(part.get_param("method") or "").strip().upper() or None
        yield _Part(
            data=text.encode("utf-8"),
            method=method,
            ctype=ctype,
            attached=part.get_content_disposition() == "attachment",
            order=order,
        )
