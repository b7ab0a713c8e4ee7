"""The transition table: every rule of a meeting's life, one row each, next to DESIGN §3.

PURE data.  A row says, for a meeting in one of ``source`` states (``NEW``: no meeting
yet) and an event classified as ``name`` by :mod:`ptm_sync.core.booking.decide`, which state the
meeting enters (``SAME``: it stays), whether SEQUENCE goes up (RFC 5546 §2.1.4: a change
of time, status or place is significant), which messages go to whom, what the teacher's
calendar needs, who the history names as the actor, and whether the slot is released (and
so offered to the waiting list).

Read it as the school's procedure:

* offer — a proposal holds a slot until ``hold_hours`` pass; the family is invited
  (REQUEST, STATUS:TENTATIVE);
* accept / decline / tentative — the parent's answer (REPLY); a decline releases the slot
  and the next best time is proposed, up to ``max_reproposals``;
* counter — Propose new time (COUNTER): granted when the admission rule allows, else
  DECLINECOUNTER with alternatives;
* request — a REQUEST to a teacher's booking address, decided like a room mailbox (REPLY
  ACCEPTED or DECLINED; the parent stays organizer);
* staff-… — staff act for a family; teacher-… — the teacher moved, removed or edited our
  event;
* calendar-written, link-made, video-made — the outbox wrote the teacher's event or made
  the video room: where the event lives, and the confirmation that waited for the link
  (Teams, Meet or Zoom are made only once the meeting is confirmed: DESIGN §3);
* expire, supersede, complete — the deadline passed, another meeting took over, the
  meeting happened; remind, feedback-request — the jobs before and after it;
* attended, no-show — staff mark what happened (a correction needs a reason); late,
  late-told — the teacher runs late (moved, or the family told); retired — the family left
  the roster and its open proposal is withdrawn.
"""

from __future__ import annotations

from dataclasses import dataclass

from icalendar.enums import PARTSTAT

from ptm_sync.core.booking.values import Audience, CalendarAction, Notice, RoomAction, Rule
from ptm_sync.core.model import Actor, MeetingState

P, C = MeetingState.PROPOSED, MeetingState.CONFIRMED
DONE, NOSHOW = MeetingState.COMPLETED, MeetingState.NO_SHOW
DECLINED, EXPIRED = MeetingState.DECLINED, MeetingState.EXPIRED
SUPERSEDED, CANCELLED = MeetingState.SUPERSEDED, MeetingState.CANCELLED

#: The source state of a row that creates a meeting.
NEW = None
#: The target of a row that leaves the state as it is.
SAME = "same"

OPEN: frozenset[MeetingState | None] = frozenset({P, C})
CLOSED: frozenset[MeetingState | None] = frozenset(
    {DONE, NOSHOW, DECLINED, EXPIRED, SUPERSEDED, CANCELLED}
)
ANY: frozenset[MeetingState | None] = OPEN | CLOSED
C_OR_DONE: frozenset[MeetingState | None] = frozenset({C, DONE})

ALL, ASKER = Audience.ALL, Audience.ASKER
WRITE, REMOVE, NONE = CalendarAction.WRITE, CalendarAction.REMOVE, CalendarAction.NONE
PARENT, STAFF, TEACHER, SYSTEM = Actor.PARENT, Actor.STAFF, Actor.TEACHER, Actor.SYSTEM


def _n(template: str, method: str | None, audience: Audience = ALL, **kw: str) -> Notice:
    return Notice(template=template, method=method, audience=audience, **kw)  # type: ignore[arg-type]


INVITE = _n("invitation", "REQUEST")
REPROPOSE = _n("reproposal", "REQUEST")
WAITLIST_OFFER = _n("waitlist_offer", "REQUEST")
CONFIRM = _n("confirmation", "REQUEST")
BOOKED_DETAILS = _n("booking_details", None, ASKER)
MOVED = _n("moved", "REQUEST")
CURRENT = _n("current", "REQUEST", ASKER)
CANCEL = _n("cancellation", "CANCEL")
CANCEL_TO_ASKER = _n("cancellation", "CANCEL", ASKER)
DECLINED_NOTE = _n("declined", "CANCEL")
EXPIRED_NOTE = _n("expired", "CANCEL")
LATE = _n("expired_late", "CANCEL")
SUPERSEDED_NOTE = _n("superseded", "CANCEL")
REMOVED = _n("removed", "CANCEL")
DECLINE_COUNTER = _n("counter_declined", "DECLINECOUNTER", ASKER)
BOOKED = _n("booking_accepted", "REPLY", ASKER, partstat=PARTSTAT.ACCEPTED)
#: The messages (by template) that carry the meeting's video link: when the link is made
#: after confirmation (Teams, Meet, Zoom), they wait for it (the link-made rows send them).
CARRY_THE_LINK = frozenset({CONFIRM.template, BOOKED_DETAILS.template})
NOT_BOOKED = _n("booking_declined", "REPLY", ASKER, partstat=PARTSTAT.DECLINED)
WITHDRAWN = _n("booking_cancelled", "REPLY", ASKER, partstat=PARTSTAT.DECLINED)
PLEASE_MOVE = _n("moved_booked", None, ASKER)
REMINDER = _n("reminder", None)
FEEDBACK = _n("feedback_request", None)
LATE_MOVE = _n("late_moved", "REQUEST")
LATE_NOTE = _n("running_late", None)
RETIRED = _n("retired", "CANCEL")


