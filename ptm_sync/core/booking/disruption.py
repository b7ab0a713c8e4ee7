"""A teacher's whole day cancelled (DESIGN §3 "Bulk disruption").  PURE.

``cancel --teacher --date`` hands each of the teacher's meetings that day a
:class:`~ptm_sync.core.booking.events.StaffCancel` with ``elsewhere``, the day's span: the
meeting is cancelled as any staff cancellation is (a CANCEL to each guardian, the teacher's
event removed, the freed time not offered to the waiting list), and
:func:`with_replacement` adds what happens next: a new proposal at the first time on
another evening of the period that is free for the teacher and that the family may have
(the admission rule), or, when there is none, the family on the teacher's waiting list.

Then :func:`notices` writes the one plain notice each guardian gets about all of their
meetings with the teacher that day (what was cancelled, why, what happens next), beside the
per-meeting CANCELs and the invitations, which calendars need one by one.  Who left the
roster (the guardian, the student or the teacher: ``Context.left``) is proposed nothing
and waits for nothing; their notice says only that the meeting is cancelled.  :func:`families`
says which meetings are decided together: those that share a guardian.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from ptm_sync.core.booking import admission, messages
from ptm_sync.core.booking.admission import Ask
from ptm_sync.core.booking.answers import draft_from
from ptm_sync.core.booking.disruption_text import CancelledMeeting
from ptm_sync.core.booking.letters import Letter, Letterhead, message_id, summary
from ptm_sync.core.booking.rows import APPLIED, Change, make
from ptm_sync.core.booking.table import NEW, row_for
from ptm_sync.core.booking.values import (
    Context,
    Decision,
    MeetingView,
    Party,
    Rule,
    WaitlistEntry,
)
from ptm_sync.core.model import Interval

#: The template of the notice (a plain email: no calendar part).
TEMPLATE = "day_cancelled"
#: What the replacement's invitation says when staff gave no reason.
NO_REASON = "the teacher can no longer meet at the time you had"
#: Refusals that no other time would escape: the search stops at the first.
_FOR_EVERY_TIME = frozenset(
    {"closed", "family-cap", "teacher-cap", "stranger", "not-their-teacher"}
)


def replacement(meeting: MeetingView, ctx: Context, outside: Interval) -> Interval | None:
    """The replacement time for ``meeting`` (UTC): the earliest of the teacher's free grid
    slots (``ctx.free``) that is ahead, outside ``outside`` (the cancelled day), never
    offered to this family for this need before (``ctx.tried``), and granted by the
    admission rule (clear of the family's other meetings by ``gap_minutes``, before the
    deadline, within the caps); None when no time qualifies."""
    day = outside.utc()
    tried = {t.utc() for t in ctx.tried} | {meeting.slot}
    candidates = sorted(
        (
            s
            for s in (f.utc() for f in ctx.free)
            if s.start >= ctx.now
            and not (s.start < day.end and day.start < s.end)
            and s not in tried
            and not admission.clashes(s, ctx.family, ctx.rules.gap)
        ),
        key=lambda s: s.start,
    )
    for slot in candidates:
        result = admission.admit(Ask(slot=slot), ctx)
        if result.granted:
            return slot
        if result.code in _FOR_EVERY_TIME:
            return None
    return None


def with_replacement(
    decision: Decision, meeting: MeetingView, ctx: Context, *, outside: Interval, because: str
) -> Decision:
    """``decision`` (the cancellation of ``meeting``) followed by a new proposal on another
    evening (origin ``reproposal``, an invitation whose text says ``because``), or with
    the family put on the teacher's waiting list, told by the day's notice rather than by
    an email of its own (:attr:`WaitlistEntry.notify` False).

    Who left the roster (``ctx.left``) gets neither: the replacement is for the guardians
    and students who stay, and nothing follows when the teacher left or nobody stays
    (:attr:`Decision.left` names the guardians it ends for: their notice says only that
    the meeting is cancelled)."""
    if decision.outcome != APPLIED:
        return decision
    ended = ctx.left.ended_for(meeting)
    staying = ctx.left.staying(meeting)
    if ended:
        decision = replace(decision, left=ended)
    if staying is None:
        return decision
    meeting = staying
    slot = replacement(meeting, ctx, outside) if ctx.fresh is not None else None
    if slot is not None:
        draft = draft_from(meeting, slot, ctx, reproposals=1)
        offer = make(
            row_for(NEW, "reproposal"),
            draft,
            ctx,
            f"proposed after meeting {meeting.id} was cancelled with the teacher's day",
            Change(notice_reason=because or NO_REASON),
        )
        return replace(decision, then=(*decision.then, offer))
    wait = WaitlistEntry(
        id=None,
        period=meeting.period,
        teacher_id=meeting.teacher.id,
        guardian_ids=tuple(p.guardian_id for p in meeting.parties),
        student_ids=tuple(s.id for s in meeting.students),
        since=ctx.now,
        notify=False,
    )
    return replace(decision, waitlist=wait)


def families(guardians: Mapping[int, Collection[int]]) -> list[list[int]]:
    """Meetings grouped by family: ``guardians`` maps a meeting id to its guardians' ids;
    meetings that share a guardian (directly or through another meeting) are one family.
    Groups and the meetings in each keep the mapping's order (e.g. by start)."""
    parent: dict[int, int] = {m: m for m in guardians}

    def root(m: int) -> int:
        while parent[m] != m:
            parent[m] = parent[parent[m]]
            m = parent[m]
        return m

    first_with: dict[int, int] = {}
    for meeting_id, theirs in guardians.items():
        for guardian_id in theirs:
            other = root(first_with.setdefault(guardian_id, meeting_id))
            mine = root(meeting_id)
            if mine != other:
                parent[mine] = other
    order = {m: i for i, m in enumerate(guardians)}
    groups: dict[int, list[int]] = {}
    for meeting_id in guardians:
        groups.setdefault(root(meeting_id), []).append(meeting_id)
    return sorted(groups.values(), key=lambda g: order[g[0]])


