"""One sync pass: each teacher's calendar → the local mirror and busy times.

Network calls happen outside database transactions; each teacher's result is then applied
in one short write transaction, so a failure halfway leaves every other teacher's state
intact and the next pass resumes from the last stored sync token (vdirsyncer's "plan, then
act": the change set is the plan, the transaction the act).

For connectors that mirror events (CalDAV, ICS feeds) busy times are computed locally from
the events with :func:`ptm_sync.core.ical.busy.busy_times`; for the others (Graph, EWS, Google) the
server's free/busy answer is stored, less the spans of our own events, and the events we
wrote are followed through the system's change feed.  A feed that blocks everyone (the
school events calendar) is stored once for the whole school (``school_busy``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import datetime
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from connectors.base import (
    CalendarConnector,
    CalendarRef,
    Capability,
    ChangeSet,
    FreeBusy,
    Horizon,
    open_connector,
)
from ptm_sync.adapters.store import (
    BusyTime,
    Calendar,
    CalendarEvent,
    Database,
    Meeting,
    SchoolBusy,
    SchoolFeed,
    Teacher,
)
from ptm_sync.adapters.store.insert import insert_new
from ptm_sync.adapters.video.providers import VideoProvider, provider_for
from ptm_sync.app.channels import teacher_calendar as teacher_changes
from ptm_sync.app.periods import ensure_periods, horizon, minutes_in_windows
from ptm_sync.config.settings import Config
from ptm_sync.core.errors import (
    CalendarProblem,
    ConfigError,
    ConnectorError,
    NotFoundError,
    PtmError,
    SyncTokenInvalid,
    problem_of,
)
from ptm_sync.core.ical import busy as busy_mod
from ptm_sync.core.model import Busy, Interval
from ptm_sync.ops.metrics import CALENDAR_PROBLEMS, PROCESS, SYNC_PASSES, SYNC_REQUESTS

log = logging.getLogger(__name__)
_CALENDARS = cast(Table, Calendar.__table__)


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What one teacher's pass did.

    ``error`` is the teacher's own failure as a sentence ("" when the read succeeded) and
    ``problem`` its kind; a read that succeeded with spans the system had no data for inside
    the periods' windows has ``problem`` ``no_data`` and ``unknown`` those minutes (no slot
    is offered in them; no-data time outside every window is stored but costs nothing).
    """

    teacher: str
    changed: int = 0
    removed: int = 0
    full: bool = False
    busy: int = 0
    error: str = ""
    followed: int = 0  # changes the teacher made to our events, decided (teacher_changes)
    problem: CalendarProblem | None = None
    unknown: int = 0  # minutes without data