@dataclass(frozen=True, slots=True)
class Row:
    """One rule.  ``to`` is a state, :data:`SAME`, or None for "no meeting" (a refused
    request creates nothing)."""

    name: Rule
    source: frozenset[MeetingState | None]
    to: MeetingState | str | None
    bump: bool
    notices: tuple[Notice, ...]
    calendar: CalendarAction
    actor: Actor
    releases: bool = False


def _row(
    name: str,
    source: MeetingState | frozenset[MeetingState | None] | None,
    to: MeetingState | str | None,
    bump: bool = False,
    notices: tuple[Notice, ...] = (),
    calendar: CalendarAction = NONE,
    actor: Actor = PARENT,
    releases: bool = False,
) -> Row:
    states = source if isinstance(source, frozenset) else frozenset({source})
    return Row(Rule(name), states, to, bump, notices, calendar, actor, releases)


# fmt: off
TABLE: tuple[Row, ...] = (
    #    event                   from       to          seq+1  messages                  calendar actor    frees
    # --- new meetings ----------------------------------------------------------------------
    _row("offer",                NEW,       P,          False, (INVITE,),                NONE,   SYSTEM),
    _row("reproposal",           NEW,       P,          False, (REPROPOSE,),             NONE,   SYSTEM),
    _row("waitlist-offer",       NEW,       P,          False, (WAITLIST_OFFER,),        NONE,   SYSTEM),
    _row("staff-book",           NEW,       C,          False, (CONFIRM,),               WRITE,  STAFF),
    _row("request-granted",      NEW,       C,          False, (BOOKED, BOOKED_DETAILS), WRITE,  PARENT),
    _row("request-refused",      NEW,       None,       False, (NOT_BOOKED,),            NONE,   PARENT),
    _row("staff-refused",        NEW,       None,       False, (),                       NONE,   STAFF),
    # --- the parent's answer (REPLY, RFC 5546 §3.2.3) ---------------------------------------
    _row("accept",               P,         C,          True,  (CONFIRM,),               WRITE,  PARENT),
    _row("accept-late",          P,         EXPIRED,    True,  (LATE,),                  NONE,   SYSTEM,  True),
    _row("accept-recorded",      C,         SAME,       False, (),                       NONE,   PARENT),
    _row("tentative",            OPEN,      SAME,       False, (),                       NONE,   PARENT),
    _row("decline",              P,         DECLINED,   True,  (DECLINED_NOTE,),         NONE,   PARENT,  True),
    _row("decline",              C,         CANCELLED,  True,  (DECLINED_NOTE,),         REMOVE, PARENT,  True),
    _row("decline-recorded",     OPEN,      SAME,       False, (),                       NONE,   PARENT),
    # --- Propose new time (COUNTER, §3.2.7; DECLINECOUNTER, §3.2.8) --------------------------
    _row("counter-granted",      OPEN,      C,          True,  (CONFIRM,),               WRITE,  PARENT,  True),
    _row("counter-refused",      ANY,       SAME,       False, (DECLINE_COUNTER,),       NONE,   SYSTEM),
    # --- REFRESH (§3.2.6): the current version again, to the one who asked -------------------
    _row("refresh",              OPEN,      SAME,       False, (CURRENT,),               NONE,   PARENT),
    _row("refresh",              CLOSED,    SAME,       False, (CANCEL_TO_ASKER,),       NONE,   PARENT),
    # --- requests to a booking address, once booked (the parent organizes) -------------------
    _row("request-moved",        C,         C,          False, (BOOKED, BOOKED_DETAILS), WRITE,  PARENT,  True),
    _row("request-move-refused", C,         SAME,       False, (NOT_BOOKED,),            NONE,   PARENT),
    _row("request-again",        C,         SAME,       False, (BOOKED,),                NONE,   PARENT),
    _row("request-closed",       CLOSED,    SAME,       False, (NOT_BOOKED,),            NONE,   PARENT),
    _row("organizer-cancel",     C,         CANCELLED,  False, (),                       REMOVE, PARENT,  True),
    # --- staff -------------------------------------------------------------------------------
    _row("staff-reschedule",     P,         P,          True,  (INVITE,),                NONE,   STAFF,   True),
    _row("staff-reschedule",     C,         C,          True,  (CONFIRM,),               WRITE,  STAFF,   True),
    _row("staff-cancel",         P,         CANCELLED,  True,  (CANCEL,),                NONE,   STAFF,   True),
    _row("staff-cancel",         C,         CANCELLED,  True,  (CANCEL,),                REMOVE, STAFF,   True),
    _row("staff-cancel-booked",  C,         CANCELLED,  False, (WITHDRAWN,),             REMOVE, STAFF,   True),
    _row("no-show",              C_OR_DONE, NOSHOW,     False, (),                       NONE,   STAFF),
    _row("attended",             C,         DONE,       False, (),                       NONE,   STAFF),
    _row("attended",             NOSHOW,    DONE,       False, (),                       NONE,   STAFF),
    _row("late",                 C,         C,          True,  (LATE_MOVE,),             WRITE,  STAFF),
    _row("late-told",            C,         SAME,       False, (LATE_NOTE,),             NONE,   STAFF),
    _row("retired",              P,         CANCELLED,  True,  (RETIRED,),               NONE,   STAFF,   True),
    _row("staff-refused",        ANY,       SAME,       False, (),                       NONE,   STAFF),
    # --- the teacher's calendar (DESIGN §3 "teacher-side changes") ---------------------------
    _row("teacher-moved",        C,         C,          True,  (MOVED,),                 NONE,   TEACHER, True),
    _row("teacher-moved-booked", C,         SAME,       False, (PLEASE_MOVE,),           NONE,   TEACHER),
    _row("teacher-removed",      C,         CANCELLED,  True,  (REMOVED,),               NONE,   TEACHER, True),
    _row("teacher-removed-booked", C,       CANCELLED,  False, (WITHDRAWN,),             NONE,   TEACHER, True),
    _row("teacher-edited",       C,         SAME,       False, (),                       NONE,   TEACHER),
    # --- the outbox's writes: where the event lives, the video link made after confirmation --
    _row("calendar-written",     ANY,       SAME,       False, (),                       NONE,   SYSTEM),
    _row("link-made",            C,         SAME,       False, (CONFIRM,),               NONE,   SYSTEM),
    _row("link-made-booked",     C,         SAME,       False, (BOOKED_DETAILS,),        NONE,   SYSTEM),
    _row("video-made",           C,         SAME,       False, (CONFIRM,),               WRITE,  SYSTEM),
    _row("video-made-booked",    C,         SAME,       False, (BOOKED_DETAILS,),        WRITE,  SYSTEM),
    # --- deadlines and the record ------------------------------------------------------------
    _row("expire",               P,         EXPIRED,    True,  (EXPIRED_NOTE,),          NONE,   SYSTEM,  True),
    _row("supersede",            P,         SUPERSEDED, True,  (SUPERSEDED_NOTE,),       NONE,   SYSTEM,  True),
    _row("complete",             C,         DONE,       False, (),                       NONE,   SYSTEM),
    _row("remind",               C,         SAME,       False, (REMINDER,),              NONE,   SYSTEM),
    _row("feedback-request",     DONE,      SAME,       False, (FEEDBACK,),              NONE,   SYSTEM),
    # --- what changes nothing (RFC 5546 §2.1.5: stale and duplicate messages) ----------------
    _row("stale",                ANY,       SAME,       False, (),                       NONE,   PARENT),
    _row("duplicate",            ANY,       SAME,       False, (),                       NONE,   PARENT),
)
# fmt: on

