"""A letter becomes an email: the text, the iTIP calendar and the MIME message.  PURE.

:func:`render` is called when the outbox delivers a letter
(:mod:`ptm_sync.app.outbox.deliverers`), and by the tests, which read a decision's emails
with :func:`compose`.  The shapes follow DESIGN §4: ``multipart/mixed`` around
``multipart/alternative`` (text, HTML, the calendar with ``method=``) plus ``invite.ics``
(RFC 6047 §2.4); REQUEST, CANCEL and DECLINECOUNTER from the ORGANIZER (RFC 5546 §3.2.2,
§3.2.5, §3.2.8), REPLY from the teacher's booking address as ATTENDEE (§3.2.3).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

from icalendar import Calendar
from icalendar.enums import PARTSTAT

from ptm_sync.core import imip
from ptm_sync.core.booking import aftercare_text, disruption_text, messages
from ptm_sync.core.booking.letters import WITH_NEXT_STEP, Letter, Letterhead, letters
from ptm_sync.core.booking.values import Decision
from ptm_sync.core.ical import itip

__all__ = ["Outgoing", "compose", "email_of", "facts_of", "render", "render_bytes"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One email to send: to ``to``, the envelope sender ``sender``."""

    to: str
    sender: str
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


def compose(decision: Decision, head: Letterhead, now: datetime) -> list[Outgoing]:
    """Every email of ``decision``'s notices, rendered."""
    return [
        Outgoing(letter.to, letter.envelope_from, render(letter))
        for letter in letters(decision, head, now)
    ]


def email_of(payload: Mapping[str, Any]) -> bytes:
    """The bytes of an outbox email row: its letter rendered, or the raw message it holds
    (notifications, and rows written before letters).

    Raises:
        KeyError, ValueError: the payload is neither.
    """
    if "letter" in payload:
        return render_bytes(Letter.from_json(payload["letter"]))
    return base64.b64decode(payload["raw"])


def render_bytes(letter: Letter) -> bytes:
    """The letter as the bytes sent over SMTP (fixed Date: the decision's time)."""
    msg = render(letter)
    if "Date" not in msg:
        msg["Date"] = format_datetime(letter.date)
    return msg.as_bytes()


def facts_of(letter: Letter) -> messages.MeetingFacts:
    return messages.MeetingFacts(
        teacher_name=letter.teacher,
        students=letter.students,
        start=letter.start,
        end=letter.end,
        video_url=letter.video_url,
        location=letter.location,
    )


def render(letter: Letter) -> EmailMessage:
    """The email ``letter`` describes."""
    text = _text(letter)
    common: dict[str, Any] = {
        "sender": letter.sender,
        "sender_name": letter.sender_name,
        "to": letter.to,
        "to_name": letter.to_name,
        "subject": text.subject,
        "text": text.plain,
        "html": text.html,
        "message_id": letter.message_id,
        "date": letter.date,
    }
    if letter.method is None:
        return imip.build_plain_email(**common, reply_to=letter.reply_to or None)
    return imip.build_invitation_email(
        cal=_calendar(letter, text.plain), method=letter.method, **common
    )


def _text(letter: Letter) -> messages.Text:
    tz = ZoneInfo(letter.tz)
    common: dict[str, Any] = {
        "school": letter.school,
        "period_title": letter.period_title,
        "meeting": facts_of(letter),
        "tz": tz,
        "contact": letter.contact,
    }
    spans = list(letter.alternatives)
    template = letter.template
    if template == "waitlisted":
        del common["tz"]
        return messages.waitlisted(**common)
    if template == "day_cancelled":
        return disruption_text.day_cancelled(
            school=letter.school,
            period_title=letter.period_title,
            teacher_name=letter.teacher,
            guardian_name=letter.to_name,
            cancelled=letter.cancelled,
            tz=tz,
            contact=letter.contact,
            reason=letter.reason,
            how=letter.next_step,
        )
    if letter.method == "REPLY":
        return messages.booking_answer(
            **common,
            accepted=letter.partstat == PARTSTAT.ACCEPTED,
            reason=letter.reason,
            alternatives=spans,
            how=letter.next_step,
            additional=letter.additional,
            kept=letter.kept,
            withdrawn=letter.template == "booking_cancelled",
        )
    if template == "late_moved":
        return aftercare_text.late_moved(**common, reason=letter.reason)
    if template == "running_late":
        return aftercare_text.running_late(**common, reason=letter.reason)
    if template == "reminder":
        # The parent who invited the booking address is the event's ORGANIZER.
        organizer = letter.organizer.lower() == letter.to.lower()
        return aftercare_text.reminder(**common, organized_by_you=organizer)
    if template == "feedback_request":
        return aftercare_text.feedback_request(**common, link=letter.link)
    if template == "reproposal":
        return messages.reproposal(**common, reason=letter.reason)
    if template == "confirmation":
        return messages.confirmation(**common, moved_from=letter.moved_from)
    simple = {
        "invitation": messages.invitation,
        "waitlist_offer": messages.waitlist_offer,
        "moved": messages.moved,
        "booking_details": messages.booking_details,
    }
    if template in simple:
        return simple[template](**common)
    if template == "moved_booked":
        return messages.moved_booked(**common, alternatives=spans)
    if template == "counter_declined":
        return messages.counter_declined(**common, why=letter.reason, alternatives=spans)
    if template == "declined":
        text = messages.declined(**common, page_url="", declined_by=letter.declined_by)
    else:  # cancellation, expired, expired_late, removed, superseded
        text = messages.cancellation(**common, reason=letter.reason)
    return _add(text, letter.next_step if template in WITH_NEXT_STEP else "")


def _add(text: messages.Text, line: str) -> messages.Text:
    """``text`` with one more paragraph before the closing lines."""
    if not line:
        return text
    plain = text.plain.rstrip("\n").split("\n\n")
    plain.insert(max(len(plain) - 2, 1), line)
    escaped = line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    html = text.html.replace("</body>", f"<p>{escaped}</p>\n</body>", 1)
    return messages.Text(text.subject, "\n\n".join(plain) + "\n", html)


def _calendar(letter: Letter, description: str) -> Calendar:
    tz = ZoneInfo(letter.tz)
    if letter.method == "REPLY":
        request = itip.ItipMessage(
            method=itip.Method.REQUEST,
            uid=letter.uid,
            sequence=letter.sequence,
            organizer=letter.organizer,
            start=letter.start,
            end=letter.end,
        )
        accepted = letter.partstat == PARTSTAT.ACCEPTED
        return itip.build_reply(
            request,
            attendee=letter.attendee,
            attendee_name=letter.attendee_name,
            partstat=letter.partstat,
            dtstamp=letter.date,
            comment="" if accepted else description,
            request_status=letter.request_status or None,
        )
    inv = itip.Invitation(
        uid=letter.uid,
        sequence=letter.sequence,
        start=letter.start,
        end=letter.end,
        summary=letter.summary,
        organizer=letter.organizer,
        organizer_name=letter.organizer_name,
        attendee=letter.attendee,
        attendee_name=letter.attendee_name,
        status=letter.status,
        dtstamp=letter.date,
        description=description,
        location=letter.location,
        video_url=letter.video_url,
        partstat=letter.partstat,
    )
    if letter.method == "DECLINECOUNTER":
        status = letter.request_status or itip.REQUEST_STATUS_CONFLICT
        return itip.build_decline_counter(inv, tz, description, request_status=status)
    if letter.method == "CANCEL":
        return itip.build_cancel(inv, tz)
    return itip.build_request(inv, tz)
