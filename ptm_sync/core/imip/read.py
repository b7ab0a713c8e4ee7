"""iMIP (RFC 6047) in: one received email read into an :class:`Inbound` value.  Pure: bytes
in, values out.

:func:`extract` reads who sent it, to whom, and what kind of message it is.  The calendar
part is found anywhere (inline or attached, with or without ``method=``,
``application/ics``, ``.ics`` with a generic type, inside a forwarded ``message/rfc822``),
whatever its transfer encoding or charset, and is unfolded before it is decoded
(:mod:`ptm_sync.core.ical.parse`).  Delivery reports, auto-replies and read receipts are told
apart before any calendar data is trusted.  The outbound half is :mod:`.build`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from email.message import Message
from email.parser import BytesParser
from enum import StrEnum

from ptm_sync.core.emailaddress import EmailAddress
from ptm_sync.core.errors import QuarantineReason, Unusable
from ptm_sync.core.ical.itip import ItipMessage, Method
from ptm_sync.core.imip.limits import (
    HEAD_BYTES,
    TOO_LARGE,
    TOO_MANY_PARTS,
    InputLimits,
)
from ptm_sync.core.imip.parts import (
    READ_POLICY,
    addresses,
    calendar_parts,
    check_structure,
    decoded,
    find_calendar,
    first_address,
    header_date,
    message_id,
    parse_message,
    raw_values,
    strip_type,
    walk,
)

__all__ = [
    "GOOGLE_NOTIFIER",
    "Inbound",
    "Kind",
    "calendar_digest",
    "calendar_text",
    "extract",
]

GOOGLE_NOTIFIER = "calendar-notification@google.com"


_DAEMONS = frozenset({"mailer-daemon", "postmaster"})
_DEFAULT_LIMITS = InputLimits()
#: The blank line that ends the header section (RFC 5322 §2.1), with either line end.
_HEADER_END = re.compile(rb"\r?\n\r?\n")
#: A multipart boundary parameter (RFC 2046 §5.1.1), counted before parsing.
_BOUNDARY = re.compile(rb"(?i)boundary\s*\*?\s*=")


class Kind(StrEnum):
    """What an inbound message is, decided before its calendar data is trusted."""

    ITIP = "itip"  # a usable iTIP message: ``Inbound.itip`` is set
    BOUNCE = "bounce"  # a delivery status notification (RFC 3464) or a daemon's bounce
    AUTO_REPLY = "auto_reply"  # out-of-office and other automatic answers (RFC 3834)
    READ_RECEIPT = "read_receipt"  # a message disposition notification (RFC 8098)
    NO_CALENDAR = "no_calendar"  # a person's email without any calendar part
    UNUSABLE = "unusable"  # a calendar part we cannot use: see ``reason``


_QUARANTINE_REASONS = {
    Kind.BOUNCE: QuarantineReason.BOUNCE,
    Kind.AUTO_REPLY: QuarantineReason.AUTO_REPLY,
    Kind.READ_RECEIPT: QuarantineReason.READ_RECEIPT,
    Kind.NO_CALENDAR: QuarantineReason.NO_CALENDAR_PART,
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
            head = _head(parse_message(bytes(raw[:HEAD_BYTES]), headers_only=True))
        except Unusable:
            raise Unusable(TOO_LARGE, detail) from None
        return replace(head, kind=Kind.UNUSABLE, reason=TOO_LARGE, detail=detail)
    if isinstance(raw, bytes | bytearray) and (len(_BOUNDARY.findall(raw)) > limits.max_multiparts):
        head = _head(parse_message(raw, headers_only=True))
        detail = f"more than {limits.max_multiparts} multipart boundaries"
        return replace(head, kind=Kind.UNUSABLE, reason=TOO_MANY_PARTS, detail=detail)
    msg = parse_message(raw)
    head = _head(msg)
    try:
        check_structure(msg, limits)
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
    msg = parse_message(raw)
    part = next(calendar_parts(msg, limits), None)
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
    found = find_calendar(msg, tz, limits)
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


def _head(msg: Message) -> Inbound:
    """The header facts every Inbound carries, read from raw header values."""
    from_name, from_address = first_address(msg, "From")
    _, reply_to = first_address(msg, "Reply-To")
    sender = from_address
    if from_address == GOOGLE_NOTIFIER and reply_to:
        sender = reply_to  # DESIGN §4: Google replies name the attendee in Reply-To
    delivered = [
        *addresses(msg, "Delivered-To"),
        *addresses(msg, "X-Original-To"),
        *addresses(msg, "Envelope-To"),
        *addresses(msg, "X-Envelope-To"),
        *(strip_type(v) for v in raw_values(msg, "Original-Recipient")),
    ]
    auto = raw_values(msg, "Auto-Submitted")
    subject = raw_values(msg, "Subject")
    return Inbound(
        kind=Kind.NO_CALENDAR,
        message_id=message_id(raw_values(msg, "Message-ID")),
        from_address=from_address,
        from_name=from_name,
        reply_to=reply_to,
        sender=sender,
        to=tuple(dict.fromkeys(addresses(msg, "To"))),
        cc=tuple(dict.fromkeys(addresses(msg, "Cc"))),
        delivered_to=tuple(dict.fromkeys(a for a in delivered if a)),
        subject=decoded(subject[0]) if subject else "",
        date=header_date(raw_values(msg, "Date")),
        in_reply_to=message_id(raw_values(msg, "In-Reply-To")),
        authentication_results=tuple(raw_values(msg, "Authentication-Results")),
        auto_submitted=auto[0] if auto else None,
    )


def _report_types(msg: Message) -> set[str]:
    """The report types (RFC 6522) the message carries outside any forwarded message.

    ``delivery-status`` for a DSN (RFC 3464), ``disposition-notification`` for an MDN
    (RFC 8098): named by a ``multipart/report`` or by a ``message/<type>`` part.
    """
    found = set()
    for part, forwarded in walk(msg):
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
    return sender.local in _DAEMONS or bool(raw_values(msg, "X-Failed-Recipients"))


def _auto_reply(msg: Message) -> bool:
    # RFC 3834 §5: Auto-Submitted other than "no"; plus the common vendor headers.
    for value in raw_values(msg, "Auto-Submitted"):
        if value.split(";")[0].strip().lower() not in ("", "no"):
            return True
    if raw_values(msg, "X-Autoreply") or raw_values(msg, "X-Autorespond"):
        return True
    return any(v.strip().lower() == "auto_reply" for v in raw_values(msg, "Precedence"))


def _bounce(msg: Message, head: Inbound, tz: tzinfo, limits: InputLimits) -> Inbound:
    """A DSN: which recipients failed, and which of our messages came back (RFC 3464)."""
    failed = [*addresses(msg, "X-Failed-Recipients")]
    original: str | None = None
    for part, _ in walk(msg):
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            failed.extend(_failed_recipients(part))
        elif ctype in ("message/rfc822", "text/rfc822-headers") and original is None:
            original = _returned_message_id(part)
    found = find_calendar(msg, tz, limits)
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
        action = next(iter(raw_values(group, "Action")), "").lower() or "failed"
        recipient = strip_type(next(iter(raw_values(group, "Final-Recipient")), ""))
        if recipient and action == "failed":
            failed.append(recipient)
    return failed


def _returned_message_id(part: Message) -> str | None:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        returned = inner[0] if isinstance(inner, list) and inner else None
        return (
            message_id(raw_values(returned, "Message-ID"))
            if isinstance(returned, Message)
            else None
        )
    headers = part.get_payload(decode=True)
    if not isinstance(headers, bytes):
        return None
    parsed = BytesParser(policy=READ_POLICY).parsebytes(headers, headersonly=True)
    return message_id(raw_values(parsed, "Message-ID"))


def _mdn_original(msg: Message) -> str | None:
    for part, _ in walk(msg):
        if part.get_content_type() == "message/disposition-notification":
            body = part.get_payload(decode=True)
            if not isinstance(body, bytes):  # parsed as a message: fields are its headers
                payload = part.get_payload()
                fields = payload[0] if isinstance(payload, list) and payload else part
                if not isinstance(fields, Message):
                    return None
                return message_id(raw_values(fields, "Original-Message-ID"))
            found = re.search(rb"(?im)^Original-Message-ID:\s*(<[^<>\s]+>)", body)
            return found.group(1).decode("ascii", "replace") if found else None
    return None
