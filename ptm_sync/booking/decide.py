"""``decide(meeting, event, context) -> Decision``: the booking core's one entry point.

PURE: values in, a value out; ``now`` is in the context.  Each event is first classified
— which row of :mod:`ptm_sync.booking.table` applies, after the guards RFC 5546 and DESIGN
§3 give (ordering of replies, the admission rule, the hold deadline) — and the row then
says what happens.  The shape is sabre/vobject's ITip Broker: the message and the meeting
in, the new meeting and the messages to send out.
"""

from __future__ import annotations

from dataclasses import replace

from icalendar.enums import PARTSTAT

from ptm_sync.booking import admission
from ptm_sync.booking.admission import Admission, Ask
from ptm_sync.booking.events import (
    Answer,
    Completed,
    Counter,
    Event,
    HoldExpired,
    MarkNoShow,
    Offer,
    OrganizerCancel,
    Refresh,
    Request,
    StaffBook,
    StaffCancel,
    StaffReschedule,
    Supersede,
    TeacherMoved,
    TeacherRemoved,
)
from ptm_sync.booking.table import CLOSED, NEW, OPEN, SAME, Row, row_for
from ptm_sync.booking.values import (
    FAMILY,
    FREE,
    PENDING,
    TRIED,
    Context,
    Decision,
    History,
    MeetingView,
    Origin,
    Party,
    WaitlistEntry,
)
from ptm_sync.itip import is_newer
from ptm_sync.model import Interval, MeetingState

APPLIED, STALE, DUPLICATE, REFUSED = "applied", "stale", "duplicate", "refused"
QUARANTINED = "quarantined"


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
        return _nothing(meeting, DUPLICATE, "the meeting exists already")
    match event:
        case Answer():
            return _answer(meeting, event, ctx)
        case Counter():
            return _counter(meeting, event, ctx)
        case Refresh():
            return _refresh(meeting, event, ctx)
        case Request():
            return _request(meeting, event, ctx)
        case OrganizerCancel():
            return _organizer_cancel(meeting, event, ctx)
        case Offer():
            return _offer(meeting, event, ctx)
        case StaffBook():
            return _staff_book(meeting, event, ctx)
        case StaffReschedule():
            return _staff_reschedule(meeting, event, ctx)
        case StaffCancel():
            return _staff_cancel(meeting, event, ctx)
        case MarkNoShow():
            if meeting.state not in (MeetingState.CONFIRMED, MeetingState.COMPLETED):
                return _refused_for_staff(meeting, ctx, f"the meeting is {meeting.state}")
            return _apply(row_for(meeting.state, "no-show"), meeting, ctx, "marked no-show")
        case Completed():
            if meeting.state is not MeetingState.CONFIRMED:
                return _nothing(meeting, "duplicate", f"meeting is {meeting.state}")
            return _apply(row_for(meeting.state, "complete"), meeting, ctx, "the meeting ended")
        case HoldExpired():
            return _expire(meeting, event, ctx)
        case Supersede():
            if meeting.state is not MeetingState.PROPOSED:
                return _nothing(meeting, DUPLICATE, f"meeting is {meeting.state}")
            return _apply(row_for(meeting.state, "supersede"), meeting, ctx, event.reason)
        case TeacherMoved():
            return _teacher_moved(meeting, event, ctx)
        case TeacherRemoved():
            return _teacher_removed(meeting, ctx)
    raise TypeError(f"not a booking event: {event!r}")  # pragma: no cover - typed above


def needs(meeting: MeetingView, event: Event) -> frozenset[str]:
    """The parts of the :class:`Context` deciding ``event`` for ``meeting`` reads (the rest
    stay empty: an Accept costs no slot computation)."""
    match event:
        case Answer():
            if event.proposed is not None and event.proposed.utc() != meeting.slot:
                return frozenset({FREE, FAMILY})  # a proposal of another time
            if str(event.partstat).upper() == PARTSTAT.DECLINED:
                return frozenset({FREE, FAMILY, TRIED})  # the re-proposal
            return frozenset()
        case Counter() | Offer() | StaffReschedule():
            return frozenset({FREE, FAMILY})
        case Request() | StaffBook():
            return frozenset({FREE, FAMILY, PENDING})
        case TeacherRemoved():
            return frozenset({FREE, FAMILY, TRIED})
    return frozenset()


