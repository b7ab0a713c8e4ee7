"""`purge --before DATE` (DESIGN §7): delete the personal data of meetings that ended before
DATE (the school's local date: before its midnight).

A DATE in the future is allowed: only meetings that have ended are touched, never one
still to come.  Prints counts, never names.  The daemon's daily ``purge`` job does the same
with ``[retention] meetings_days`` (and deletes old quarantined bodies).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, time

from ptm_sync.app.context import App
from ptm_sync.app.retention import purge
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
        help="the school's local date, e.g. 2027-06-30",
    )
    p.set_defaults(func=cmd_purge)


def cmd_purge(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    now = app.now()
    before = datetime.combine(args.before, time(0), tzinfo=app.config.tz).astimezone(UTC)
    result = purge(app.db, app.config, before=before, now=now)
    ahead = " (meetings still to come are kept)" if before > now else ""
    print(f"purged the personal data of meetings that ended before {args.before}{ahead}")
    for line in result.lines()[:3]:
        print(line)
    return 0
