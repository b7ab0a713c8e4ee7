"""`sync`, `slots` and `matrix`."""

from __future__ import annotations

import argparse
import sys

from ptm_sync.app.context import App
from ptm_sync.app.read import render
from ptm_sync.app.read.availability import period_matrix, period_slots
from ptm_sync.app.sync import opened, sync
from ptm_sync.interfaces.cli import output
from ptm_sync.interfaces.cli.commands.common import reported_here
from ptm_sync.interfaces.cli.progress import Progress
from ptm_sync.ops.failures import minutes_in_words, plain
from ptm_sync.ops.redact import mask_urls

SLOT_COLUMNS = ["teacher", "teacher_key", "period", "start", "end"]
MATRIX_COLUMNS = ["date", "start", "end", "teacher", "status"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("sync", help="one pass: busy times and changes to our events")
    p.add_argument("--teacher", metavar="EMAIL", help="only this teacher")
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("slots", help="bookable slots")
    p.add_argument("--period", metavar="ID")
    p.add_argument("--teacher", metavar="EMAIL")
    p.add_argument("--format", choices=["table", "json", "ics"], default="table")
    p.set_defaults(func=cmd_slots)

    p = sub.add_parser("matrix", help="the scheduling matrix: date, time slot, teacher, status")
    p.add_argument("--period", metavar="ID")
    p.add_argument("--teacher", metavar="EMAIL")
    p.add_argument("--format", choices=["table", "csv", "html", "json"], default="table")
    p.set_defaults(func=cmd_matrix)


def cmd_sync(args: argparse.Namespace) -> int:
    """One pass; a line per calendar on stdout (each failure once, as a sentence: the log's
    warning about it is not printed too) and, on stderr, progress while it runs."""
    app = App.from_args(args)
    progress = Progress(sys.stderr)
    try:
        with opened(app.config) as connectors, reported_here(args):
            results = sync(
                app.db,
                app.config,
                connectors,
                now=app.now(),
                teacher_email=args.teacher,
                progress=progress,
            )
    finally:
        progress.close()
    failed = 0
    for r in results:
        if r.error:
            failed += 1
            print(mask_urls(f"{r.teacher}: FAILED: {plain(r.error)}"))  # a URL's password
        else:
            kind = "full" if r.full else "incremental"
            line = f"{r.teacher}: {kind}, {r.changed} changed, {r.removed} removed"
            if r.unknown:
                line += (
                    f"; no free/busy data for {minutes_in_words(r.unknown)} of the "
                    "periods' windows (no slots offered then)"
                )
            print(line)
    print(f"synced {len(results) - failed} of {len(results)} calendars")
    return 1 if failed else 0


def cmd_slots(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    period = app.config.period(args.period)
    with app.db.read() as session:
        rows = period_slots(session, app.config, period, now=app.now(), teacher_email=args.teacher)
    if args.format == "json":
        sys.stdout.write(output.to_json([r.as_json() for r in rows]))
    elif args.format == "ics":
        sys.stdout.buffer.write(render.slots_ics(rows, title=period.title, now=app.now()))
    else:
        table = [{**r.as_json(), "start": r.start, "end": r.end} for r in rows]
        sys.stdout.write(output.to_table(table, SLOT_COLUMNS))
    return 0


def cmd_matrix(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    period = app.config.period(args.period)
    with app.db.read() as session:
        rows = period_matrix(session, app.config, period, teacher_email=args.teacher)
    if args.format == "json":
        sys.stdout.write(output.to_json([r.as_json() for r in rows]))
    elif args.format == "csv":
        sys.stdout.write(output.to_csv([r.as_json() for r in rows], MATRIX_COLUMNS))
    elif args.format == "html":
        sys.stdout.write(render.matrix_html(rows, title=f"{period.title}: scheduling matrix"))
    else:
        sys.stdout.write(render.matrix_text(rows))
    return 0
