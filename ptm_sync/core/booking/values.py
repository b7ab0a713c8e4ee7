"""The values the booking core works on: a meeting, the rules of its period, a decision.

PURE: frozen dataclasses, no I/O, no clock.  Times are aware datetimes in UTC.  A
:class:`MeetingView` is a meeting as the core sees it — loaded from the store by
:mod:`ptm_sync.app.booking.load`, or drafted by :func:`ptm_sync.core.booking.decide.decide` for a
meeting about to be created (``id`` None).  A :class:`Decision` says everything a change
does: the meeting after it, the history entry, the messages and the calendar action; the
applier (:mod:`ptm_sync.app.booking.apply`) only writes it down.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from icalendar.enums import PARTSTAT

from ptm_sync.core.model import Actor, Interval, LinkSource, MeetingState, Window

#: Parts of a :class:`Context` the store can provide; :func:`ptm_sync.core.booking.decide.needs`
#: names the ones an event needs, so that an Accept costs no slot computation.
FREE, FAMILY, TRIED, PENDING = "free", "family", "tried", "pending"
#: Who of the meeting left the roster (:class:`Left`): read for what follows a meeting's end.
LEFT = "left"


class Outcome(StrEnum):
    """What a decision did (``mail deliver`` prints it; DESIGN §7): ``applied`` (the
    meeting changed, or the answer was sent), ``stale`` (an older message than what we
    hold, RFC 5546 §2.1.5), ``duplicate`` (nothing new), ``refused`` (an ask declined with an
    answer sent) or ``quarantined`` (the event cannot apply to this meeting at all)."""

    APPLIED = "applied"
    STALE = "stale"
    DUPLICATE = "duplicate"
    REFUSED = "refused"
    QUARANTINED = "quarantined"


class Rule(StrEnum):
    """The rules of a meeting's life: the names of the transition table's rows
    (:mod:`ptm_sync.core.booking.table`), and of the decisions that change nothing
    (``stale``, ``duplicate``, ``refused``, ``quarantine``).  History reasons and
    ``mail deliver``'s output quote them."""

    ACCEPT = "accept"
    ACCEPT_LATE = "accept-late"
    ACCEPT_RECORDED = "accept-recorded"
    CALENDAR_WRITTEN = "calendar-written"
    COMPLETE = "complete"
    COUNTER_GRANTED = "counter-granted"
    COUNTER_REFUSED = "counter-refused"
    DECLINE = "decline"
    DECLINE_RECORDED = "decline-recorded"
    DUPLICATE = "duplicate"
    EXPIRE = "expire"
    LINK_MADE = "link-made"
    LINK_MADE_BOOKED = "link-made-booked"
    NO_SHOW = "no-show"
    OFFER = "offer"
    ORGANIZER_CANCEL = "organizer-cancel"
    REFRESH = "refresh"
    REPROPOSAL = "reproposal"
    REQUEST_AGAIN = "request-again"
    REQUEST_CLOSED = "request-closed"
    REQUEST_GRANTED = "request-granted"
    REQUEST_MOVE_REFUSED = "request-move-refused"
    REQUEST_MOVED = "request-moved"
    REQUEST_REFUSED = "request-refused"
    STAFF_BOOK = "staff-book"
    STAFF_CANCEL = "staff-cancel"
    STAFF_CANCEL_BOOKED = "staff-cancel-booked"
    STAFF_REFUSED = "staff-refused"
    STAFF_RESCHEDULE = "staff-reschedule"
    STALE = "stale"
    SUPERSEDE = "supersede"
    TEACHER_MOVED = "teacher-moved"
    TEACHER_MOVED_BOOKED = "teacher-moved-booked"
    TEACHER_REMOVED = "teacher-removed"
    TEACHER_REMOVED_BOOKED = "teacher-removed-booked"
    TEACHER_EDITED = "teacher-edited"
    TENTATIVE = "tentative"
    VIDEO_MADE = "video-made"
    VIDEO_MADE_BOOKED = "video-made-booked"
    WAITLIST_OFFER = "waitlist-offer"
    REMIND = "remind"
    FEEDBACK_REQUEST = "feedback-request"
    ATTENDED = "attended"
    LATE = "late"
    LATE_TOLD = "late-told"
    RETIRED = "retired"
    REFUSED = "refused"
    QUARANTINE = "quarantine"