# --- building a decision from a row -------------------------------------------------------


def _apply(
    row: Row,
    meeting: MeetingView,
    ctx: Context,
    reason: str,
    *,
    updated: MeetingView | None = None,
    asker: int | None = None,
    outcome: str = APPLIED,
    old_start: Interval | None = None,
    notice_reason: str = "",
    alternatives: tuple[Interval, ...] = (),
    then: tuple[Decision, ...] = (),
    waitlist: WaitlistEntry | None = None,
    overrides: tuple[str, ...] = (),
    record: bool = True,
) -> Decision:
    """The decision ``row`` makes for ``meeting``.

    ``updated``: the meeting with the event's own changes (answers, a new time) before the
    row's state change is applied.  ``old_start``: the time the meeting had before it
    moved (kept in the history).  ``notice_reason`` / ``alternatives`` fill the row's
    messages.  ``record``: whether the history gets a row.
    """
    base = updated if updated is not None else meeting
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
        replace(n, reason=notice_reason or n.reason, alternatives=alternatives or n.alternatives)
        for n in row.notices
    )
    released = None
    if row.releases and meeting.state is not NEW:
        moved = after is not None and after.state in OPEN and after.slot != meeting.slot
        if moved or (after is None or after.state not in OPEN):
            released = meeting.slot
    history = None
    if record and after is not None:
        history = History(
            actor=row.actor,
            reason=reason,
            old_start=old_start.start if old_start is not None else None,
        )
    return Decision(
        rule=row.name,
        outcome=outcome,
        alternatives=alternatives,
        reason=reason,
        before=meeting,
        after=after,
        history=history,
        notices=notices,
        calendar=row.calendar,
        asker=asker,
        then=then,
        releases=released,
        waitlist=waitlist,
        overrides=overrides,
    )


def _nothing(meeting: MeetingView, outcome: str, reason: str, asker: int | None = None) -> Decision:
    """A decision that changes nothing: ``stale``, ``duplicate`` or ``refused``."""
    return Decision(
        rule=outcome,
        outcome=outcome,
        reason=reason,
        before=meeting,
        after=meeting if meeting.state is not NEW else None,
        asker=asker,
    )


def _quarantine(meeting: MeetingView, reason: str, asker: int | None = None) -> Decision:
    return Decision(
        rule="quarantine",
        outcome=QUARANTINED,
        reason=reason,
        before=meeting,
        after=None,
        asker=asker,
    )


def _note(comment: str) -> str:
    return f": {comment}" if comment else ""


def _refusal(result: Admission) -> str:
    return f"{result.code}: {result.reason}"


# --- the parent's answers -----------------------------------------------------------------


def _ordering(meeting: MeetingView, party: Party, sequence: int, dtstamp: object) -> str | None:
    """RFC 5546 §2.1.5 and DESIGN §4: stale or duplicate, or None when the reply counts.

    Per attendee, a higher SEQUENCE wins, then a later DTSTAMP; an equal pair is the same
    answer again.  And a reply for an older version of the meeting (a lower SEQUENCE than
    the meeting now has) is outdated, whatever that attendee said before.
    """
    last = (party.reply_sequence, party.reply_dtstamp)
    if not is_newer(sequence, dtstamp, *last):  # type: ignore[arg-type]
        return DUPLICATE if (sequence, dtstamp) == last else STALE
    if sequence < meeting.sequence:
        return STALE
    return None