class Connectors:
    """Opened connectors by account id, kept for the life of a pass (or of the daemon)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.horizon: Horizon = horizon(config)
        self._open: dict[str, CalendarConnector] = {}

    def get(self, account_id: str) -> CalendarConnector:
        if account_id not in self._open:
            account = self.config.account(account_id)
            self._open[account_id] = open_connector(account, self.config.tz, self.horizon)
        return self._open[account_id]

    def provide(self, account_id: str, connector: CalendarConnector) -> None:
        """Use ``connector``, opened by the caller, for ``account_id`` (an in-memory one in
        pure tests; a caller that opened the account itself).  It is closed with the rest."""
        self._open[account_id] = connector

    def close(self) -> None:
        for connector in self._open.values():
            with suppress(PtmError):  # closing is best effort
                connector.close()
        self._open.clear()


@contextmanager
def opened(config: Config) -> Iterator[Connectors]:
    connectors = Connectors(config)
    try:
        yield connectors
    finally:
        connectors.close()


def sync(
    db: Database,
    config: Config,
    connectors: Connectors,
    *,
    now: datetime,
    teacher_email: str | None = None,
    video: VideoProvider | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[SyncResult]:
    """Sync every teacher's calendar (or one teacher's), returning one result per teacher
    (and one per school events feed, on a pass over everybody).

    Systems that ask the server for free/busy (Graph, EWS, Google) are asked once per
    account for all of its teachers; the connector splits the list into the calls its API
    allows (20 mailboxes, 50 calendars).  Their change feeds are read only for teachers with
    events of ours, so an idle pass costs the free/busy calls.  Where the changes of our
    events are seen (a mirrored calendar or a change feed), the changes the teacher made to
    them are then decided (:mod:`ptm_sync.app.channels.teacher_calendar`); ``video`` makes the rooms
    of the new proposals that follow a deleted meeting.  ``progress(done, total)`` is called
    after each teacher's calendar (for the command line's progress display).
    """
    video = video or provider_for(config.video)
    with db.write() as session:
        ensure_periods(session, config)
    with db.read() as session:
        query = select(Teacher).order_by(Teacher.email)
        if teacher_email:
            query = query.where(Teacher.email == teacher_email.strip().lower())
        teachers = list(session.scalars(query))
        with_events = set(
            session.scalars(
                select(Meeting.teacher_id).where(Meeting.remote_href.is_not(None)).distinct()
            )
        )
    if teacher_email and not teachers:
        raise NotFoundError(f"no teacher {teacher_email!r} in the roster")
    known = {a.id for a in config.accounts}
    for account_id in sorted({t.account for t in teachers} & known):
        # Open each account first: a secret that cannot be read (an unset *_env) is a
        # configuration error that stops the pass with one line, not one failure per teacher.
        try:
            connectors.get(account_id)
        except ConfigError:
            raise
        except PtmError:
            pass  # reported for each of the account's teachers below
    results = [] if teacher_email else _sync_school_feeds(db, config, connectors, now)
    server_answers = _server_free_busy(connectors, teachers)
    for done, teacher in enumerate(teachers, start=1):
        try:
            connector = connectors.get(teacher.account)
            if Capability.MIRRORED in connector.capabilities:
                result = _sync_teacher(db, config, connectors, teacher, now)
            else:
                found = server_answers.get(teacher.id)
                if isinstance(found, PtmError):
                    raise found
                result = _sync_server_teacher(
                    db,
                    connectors,
                    teacher,
                    found or FreeBusy(),
                    now,
                    ours=teacher.id in with_events,
                )
            follows = Capability.MIRRORED in connector.capabilities or (
                Capability.CHANGE_FEED in connector.capabilities and teacher.id in with_events
            )
            if follows and Capability.READ_ONLY not in connector.capabilities:
                followed = teacher_changes.follow(db, config, teacher.id, now=now, video=video)
                result = replace(result, followed=followed)
            results.append(result)
            PROCESS.count(SYNC_REQUESTS, account=teacher.account, result="ok")  # metrics
            if result.problem is not None:
                PROCESS.count(CALENDAR_PROBLEMS, account=teacher.account, problem=result.problem)
        except PtmError as exc:
            problem = problem_of(exc)
            log.warning("sync of %s failed (%s): %s", teacher.email, problem, exc)
            _record_error(db, teacher, str(exc), problem)
            results.append(SyncResult(teacher.email, error=str(exc), problem=problem))
            PROCESS.count(SYNC_REQUESTS, account=teacher.account, result="failed")  # metrics
            PROCESS.count(CALENDAR_PROBLEMS, account=teacher.account, problem=problem)
        if progress is not None:
            progress(done, len(teachers))
    if not teacher_email:
        PROCESS.count(SYNC_PASSES)  # metrics
    return results


def _server_free_busy(
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


def _sync_server_teacher(
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
        changes = _changes_since_last(db, connector, teacher, span)
    unknown = _merged(found.unknown)
    with db.write() as session:
        cal = _calendar_row(session, teacher, teacher.calendar)
        if changes is not None:
            _apply(session, cal, teacher.id, changes, span, connectors.config.tz)
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


def _sync_school_feeds(
    db: Database, config: Config, connectors: Connectors, now: datetime
) -> list[SyncResult]:
    """Read each feed that blocks everyone (the school events calendar) into school_busy."""
    results = []
    span = connectors.horizon
    for account in config.accounts:
        name = f"school events ({account.id})"
        try:
            connector = connectors.get(account.id)
            if Capability.BLOCKS_EVERYONE not in connector.capabilities:
                continue
            with db.read() as session:
                row = session.get(SchoolFeed, account.id)
                token = row.sync_token if row is not None and row.url == account.url else None
            ref = CalendarRef(account.id, account.url)
            try:
                changes = connector.changes(ref, token)
            except SyncTokenInvalid:
                changes = connector.changes(ref, None)
            count = 0
            with db.write() as session:
                row = session.get(SchoolFeed, account.id)
                if row is None:
                    row = SchoolFeed(account=account.id, url=account.url)
                    session.add(row)
                if changes.full or row.url != account.url:
                    row.url = account.url
                    row.busy.clear()
                    for remote in changes.changed:
                        try:
                            spans = busy_mod.busy_times(remote.ics, span.start, span.end, config.tz)
                        except PtmError as exc:
                            log.warning(
                                "ignoring unreadable event in %s (%s)", name, type(exc).__name__
                            )
                            continue
                        row.busy.extend(
                            SchoolBusy(start=b.start, end=b.end, tentative=b.tentative)
                            for b in spans
                        )
                        count += len(spans)
                else:
                    count = len(row.busy)
                row.sync_token, row.synced_at, row.error = changes.token, now, None
            results.append(
                SyncResult(name, changed=len(changes.changed), full=changes.full, busy=count)
            )
        except PtmError as exc:
            log.warning("sync of %s failed: %s", name, exc)
            with suppress(PtmError), db.write() as session:
                row = session.get(SchoolFeed, account.id)
                if row is not None:
                    row.error = str(exc)[:2000]
            results.append(SyncResult(name, error=str(exc)))
    return results


def _calendar_row(session: Session, teacher: Teacher, url: str) -> Calendar:
    """The teacher's calendar row, made on first use with ``INSERT … ON CONFLICT DO
    NOTHING`` (a sync pass of the daemon and one by hand may meet here) and read back."""
    query = select(Calendar).where(Calendar.teacher_id == teacher.id)
    row = session.scalars(query).one_or_none()
    if row is None:
        values = {"teacher_id": teacher.id, "account": teacher.account, "url": url}
        insert_new(session, _CALENDARS, values, key="teacher_id")
        return session.scalars(query).one()
    if row.account != teacher.account or row.url != url:
        # The roster moved the teacher to another calendar: forget the old mirror.
        session.execute(delete(CalendarEvent).where(CalendarEvent.calendar_id == row.id))
        row.account, row.url, row.sync_token, row.ctag = teacher.account, url, None, None
        row.owner_addresses = None
    return row


def _changes_since_last(
    db: Database, connector: CalendarConnector, teacher: Teacher, span: Horizon
) -> ChangeSet:
    """The teacher's calendar's changes since the stored sync token; everything when there
    is none, when the token is for another calendar or window, or when the server no longer
    takes it (``SyncTokenInvalid``: a full resync)."""
    with db.read() as session:
        row = session.scalars(
            select(Calendar).where(Calendar.teacher_id == teacher.id)
        ).one_or_none()
    here = (teacher.account, teacher.calendar, span.start, span.end)
    same = row is not None and (row.account, row.url, row.window_start, row.window_end) == here
    token = row.sync_token if row is not None and same else None
    ref = CalendarRef(teacher.account, teacher.calendar)
    try:
        return connector.changes(ref, token)
    except SyncTokenInvalid:
        log.info("sync token of %s no longer valid: full resync", teacher.email)
        return connector.changes(ref, None)


def _sync_teacher(
    db: Database, config: Config, connectors: Connectors, teacher: Teacher, now: datetime
) -> SyncResult:
    account = config.account(teacher.account)
    connector = connectors.get(account.id)
    span = connectors.horizon
    changes = _changes_since_last(db, connector, teacher, span)
    with db.write() as session:
        cal = _calendar_row(session, teacher, teacher.calendar)
        known = _addresses(cal.owner_addresses)
        named = frozenset(a.lower() for a in changes.owner_addresses)
        if named and named != known:
            # The server named the owner's addresses (anew): every stored event is read
            # again with them, not only the changed ones (a declined invitation frees time).
            cal.owner_addresses = " ".join(sorted(named))
            _reexpand(session, cal, teacher, span, config.tz)
        owner = {teacher.email, *_addresses(cal.owner_addresses)}
        count = _apply(session, cal, teacher.id, changes, span, config.tz, owner=owner)
        cal.sync_token = changes.token
        cal.window_start, cal.window_end, cal.synced_at, cal.error = (
            span.start,
            span.end,
            now,
            None,
        )
        cal.problem = None
    return SyncResult(
        teacher.email,
        changed=len(changes.changed),
        removed=len(changes.removed),
        full=changes.full,
        busy=count,
    )


def _apply(
    session: Session,
    cal: Calendar,
    teacher_id: int,
    changes: ChangeSet,
    span: Horizon,
    tz: ZoneInfo,
    *,
    owner: Collection[str] = (),
) -> int:
    """Apply a change set to the mirror; return the number of busy intervals written.

    ``owner``: the teacher's addresses (roster email, the server's calendar-user addresses):
    an invitation they declined is free (:func:`ptm_sync.core.ical.busy.busy_times`)."""
    existing = {
        e.href: e
        for e in session.scalars(select(CalendarEvent).where(CalendarEvent.calendar_id == cal.id))
    }
    gone: Iterable[str] = changes.removed
    if changes.full:
        listed = {c.href for c in changes.changed}
        gone = [href for href in existing if href not in listed]
    for href in gone:
        event = existing.pop(href, None)
        if event is not None:
            session.delete(event)
    written = 0
    for remote in changes.changed:
        event = existing.get(remote.href)
        if event is not None and event.etag == remote.etag and remote.etag is not None:
            continue  # unchanged object in a full listing
        if event is None:
            event = CalendarEvent(calendar_id=cal.id, href=remote.href, etag=remote.etag)
            session.add(event)
        event.etag, event.ics = remote.etag, remote.ics
        written += _expand(event, teacher_id, span, tz, owner)
    return written


def _expand(
    event: CalendarEvent, teacher_id: int, span: Horizon, tz: ZoneInfo, owner: Collection[str]
) -> int:
    """(Re)write the busy intervals of one mirrored event from its iCalendar text; how many."""
    event.busy.clear()
    try:
        event.uid = busy_mod.event_uid(event.ics)
        intervals = busy_mod.busy_times(event.ics, span.start, span.end, tz, owner=owner)
    except PtmError as exc:
        # One bad object must not stop the teacher's sync; it blocks nothing.
        # The reason's class only: its text can quote the teacher's private event.
        log.warning("ignoring unreadable event %s (%s)", event.href, type(exc).__name__)
        event.uid = event.uid or ""
        return 0
    for b in intervals:
        event.busy.append(
            BusyTime(teacher_id=teacher_id, start=b.start, end=b.end, tentative=b.tentative)
        )
    return len(intervals)


def _reexpand(
    session: Session, cal: Calendar, teacher: Teacher, span: Horizon, tz: ZoneInfo
) -> None:
    """Every stored event of ``cal`` expanded again with the owner's current addresses."""
    owner = {teacher.email, *_addresses(cal.owner_addresses)}
    for event in session.scalars(select(CalendarEvent).where(CalendarEvent.calendar_id == cal.id)):
        _expand(event, teacher.id, span, tz, owner)


def _addresses(stored: str | None) -> frozenset[str]:
    return frozenset((stored or "").split())


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


def _record_error(db: Database, teacher: Teacher, message: str, problem: CalendarProblem) -> None:
    """Keep the teacher's failure and its kind on their calendar row (created when the
    calendar was never read, so that /healthz counts it as failing, not "never synced");
    the busy times stay as the last read left them (DESIGN §5)."""
    try:
        with db.write() as session:
            row = _calendar_row(session, teacher, teacher.calendar)
            row.error = message[:2000]
            row.problem = problem.value
    except PtmError:  # pragma: no cover - the error itself was already logged
        pass