class Origin(StrEnum):
    """How a meeting came to be (stored in ``meetings.origin``)."""

    OFFER = "offer"  # the planner's proposal when booking opened (`invite`)
    REPROPOSAL = "reproposal"  # the next best time after a decline (DESIGN §3)
    WAITLIST = "waitlist"  # a freed slot offered to the first family waiting
    BOOKING_ADDRESS = "booking_address"  # a parent's REQUEST to a teacher's booking address
    STAFF = "staff"  # booked by staff on a parent's behalf (phone, paper form)


class CalendarAction(StrEnum):
    """What the teacher's calendar needs after a decision (delivered by the outbox)."""

    NONE = "none"
    WRITE = "write"  # create or update the event so it says what the meeting says
    REMOVE = "remove"  # take the event down


class RoomAction(StrEnum):
    """What a meeting's video room made after confirmation (Zoom) needs in a state."""

    NONE = "none"
    CREATE = "create"  # a confirmed meeting without a link gets one
    REMOVE = "remove"  # a meeting that ends unheld gives its room back


class Audience(StrEnum):
    """Who a notice goes to."""

    ALL = "all"  # every guardian who is a party of the meeting
    ASKER = "asker"  # the one guardian whose message caused the decision
    OTHERS = "others"  # every party but the asker


@dataclass(frozen=True, slots=True, kw_only=True)
class Party:
    """A guardian who is a party of a meeting, with that guardian's own answer.

    ``reply_sequence`` / ``reply_dtstamp``: the last reply applied for this attendee, for
    the ordering rule of RFC 5546 §2.1.5 (a higher SEQUENCE wins, then a later DTSTAMP).
    """

    guardian_id: int
    email: str
    name: str
    partstat: str = PARTSTAT.NEEDS_ACTION
    reply_sequence: int | None = None
    reply_dtstamp: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TeacherInfo:
    id: int
    email: str
    name: str
    key: str
    room: str = ""
    booking_address: str = ""  # resolved: roster column, [mail] pattern or the default


