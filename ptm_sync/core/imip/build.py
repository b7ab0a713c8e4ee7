"""iMIP (RFC 6047) out: iTIP messages as emails.  Pure: values in, an ``EmailMessage`` out.

:func:`build_invitation_email` gives the shape of DESIGN §4 that Gmail, Outlook and Apple
Mail all show with RSVP buttons::

    multipart/mixed
      multipart/alternative
        text/plain; text/html; text/calendar; method=REQUEST; charset=utf-8
      application/ics; name=invite.ics   (attachment)

The inbound half is :mod:`.read`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from icalendar import Calendar

from ptm_sync.core.ical.text import serialize
from ptm_sync.core.imip.headers import BUILD_POLICY

__all__ = ["as_bytes", "build_invitation_email", "build_plain_email"]

# Build with 7-bit transfer encodings so no relay needs 8BITMIME; send with CRLF.
_BUILD_POLICY = BUILD_POLICY

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
