"""The words of the emails around the meeting itself: the reminder, running late, the
feedback request (DESIGN §3).  PURE.

Times are shown in the school's zone, the zone named in words ("Eastern Time", from the
CLDR names Babel ships), so a parent abroad is never misled.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import get_timezone_name

from ptm_sync.core.booking.messages import MeetingFacts, Text, _text


def zone_words(tz: ZoneInfo, locale: str = "en") -> str:
    """The zone's generic name in words, e.g. "Eastern Time" for America/New_York."""
    try:
        return str(get_timezone_name(tz, locale=locale))
    except (LookupError, ValueError):  # a zone CLDR has no name for: its IANA key
        return tz.key


def at(start: datetime, end: datetime, tz: ZoneInfo) -> str:
    """``Tuesday 10 April 2027, 15:00–15:15 (Eastern Time)``."""
    s, e = start.astimezone(tz), end.astimezone(tz)
    return f"{s:%A %d %B %Y, %H:%M}–{e:%H:%M} ({zone_words(tz)})"


def _place(m: MeetingFacts) -> str:
    if m.video_url:
        return f"Join the video call: {m.video_url}"
    return f"Place: {m.location}" if m.location else ""


def _about(m: MeetingFacts) -> str:
    return " and ".join(m.students) or "your child"


def _how_late(reason: str) -> str:
    # No "today": the letter may be read on another day; the meeting's date is in it.
    return f"{reason} late" if reason else "late"


def reminder(
    *,
    school: str,
    period_title: str,
    meeting: MeetingFacts,
    tz: ZoneInfo,
    contact: str,
    organized_by_you: bool = False,
) -> Text:
    """The reminder before a confirmed meeting: when (the zone in words), where or the
    joining link, and how to cancel or move it: by answering our invitation, or, for a
    meeting the parent booked by inviting the teacher's booking address
    (``organized_by_you``), by changing or deleting their own event."""
    time = at(meeting.start, meeting.end, tz)
    how = (
        "To cancel or move it, change or delete the event in your calendar (the teacher's "
        f"booking address is told), or write to {contact}."
        if organized_by_you
        else "To cancel or move it, answer the invitation in your calendar (Decline, or "
        f"Propose new time), or write to {contact}."
    )
    return _text(
        f"Reminder: {period_title} with {meeting.teacher_name}, {time}",
        [
            f"This is a reminder of your meeting with {meeting.teacher_name} about "
            f"{_about(meeting)}:",
            time,
            _place(meeting),
            how,
            school,
        ],
    )


def late_moved(
    *,
    school: str,
    period_title: str,
    meeting: MeetingFacts,
    tz: ZoneInfo,
    contact: str,
    reason: str,
) -> Text:
    """The teacher runs late (``reason``: how late, e.g. "about 10 minutes"): the meeting's
    new time, its day named (the calendar update goes with it)."""
    time = at(meeting.start, meeting.end, tz)
    return _text(
        f"New time: {period_title} with {meeting.teacher_name}, {time}",
        [
            f"{meeting.teacher_name} is running {_how_late(reason)}. Your meeting about "
            f"{_about(meeting)} now starts later:",
            time,
            _place(meeting),
            "Your calendar has been updated. If the new time does not suit you, write to "
            f"{contact}.",
            school,
        ],
    )


def running_late(
    *,
    school: str,
    period_title: str,
    meeting: MeetingFacts,
    tz: ZoneInfo,
    contact: str,
    reason: str,
) -> Text:
    """The teacher runs late (``reason``: how late, e.g. "about 45 minutes") and the meeting
    could not be moved: the family is told it may start up to that much later."""
    time = at(meeting.start, meeting.end, tz)
    later = f"up to {reason} later than planned" if reason else "a little later"
    return _text(
        f"Running late: {period_title} with {meeting.teacher_name}",
        [
            f"{meeting.teacher_name} is running {_how_late(reason)}. Your meeting about "
            f"{_about(meeting)} stays booked for {time}, but it may start {later}. We are "
            "sorry for the wait.",
            _place(meeting),
            f"Questions: {contact}",
            school,
        ],
    )


def feedback_request(
    *,
    school: str,
    period_title: str,
    meeting: MeetingFacts,
    tz: ZoneInfo,
    contact: str,
    link: str,
) -> Text:
    """After a completed meeting: the survey link, or a request to reply to this email."""
    how = (
        f"Please tell us how it went: {link}"
        if link
        else "Please tell us how it went by replying to this email; your answer goes to the school."
    )
    return _text(
        f"How was your meeting with {meeting.teacher_name}?",
        [
            f"Thank you for meeting {meeting.teacher_name} about {_about(meeting)} on "
            f"{at(meeting.start, meeting.end, tz)}.",
            how,
            f"Questions: {contact}",
            school,
        ],
    )
