"""`jobs [--format table|json]` and `jobs run NAME`: the scheduled jobs (DESIGN §3, §7).

``jobs`` lists each job with its last run, next run and last result (``ok``, ``failed:
<sentence>``, ``never``), times in the school's zone.  ``jobs run NAME`` runs one now, as
the daemon would, says what it did ("remind: 3 reminders queued") and delivers what it
queued.  A run that failed is one line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import sys

from ptm_sync.app import jobs
from ptm_sync.app.context import App
from ptm_sync.app.services import video_provider
from ptm_sync.interfaces.cli import output
from ptm_sync.interfaces.cli.commands.common import deliver, reported_here

COLUMNS = ["name", "last_run", "next_run", "last_result"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "jobs",
        help="the scheduled jobs with their last and next run; `jobs run NAME` runs one",
        description="The jobs the daemon runs on schedule (reminders, completion, feedback "
        "requests, the purge...), each with its last run, next run and last result, times "
        "in the school's zone. `jobs run NAME` runs one now.",
    )
    p.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="output format (default: table)",
    )
    p.set_defaults(func=cmd_jobs)
    actions = p.add_subparsers(
        dest="jobs_command", metavar="ACTION", help="without one: list the jobs"
    )
    run = actions.add_parser(
        "run",
        help="run one job now, as the daemon would",
        description="Run one job now, as the daemon would, say what it did and send what it "
        "queued. A failed run is one line on stderr, exit code 1.",
    )
    run.add_argument(
        "name", metavar="NAME", choices=jobs.NAMES, help="the job: " + " | ".join(jobs.NAMES)
    )
    run.set_defaults(func=cmd_jobs_run)


def cmd_jobs(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    tz = app.config.tz
    rows = [
        {
            "name": s.name,
            "last_run": s.last_run.astimezone(tz) if s.last_run else None,
            "next_run": s.next_run.astimezone(tz),
            "last_result": s.last_result,
        }
        for s in jobs.statuses(app.db, app.now())
    ]
    if args.format == "json":
        sys.stdout.write(output.to_json(rows))
    else:
        table = [{**r, "last_run": r["last_run"] or "never"} for r in rows]
        sys.stdout.write(output.to_table(table, COLUMNS, max_width=80))
    return 0


def cmd_jobs_run(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    job = jobs.find(args.name)
    ran = jobs.run(app.db, app.config, job, now=app.now(), video=video_provider(app.config))
    if ran.done is None:
        print(f"{job.name}: running in another process ({ran.busy}) already; nothing done here")
        return 0
    print(f"{job.name}: {ran.done.summary}")
    if ran.done.queued:
        with reported_here(args):
            deliver(app)
    if ran.done.problem:
        print(f"{job.name} failed: {ran.done.problem}", file=sys.stderr)
        return 1
    return 0
