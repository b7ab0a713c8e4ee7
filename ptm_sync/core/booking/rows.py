"""Building a decision from a row of the transition table, and the decisions that change
nothing (stale, duplicate, refused, quarantined).  PURE; used by every rule module."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ptm_sync.core.booking.admission import Admission
from ptm_sync.core.booking.table import CARRY_THE_LINK, NEW, OPEN, SAME, Row
from ptm_sync.core.booking.values import (
    CalendarAction,
    Context,
    Decision,
    History,
    MeetingView,
    Outcome,
    Rule,
    WaitlistEntry,
)
from ptm_sync.core.model import Interval, MeetingState

APPLIED, STALE, DUPLICATE = Outcome.APPLIED, Outcome.STALE, Outcome.DUPLICATE
REFUSED, QUARANTINED = Outcome.REFUSED, Outcome.QUARANTINED


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """What an event changes beyond the row's own rule, handed to :func:`make`.

    ``updated``: the meeting with the event's own changes (answers, a new time, where the
    teacher's event lives, the link) before the row's state change is applied.
    ``old_start``: the time the meeting had before it moved (kept in the history).
    ``notice_reason`` / ``alternatives``: fill the row's messages.  ``record``: whether the
    history gets a row.  ``asked``: the time and SEQUENCE a refused update of a parent's
    request asked for (the answer echoes them).  ``request_status``: the REQUEST-STATUS of
    a refusal (the admission rule's, DESIGN §4).  ``asker``: the guardian whose message
    caused the decision; ``then``: decisions about other meetings that follow; ``waitlist``:
    the family to put on the waiting list; ``overrides``: the rules staff overrode.
    """

    updated: MeetingView | None = None
    asker: int | None = None
    outcome: Outcome = Outcome.APPLIED
    old_start: Interval | None = None
    notice_reason: str = ""
    alternatives: tuple[Interval, ...] = ()
    then: tuple[Decision, ...] = ()
    waitlist: WaitlistEntry | None = None
    overrides: tuple[str, ...] = ()
    record: bool = True
    asked: tuple[Interval, int] | None = None
    request_status: str = ""


#: No change beyond the row's own.
NO_CHANGE = Change()


def make(
    row: Row, meeting: MeetingView, ctx: Context, reason: str, change: Change = NO_CHANGE
) -> Decision:
    """The decision ``row`` makes for ``meeting``, with ``change`` (:class:`Change`)."""
    base = change.updated if change.updated is not None else meeting
    after: MeetingView | None
    if row.to is None:
        after = None
    elif row.to == SAME:
        after = base
    else:
        state = MeetingState(row.to)
        after = replace(
            base,
            state=state,
            sequence=base.sequence + (1 if row.bump and meeting.state is not NEW else 0),
            hold_until=base.hold_until if state is MeetingState.PROPOSED else None,
        )
    notices = tuple(
        replace(
            n,
            reason=change.notice_reason or n.reason,
            alternatives=change.alternatives or n.alternatives,
            asked=change.asked,
            request_status=change.request_status or n.request_status,
        )
        for n in row.notices
    )
    if after is not None and _waits_for_link(row, after, ctx):
        # The link is made with the teacher's event (Teams, Meet) or by the outbox (Zoom)
        # once the meeting is confirmed: the messages that carry it go when it is made.
        notices = tuple(n for n in notices if n.template not in CARRY_THE_LINK)
        after = replace(after, link_pending=True)
    released = None
    if row.releases and meeting.state is not NEW:
        moved = after is not None and after.state in OPEN and after.slot != meeting.slot
        if moved or (after is None or after.state not in OPEN):
            released = meeting.slot
    history = None
    if change.record and after is not None:
        history = History(
            actor=row.actor,
            reason=reason,
            old_start=change.old_start.start if change.old_start is not None else None,
        )
    return Decision(
        rule=row.name,
        outcome=change.outcome,
        alternatives=change.alternatives,
        reason=reason,
        before=meeting,
        after=after,
        history=history,
        notices=notices,
        calendar=row.calendar,
        asker=change.asker,
        then=change.then,
        releases=released,
        waitlist=change.waitlist,
        overrides=change.overrides,
    )


def _waits_for_link(row: Row, after: MeetingView, ctx: Context) -> bool:
    """Whether the row confirms a meeting whose video link is still to be made."""
    return (
        after.state is MeetingState.CONFIRMED
        and row.calendar is CalendarAction.WRITE
        and not after.video_url
        and ctx.link_from.later
        and any(n.template in CARRY_THE_LINK for n in row.notices)
    )


def nothing(
    meeting: MeetingView, outcome: Outcome, reason: str, asker: int | None = None
) -> Decision:
    """A decision that changes nothing: ``stale``, ``duplicate`` or ``refused``."""
    return Decision(
        rule=Rule(outcome.value),
        outcome=outcome,
        reason=reason,
        before=meeting,
        after=meeting if meeting.state is not NEW else None,
        asker=asker,
    )


def quarantine(meeting: MeetingView, reason: str, asker: int | None = None) -> Decision:
    return Decision(
        rule=Rule.QUARANTINE,
        outcome=QUARANTINED,
        reason=reason,
        before=meeting,
        after=None,
        asker=asker,
    )


def note(comment: str) -> str:
    return f": {comment}" if comment else ""


def refusal(result: Admission) -> str:
    return f"{result.code}: {result.reason}"
