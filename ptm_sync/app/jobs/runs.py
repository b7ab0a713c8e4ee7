"""Running a job once: a lease on its ``job_runs`` row, then its last run and result.

A run takes the lease on its job's row (``running_until``, ``running_by``: the process, as
the outbox names lease owners, :class:`~ptm_sync.app.outbox.leases.Owner`), so two replicas
never run one job at the same time; one that finds the lease held by a live process skips
its turn.  A lease runs out after :data:`LEASE` (a process that died mid-run on another
host); on the same host a dead owner's lease is taken at once.  The work is idempotent
anyway (DESIGN §3): the lease saves work, correctness never depends on it.

When the run ends, the row records its start as ``last_run`` and ``ok`` or ``failed:
<sentence>`` as ``last_result`` (DESIGN §7 ``jobs``), and the lease is given back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, select

from ptm_sync.adapters.store import Database, JobRun
from ptm_sync.adapters.store.db import database_outage
from ptm_sync.adapters.store.insert import insert_new
from ptm_sync.adapters.video.providers import VideoProvider
from ptm_sync.app.jobs.registry import JOBS, Job
from ptm_sync.app.jobs.work import Done, JobContext
from ptm_sync.app.outbox.leases import Owner, this_process
from ptm_sync.config.settings import Config
from ptm_sync.core.errors import PtmError

log = logging.getLogger(__name__)

_JOB_RUNS = cast(Table, JobRun.__table__)
#: How long a run holds its job; a run outliving it may be joined by another replica
#: (harmless: every job is idempotent).
LEASE = timedelta(minutes=30)
#: ``last_result`` of a job that never ran (DESIGN §7).
NEVER = "never"
#: Longest ``last_result`` kept: a sentence, not a traceback.
RESULT_WIDTH = 500


@dataclass(frozen=True, slots=True)
class Ran:
    """One call of :func:`run`: what the job did (``done``), or, with ``done`` None, the
    owner token of the process that was running it (``busy``): this run was skipped."""

    job: Job
    done: Done | None
    busy: str = ""


@dataclass(frozen=True, slots=True)
class JobStatus:
    """One line of ``ptm-sync jobs``: times aware (UTC); ``last_run`` None when never run."""

    name: str
    last_run: datetime | None
    next_run: datetime
    last_result: str
    running_by: str | None = None


def run(
    db: Database,
    config: Config,
    job: Job,
    *,
    now: datetime,
    video: VideoProvider,
    owner: Owner | None = None,
) -> Ran:
    """Run ``job`` at ``now`` under its lease and record the result.

    Raises:
        whatever the job raised (recorded as ``failed: <sentence>`` first, when the
        database lets us); a database outage (nothing recorded).
    """
    me = owner or this_process()
    busy = _claim(db, job, now, me)
    if busy:
        log.info("job %s: running in %s already; skipped", job.name, busy)
        return Ran(job, None, busy)
    try:
        done = job.work(JobContext(db, config, now, video))
    except Exception as exc:
        try:
            _record(db, job, now, me, f"failed: {failure(exc)}")
        except Exception:  # noqa: BLE001 - the job's own failure is the one to raise
            log.debug("job %s: its failure could not be recorded", job.name)
        raise
    _record(db, job, now, me, done.result)
    return Ran(job, done)


def failure(exc: BaseException) -> str:
    """A failed run's sentence: the outage, the error's own words, or its kind (a bug:
    its traceback is in the log)."""
    outage = database_outage(exc)
    if outage is not None:
        return outage
    if isinstance(exc, PtmError):
        return str(exc)
    return f"internal error ({type(exc).__name__}); see the log"


def statuses(db: Database, now: datetime) -> list[JobStatus]:
    """Every job of the registry with its last run, next run and last result (one query)."""
    with db.read() as session:
        rows = {r.name: r for r in session.scalars(select(JobRun))}
    out = []
    for job in JOBS:
        row = rows.get(job.name)
        last = row.last_run if row is not None else None
        result = row.last_result if row is not None and last is not None else NEVER
        out.append(
            JobStatus(
                name=job.name.value,
                last_run=last,
                next_run=job.next_run(last, now),
                last_result=result or NEVER,
                running_by=row.running_by if row is not None else None,
            )
        )
    return out


def due(db: Database, now: datetime) -> list[Job]:
    """The jobs whose next run has come (the daemon's tick)."""
    ready = {s.name for s in statuses(db, now) if s.next_run <= now}
    return [job for job in JOBS if job.name in ready]


def _claim(db: Database, job: Job, now: datetime, me: Owner) -> str:
    """Take the job's lease; "" when taken, else the live owner holding it."""
    with db.write() as session:
        insert_new(session, _JOB_RUNS, {"name": job.name.value, "last_result": ""}, key="name")
        row = session.get(JobRun, job.name.value, with_for_update=True, populate_existing=True)
        assert row is not None  # inserted above, or there already
        holder = row.running_by
        if holder and holder != me.token and row.running_until and row.running_until > now:
            other = Owner.parse(holder)
            if other is None or not other.known_dead(me):
                return holder
        row.running_by, row.running_until = me.token, now + LEASE
    return ""


def _record(db: Database, job: Job, now: datetime, me: Owner, result: str) -> None:
    with db.write() as session:
        row = session.get(JobRun, job.name.value, with_for_update=True, populate_existing=True)
        if row is None:  # pragma: no cover - the claim made it
            return
        row.last_run, row.last_result = now, result[:RESULT_WIDTH]
        if row.running_by == me.token:
            row.running_by, row.running_until = None, None
