"""The jobs around the meeting itself: ``remind``, ``complete``, ``feedback`` (DESIGN §3).

Each finds its candidates with one query, then hands each meeting its core event
(:class:`~ptm_sync.core.booking.events.Remind`, :class:`~ptm_sync.core.booking.events.Completed`,
:class:`~ptm_sync.core.booking.events.AskFeedback`) through the applier, one short write
transaction per meeting with the meeting's row locked (a reply, a staff change or another
replica's run may have changed it since the query).  The core decides: a meeting reminded
of its time already, completed already or asked already is a duplicate and nothing is
written, so a job run twice, or on two replicas at once, sends each email once.

A meeting the core cannot decide (its period gone from the config, say) is named in the
run's problem and the others go on; a database outage stops the run (it is tried again at
the next cadence).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select

from ptm_sync.adapters.store import Meeting
from ptm_sync.adapters.store.secret import signing_secret
from ptm_sync.app.booking.apply import Applier
from ptm_sync.app.jobs.work import Done, JobContext, plural
from ptm_sync.core import trust
from ptm_sync.core.booking.decide import APPLIED
from ptm_sync.core.booking.events import AskFeedback, Completed, Event, Remind
from ptm_sync.core.errors import PtmError
from ptm_sync.core.model import MeetingState

log = logging.getLogger(__name__)

CONFIRMED, COMPLETED = MeetingState.CONFIRMED, MeetingState.COMPLETED
#: A completed meeting is asked for feedback only while it is this recent: a job that
#: did not run for a while (or a correction from no-show weeks later) asks nobody about a
#: meeting they have long forgotten.
FEEDBACK_WINDOW = timedelta(days=14)


def remind(ctx: JobContext) -> Done:
    """Queue the reminder of every confirmed meeting within its period's
    ``reminder_hours`` that has not started and was not reminded of its present time."""
    hours = {p.id: p.reminder_hours for p in ctx.config.periods if p.reminder_hours > 0}
    if not hours:
        return Done("no reminders: every period has reminder_hours = 0")
    within = [
        and_(Meeting.period_id == period, Meeting.start <= ctx.now + timedelta(hours=h))
        for period, h in hours.items()
    ]
    due = _ids(
        ctx,
        Meeting.state == CONFIRMED,
        Meeting.start > ctx.now,
        or_(*within),
        or_(Meeting.reminded_start.is_(None), Meeting.reminded_start != Meeting.start),
    )
    sent, problems = _hand(ctx, due, lambda _session, _meeting: Remind())
    return _done(plural(sent, "reminder") + " queued", sent, problems)


def complete(ctx: JobContext) -> Done:
    """Mark ``completed`` every confirmed meeting whose end has passed."""
    due = _ids(ctx, Meeting.state == CONFIRMED, Meeting.end <= ctx.now)
    done, problems = _hand(ctx, due, lambda _session, _meeting: Completed())
    return _done(plural(done, "meeting") + " completed", 0, problems)


def feedback(ctx: JobContext) -> Done:
    """Ask the guardians of every recently completed meeting not asked yet for feedback:
    the period's ``feedback_url`` with the meeting's token, or a reply by email."""
    due = _ids(
        ctx,
        Meeting.state == COMPLETED,
        Meeting.feedback_token.is_(None),
        Meeting.end > ctx.now - FEEDBACK_WINDOW,
    )

    def ask(session: Any, meeting: Meeting) -> Event:
        return AskFeedback(token=trust.feedback_token(signing_secret(session), meeting.uid))

    asked, problems = _hand(ctx, due, ask)
    return _done(plural(asked, "feedback request") + " queued", asked, problems)


def _ids(ctx: JobContext, *where: Any) -> list[int]:
    """The candidates, in time order: one query (purged meetings are never candidates)."""
    with ctx.db.read() as session:
        return list(
            session.scalars(
                select(Meeting.id)
                .where(*where, Meeting.purged_at.is_(None))
                .order_by(Meeting.start, Meeting.id)
            )
        )


def _hand(
    ctx: JobContext, ids: Sequence[int], event_for: Callable[[Any, Meeting], Event]
) -> tuple[int, list[str]]:
    """Hand each meeting its event under a row lock; how many were applied, and a sentence
    for each meeting the core could not decide (by id: no personal data in logs)."""
    if not ids:  # nothing to decide (and a school without [mail] has no meetings)
        return 0, []
    applier = Applier(ctx.config, now=ctx.now, video=ctx.video)
    applied, problems = 0, []
    for meeting_id in ids:
        try:
            with ctx.db.write() as session:
                meeting = session.get(Meeting, meeting_id, with_for_update=True)
                if meeting is None:  # purged meanwhile
                    continue
                if applier.handle(session, meeting, event_for(session, meeting)).outcome == APPLIED:
                    applied += 1
        except PtmError as exc:
            # The meeting by id, the error by kind: its text may name a family.
            log.warning("meeting %d could not be decided (%s)", meeting_id, type(exc).__name__)
            problems.append(f"meeting {meeting_id}: {exc}")
    return applied, problems


def _done(summary: str, queued: int, problems: Sequence[str]) -> Done:
    problem = ""
    if problems:
        problem = f"{plural(len(problems), 'meeting')} could not be decided ({problems[0]}"
        problem += f"; {len(problems) - 1} more)" if len(problems) > 1 else ")"
    return Done(summary, queued=queued > 0, problem=problem)
