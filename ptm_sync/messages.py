"""The words parents read: notification, invitation, confirmation and other emails (PURE).

Each function returns a :class:`Text` (subject, plain text, HTML).  Times are shown in the
school's zone with the zone named, so a parent abroad is never misled.  Only the parent's
own data appear in a message to that parent.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Text:
    subject: str
    plain: str
    html: str


@dataclass(frozen=True, slots=True)
class MeetingFacts:
    """What a message says about one meeting."""

    teacher_name: str
    students: tuple[str, ...]
    start: datetime
    end: datetime
    video_url: str = ""
    location: str = ""


def when(start: datetime, end: datetime, tz: ZoneInfo) -> str:
    s, e = start.astimezone(tz), end.astimezone(tz)
    return f"{s:%A %d %B %Y, %H:%M}–{e:%H:%M} ({tz.key})"


def _where(m: MeetingFacts) -> str:
    if m.video_url:
        return f"Video call: {m.video_url}"
    return f"Place: {m.location}" if m.location else ""


def _html(paragraphs: Sequence[str]) -> str:
    body = "".join(
        "<p>" + html.escape(p).replace("\n", "<br>\n") + "</p>\n" for p in paragraphs if p
    )
    return f'<!doctype html>\n<html><body style="font-family:sans-serif">\n{body}</body></html>\n'


def _text(subject: str, paragraphs: Sequence[str]) -> Text:
    plain = "\n\n".join(p for p in paragraphs if p) + "\n"
    return Text(subject, plain, _html(paragraphs))


def _subject(prefix: str, period_title: str, m: MeetingFacts, tz: ZoneInfo) -> str:
    return f"{prefix}: {period_title} with {m.teacher_name}, {when(m.start, m.end, tz)}"


def _about(m: MeetingFacts) -> str:
    return f"{m.teacher_name} about {' and '.join(m.students)}" if m.students else m.teacher_name


def notification(
    *,
    school: str,
    period_title: str,
    guardian_name: str,
    dates: Sequence[str],
    meetings: Sequence[MeetingFacts],
    tz: ZoneInfo,
    contact: str,
    hold_until: datetime | None,
    page_url: str = "",
) -> Text:
    """The one email per family: purpose, dates, how to book, whom to contact."""
    lines = "\n".join(f"- {when(m.start, m.end, tz)}: {_about(m)}" for m in meetings)
    deadline = (
        f"Please answer by {hold_until.astimezone(tz):%A %d %B, %H:%M}; after that the "
        "times are offered to other families."
        if hold_until
        else ""
    )
    return _text(
        f"{period_title} at {school}",
        [
            f"Dear {guardian_name},",
            f"{school} invites you to its {period_title.lower()} on {', '.join(dates)}: a "
            "short meeting with each of your child's teachers about progress and next steps.",
            f"We have reserved these times for you:\n{lines}",
            "You will receive one calendar invitation per meeting. To book, press Accept in "
            "your mail or calendar app. To ask for another time, use Propose new time; to "
            "say no, press Decline.",
            deadline,
            f"Free times are listed at {page_url}" if page_url else "",
            f"Questions or changes: write to {contact}.",
            school,
        ],
    )


def invitation(
    *, school: str, period_title: str, meeting: MeetingFacts, tz: ZoneInfo, contact: str
) -> Text:
    """The body of one calendar invitation (the REQUEST carries the details for the client)."""
    return _text(
        _subject("Invitation", period_title, meeting, tz),
        [
            f"A meeting with {_about(meeting)} is reserved for you:",
            when(meeting.start, meeting.end, tz),
            _where(meeting),
            "Press Accept to book it, Decline to free it, or Propose new time.",
            f"Questions or changes: {contact}",
            school,
        ],
    )


def confirmation(
    *, school: str, period_title: str, meeting: MeetingFacts, tz: ZoneInfo, contact: str
) -> Text:
    return _text(
        _subject("Confirmed", period_title, meeting, tz),
        [
            f"Your meeting with {_about(meeting)} is confirmed.",
            when(meeting.start, meeting.end, tz),
            _where(meeting),
            f"To change or cancel it, write to {contact} or decline the invitation.",
            school,
        ],
    )


def cancellation(
    *,
    school: str,
    period_title: str,
    meeting: MeetingFacts,
    tz: ZoneInfo,
    contact: str,
    reason: str = "",
) -> Text:
    return _text(
        _subject("Cancelled", period_title, meeting, tz),
        [
            f"The meeting with {_about(meeting)} on {when(meeting.start, meeting.end, tz)} "
            "is cancelled.",
            f"Reason: {reason}" if reason else "",
            f"Questions: {contact}",
            school,
        ],
    )


def declined(
    *,
    school: str,
    period_title: str,
    meeting: MeetingFacts,
    tz: ZoneInfo,
    contact: str,
    page_url: str = "",
    declined_by: str = "",
) -> Text:
    """Acknowledges a decline and says how else to book.

    ``declined_by`` names the other guardian who declined, for a guardian who did not.
    """
    time = when(meeting.start, meeting.end, tz)
    opening = (
        f"{declined_by} has declined the time {time} with {_about(meeting)}: it is released."
        if declined_by
        else f"Thank you for letting us know: the time {time} with {_about(meeting)} is released."
    )
    return _text(
        f"Declined: {period_title} with {meeting.teacher_name}",
        [
            opening,
            f"Free times are listed at {page_url}." if page_url else "",
            f"To book another time, write to {contact}.",
            school,
        ],
    )


def counter_declined(
    *,
    school: str,
    period_title: str,
    meeting: MeetingFacts,
    tz: ZoneInfo,
    contact: str,
    why: str,
    alternatives: Sequence[tuple[datetime, datetime]],
) -> Text:
    """The answer to a "Propose new time" we cannot grant, with free alternatives."""
    offer = (
        "These times are free:\n" + "\n".join(f"- {when(s, e, tz)}" for s, e in alternatives)
        if alternatives
        else "No other time with this teacher is free at the moment."
    )
    return _text(
        f"New time not possible: {period_title} with {meeting.teacher_name}",
        [
            f"Thank you for proposing another time for your meeting with {_about(meeting)}. "
            f"We cannot move it: {why}.",
            f"Your meeting stays at {when(meeting.start, meeting.end, tz)}.",
            offer,
            f"To take one of them, propose it again from your calendar, or write to {contact}.",
            school,
        ],
    )
