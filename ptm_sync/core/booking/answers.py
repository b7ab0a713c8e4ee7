"""The parents' answers to our meetings: REPLY, COUNTER and REFRESH (RFC 5546 §3.2.3,
§3.2.6, §3.2.7), with the ordering of replies (§2.1.5) and the re-proposal after a
decline (DESIGN §3).  PURE."""

from __future__ import annotations

from dataclasses import replace

from icalendar.enums import PARTSTAT

from ptm_sync.core.booking import admission
from ptm_sync.core.booking.admission import Ask
from ptm_sync.core.booking.events import Answer, Counter, Refresh
from ptm_sync.core.booking.rows import DUPLICATE, STALE, Change, make, note, nothing, quarantine
from ptm_sync.core.booking.table import CLOSED, NEW, row_for
from ptm_sync.core.booking.values import (
    Context,
    Decision,
    MeetingView,
    Origin,
    Outcome,
    Party,
    WaitlistEntry,
)
from ptm_sync.core.errors import QuarantineReason
from ptm_sync.core.ical.itip import is_newer
from ptm_sync.core.model import Interval, MeetingState


def _ordering(meeting: MeetingView, party: Party, sequence: int, dtstamp: object) -> Outcome | None:
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


def answer(meeting: MeetingView, event: Answer, ctx: Context) -> Decision:
    party = meeting.party(event.guardian_id)
    if party is None or meeting.state is NEW:
        return quarantine(meeting, QuarantineReason.ATTENDEE_NOT_INVITED)
    if meeting.organized_by_parent:
        return quarantine(meeting, QuarantineReason.UNSUPPORTED_METHOD, event.guardian_id)
    partstat = str(event.partstat).upper()
    if partstat == PARTSTAT.ACCEPTED and meeting.state in CLOSED:
        # Staff should see a parent who wants a meeting that is gone (quarantine).
        return quarantine(meeting, f"meeting-{meeting.state}", party.guardian_id)
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
        return nothing(meeting, order, why, event.guardian_id)
    if event.proposed is not None and event.proposed.utc() != meeting.slot:
        # A reply to the meeting as it is that carries another time asks for that time:
        # Gmail's "propose a new time", decided like Outlook's COUNTER.  (Checked after the
        # ordering: a reply to an older version carries that version's time.)
        proposal = Counter(
            guardian_id=event.guardian_id,
            proposed=event.proposed,
            sequence=event.sequence,
            dtstamp=event.dtstamp,
            comment=event.comment,
            inbound_id=event.inbound_id,
        )
        return counter(meeting, proposal, ctx)
    answered = replace(
        party,
        partstat=str(event.partstat),
        reply_sequence=event.sequence,
        reply_dtstamp=event.dtstamp,
    )
    updated = meeting.with_party(answered)
    who, said = party.name, note(event.comment)
    state = meeting.state
    if partstat == PARTSTAT.ACCEPTED:
        if state is MeetingState.CONFIRMED:
            row = row_for(state, "accept-recorded")
            if party.partstat == PARTSTAT.ACCEPTED:
                # Nothing new, but this is now the attendee's latest answer (§2.1.5).
                return make(
                    row,
                    meeting,
                    ctx,
                    "already confirmed",
                    Change(
                        updated=updated, asker=party.guardian_id, record=False, outcome=DUPLICATE
                    ),
                )
            return make(
                row,
                meeting,
                ctx,
                f"{who} accepted{said}",
                Change(updated=updated, asker=party.guardian_id),
            )
        if state is MeetingState.PROPOSED:
            if meeting.hold_until is not None and ctx.now >= meeting.hold_until:
                # Decided by the deadline, not by when the expiry job last ran (DESIGN §3).
                row = row_for(state, "accept-late")
                return make(
                    row,
                    meeting,
                    ctx,
                    f"{who} accepted after the hold deadline{said}",
                    Change(
                        asker=party.guardian_id,
                        notice_reason="your answer arrived after the reserved time ran out",
                    ),
                )
            row = row_for(state, "accept")
            return make(
                row,
                meeting,
                ctx,
                f"{who} accepted{said}",
                Change(updated=updated, asker=party.guardian_id),
            )
        return quarantine(meeting, f"meeting-{state}", party.guardian_id)
    if partstat == PARTSTAT.DECLINED:
        if state in CLOSED:
            return nothing(meeting, STALE, f"meeting already {state}", party.guardian_id)
        other = next((p for p in meeting.attending if p.guardian_id != party.guardian_id), None)
        if other is not None:
            row = row_for(state, "decline-recorded")
            return make(
                row,
                meeting,
                ctx,
                f"{who} declined; {other.name} attends{said}",
                Change(updated=updated, asker=party.guardian_id),
            )
        declined = make(
            row_for(state, "decline"),
            meeting,
            ctx,
            f"{who} declined{said}",
            Change(updated=updated, asker=party.guardian_id),
        )
        if state is MeetingState.PROPOSED:
            return with_next_step(declined, meeting, ctx)
        return declined
    if partstat in (PARTSTAT.TENTATIVE, PARTSTAT.NEEDS_ACTION):
        if state in CLOSED:
            return nothing(meeting, STALE, f"meeting already {state}", party.guardian_id)
        # A tentative answer keeps the hold until its deadline (DESIGN §3).
        row = row_for(state, "tentative")
        return make(
            row,
            meeting,
            ctx,
            f"{who} replied {partstat}{said}",
            Change(updated=updated, asker=party.guardian_id),
        )
    return quarantine(meeting, QuarantineReason.UNSUPPORTED_PARTSTAT, party.guardian_id)


