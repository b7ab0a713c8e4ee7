"""The meeting as an event in the teacher's own calendar: a pure builder beside the letters
(DESIGN §3, §4).  PURE.

The event is private and names the parents in its description, never as attendees, so no
calendar server sends scheduling messages on our behalf (DESIGN §4).  Staff notes never
reach it.  The connectors write it (:mod:`connectors.base` re-exports the values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ptm_sync.core.booking.values import MeetingView

#: The summary when the school's template cannot be filled (an unknown placeholder).
FALLBACK_SUMMARY = "Conference: {student_first} ({guardian})"


@dataclass(frozen=True, slots=True)
class Attendee:
    email: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class MeetingEvent:
    """The event we write into a teacher's calendar for a meeting.

    It never triggers server-side scheduling (DESIGN §4): :func:`teacher_copy` sets no
    attendees; a connector that is given some writes them for CalDAV with
    ``SCHEDULE-AGENT=CLIENT`` and not at all for Graph, EWS and Google.  Times are aware
    datetimes.
    """

    uid: str
    start: datetime
    end: datetime
    summary: str
    description: str = ""
    location: str = ""
    video_url: str = ""
    sequence: int = 0
    status: str = "CONFIRMED"
    private: bool = True
    organizer: str = ""
    attendees: tuple[Attendee, ...] = field(default_factory=tuple)
    #: Ask the calendar system for an online meeting (Teams, Meet) with the event; only a
    #: connector with ``Capability.ONLINE_MEETINGS`` honours it (the others ignore it).
    #: Its joining URL comes back in ``RemoteRef.join_url``.
    online_meeting: bool = False


@dataclass(frozen=True, slots=True)
class TeachersText:
    """The summary and description of the teacher's own version of our event (they edited
    it: :class:`~ptm_sync.core.booking.events.TeacherEdited`)."""

    summary: str
    description: str = ""


def teacher_copy(
    meeting: MeetingView,
    *,
    summary_template: str,
    contact: str,
    online_meeting: bool,
    teachers_text: TeachersText | None = None,
) -> MeetingEvent:
    """``meeting`` as the teacher's private event.

    ``summary_template``: ``[templates] summary`` (placeholders ``{student_first}``,
    ``{students}``, ``{guardian}``, ``{teacher}``; a template that cannot be filled falls
    back to :data:`FALLBACK_SUMMARY`).  ``contact``: the school's contact for changes.
    ``online_meeting``: ask the teacher's calendar system for the video link (the meeting
    has none and its system makes them: DESIGN §3 "In person or video").  Every guardian of
    the meeting is named in the description, the primary first.  ``teachers_text``: the
    teacher edited the event (``meeting.remote_edited``) and their version's text is known:
    their summary and description stay (DESIGN §3: "any other edit keeps the teacher's
    text"); time, status, place and link are ours.
    """
    firsts = [s.name.split()[0] for s in meeting.students if s.name.strip()]
    values = {
        "student_first": " & ".join(firsts),
        "students": ", ".join(s.name for s in meeting.students),
        "guardian": " & ".join(p.name for p in meeting.parties),
        "teacher": meeting.teacher.name,
    }
    try:
        summary = summary_template.format(**values)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError):
        # An unknown placeholder, an index or attribute of one ({guardian[0]},
        # {teacher.name}), or a lone brace: the school's template cannot be filled.
        summary = FALLBACK_SUMMARY.format(**values)
    lines = [
        "Parent-teacher conference with "
        + " and ".join(f"{p.name} <{p.email}>" for p in meeting.parties),
        f"About: {values['students']}" if meeting.students else "",
        f"Video call: {meeting.video_url}" if meeting.video_url else "",
        f"Place: {meeting.location}" if meeting.location and not meeting.video_url else "",
        f"Booked through ptm-sync; changes: {contact}",
    ]
    description = "\n".join(line for line in lines if line)
    if teachers_text is not None and meeting.remote_edited:
        summary, description = teachers_text.summary, teachers_text.description
    return MeetingEvent(
        uid=meeting.uid,
        start=meeting.start,
        end=meeting.end,
        summary=summary,
        description=description,
        location=meeting.video_url or meeting.location,
        video_url=meeting.video_url,
        sequence=meeting.sequence,
        status="CONFIRMED",
        private=True,
        online_meeting=online_meeting and not meeting.video_url,
    )