def _answer(meeting: MeetingView, event: Answer, ctx: Context) -> Decision:
    party = meeting.party(event.guardian_id)
    if party is None or meeting.state is NEW:
        return _quarantine(meeting, "attendee-not-invited")
    if meeting.organized_by_parent:
        return _quarantine(meeting, "unsupported-method", event.guardian_id)
    partstat = str(event.partstat).upper()
    if partstat == PARTSTAT.ACCEPTED and meeting.state in CLOSED:
        # Staff should see a parent who wants a meeting that is gone (quarantine).
        return _quarantine(meeting, f"meeting-{meeting.state}", party.guardian_id)
    order = _ordering(meeting, party, event.sequence, event.dtstamp)
    if order is not None:
        why = (
            "the same reply was processed before"
            if order == DUPLICATE
            else f"answers an older version of the meeting (SEQUENCE {event.sequence} < "
            f"{meeting.sequence})"
            if event.sequence < meeting.sequence
            else "a newer reply was processed before"
        )
        return _nothing(meeting, order, why, event.guardian_id)
    if event.proposed is not None and event.proposed.utc() != meeting.slot:
        # A reply to the meeting as it is that carries another time asks for that time:
        # Gmail's "propose a new time", decided like Outlook's COUNTER.  (Checked after the
        # ordering: a reply to an older version carries that version's time.)
        counter = Counter(
            guardian_id=event.guardian_id,
            proposed=event.proposed,
            sequence=event.sequence,
            dtstamp=event.dtstamp,
            comment=event.comment,
            inbound_id=event.inbound_id,
        )
        return _counter(meeting, counter, ctx)
    answered = replace(
        party,
        partstat=str(event.partstat),
        reply_sequence=event.sequence,
        reply_dtstamp=event.dtstamp,
    )
    updated = meeting.with_party(answered)
    who, note = party.name, _note(event.comment)
    state = meeting.state
    if partstat == PARTSTAT.ACCEPTED:
        if state is MeetingState.CONFIRMED:
            row = row_for(state, "accept-recorded")
            if party.partstat == PARTSTAT.ACCEPTED:
                # Nothing new, but this is now the attendee's latest answer (§2.1.5).
                return _apply(
                    row,
                    meeting,
                    ctx,
                    "already confirmed",
                    updated=updated,
                    asker=party.guardian_id,
                    record=False,
                    outcome=DUPLICATE,
                )
            return _apply(
                row, meeting, ctx, f"{who} accepted{note}", updated=updated, asker=party.guardian_id
            )
        if state is MeetingState.PROPOSED:
            if meeting.hold_until is not None and ctx.now >= meeting.hold_until:
                # Decided by the deadline, not by when the expiry job last ran (DESIGN §3).
                row = row_for(state, "accept-late")
                return _apply(
                    row,
                    meeting,
                    ctx,
                    f"{who} accepted after the hold deadline{note}",
                    asker=party.guardian_id,
                    notice_reason="your answer arrived after the reserved time ran out",
                )
            row = row_for(state, "accept")
            return _apply(
                row, meeting, ctx, f"{who} accepted{note}", updated=updated, asker=party.guardian_id
            )
        return _quarantine(meeting, f"meeting-{state}", party.guardian_id)
    if partstat == PARTSTAT.DECLINED:
        if state in CLOSED:
            return _nothing(meeting, STALE, f"meeting already {state}", party.guardian_id)
        other = next((p for p in meeting.attending if p.guardian_id != party.guardian_id), None)
        if other is not None:
            row = row_for(state, "decline-recorded")
            return _apply(
                row,
                meeting,
                ctx,
                f"{who} declined; {other.name} attends{note}",
                updated=updated,
                asker=party.guardian_id,
            )
        declined = _apply(
            row_for(state, "decline"),
            meeting,
            ctx,
            f"{who} declined{note}",
            updated=updated,
            asker=party.guardian_id,
        )
        if state is MeetingState.PROPOSED:
            return _with_next_step(declined, meeting, ctx)
        return declined
    if partstat in (PARTSTAT.TENTATIVE, PARTSTAT.NEEDS_ACTION):
        if state in CLOSED:
            return _nothing(meeting, STALE, f"meeting already {state}", party.guardian_id)
        # A tentative answer keeps the hold until its deadline (DESIGN §3).
        row = row_for(state, "tentative")
        return _apply(
            row,
            meeting,
            ctx,
            f"{who} replied {partstat}{note}",
            updated=updated,
            asker=party.guardian_id,
        )
    return _quarantine(meeting, "unsupported-partstat", party.guardian_id)