#: The video room a state asks for, where rooms are made after confirmation (Zoom, by the
#: outbox): the column "room" of the states.  Completed and no-show meetings keep theirs
#: (the record); the proposed never had one.
ROOM: dict[MeetingState, RoomAction] = {
    C: RoomAction.CREATE,
    CANCELLED: RoomAction.REMOVE,
    DECLINED: RoomAction.REMOVE,
    EXPIRED: RoomAction.REMOVE,
    SUPERSEDED: RoomAction.REMOVE,
}


def room_for(state: MeetingState) -> RoomAction:
    """What the video room of a meeting in ``state`` needs (:data:`ROOM`)."""
    return ROOM.get(state, RoomAction.NONE)


#: (state, event name) → row; built once, checked for ambiguity at import.
RULES: dict[tuple[MeetingState | None, str], Row] = {}
for _r in TABLE:
    for _state in _r.source:
        if (_state, _r.name) in RULES:
            raise AssertionError(f"two rows for {_r.name} in {_state}")
        RULES[(_state, _r.name)] = _r


def row_for(state: MeetingState | None, name: str) -> Row:
    """The row deciding event ``name`` in ``state``.

    Raises:
        KeyError: no row: the classification in :mod:`~ptm_sync.core.booking.decide` and the
            table disagree (a bug, caught by the table tests).
    """
    return RULES[(state, name)]
