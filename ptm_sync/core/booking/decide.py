"""``decide(meeting, event, context) -> Decision``: the booking core's one entry point.

PURE: values in, a value out; ``now`` is in the context.  Each event is first classified
— which row of :mod:`ptm_sync.core.booking.table` applies, after the guards RFC 5546 and DESIGN
§3 give (ordering of replies, the admission rule, the hold deadline) — and the row then
says what happens.  The shape is sabre/vobject's ITip Broker: the message and the meeting
in, the new meeting and the messages to send out.  The rules live by channel:
:mod:`~ptm_sync.core.booking.answers` (the parents' REPLY, COUNTER, REFRESH),
:mod:`~ptm_sync.core.booking.requests` (booking addresses), :mod:`~ptm_sync.core.booking.office`
(offers and staff), :mod:`~ptm_sync.core.booking.lifecycle` (deadlines, the teacher's calendar).
"""

from __future__ import annotations

from icalendar.enums import PARTSTAT

from ptm_sync.core.booking.aftercare import (
    ask_feedback,
    complete,
    mark_attended,
    mark_no_show,
    remind,
    retire,
)
from ptm_sync.core.booking.answers import answer, counter, refresh
from ptm_sync.core.booking.events import (
    Answer,
    AskFeedback,
    CalendarWritten,
    Completed,
    Counter,
    Event,
    HoldExpired,
    LinkGivenUp,
    MarkAttended,
    MarkNoShow,
    Offer,
    OrganizerCancel,
    Refresh,
    Remind,
    Request,
    Retire,
    RunningLate,
    StaffBook,
    StaffCancel,
    StaffReschedule,
    Supersede,
    TeacherEdited,
    TeacherMoved,
    TeacherRemoved,
    VideoLinkMade,
)
from ptm_sync.core.booking.late import running_late
from ptm_sync.core.booking.lifecycle import (
    expire,
    supersede,
    teacher_edited,
    teacher_moved,
    teacher_removed,
)
from ptm_sync.core.booking.office import (
    offer,
    staff_book,
    staff_cancel,
    staff_reschedule,
)
from ptm_sync.core.booking.requests import organizer_cancel, request
from ptm_sync.core.booking.rows import (
    APPLIED,
    DUPLICATE,
    QUARANTINED,
    REFUSED,
    STALE,
    nothing,
)
from ptm_sync.core.booking.table import NEW
from ptm_sync.core.booking.values import (
    FAMILY,
    FREE,
    LEFT,
    PENDING,
    TRIED,
    Context,
    Decision,
    MeetingView,
)
from ptm_sync.core.booking.written import calendar_written, link_given_up, video_made

__all__ = ["APPLIED", "DUPLICATE", "QUARANTINED", "REFUSED", "STALE", "decide", "needs"]


def decide(meeting: MeetingView, event: Event, ctx: Context) -> Decision:
    """Decide what ``event`` does to ``meeting`` (a draft with ``state`` None for events
    that create one: :class:`Offer`, :class:`Request`, :class:`StaffBook`).

    Returns a :class:`Decision`; its ``outcome`` is ``quarantined`` (with the reason) when
    the event cannot apply to this meeting at all, e.g. an answer to a meeting organized
    by the parent.  Never raises for a legal combination of values.
    """
    creates = isinstance(event, Offer | StaffBook) or (
        isinstance(event, Request) and meeting.state is NEW
    )
    if creates and meeting.state is not NEW:
        return nothing(meeting, DUPLICATE, "the meeting exists already")
    match event:
        case Answer():
            return answer(meeting, event, ctx)
        case Counter():
            return counter(meeting, event, ctx)
        case Refresh():
            return refresh(meeting, event, ctx)
        case Request():
            return request(meeting, event, ctx)
        case OrganizerCancel():
            return organizer_cancel(meeting, event, ctx)
        case Offer():
            return offer(meeting, event, ctx)
        case StaffBook():
            return staff_book(meeting, event, ctx)
        case StaffReschedule():
            return staff_reschedule(meeting, event, ctx)
        case StaffCancel():
            return staff_cancel(meeting, event, ctx)
        case MarkNoShow():
            return mark_no_show(meeting, event, ctx)
        case MarkAttended():
            return mark_attended(meeting, event, ctx)
        case Completed():
            return complete(meeting, ctx)
        case Remind():
            return remind(meeting, ctx)
        case AskFeedback():
            return ask_feedback(meeting, event, ctx)
        case RunningLate():
            return running_late(meeting, event, ctx)
        case Retire():
            return retire(meeting, event, ctx)
        case HoldExpired():
            return expire(meeting, event, ctx)
        case Supersede():
            return supersede(meeting, event.reason, ctx)
        case TeacherMoved():
            return teacher_moved(meeting, event, ctx)
        case TeacherRemoved():
            return teacher_removed(meeting, ctx)
        case TeacherEdited():
            return teacher_edited(meeting, event, ctx)
        case CalendarWritten():
            return calendar_written(meeting, event, ctx)
        case VideoLinkMade():
            return video_made(meeting, event, ctx)
        case LinkGivenUp():
            return link_given_up(meeting, event, ctx)
    raise TypeError(f"not a booking event: {event!r}")  # pragma: no cover - typed above


def needs(meeting: MeetingView, event: Event) -> frozenset[str]:
    """The parts of the :class:`Context` deciding ``event`` for ``meeting`` reads (the rest
    stay empty: an Accept costs no slot computation)."""
    match event:
        case Answer():
            if event.proposed is not None and event.proposed.utc() != meeting.slot:
                return frozenset({FREE, FAMILY})  # a proposal of another time
            if str(event.partstat).upper() == PARTSTAT.DECLINED:
                return frozenset({FREE, FAMILY, TRIED, LEFT})  # the re-proposal
            return frozenset()
        case Counter() | Offer() | StaffReschedule():
            return frozenset({FREE, FAMILY})
        case Request() | StaffBook():
            return frozenset({FREE, FAMILY, PENDING})
        case TeacherRemoved():
            return frozenset({FREE, FAMILY, TRIED, LEFT})  # a new proposal
        case StaffCancel() if event.elsewhere is not None:
            return frozenset({FREE, FAMILY, TRIED, LEFT})  # a replacement on another evening
        case StaffCancel() if meeting.organized_by_parent:
            return frozenset({FREE, FAMILY})  # the answer offers other free times
    return frozenset()