def _with_next_step(decision: Decision, meeting: MeetingView, ctx: Context) -> Decision:
    """After a proposal is declined: the next best time as a new proposal, up to
    ``max_reproposals``; else the family is told how else to book, and put on the
    teacher's waiting list when the teacher has no free time left for it (DESIGN §3)."""
    rules = ctx.rules
    if meeting.reproposals < rules.max_reproposals and ctx.fresh is not None:
        slot = admission.next_best(meeting.slot, ctx)
        if slot is not None:
            draft = _draft_from(meeting, slot, ctx, reproposals=meeting.reproposals + 1)
            offer = _apply(
                row_for(NEW, "reproposal"),
                draft,
                ctx,
                f"proposed after meeting {meeting.uid} was declined",
            )
            return replace(decision, then=(*decision.then, offer))
        wait = WaitlistEntry(
            id=None,
            period=meeting.period,
            teacher_id=meeting.teacher.id,
            guardian_ids=tuple(p.guardian_id for p in meeting.parties),
            student_ids=tuple(s.id for s in meeting.students),
            since=ctx.now,
        )
        return replace(decision, waitlist=wait)
    return decision


def _draft_from(
    meeting: MeetingView,
    slot: Interval,
    ctx: Context,
    *,
    reproposals: int,
    origin: Origin | None = None,
) -> MeetingView:
    """A new proposal for the same family, teacher and students at ``slot``."""
    fresh = ctx.fresh
    assert fresh is not None
    return MeetingView(
        id=None,
        uid=fresh.uid,
        period=meeting.period,
        teacher=meeting.teacher,
        parties=tuple(
            Party(guardian_id=p.guardian_id, email=p.email, name=p.name) for p in meeting.parties
        ),
        students=meeting.students,
        start=slot.start,
        end=slot.end,
        state=NEW,
        origin=origin or Origin.REPROPOSAL,
        organizer=fresh.organizer,
        hold_until=ctx.rules.hold_deadline(ctx.now),
        video_url=fresh.video_url,
        location=ctx.location,
        reproposals=reproposals,
        replaces=meeting.id,
    )


def _counter(meeting: MeetingView, event: Counter, ctx: Context) -> Decision:
    party = meeting.party(event.guardian_id)
    if party is None or meeting.state is NEW:
        return _quarantine(meeting, "attendee-not-invited")
    if meeting.organized_by_parent:
        return _quarantine(meeting, "unsupported-method", event.guardian_id)
    last = (party.reply_sequence, party.reply_dtstamp)
    if event.dtstamp is not None and (event.sequence, event.dtstamp) == last:
        return _nothing(
            meeting, DUPLICATE, "the same proposal was processed before", party.guardian_id
        )
    proposed = event.proposed.utc()
    state = meeting.state
    if state in CLOSED:
        why = f"this meeting is {state}"
        return _apply(
            row_for(state, "counter-refused"),
            meeting,
            ctx,
            f"proposed time declined: {why}",
            asker=party.guardian_id,
            notice_reason=why,
            alternatives=admission.alternatives_for(proposed, ctx),
            record=False,
        )
    result = admission.admit(ctx=ctx, ask=Ask(slot=proposed))
    if not result.granted:
        return _apply(
            row_for(state, "counter-refused"),
            meeting,
            ctx,
            f"proposed time declined: {result.reason}",
            asker=party.guardian_id,
            notice_reason=result.reason,
            alternatives=result.alternatives,
        )
    # Granted: the meeting moves and is confirmed; the asker accepts the new time, the
    # other guardians' answers were for the old one and are asked again.
    parties = tuple(
        replace(
            p,
            partstat=PARTSTAT.ACCEPTED,
            reply_sequence=event.sequence,
            reply_dtstamp=event.dtstamp,
        )
        if p.guardian_id == party.guardian_id
        else replace(p, partstat=PARTSTAT.NEEDS_ACTION)
        for p in meeting.parties
    )
    moved = replace(meeting, parties=parties, start=proposed.start, end=proposed.end)
    return _apply(
        row_for(state, "counter-granted"),
        meeting,
        ctx,
        f"{party.name} proposed a new time{_note(event.comment)}",
        updated=moved,
        asker=party.guardian_id,
        old_start=meeting.slot,
    )


