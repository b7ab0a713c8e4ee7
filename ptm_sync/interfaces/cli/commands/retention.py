"""`purge --before DATE [--dry-run]` (DESIGN §7): delete the personal data of meetings that
ended before DATE (the school's local date: before its midnight).

DATE is today (by the school's zone and the commands' clock) or earlier: a later one is
refused (exit 1), since a date ahead would purge today's meetings, and every one after
it, the moment they end.  ``--dry-run`` prints what would be purged (counts) and changes
nothing.  Prints counts, never names.  The daemon's daily ``purge`` job does the same with
``[retention] meetings_days`` (and deletes old quarantined bodies).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, time

from ptm_sync.app.context import App
from ptm_sync.app.retention import purge
from ptm_sync.core.errors import UserError
from ptm_sync.interfaces.cli.commands.staff import iso_date


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "purge",
        help="delete the personal data of meetings that ended before DATE",
        description="Names, addresses, notes, feedback, message bodies and history texts of "
        "meetings that ended before DATE are deleted; states, times and the counts of "
        "`report` stay. People who left the roster and have no meeting left are made "
        "anonymous.",
    )
    p.add_argument(
        "--before",
        required=True,
        type=iso_date,
        metavar="DATE",
        help="the school's local date, today or earlier, e.g. 2027-06-30",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print what would be purged; change nothing"
    )
    p.set_defaults(func=cmd_purge)


def cmd_purge(args: argparse.Namespace) -> int:
    """Raises:
    UserError: DATE is after today in the school's zone (nothing is purged).
    """
    app = App.from_args(args)
    tz = app.config.tz
    now = app.now()
    if args.before > now.astimezone(tz).date():
        raise UserError(
            f"{args.before} is in the future: purge deletes the personal data of meetings "
            "that ended before DATE; give today's date or earlier"
        )
    before = datetime.combine(args.before, time(0), tzinfo=tz).astimezone(UTC)
    result = purge(app.db, app.config, before=before, now=now, dry_run=args.dry_run)
    if args.dry_run:
        print(
            "dry run: nothing was changed; a purge would delete the personal data of "
            f"meetings that ended before {args.before}"
        )
    else:
        print(f"purged the personal data of meetings that ended before {args.before}")
    for line in result.lines(dry_run=args.dry_run)[:3]:
        print(line)
    return 0