def with_next_step(
    decision: Decision, meeting: MeetingView, ctx: Context, *, because: str = ""
) -> Decision:
    """After a proposal is declined (or, with ``because``, the teacher removed a booked
    meeting: the reason the family reads): the next best time as a new proposal, up to
    ``max_reproposals``; else the family is told how else to book, and put on the
    teacher's waiting list when the teacher has no free time left for it (DESIGN §3).

    Who left the roster (``ctx.left``) gets neither: the next step is for the guardians and
    students who stay, and nothing follows when the teacher left or nobody stays
    (:attr:`Decision.left` names the guardians it ends for)."""
    ended = ctx.left.ended_for(meeting)
    staying = ctx.left.staying(meeting)
    if ended:
        decision = replace(decision, left=ended)
    if staying is None:
        return decision
    meeting = staying
    rules = ctx.rules
    if meeting.reproposals < rules.max_reproposals and ctx.fresh is not None:
        slot = admission.next_best(meeting.slot, ctx)
        if slot is not None:
            draft = draft_from(meeting, slot, ctx, reproposals=meeting.reproposals + 1)
            after = f"meeting {meeting.id}" if meeting.id is not None else meeting.uid
            offer = make(
                row_for(NEW, "reproposal"),
                draft,
                ctx,
                f"proposed after {after} "
                + ("was removed from the teacher's calendar" if because else "was declined"),
                Change(notice_reason=because),
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


def draft_from(
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


def counter(meeting: MeetingView, event: Counter, ctx: Context) -> Decision:
    party = meeting.party(event.guardian_id)
    if party is None or meeting.state is NEW:
        return quarantine(meeting, QuarantineReason.ATTENDEE_NOT_INVITED)
    if meeting.organized_by_parent:
        return quarantine(meeting, QuarantineReason.UNSUPPORTED_METHOD, event.guardian_id)
    last = (party.reply_sequence, party.reply_dtstamp)
    if event.dtstamp is not None and (event.sequence, event.dtstamp) == last:
        return nothing(
            meeting, DUPLICATE, "the same proposal was processed before", party.guardian_id
        )
    proposed = event.proposed.utc()
    state = meeting.state
    if state in CLOSED:
        why = f"this meeting is {state}"
        return make(
            row_for(state, "counter-refused"),
            meeting,
            ctx,
            f"proposed time declined: {why}",
            Change(
                asker=party.guardian_id,
                notice_reason=why,
                alternatives=admission.alternatives_for(proposed, ctx),
                record=False,
            ),
        )
    result = admission.admit(ctx=ctx, ask=Ask(slot=proposed, current=meeting.slot))
    if not result.granted:
        return make(
            row_for(state, "counter-refused"),
            meeting,
            ctx,
            f"proposed time declined: {result.reason}",
            Change(
                asker=party.guardian_id,
                notice_reason=result.reason,
                alternatives=result.alternatives,
                request_status=result.request_status,
            ),
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
    return make(
        row_for(state, "counter-granted"),
        meeting,
        ctx,
        f"{party.name} proposed a new time{note(event.comment)}",
        Change(updated=moved, asker=party.guardian_id, old_start=meeting.slot),
    )


def refresh(meeting: MeetingView, event: Refresh, ctx: Context) -> Decision:
    party = meeting.party(event.guardian_id)
    if party is None or meeting.state is NEW:
        return quarantine(meeting, QuarantineReason.ATTENDEE_NOT_INVITED)
    if meeting.organized_by_parent:
        return quarantine(meeting, QuarantineReason.UNSUPPORTED_METHOD, event.guardian_id)
    return make(
        row_for(meeting.state, "refresh"),
        meeting,
        ctx,
        "refresh",
        Change(asker=party.guardian_id, record=False),
    )