def _refresh(meeting: MeetingView, event: Refresh, ctx: Context) -> Decision:
    party = meeting.party(event.guardian_id)
    if party is None or meeting.state is NEW:
        return _quarantine(meeting, "attendee-not-invited")
    if meeting.organized_by_parent:
        return _quarantine(meeting, "unsupported-method", event.guardian_id)
    return _apply(
        row_for(meeting.state, "refresh"),
        meeting,
        ctx,
        "refresh",
        asker=party.guardian_id,
        record=False,
    )


# --- booking addresses (a room mailbox's rules, DESIGN §3) ----------------------------------


def _request(meeting: MeetingView, event: Request, ctx: Context) -> Decision:
    asker = event.guardian_id
    if meeting.state is NEW:
        if event.slot is None:
            return _quarantine(meeting, "request-without-time", asker)
        ask = Ask(
            slot=event.slot, booking_address=True, recurring=event.recurring, all_day=event.all_day
        )
        result = admission.admit(ctx=ctx, ask=ask)
        booked = replace(
            meeting,
            start=event.slot.start,
            end=event.slot.end,
            sequence=event.sequence,
            parties=tuple(
                replace(
                    p,
                    partstat=PARTSTAT.ACCEPTED,
                    reply_sequence=event.sequence,
                    reply_dtstamp=event.dtstamp,
                )
                for p in meeting.parties
            ),
        )
        if not result.granted:
            wait = None
            if result.code in ("busy", "family-clash") and not result.alternatives:
                wait = _waitlist_entry(meeting, ctx)
            return _apply(
                row_for(NEW, "request-refused"),
                booked,
                ctx,
                _refusal(result),
                asker=asker,
                notice_reason=result.reason,
                alternatives=result.alternatives,
                waitlist=wait,
            )
        return _apply(
            row_for(NEW, "request-granted"),
            booked,
            ctx,
            f"booked through {meeting.teacher.booking_address}{_note(event.comment)}",
            asker=asker,
            then=_supersede_pending(ctx, "booked through the booking address"),
        )
    if not meeting.organized_by_parent or meeting.state is MeetingState.PROPOSED:
        return _quarantine(meeting, "unsupported-method", asker)
    if meeting.party(asker) is None:
        return _quarantine(meeting, "sender-not-organizer", asker)
    if event.sequence < meeting.sequence:
        return _nothing(meeting, STALE, f"an older version (SEQUENCE {event.sequence})", asker)
    if meeting.state in CLOSED:
        why = f"this booking is {meeting.state}; please send a new invitation"
        return _apply(
            row_for(meeting.state, "request-closed"),
            meeting,
            ctx,
            why,
            asker=asker,
            notice_reason=why,
            record=False,
        )
    if event.slot is None:
        return _quarantine(meeting, "request-without-time", asker)
    newer = replace(meeting, sequence=max(event.sequence, meeting.sequence))
    if event.slot.utc() == meeting.slot:
        party = meeting.party(asker)
        assert party is not None
        if event.sequence == meeting.sequence and event.dtstamp == party.reply_dtstamp:
            return _nothing(meeting, DUPLICATE, "the same request was processed before", asker)
        again = newer.with_party(
            replace(party, reply_sequence=event.sequence, reply_dtstamp=event.dtstamp)
        )
        return _apply(
            row_for(meeting.state, "request-again"),
            meeting,
            ctx,
            "the request came again",
            updated=again,
            asker=asker,
            record=False,
        )
    ask = Ask(
        slot=event.slot, booking_address=True, recurring=event.recurring, all_day=event.all_day
    )
    result = admission.admit(ctx=ctx, ask=ask)
    if not result.granted:
        return _apply(
            row_for(meeting.state, "request-move-refused"),
            meeting,
            ctx,
            f"new time refused: {_refusal(result)}",
            updated=newer,
            asker=asker,
            notice_reason=result.reason,
            alternatives=result.alternatives,
        )
    moved = replace(newer, start=event.slot.start, end=event.slot.end)
    return _apply(
        row_for(meeting.state, "request-moved"),
        meeting,
        ctx,
        f"moved by the parent{_note(event.comment)}",
        updated=moved,
        asker=asker,
        old_start=meeting.slot,
    )


