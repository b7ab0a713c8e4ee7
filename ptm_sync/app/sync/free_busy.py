"""The server free/busy systems (Graph, EWS, Google; DESIGN §5): the server's free/busy
answer is stored as the teacher's busy time, less the spans of our own events, and the
events we wrote are followed through the system's change feed."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from connectors.base import CalendarRef, Capability, ChangeSet, FreeBusy
from ptm_sync.adapters.store import BusyTime, CalendarEvent, Database, Teacher
from ptm_sync.app.periods import minutes_in_windows
from ptm_sync.app.sync.accounts import Connectors
from ptm_sync.app.sync.mirror import apply_changes, calendar_row, changes_since_last
from ptm_sync.app.sync.result import SyncResult
from ptm_sync.core.errors import CalendarProblem, ConnectorError, PtmError
from ptm_sync.core.model import Busy, Interval

# The pass's one logger, named as before the split (the daemon's log, REPORTED_BY_COMMANDS).
log = logging.getLogger("ptm_sync.app.sync")


def server_free_busy(
    connectors: Connectors, teachers: Iterable[Teacher]
) -> dict[int, FreeBusy | PtmError]:
    """Free/busy of every teacher on a server free/busy system (DESIGN §5).

    One :meth:`~connectors.base.CalendarConnector.free_busy` call per account for all of
    its teachers (the connector splits it into the batches its API allows); the calendars
    whose own error is retryable (:class:`~ptm_sync.core.errors.Unavailable`) are asked once
    more, together, in one more call.  Each teacher gets their calendar's own answer: a
    :class:`FreeBusy` or that calendar's error; an account-wide failure is every one of
    the account's teachers' error.  Never one call per teacher.
    """
    by_account: dict[str, list[Teacher]] = {}
    for teacher in teachers:
        try:
            connector = connectors.get(teacher.account)
        except PtmError:
            continue  # reported in the teacher's own turn
        if Capability.MIRRORED not in connector.capabilities:
            by_account.setdefault(teacher.account, []).append(teacher)
    span = connectors.horizon
    found: dict[int, FreeBusy | PtmError] = {}
    for account_id, group in by_account.items():
        connector = connectors.get(account_id)
        refs = {t.id: CalendarRef(account_id, t.calendar) for t in group}
        asked = list(dict.fromkeys(refs.values()))
        try:
            answer: dict[CalendarRef, FreeBusy | ConnectorError] = dict(
                connector.free_busy(asked, span.start, span.end)
            )
        except PtmError as exc:  # the account, not one calendar: every teacher's error
            for teacher_id in refs:
                found[teacher_id] = exc
            continue
        again = [ref for ref in asked if _retryable(answer.get(ref))]
        if again:
            log.info("asking account %s again for %d calendar(s)", account_id, len(again))
            try:
                second = connector.free_busy(again, span.start, span.end)
                answer.update({ref: second[ref] for ref in again if ref in second})
            except PtmError as exc:  # each keeps its first error; the next pass asks again
                log.info("account %s: the second ask failed too: %s", account_id, exc)
        for teacher_id, ref in refs.items():
            result = answer.get(ref)
            found[teacher_id] = (
                result
                if result is not None
                else ConnectorError(f"calendar {ref.calendar}: the server's answer left it out")
            )
    return found


def _retryable(result: FreeBusy | ConnectorError | None) -> bool:
    return isinstance(result, ConnectorError) and result.retryable


def sync_server_teacher(
    db: Database,
    connectors: Connectors,
    teacher: Teacher,
    found: FreeBusy,
    now: datetime,
    *,
    ours: bool,
) -> SyncResult:
    """Store a server system's free/busy answer for ``teacher``; with events of ours in the
    calendar, first follow them through the change feed (their own spans are taken out of
    the server's busy time: they are the meetings, not the teacher's other appointments).
    Spans without data are stored as ``unknown`` (no slot offered there)."""
    connector = connectors.get(teacher.account)
    span = connectors.horizon
    changes: ChangeSet | None = None
    if ours and Capability.CHANGE_FEED in connector.capabilities:
        changes = changes_since_last(db, connector, teacher, span)
    unknown = _merged(found.unknown)
    with db.write() as session:
        cal = calendar_row(session, teacher, teacher.calendar)
        if changes is not None:
            apply_changes(session, cal, teacher.id, changes, span, connectors.config.tz)
            cal.sync_token = changes.token
        mine = session.execute(
            select(BusyTime.start, BusyTime.end)
            .join(CalendarEvent, CalendarEvent.id == BusyTime.event_id)
            .where(CalendarEvent.calendar_id == cal.id)
        ).all()
        busy = _without(list(found.busy), [(s, e) for s, e in mine])
        _replace_server_busy(session, teacher.id, busy, unknown)
        cal.window_start, cal.window_end, cal.synced_at, cal.error = (
            span.start,
            span.end,
            now,
            None,
        )
        # Only time inside a period's windows costs parents a slot: that is the problem.
        minutes = minutes_in_windows(connectors.config, unknown)
        cal.problem = CalendarProblem.NO_DATA.value if minutes else None
    return SyncResult(
        teacher.email,
        changed=len(changes.changed) if changes else 0,
        removed=len(changes.removed) if changes else 0,
        full=True,
        busy=len(busy),
        problem=CalendarProblem.NO_DATA if minutes else None,
        unknown=minutes,
    )


def _merged(spans: Iterable[Interval]) -> list[Interval]:
    """``spans`` in UTC, sorted, overlapping or touching ones joined."""
    out: list[Interval] = []
    for span in sorted(s.utc() for s in spans):
        if out and span.start <= out[-1].end:
            out[-1] = Interval(out[-1].start, max(out[-1].end, span.end))
        else:
            out.append(span)
    return out


def _without(busy: list[Busy], taken: list[tuple[datetime, datetime]]) -> list[Busy]:
    """``busy`` with the spans ``taken`` cut out (a server reports our own events as busy)."""
    out: list[Busy] = []
    for b in busy:
        pieces = [(b.start, b.end)]
        for t_start, t_end in taken:
            next_pieces = []
            for p_start, p_end in pieces:
                if t_end <= p_start or t_start >= p_end:
                    next_pieces.append((p_start, p_end))
                    continue
                if p_start < t_start:
                    next_pieces.append((p_start, t_start))
                if t_end < p_end:
                    next_pieces.append((t_end, p_end))
            pieces = next_pieces
        out.extend(Busy(s, e, b.tentative) for s, e in pieces)
    return out


def _replace_server_busy(
    session: Session, teacher_id: int, found: list[Busy], unknown: list[Interval]
) -> None:
    session.execute(
        delete(BusyTime).where(BusyTime.teacher_id == teacher_id, BusyTime.event_id.is_(None))
    )
    for b in found:
        session.add(
            BusyTime(teacher_id=teacher_id, start=b.start, end=b.end, tentative=b.tentative)
        )
    for u in unknown:
        session.add(BusyTime(teacher_id=teacher_id, start=u.start, end=u.end, unknown=True))
