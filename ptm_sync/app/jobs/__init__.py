"""The scheduled jobs (DESIGN §3 "Other life-cycle jobs", §7 ``jobs``): one registry.

``open`` and ``expire`` every minute, ``remind`` and ``complete`` every 5 minutes,
``feedback`` every 15, ``digest`` every 10 (it sends once a day), ``purge`` daily.  The
daemon runs each when it is due (:func:`due`), ``ptm-sync jobs run NAME`` runs one now
(:func:`run`), ``ptm-sync jobs`` lists them (:func:`statuses`).  Every job is idempotent:
run twice, or on two replicas at once, it does its work once.

Modules: ``registry`` (the jobs and their cadences), ``runs`` (the lease on a job's row, its
last run and result), ``aftercare`` (remind, complete, feedback: events for the booking
core), ``upkeep`` (open, expire, digest, purge: existing use cases), ``work`` (values).
"""

from ptm_sync.app.jobs.registry import JOBS, NAMES, Job, JobName, find
from ptm_sync.app.jobs.runs import JobStatus, Ran, due, failure, run, statuses
from ptm_sync.app.jobs.work import Done, JobContext

__all__ = [
    "JOBS",
    "NAMES",
    "Done",
    "Job",
    "JobContext",
    "JobName",
    "JobStatus",
    "Ran",
    "due",
    "failure",
    "find",
    "run",
    "statuses",
]
