"""`roster import FILE...` (DESIGN §7): CSV files or a OneRoster 1.1 folder/zip.

All or nothing: on any problem every ``file:line: reason`` goes to stderr (through the
CLI's error handler, as a :class:`~ptm_sync.core.errors.RosterError`), exit code 1, and nothing
is written.  On success one line of counts per kind goes to stdout; notes (rows skipped on
purpose) and removed links that still have active meetings go to stderr.  Student and
guardian names are never printed or logged.
"""

from __future__ import annotations

import argparse
import sys

from ptm_sync.app.context import App
from ptm_sync.app.roster_import import import_roster
from ptm_sync.core.roster.parse import read_sources


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
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    sources = read_sources(args.files)  # unreadable paths fail before the config is needed
    app = App.from_args(args)
    app.expect_new_database = True  # a new school's first step after `init`
    try:
        report = import_roster(app.db, sources, [a.id for a in app.config.accounts])
    finally:
        app.close()
    for line in report.lines():
        print(line)
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
    return 0