def replaced_by(decision: Decision) -> MeetingView | None:
    """The replacement proposal that follows a cancellation (None: the waiting list)."""
    return next(
        (d.after for d in decision.then if d.rule == Rule.REPROPOSAL and d.after is not None),
        None,
    )


def notices(
    decisions: Sequence[Decision], head: Letterhead, now: datetime, *, reason: str = ""
) -> list[Letter]:
    """The one plain notice per guardian of the cancelled ``decisions`` (applied
    cancellations of one teacher's day, with their replacements): each guardian's letter
    names only the meetings that guardian is a party of (DESIGN §3, privacy)."""
    applied = sorted(
        (d for d in decisions if d.outcome == APPLIED and d.before is not None),
        key=lambda d: (d.before.start, d.before.id or 0) if d.before else (now, 0),
    )
    guardians: dict[int, Party] = {}
    theirs: dict[int, list[Decision]] = {}
    for decision in applied:
        assert decision.before is not None
        for party in decision.before.parties:
            guardians.setdefault(party.guardian_id, party)
            theirs.setdefault(party.guardian_id, []).append(decision)
    return [
        _notice(theirs[guardian_id], party, head, now, reason)
        for guardian_id, party in guardians.items()
    ]


def _notice(
    decisions: Sequence[Decision], party: Party, head: Letterhead, now: datetime, reason: str
) -> Letter:
    first = decisions[0].after or decisions[0].before
    assert first is not None
    cancelled = []
    for decision in decisions:
        before = decision.before
        assert before is not None
        ended = party.guardian_id in decision.left  # left the roster: nothing follows
        new = None if ended else replaced_by(decision)
        cancelled.append(
            CancelledMeeting(
                start=before.start,
                end=before.end,
                students=tuple(s.first_name for s in before.students),
                instead=(new.start, new.end) if new is not None else None,
                ended=ended,
            )
        )
    students = tuple(dict.fromkeys(name for c in cancelled for name in c.students))
    how = messages.how_to_book(
        booking_address=first.teacher.booking_address,
        page_url=head.page_url(first.period),
        contact=head.contact,
    )
    title = head.period_titles.get(first.period, first.period)
    return Letter(
        template=TEMPLATE,
        method=None,
        message_id=message_id(first, TEMPLATE, party.email, head.domain),
        date=now,
        envelope_from=head.organizer,
        sender=head.organizer,
        sender_name=head.school,
        to=party.email,
        to_name=party.name,
        reply_to=head.contact,
        school=head.school,
        contact=head.contact,
        tz=head.tz.key,
        period_title=title,
        uid=first.uid,
        sequence=first.sequence,
        start=first.start,
        end=first.end,
        summary=summary(first, title),
        teacher=first.teacher.name,
        students=students,
        reason=reason,
        next_step=how,
        cancelled=tuple(cancelled),
    )
