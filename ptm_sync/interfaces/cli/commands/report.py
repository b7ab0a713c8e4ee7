"""`report` and `nudge` (DESIGN §7): the school's record and uptake, and a reminder to book
for the households that have not.

``report [--period ID] [--format table|csv|json]``: per period, a row per teacher and the
school's row (``teacher`` null; "(all)" in the table).  ``report --unbooked``: the
households with no confirmed or completed meeting with a teacher they need.
``nudge [--period ID] [--dry-run]``: email those households how to book, at most once a day.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ptm_sync.app.channels import nudge
from ptm_sync.app.context import App
from ptm_sync.app.read import report
from ptm_sync.core.booking.record import KEYS, UNBOOKED_KEYS
from ptm_sync.interfaces.cli import output
from ptm_sync.interfaces.cli.commands.common import deliver, reported_here

#: How the table shows the school's row (JSON gives null, CSV an empty cell).
SCHOOL = "(all)"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="the record per period and teacher: meetings scheduled, held, moved, missed, "
        "and households booked",
        description="Per period, one row per teacher and one for the whole school: meetings "
        "scheduled, confirmed, completed, missed, cancelled and rescheduled, and the "
        "households with a student of the teacher and how many of them booked (uptake).",
    )
    p.add_argument("--period", metavar="ID", help="one period (default: every period)")
    p.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default="table",
        help="output format (default: table)",
    )
    p.add_argument(
        "--unbooked",
        action="store_true",
        help="list instead the households with no confirmed or completed meeting with a "
        "teacher they need (period, teacher, students, guardians)",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "nudge",
        help="email the households that have not booked yet how to book (once a day at most)",
        description="Each household that has not booked a teacher it needs gets one email per "
        "period naming those teachers and how to book them: the invitation waiting for its "
        "answer, the teacher's booking address, the page of free times and the office. A "
        "household is emailed once a day at most.",
    )
    p.add_argument("--period", metavar="ID", help="one period (default: every period open now)")
    p.add_argument("--dry-run", action="store_true", help="list who would be emailed; send nothing")
    p.set_defaults(func=cmd_nudge)


def cmd_report(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    periods = report.periods_of(app.config, args.period)
    with app.db.read() as session:
        if args.unbooked:
            rows: list[dict[str, Any]] = [u.as_dict() for u in report.unbooked(session, periods)]
            columns: Sequence[str] = UNBOOKED_KEYS
        else:
            rows = [r.as_dict() for r in report.report(session, periods)]
            columns = KEYS
    _write(rows, columns, args.format)
    return 0


def _write(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(output.to_json(rows))
    elif fmt == "csv":
        sys.stdout.write(output.to_csv(rows, columns))
    else:
        shown = [{**r, "teacher": SCHOOL if r["teacher"] is None else r["teacher"]} for r in rows]
        sys.stdout.write(output.to_table(shown, columns))


def cmd_nudge(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    now = app.now()
    periods = nudge.periods_to_nudge(app.config, args.period, now)
    if not periods:
        print("no period is open for booking now: nobody to nudge")
        return 0
    if args.dry_run:
        found = nudge.plan(app.db, app.config, periods, now)
        for target in found.due:
            teachers = ", ".join(t.teacher for t in target.teachers)
            print(f"{target.period}: {', '.join(target.guardians)}: {teachers}")
        print(f"(dry run: nothing sent; {len(found.already)} already nudged today)")
        return 0
    done = nudge.nudge(app.db, app.config, periods, now)
    print(f"{len(done.due)} sent, {len(done.already)} already nudged today")
    if done.due:
        with reported_here(args):
            deliver(app)
    return 0