def _organizer_cancel(meeting: MeetingView, event: OrganizerCancel, ctx: Context) -> Decision:
    if meeting.state is NEW or meeting.party(event.guardian_id) is None:
        return _quarantine(meeting, "unknown-uid", event.guardian_id)
    if not meeting.organized_by_parent or meeting.state is MeetingState.PROPOSED:
        return _quarantine(meeting, "unsupported-method", event.guardian_id)
    if meeting.state in CLOSED:
        return _nothing(meeting, DUPLICATE, f"meeting already {meeting.state}", event.guardian_id)
    if event.sequence < meeting.sequence:
        return _nothing(meeting, STALE, f"an older version (SEQUENCE {event.sequence})")
    newer = replace(meeting, sequence=max(event.sequence, meeting.sequence))
    return _apply(
        row_for(meeting.state, "organizer-cancel"),
        meeting,
        ctx,
        "cancelled by the parent",
        updated=newer,
        asker=event.guardian_id,
    )


def _waitlist_entry(meeting: MeetingView, ctx: Context) -> WaitlistEntry:
    return WaitlistEntry(
        id=None,
        period=meeting.period,
        teacher_id=meeting.teacher.id,
        guardian_ids=tuple(p.guardian_id for p in meeting.parties),
        student_ids=tuple(s.id for s in meeting.students),
        since=ctx.now,
    )


def _supersede_pending(ctx: Context, why: str) -> tuple[Decision, ...]:
    return tuple(decide(p, Supersede(reason=why), ctx) for p in ctx.pending)


# --- new meetings of ours -----------------------------------------------------------------


def _offer(meeting: MeetingView, event: Offer, ctx: Context) -> Decision:
    name = {Origin.REPROPOSAL: "reproposal", Origin.WAITLIST: "waitlist-offer"}.get(
        event.origin, "offer"
    )
    result = admission.admit(ctx=ctx, ask=Ask(slot=event.slot))
    if not result.granted:
        return _nothing(meeting, REFUSED, _refusal(result))
    draft = replace(
        meeting,
        start=event.slot.start,
        end=event.slot.end,
        origin=event.origin,
        hold_until=ctx.rules.hold_deadline(ctx.now),
    )
    return _apply(row_for(NEW, name), draft, ctx, f"proposed ({event.origin})")


def _staff_book(meeting: MeetingView, event: StaffBook, ctx: Context) -> Decision:
    result = admission.admit(ctx=ctx, ask=Ask(slot=event.slot, staff=True, override=event.override))
    if not result.granted:
        return _refused_for_staff(meeting, ctx, result.reason, result.alternatives)
    booked = replace(
        meeting,
        start=event.slot.start,
        end=event.slot.end,
        origin=Origin.STAFF,
        hold_until=None,
    )
    return _apply(
        row_for(NEW, "staff-book"),
        booked,
        ctx,
        _staff_reason("booked by staff", event.note, result),
        overrides=result.overrides,
        then=_supersede_pending(ctx, "booked by the school office"),
    )


def _staff_reason(what: str, note: str, result: Admission) -> str:
    overridden = f" (staff override: {', '.join(result.overrides)})" if result.overrides else ""
    return f"{what}{_note(note)}{overridden}"


def _refused_for_staff(
    meeting: MeetingView, ctx: Context, why: str, alternatives: tuple[Interval, ...] = ()
) -> Decision:
    row = row_for(meeting.state, "staff-refused")
    return _apply(row, meeting, ctx, why, outcome=REFUSED, alternatives=alternatives, record=False)