@dataclass(frozen=True, slots=True, kw_only=True)
class StudentInfo:
    id: int
    student_id: str
    name: str

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.strip() else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class MeetingView:
    """One meeting as a value.  ``state`` None: a draft the core is about to create.

    ``parties``: every guardian of the meeting, the primary first.  ``organizer``: the
    ORGANIZER of the parents' copies — our address (plus-addressed per meeting when so
    configured) or, for a request to a booking address, the parent's (DESIGN §4).
    ``sequence``: the iTIP SEQUENCE of the current version (RFC 5546 §2.1.4).
    """

    id: int | None
    uid: str
    period: str
    teacher: TeacherInfo
    parties: tuple[Party, ...]
    students: tuple[StudentInfo, ...]
    start: datetime
    end: datetime
    state: MeetingState | None
    sequence: int = 0
    origin: Origin = Origin.OFFER
    organizer: str = ""
    hold_until: datetime | None = None
    video_url: str = ""
    location: str = ""
    reproposals: int = 0
    replaces: int | None = None  # the meeting this one was proposed after (re-proposal)
    #: Where our event lives in the teacher's calendar and its ETag (None: not written, or
    #: removed); the connector's ``RemoteRef``.
    remote_href: str | None = None
    remote_etag: str | None = None
    #: The time the event in the teacher's calendar was at when we last knew its version
    #: (our write, or the teacher's move; UTC): a teacher's version at another time is a
    #: move, at this time an edit (DESIGN §3).  None: not written, or not known.
    remote_slot: Interval | None = None
    #: The teacher edited the event's text: our writes keep their summary and description.
    remote_edited: bool = False
    #: The parents' confirmation waits for the video link (Teams, Meet or Zoom, made after
    #: the meeting was confirmed): it goes when the link is made (DESIGN §3).
    link_pending: bool = False
    #: The start (UTC) the family was last reminded of (None: never): DESIGN §3, a
    #: reminder once per meeting and time.
    reminded: datetime | None = None
    #: The feedback request's per-meeting token (None: not asked yet).
    feedback_token: str | None = None

    @property
    def slot(self) -> Interval:
        return Interval(self.start, self.end).utc()

    @property
    def organized_by_parent(self) -> bool:
        """A request to a booking address: the parent is ORGANIZER, the UID is theirs."""
        return self.origin is Origin.BOOKING_ADDRESS

    def party(self, guardian_id: int) -> Party | None:
        return next((p for p in self.parties if p.guardian_id == guardian_id), None)

    def with_party(self, updated: Party) -> MeetingView:
        parties = tuple(
            updated if p.guardian_id == updated.guardian_id else p for p in self.parties
        )
        return replace(self, parties=parties)

    @property
    def attending(self) -> tuple[Party, ...]:
        return tuple(p for p in self.parties if p.partstat == PARTSTAT.ACCEPTED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Left:
    """Who of a meeting left the roster (``roster import --replace``): its teacher, and the
    ids of its guardians and students who did.  Nobody who left is proposed a new meeting
    or put on a waiting list: what follows a meeting's end (a re-proposal after a decline
    or the teacher's deletion, a replacement for a cancelled day) is for who stays."""

    teacher: bool = False
    guardians: frozenset[int] = frozenset()
    students: frozenset[int] = frozenset()

    def staying(self, meeting: MeetingView) -> MeetingView | None:
        """``meeting`` with only its guardians and students still on the roster; None when
        nobody is left to meet: the teacher left, or every guardian, or every student."""
        if self.teacher:
            return None
        if not self.guardians and not self.students:
            return meeting
        parties = tuple(p for p in meeting.parties if p.guardian_id not in self.guardians)
        students = tuple(s for s in meeting.students if s.id not in self.students)
        if not parties or not students:
            return None
        return replace(meeting, parties=parties, students=students)

    def ended_for(self, meeting: MeetingView) -> frozenset[int]:
        """The ids of ``meeting``'s guardians for whom nothing follows (:meth:`staying`)."""
        staying = self.staying(meeting)
        kept = {p.guardian_id for p in staying.parties} if staying is not None else set()
        return frozenset(p.guardian_id for p in meeting.parties if p.guardian_id not in kept)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rules:
    """The booking rules of one period (DESIGN §3, §8), as the core needs them.

    Minutes and hours are lengths; ``booking_closes`` is UTC; ``windows`` are UTC spans.
    Zero caps mean no cap.  ``booking_window_days`` and ``maximum_duration_minutes`` come
    from ``[booking_address]`` and apply to requests to booking addresses only
    (``maximum_duration_minutes`` 0: the slot length).
    """

    period: str
    title: str
    windows: tuple[Window, ...]
    slot_minutes: int = 15
    buffer_minutes: int = 0
    gap_minutes: int = 5
    hold_hours: int = 48
    booking_closes: datetime | None = None
    max_reproposals: int = 2
    max_meetings_per_family: int = 0
    max_meetings_per_teacher: int = 0
    booking_window_days: int = 180
    maximum_duration_minutes: int = 0
    reminder_hours: int = 24

    @property
    def gap(self) -> timedelta:
        return timedelta(minutes=self.gap_minutes)

    def closed(self, now: datetime) -> bool:
        """Whether booking has closed at ``now`` (UTC or aware): the one deadline check of
        every channel (DESIGN §3: offers, answers, requests, re-proposals; staff may
        override it with a reason)."""
        return self.booking_closes is not None and now >= self.booking_closes

    def reminder_due(self, start: datetime, now: datetime) -> bool:
        """Whether a meeting starting at ``start`` is reminded at ``now``: within
        ``reminder_hours`` of its start and not started yet (DESIGN §3: never after)."""
        if self.reminder_hours <= 0 or now >= start:
            return False
        return start - now <= timedelta(hours=self.reminder_hours)

    def hold_deadline(self, now: datetime) -> datetime:
        """How long a new proposal holds its slot: ``hold_hours``, never past the deadline."""
        hold = now + timedelta(hours=self.hold_hours)
        return min(hold, self.booking_closes) if self.booking_closes else hold


@dataclass(frozen=True, slots=True, kw_only=True)
class Fresh:
    """What a new meeting of ours gets that is random or secret (made by the applier):
    its signed UID, its ORGANIZER address and its video link."""

    uid: str
    organizer: str
    video_url: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What the core may know besides the meeting and the event.

    ``free``: the teacher's free grid slots of the period (the meeting's own slot counted
    free), from the store's busy times and active meetings.  ``family``: the active meetings
    in the period of any of the meeting's guardians (the meeting itself excluded).
    ``family_count`` / ``teacher_count``: active meetings for the caps, the meeting itself
    excluded.  ``tried``: times already offered to this family for this need (a
    re-proposal never offers them again).  ``pending``: the family's unanswered proposals
    with the same teacher and students, which a new booking supersedes; ``booked``: its
    confirmed meetings for that need (a family books a teacher once).  ``fresh``: the
    identity a meeting created by this decision takes.  ``is_guardian``: whether the asker
    is a guardian of one of the teacher's students; ``in_roster``: whether the asker is a
    guardian in the roster at all (a refusal says which: RFC 5546 §3.6 3.7 or 3.8).
    """

    rules: Rules
    now: datetime
    free: tuple[Interval, ...] = ()
    family: tuple[Interval, ...] = ()
    family_count: int = 0
    teacher_count: int = 0
    tried: tuple[Interval, ...] = ()
    pending: tuple[MeetingView, ...] = ()
    booked: tuple[Interval, ...] = ()
    fresh: Fresh | None = None
    is_guardian: bool = True
    in_roster: bool = True
    location: str = ""  # where an in-person meeting of this teacher happens
    #: Where this meeting's video link comes from (``none`` in an in-person period).
    link_from: LinkSource = LinkSource.NONE
    #: Who of the meeting left the roster (read with :data:`LEFT`).
    left: Left = Left()


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """One message a decision sends: which text, which iTIP method, to whom.

    ``template`` names a text of :mod:`ptm_sync.core.booking.messages`; ``method`` is the iTIP
    method (None: a plain email).  ``partstat`` is our answer in a REPLY (booking addresses).
    ``reason`` and ``alternatives`` fill the text (why a time was refused, which are free);
    ``request_status`` is the REQUEST-STATUS a refusing REPLY or DECLINECOUNTER carries
    (RFC 5546 §3.6; "" for the builder's default).
    """

    template: str
    method: str | None
    audience: Audience = Audience.ALL
    partstat: str | None = None
    reason: str = ""
    alternatives: tuple[Interval, ...] = ()
    asked: tuple[Interval, int] | None = None  # refused update: its time and SEQUENCE
    request_status: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class History:
    """The row of the append-only history this decision writes (DESIGN §3)."""

    actor: Actor
    reason: str
    old_start: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitlistEntry:
    """A family waiting for a teacher: ``guardian_ids`` the primary first.  ``notify``:
    the family gets the "waitlisted" email (False: another letter says so, e.g. the notice
    of a teacher's cancelled day)."""

    id: int | None
    period: str
    teacher_id: int
    guardian_ids: tuple[int, ...]
    student_ids: tuple[int, ...]
    since: datetime
    notify: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """What one event does to one meeting.  Built by the core, written by the applier.

    ``before`` / ``after``: the meeting as it was and as it will be (``before.state`` None:
    the decision creates the meeting; ``after`` None: nothing is created, e.g. a refused
    request to a booking address).  ``outcome``: ``applied``, ``stale``, ``duplicate`` or
    ``refused`` (an ask declined with an answer sent); ``rule`` names the row of the
    transition table that decided.  ``then``: decisions about other meetings that follow
    from this one in the same transaction (a re-proposal, a superseded proposal).
    ``releases``: the slot this decision frees (offered to the waiting list).
    ``waitlist``: the family to put on the teacher's waiting list.  ``left``: the guardians
    for whom nothing follows the meeting's end (they, its student or its teacher left the
    roster): no new time, no waiting list, and their letters say none.
    """

    rule: Rule
    outcome: Outcome
    reason: str
    before: MeetingView | None
    after: MeetingView | None
    history: History | None = None
    notices: tuple[Notice, ...] = ()
    calendar: CalendarAction = CalendarAction.NONE
    asker: int | None = None  # guardian id of the asker (Audience.ASKER)
    then: tuple[Decision, ...] = ()
    releases: Interval | None = None
    waitlist: WaitlistEntry | None = None
    overrides: tuple[str, ...] = field(default_factory=tuple)
    alternatives: tuple[Interval, ...] = ()  # free times offered with a refusal
    left: frozenset[int] = frozenset()

    @property
    def state(self) -> MeetingState | None:
        """The meeting's state after the decision (None when there is no meeting)."""
        return self.after.state if self.after else None

    @property
    def bumped(self) -> bool:
        """Whether SEQUENCE went up (a significant change, RFC 5546 §2.1.4)."""
        if self.before is None or self.after is None or self.before.state is None:
            return False
        return self.after.sequence > self.before.sequence

    @property
    def changes_meeting(self) -> bool:
        return self.after is not None and self.after != self.before
