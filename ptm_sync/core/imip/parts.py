"""The parts of a received email that reading it needs: header fields decoded and cleaned,
the MIME tree walked within the input limits, and the calendar part found wherever a client
put it (RFC 6047 §2.4; DESIGN §4's inbound list).  Pure: a parsed ``Message`` in, values
out.  :mod:`.read` builds an :class:`~ptm_sync.core.imip.read.Inbound` from them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from ptm_sync.core.emailaddress import EmailAddress
from ptm_sync.core.errors import QuarantineReason, Unusable
from ptm_sync.core.ical.itip import ItipMessage, read_itip
from ptm_sync.core.ical.parse import decode_calendar, decode_line, parse_calendar
from ptm_sync.core.imip.headers import READ_POLICY as _POLICY
from ptm_sync.core.imip.limits import (
    TOO_DEEP,
    TOO_LARGE,
    TOO_MANY_PARTS,
    CalendarTally,
    InputLimits,
    check_calendar_text,
)

CALENDAR_TYPES = frozenset(
    {"text/calendar", "application/ics", "text/x-vcalendar", "application/x-ics"}
)
CALENDAR_SUFFIXES = (".ics", ".ical", ".ifb", ".vcs")
#: Control characters left in a header value after unfolding (RFC 5322 §2.2 allows none
#: but HTAB); C1 ones too, which only a mis-decoded charset produces, and lone surrogates
#: (an encoded word in UTF-7 can decode to one).
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
#: What the surrogateescape codec makes of octets over 127 in a header (``email`` reads
#: header bytes as ASCII with it).
ESCAPED = re.compile(r"[\udc80-\udcff]")
#: The text :func:`_decoded` decodes at most: the standard library takes quadratic time
#: over many encoded words (RFC 2047), and no subject or name is longer.
MAX_DECODED = 4096
#: RFC 5322 §2.1.1: a line holds at most 998 characters; no Message-ID is longer.
MAX_ID = 998
# Read with the standard policy's rules (``policy.default``), only faster.
READ_POLICY = _POLICY


def parse_message(raw: bytes, *, headers_only: bool = False) -> Message:
    if not isinstance(raw, bytes | bytearray) or not raw.strip():
        raise Unusable(QuarantineReason.NOT_AN_EMAIL, "empty input")
    try:
        msg = BytesParser(policy=READ_POLICY).parsebytes(bytes(raw), headersonly=headers_only)
    except RecursionError as exc:  # multiparts nested beyond what the parser can follow
        raise Unusable(TOO_DEEP, "MIME parts nested too deep to read") from exc
    except Exception as exc:  # the parser is lenient; anything it raises means "not mail"
        raise Unusable(QuarantineReason.NOT_AN_EMAIL, type(exc).__name__) from exc
    names = {name.lower() for name in msg}
    if not names & {"from", "sender", "message-id", "received", "return-path"}:
        raise Unusable(QuarantineReason.NOT_AN_EMAIL, "no From, Message-ID or Received header")
    return msg


def raw_values(msg: Message, name: str) -> list[str]:
    # Raw values, unfolded: structured header parsing can raise on malformed input.
    wanted = name.lower()
    values = []
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            values.append(header_text(re.sub(r"\r?\n[ \t]+", " ", str(value))).strip())
    return values


def header_text(value: str) -> str:
    """A header value as text that can be stored and printed (RFC 6532 §3.2).

    ``email`` reads header octets over 127 as lone surrogates: they are decoded as UTF-8
    when they are UTF-8 (internationalised mail), else as Windows-1252 (a legacy client
    that sent 8-bit text without encoded words), as calendar lines are
    (:func:`~ptm_sync.core.ical.parse.decode_line`); control characters and lone surrogates
    become U+FFFD.
    """
    if ESCAPED.search(value):
        value = decode_line(value.encode("utf-8", "surrogateescape"))
    return CONTROL.sub("\ufffd", value)


def addresses(msg: Message, name: str) -> list[str]:
    return [addr for _, addr in address_pairs(msg, name)]


def first_address(msg: Message, name: str) -> tuple[str | None, str | None]:
    pairs = address_pairs(msg, name)
    return (pairs[0][0] or None, pairs[0][1]) if pairs else (None, None)


def address_pairs(msg: Message, name: str) -> list[tuple[str, str]]:
    pairs = []
    for display, addr in getaddresses(raw_values(msg, name)):
        address = EmailAddress.parse(addr)
        if address.is_valid:
            pairs.append((decoded(display), address.value))
    return pairs


def strip_type(value: str) -> str:
    # "rfc822;user@example.org" (RFC 3464 §2.3.2 address-type prefix)
    address = EmailAddress.parse(value.split(";", 1)[-1])
    return address.value if address.is_valid else ""


def decoded(value: str) -> str:
    """A header's text with its encoded words (RFC 2047) decoded (its first 4096
    characters)."""
    value = value[:MAX_DECODED]
    try:
        decoded = str(make_header(decode_header(value)))
    except (MessageError, ValueError, LookupError):  # bad encoded words, unknown charsets
        decoded = value
    return header_text(decoded).strip()


def message_id(values: list[str]) -> str | None:
    if not values:
        return None
    found = re.search(r"<[^<>\s]+>", values[0])
    value = found.group(0) if found else values[0].strip()
    return value[:MAX_ID] or None


def header_date(values: list[str]) -> datetime | None:
    if not values:
        return None
    try:
        moment = parsedate_to_datetime(values[0])
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def walk(part: Message, forwarded: bool = False) -> Iterator[tuple[Message, bool]]:
    """Every part, with whether it sits inside an attached message/rfc822 (depth first)."""
    for sub, inside, _ in walk_depth(part, forwarded, 0):
        yield sub, inside


def walk_depth(part: Message, forwarded: bool, depth: int) -> Iterator[tuple[Message, bool, int]]:
    # Iterative: nesting is bounded by check_structure, but a stack costs nothing.
    stack = [(part, forwarded, depth)]
    while stack:
        current, inside, level = stack.pop()
        yield current, inside, level
        if current.is_multipart():
            inner = inside or current.get_content_type() == "message/rfc822"
            subs = [s for s in current.get_payload() if isinstance(s, Message)]
            stack.extend((sub, inner, level + 1) for sub in reversed(subs))


def check_structure(msg: Message, limits: InputLimits) -> None:
    """MIME parts within ``limits``: their count and nesting depth.

    Raises:
        Unusable: ``too-many-parts`` or ``too-deep``.
    """
    for count, (_, _, depth) in enumerate(walk_depth(msg, False, 0), start=1):
        if depth > limits.max_mime_depth:
            raise Unusable(TOO_DEEP, f"MIME parts nested over {limits.max_mime_depth}")
        if count > limits.max_mime_parts:
            raise Unusable(TOO_MANY_PARTS, f"more than {limits.max_mime_parts} MIME parts")


@dataclass(frozen=True, slots=True)
class CalendarPart:
    data: bytes
    method: str | None
    ctype: str
    attached: bool
    order: int


def find_calendar(
    msg: Message, tz: tzinfo, limits: InputLimits
) -> tuple[bytes, str | None, ItipMessage | Unusable] | None:
    """The best calendar part: (UTF-8 bytes, MIME method hint, reading or its failure).

    When several parts hold a calendar (Google's inline part plus ``invite.ics``), the one
    that reads and whose ``method=`` matches its METHOD wins, inline before attached.

    Raises:
        Unusable: the calendar parts together exceed ``limits`` (checked before any is
            parsed; :func:`~ptm_sync.core.imip.limits.check_calendar_text`).
    """
    parts = list(calendar_parts(msg, limits))
    if not parts:
        return None
    tally = CalendarTally()
    for text in dict.fromkeys(p.data for p in parts):
        check_calendar_text(text.decode("utf-8"), limits, tally)
    # RFC 6047 §2.4: the method= of one part describes the same iTIP message in the others.
    message_hint = next((p.method for p in parts if p.method), None)
    readings: list[tuple[tuple[int, int, int], CalendarPart, ItipMessage | Unusable]] = []
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


def calendar_parts(msg: Message, limits: InputLimits) -> Iterator[CalendarPart]:
    """The calendar parts, decoded; :class:`Unusable` (``too-large``) as soon as their
    payloads together exceed ``limits.max_calendar_bytes``, before they are decoded."""
    size = 0
    for order, (part, _) in enumerate(walk(msg)):
        if part.is_multipart() or part.get_content_maintype() == "message":
            continue
        ctype = part.get_content_type()
        name = str(part.get_filename() or part.get_param("name") or "").lower()
        if ctype not in CALENDAR_TYPES and not name.endswith(CALENDAR_SUFFIXES):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        size += len(payload)
        if size > limits.max_calendar_bytes:
            raise Unusable(TOO_LARGE, f"calendar parts over {limits.max_calendar_bytes} bytes")
        # RFC 5545 §3.1: unfolded on octets, then decoded line by line (core.ical.parse).
        text = decode_calendar(payload, part.get_content_charset())
        method = str(part.get_param("method") or "").strip().upper() or None
        yield CalendarPart(
            data=text.encode("utf-8"),
            method=method,
            ctype=ctype,
            attached=part.get_content_disposition() == "attachment",
            order=order,
        )