def _staff_reschedule(meeting: MeetingView, event: StaffReschedule, ctx: Context) -> Decision:
    if meeting.state not in OPEN:
        return _refused_for_staff(meeting, ctx, f"the meeting is {meeting.state}")
    if meeting.organized_by_parent:
        return _refused_for_staff(
            meeting, ctx, "the parent organizes this meeting (booking address): ask them to move it"
        )
    if event.slot.utc() == meeting.slot:
        return _refused_for_staff(meeting, ctx, "the meeting is at that time already")
    result = admission.admit(ctx=ctx, ask=Ask(slot=event.slot, staff=True, override=event.override))
    if not result.granted:
        return _refused_for_staff(meeting, ctx, result.reason, result.alternatives)
    parties = tuple(replace(p, partstat=PARTSTAT.NEEDS_ACTION) for p in meeting.parties)
    moved = replace(meeting, start=event.slot.start, end=event.slot.end, parties=parties)
    if meeting.state is MeetingState.PROPOSED:
        # A new time to answer: the hold starts again.
        moved = replace(moved, hold_until=ctx.rules.hold_deadline(ctx.now))
    return _apply(
        row_for(meeting.state, "staff-reschedule"),
        meeting,
        ctx,
        _staff_reason("rescheduled by staff", event.note, result),
        updated=moved,
        old_start=meeting.slot,
        overrides=result.overrides,
    )


def _staff_cancel(meeting: MeetingView, event: StaffCancel, ctx: Context) -> Decision:
    if meeting.state not in OPEN:
        return _refused_for_staff(meeting, ctx, f"the meeting is {meeting.state}")
    booked = meeting.organized_by_parent and meeting.state is MeetingState.CONFIRMED
    name = "staff-cancel-booked" if booked else "staff-cancel"
    asker = meeting.parties[0].guardian_id if booked else None
    reason = event.reason or "cancelled by the school"
    decision = _apply(
        row_for(meeting.state, name),
        meeting,
        ctx,
        f"cancelled by staff{_note(event.reason)}",
        asker=asker,
        notice_reason=reason,
    )
    return decision if event.offer_freed else replace(decision, releases=None)


# --- deadlines and the teacher's calendar -------------------------------------------------


def _expire(meeting: MeetingView, event: HoldExpired, ctx: Context) -> Decision:
    if meeting.state is not MeetingState.PROPOSED:
        return _nothing(meeting, DUPLICATE, f"answered meanwhile: {meeting.state}")
    if meeting.hold_until is None or ctx.now < meeting.hold_until:
        return _nothing(meeting, DUPLICATE, "the hold has not run out")
    return _apply(
        row_for(meeting.state, "expire"),
        meeting,
        ctx,
        "no answer by the hold deadline",
        notice_reason="the reserved time was not confirmed in time",
    )


def _teacher_moved(meeting: MeetingView, event: TeacherMoved, ctx: Context) -> Decision:
    if meeting.state is not MeetingState.CONFIRMED or event.slot.utc() == meeting.slot:
        return _nothing(meeting, DUPLICATE, "nothing to follow")
    if meeting.organized_by_parent:
        asker = meeting.parties[0].guardian_id
        return _apply(
            row_for(meeting.state, "teacher-moved-booked"),
            meeting,
            ctx,
            "the teacher moved the event; the parent is asked to move it",
            asker=asker,
            alternatives=(event.slot.utc(),),
        )
    parties = tuple(replace(p, partstat=PARTSTAT.NEEDS_ACTION) for p in meeting.parties)
    moved = replace(meeting, start=event.slot.start, end=event.slot.end, parties=parties)
    return _apply(
        row_for(meeting.state, "teacher-moved"),
        meeting,
        ctx,
        "moved in the teacher's calendar",
        updated=moved,
        old_start=meeting.slot,
    )


def _teacher_removed(meeting: MeetingView, ctx: Context) -> Decision:
    if meeting.state is not MeetingState.CONFIRMED:
        return _nothing(meeting, DUPLICATE, "nothing to follow")
    if meeting.organized_by_parent:
        why = "the teacher can no longer meet at this time"
        return _apply(
            row_for(meeting.state, "teacher-removed-booked"),
            meeting,
            ctx,
            "removed from the teacher's calendar",
            asker=meeting.parties[0].guardian_id,
            notice_reason=why,
            alternatives=admission.alternatives_for(meeting.slot, ctx),
        )
    removed = _apply(
        row_for(meeting.state, "teacher-removed"),
        meeting,
        ctx,
        "removed from the teacher's calendar",
        notice_reason="the teacher can no longer meet at this time",
    )
    # DESIGN §3: a CANCEL to the parent and a new proposal.
    return _with_next_step(removed, replace(meeting, reproposals=0), ctx)
