"""`roster import [--dry-run] [--replace [--force]] FILE...` (DESIGN §7): CSV files or a
OneRoster 1.1 folder/zip.

All or nothing: on any problem every ``file:line: reason`` goes to stderr (through the
CLI's error handler, as a :class:`~ptm_sync.core.errors.RosterError`), exit code 1, and nothing
is written.  On success one line of counts per kind goes to stdout; notes (rows skipped on
purpose) and removed links that still have active meetings go to stderr.  Student and
guardian names are never printed or logged: who is retired is named by email (guardians,
teachers) and student id.

``--replace``: the files are the whole roster of the kinds they hold; who is missing is
retired, their open proposals withdrawn (the cancellations are sent at once when SMTP is
configured), their confirmed meetings kept (`meetings --retired`).  Retiring more than half
of the teachers, of the families or of the students needs ``--force`` (exit 1 naming it and
the counts; ``--dry-run`` says so).  ``--dry-run`` prints what would be
added, updated and retired and writes nothing.
"""

from __future__ import annotations

import argparse
import sys

from ptm_sync.app.booking.apply import Applier
from ptm_sync.app.context import App
from ptm_sync.app.roster_import import ImportReport, import_roster
from ptm_sync.app.roster_retire import Replace
from ptm_sync.app.services import video_provider
from ptm_sync.core.roster.parse import read_sources
from ptm_sync.interfaces.cli.commands.common import deliver


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("roster", help="the roster: teachers, students, guardians")
    actions = p.add_subparsers(dest="roster_action", metavar="ACTION", required=True)
    p = actions.add_parser(
        "import",
        help="import teachers.csv / families.csv files or a OneRoster 1.1 folder or zip",
        description="Import roster files, all or nothing. CSV files are told apart by their "
        "headers: teachers (email,name,account,calendar,room[,booking_address]) and families "
        "(student_id,student_name,guardian_email,guardian_name,teacher_email[,language]). "
        "A folder or .zip is read as a OneRoster 1.1 CSV export.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="CSV file, OneRoster folder or zip")
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be added, updated and retired"
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="the files are the whole roster of their kinds: who is missing is retired "
        "(open proposals withdrawn, confirmed meetings kept)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="with --replace: retire even more than half of the teachers, families or students",
    )
    p.set_defaults(func=cmd_import, usage_error=p.error)


def cmd_import(args: argparse.Namespace) -> int:
    if args.force and not args.replace:
        args.usage_error("--force goes with --replace")
    sources = read_sources(args.files)  # unreadable paths fail before the config is needed
    app = App.from_args(args)
    app.expect_new_database = True  # a new school's first step after `init`
    replace = None
    if args.replace:
        config, now = app.config, app.now()
        applier = (
            Applier(config, now=now, video=video_provider(config))
            if config.mail is not None
            else None
        )
        replace = Replace(now=now, applier=applier, force=args.force)
    try:
        report = import_roster(
            app.db,
            sources,
            [a.id for a in app.config.accounts],
            replace=replace,
            dry_run=args.dry_run,
        )
        if args.dry_run:
            print("dry run: nothing was changed")
        for line in report.lines():
            print(line)
        _notes(report, force=args.force)
        if _withdrew(report):
            deliver(app)  # the cancellations of the withdrawn proposals
    finally:
        app.close()
    return 0


def _withdrew(report: ImportReport) -> bool:
    return not report.dry_run and report.retired is not None and report.retired.withdrawn > 0


def _notes(report: ImportReport, *, force: bool) -> None:
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if report.removed_with_meetings:
        count = report.removed_with_meetings
        print(
            f"note: {count} removed link{'s' if count != 1 else ''} still "
            f"{'have' if count != 1 else 'has'} an active meeting; "
            "see `ptm-sync meetings` and cancel what should not happen",
            file=sys.stderr,
        )
    retired = report.retired
    if report.dry_run and retired is not None and retired.over_half and not force:
        print(
            f"note: this retires {' and '.join(retired.over_half)}: "
            "without --dry-run the import would need --force",
            file=sys.stderr,
        )
