"""The registry: every scheduled job with its cadence (DESIGN §3 "Other life-cycle jobs").

The daemon runs each job when it is due; ``ptm-sync jobs run NAME`` runs one now; ``ptm-sync
jobs`` lists them with their last and next run.  A job is due at its last run plus its
cadence (at once when it never ran).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from ptm_sync.app.jobs import aftercare, upkeep
from ptm_sync.app.jobs.work import Done, JobContext
from ptm_sync.core.errors import NotFoundError


class JobName(StrEnum):
    """The jobs, by the name ``jobs run`` takes (DESIGN §7)."""

    OPEN = "open"
    EXPIRE = "expire"
    REMIND = "remind"
    COMPLETE = "complete"
    FEEDBACK = "feedback"
    DIGEST = "digest"
    PURGE = "purge"


@dataclass(frozen=True, slots=True)
class Job:
    """One scheduled job: its ``name``, how often it runs (``cadence``), what it does in a
    few words (``does``) and the function doing it (``work``)."""

    name: JobName
    cadence: timedelta
    does: str
    work: Callable[[JobContext], Done]

    def next_run(self, last_run: datetime | None, now: datetime) -> datetime:
        """When the job is due next: ``last_run`` + cadence, or ``now`` when it never ran."""
        return now if last_run is None else last_run + self.cadence


MINUTE = timedelta(minutes=1)

#: Every job, in the order `jobs` lists them; cadences as DESIGN §3 gives them.
JOBS: tuple[Job, ...] = (
    Job(JobName.OPEN, MINUTE, "send the invitations when a period's booking opens",
        upkeep.open_periods),
    Job(JobName.EXPIRE, MINUTE, "expire proposals past their hold", upkeep.expire),
    Job(JobName.REMIND, 5 * MINUTE, "remind families of confirmed meetings", aftercare.remind),
    Job(JobName.COMPLETE, 5 * MINUTE, "complete confirmed meetings that have ended",
        aftercare.complete),
    Job(JobName.FEEDBACK, 15 * MINUTE, "ask families of completed meetings for feedback",
        aftercare.feedback),
    Job(JobName.DIGEST, 10 * MINUTE, "email staff the daily digest (once a day)", upkeep.digest),
    Job(JobName.PURGE, 24 * 60 * MINUTE, "purge personal data past [retention] meetings_days",
        upkeep.purge),
)  # fmt: skip

NAMES: tuple[str, ...] = tuple(job.name.value for job in JOBS)


def find(name: str) -> Job:
    """The job called ``name``.

    Raises:
        NotFoundError: no such job (the message lists the names).
    """
    for job in JOBS:
        if job.name == name:
            return job
    raise NotFoundError(f"no job {name!r}: the jobs are {', '.join(NAMES)}")
