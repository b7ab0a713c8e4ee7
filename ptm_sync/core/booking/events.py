"""What can happen to a meeting: one frozen value per kind of event, from every channel.

PURE.  The channels turn what they received into one of these and hand it to
:func:`ptm_sync.core.booking.decide.decide`:

* a parent's mail client (iTIP, RFC 5546): :class:`Answer` (REPLY), :class:`Counter`
  (COUNTER, or Gmail's reply carrying a new time), :class:`Refresh` (REFRESH), and for a
  teacher's booking address :class:`Request` (REQUEST) and :class:`OrganizerCancel` (CANCEL);
* staff at the command line: :class:`StaffBook`, :class:`StaffReschedule`,
  :class:`StaffCancel`, :class:`MarkNoShow`, :class:`MarkAttended`, :class:`RunningLate`,
  :class:`Retire` (a roster import);
* the planner and the jobs: :class:`Offer`, :class:`HoldExpired`, :class:`Completed`,
  :class:`Remind`, :class:`AskFeedback`, :class:`Supersede`;
* the teacher's calendar, as sync found it: :class:`TeacherMoved`, :class:`TeacherRemoved`.

``inbound_id`` ties an event to the message that carried it (the history's "causing
message"); ``guardian_id`` names the guardian whose message it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ptm_sync.core.booking.values import Origin
from ptm_sync.core.model import Interval


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """A guardian's REPLY (RFC 5546 §3.2.3): ``partstat`` ACCEPTED, DECLINED, TENTATIVE…

    ``sequence`` and ``dtstamp`` are the reply's, for the ordering rule (§2.1.5).
    ``proposed``: the time a reply carries when it is Gmail's "propose a new time"; when
    it differs from the meeting's, the reply is decided as a :class:`Counter`.
    """

    guardian_id: int
    partstat: str
    sequence: int = 0
    dtstamp: datetime | None = None
    comment: str = ""
    inbound_id: int | None = None
    proposed: Interval | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Counter:
    """Propose new time (RFC 5546 §3.2.7): ``proposed`` is the time the guardian asks for."""

    guardian_id: int
    proposed: Interval
    sequence: int = 0
    dtstamp: datetime | None = None
    comment: str = ""
    inbound_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Refresh:
    """REFRESH (RFC 5546 §3.2.6): send the guardian the current version again."""

    guardian_id: int
    inbound_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A parent's REQUEST to a teacher's booking address (RFC 5546 §3.2.2), new or updated.

    The parent is ORGANIZER (``organizer``) and owns ``uid`` and ``sequence``.
    ``slot`` None: the request carries no usable time.
    """

    guardian_id: int
    uid: str
    organizer: str
    slot: Interval | None
    sequence: int = 0
    dtstamp: datetime | None = None
    recurring: bool = False
    all_day: bool = False
    summary: str = ""
    comment: str = ""
    inbound_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrganizerCancel:
    """The parent, as ORGANIZER, cancels their request (CANCEL, RFC 5546 §3.2.5)."""

    guardian_id: int
    sequence: int = 0
    dtstamp: datetime | None = None
    inbound_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Offer:
    """The planner proposes ``slot`` to a family (or a re-proposal, or a waiting list
    offer): ``origin`` says which."""

    slot: Interval
    origin: Origin = Origin.OFFER


