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

The package is the API (``from ptm_sync.app.sync import Connectors, opened, sync``):
:mod:`.accounts` opens each account once, :mod:`.mirror` keeps the mirrored calendars,
:mod:`.free_busy` stores the server free/busy systems' answers, :mod:`.school_feeds` reads
the feeds that block everyone, :mod:`.result` is what a pass reports; the pass itself,
:func:`sync`, and the record of a teacher's failure live here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select

from connectors.base import Capability, FreeBusy
from ptm_sync.adapters.store import Database, Meeting, Teacher
from ptm_sync.adapters.video.providers import VideoProvider, provider_for
from ptm_sync.app.channels import teacher_calendar as teacher_changes
from ptm_sync.app.periods import ensure_periods
from ptm_sync.app.sync.accounts import Connectors, opened
from ptm_sync.app.sync.free_busy import server_free_busy, sync_server_teacher
from ptm_sync.app.sync.mirror import calendar_row, sync_teacher
from ptm_sync.app.sync.result import SyncResult
from ptm_sync.app.sync.school_feeds import sync_school_feeds
from ptm_sync.config.settings import Config
from ptm_sync.core.errors import (
    CalendarProblem,
    ConfigError,
    NotFoundError,
    PtmError,
    problem_of,
)
from ptm_sync.ops.metrics import CALENDAR_PROBLEMS, PROCESS, SYNC_PASSES, SYNC_REQUESTS

__all__ = ["Connectors", "SyncResult", "opened", "sync"]

log = logging.getLogger(__name__)


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
    results = [] if teacher_email else sync_school_feeds(db, config, connectors, now)
    server_answers = server_free_busy(connectors, teachers)
    for done, teacher in enumerate(teachers, start=1):
        try:
            connector = connectors.get(teacher.account)
            if Capability.MIRRORED in connector.capabilities:
                result = sync_teacher(db, config, connectors, teacher, now)
            else:
                found = server_answers.get(teacher.id)
                if isinstance(found, PtmError):
                    raise found
                result = sync_server_teacher(
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


def _record_error(db: Database, teacher: Teacher, message: str, problem: CalendarProblem) -> None:
    """Keep the teacher's failure and its kind on their calendar row (created when the
    calendar was never read, so that /healthz counts it as failing, not "never synced");
    the busy times stay as the last read left them (DESIGN §5)."""
    try:
        with db.write() as session:
            row = calendar_row(session, teacher, teacher.calendar)
            row.error = message[:2000]
            row.problem = problem.value
    except PtmError:  # pragma: no cover - the error itself was already logged
        pass