@dataclass(frozen=True, slots=True, kw_only=True)
class StaffBook:
    """Staff book ``slot`` for a family (phone, paper form); ``override`` sets aside the
    deadline and the caps (recorded)."""

    slot: Interval
    override: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StaffReschedule:
    slot: Interval
    override: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StaffCancel:
    """Staff cancel the meeting.  ``offer_freed`` False: the freed time is not offered to
    the waiting list (a teacher's whole evening cancelled: the teacher cannot meet then).

    ``elsewhere``: the span (UTC) the teacher cannot meet in, a whole local day (DESIGN §3
    "Bulk disruption"): the family is proposed a replacement time outside it, on another
    evening of the period (:mod:`ptm_sync.core.booking.disruption`), else put on the
    teacher's waiting list; the cancelled day's notice tells it which.  None: no
    replacement (a single meeting cancelled)."""

    reason: str = ""
    offer_freed: bool = True
    elsewhere: Interval | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkNoShow:
    """Staff mark that the family did not come (DESIGN §3).  A completed meeting corrected
    to ``no_show`` needs ``reason``."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkAttended:
    """Staff correct a ``no_show`` to ``completed`` (the family came after all): ``reason``
    needed (DESIGN §3, §7)."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Completed:
    """The meeting's end time has passed (the ``complete`` job)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Remind:
    """The ``remind`` job: the family of a confirmed meeting is reminded of it when it is
    within the period's ``reminder_hours`` and has not started (DESIGN §3)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AskFeedback:
    """The ``feedback`` job asks the guardians of a completed meeting for feedback, once;
    ``token`` is the meeting's feedback token (made by the job from the site's secret)."""

    token: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningLate:
    """The teacher runs ``minutes`` late (DESIGN §3 "Running late"): the meeting moves to
    ``slot`` (exempt from the grid), or, with ``slot`` None, stays and its family is told.
    Which meetings move is decided for the whole evening by
    :func:`ptm_sync.core.booking.late.plan`."""

    minutes: int
    slot: Interval | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Retire:
    """The family (or the teacher) left the roster (``roster import --replace``): an open
    proposal is withdrawn (CANCEL); a confirmed meeting is kept and listed for staff."""

    reason: str = "the family is no longer on the school's roster"


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldExpired:
    """The hold deadline passed without an answer (or an answer came after it)."""

    inbound_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Supersede:
    """Another meeting now covers this proposal's need; ``reason`` says which."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TeacherMoved:
    """Sync found our event in the teacher's calendar at another time (``slot``), as the
    version ``etag`` (the teacher's version is then the one we know)."""

    slot: Interval
    etag: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TeacherRemoved:
    """Sync found our event deleted or cancelled in the teacher's calendar."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TeacherEdited:
    """Our event in the teacher's calendar is the teacher's version ``etag`` at the time we
    wrote: edited, not moved (a note, a colour, a new title).  Found by a sync, or by
    re-reading the event after a write of ours was refused for it (HTTP 412, DESIGN §3).
    Their version is the one we know: our next write goes on it and keeps their text."""

    etag: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CalendarWritten:
    """The outbox wrote the meeting's event in the teacher's calendar (DESIGN §6).

    ``href`` / ``etag``: where the event lives now and its version (None: removed);
    ``slot``: the time the event was written at (UTC; None when removed or not known);
    ``join_url``: the joining link the calendar system made with the event (Teams on
    Microsoft Graph ``onlineMeeting.joinUrl``, Meet on Google ``conferenceData``), "" for
    none.  ``in_flight``: a create is about to be sent (``href`` is the marker that says
    so); nothing else follows from it.
    """

    href: str | None
    etag: str | None = None
    slot: Interval | None = None
    join_url: str = ""
    in_flight: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkGivenUp:
    """The write that was to make the meeting's video link (the teacher's calendar with
    Teams or Meet, or Zoom) was given up (dead-lettered): the link will not come."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoLinkMade:
    """The outbox made the meeting's video room (Zoom): its joining ``url``."""

    url: str


Event = (
    Answer
    | Counter
    | Refresh
    | Request
    | OrganizerCancel
    | Offer
    | StaffBook
    | StaffReschedule
    | StaffCancel
    | MarkNoShow
    | MarkAttended
    | Completed
    | Remind
    | AskFeedback
    | RunningLate
    | Retire
    | HoldExpired
    | Supersede
    | TeacherMoved
    | TeacherRemoved
    | TeacherEdited
    | CalendarWritten
    | VideoLinkMade
    | LinkGivenUp
)
