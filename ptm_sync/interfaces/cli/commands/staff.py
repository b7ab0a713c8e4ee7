"""`book`, `reschedule`, `cancel` and `waitlist`: staff acting for families (DESIGN §7).

Times without a UTC offset are in the school's zone; a date is the school's local date.
A refusal is one line on stderr with the reason and up to three free times, exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from zoneinfo import ZoneInfo

from ptm_sync.app.channels import staff
from ptm_sync.app.context import App
from ptm_sync.app.read.records import waitlist
from ptm_sync.app.services import video_provider
from ptm_sync.core.booking.values import Decision, MeetingView
from ptm_sync.interfaces.cli import output
from ptm_sync.interfaces.cli.commands.common import deliver

WAITLIST_COLUMNS = ["teacher", "guardian", "students", "position", "since"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("book", help="staff booking for a guardian (phone, paper form)")
    p.add_argument("--guardian", required=True, metavar="EMAIL")
    p.add_argument("--teacher", required=True, metavar="EMAIL")
    p.add_argument(
        "--start", required=True, type=iso_time, metavar="ISO", help="e.g. 2027-04-12T15:30"
    )
    p.add_argument(
        "--student",
        metavar="ID",
        help="only this student (default: all of the guardian's students with the teacher)",
    )
    p.add_argument("--override", action="store_true", help="set aside the deadline and the caps")
    p.add_argument("--note", default="", metavar="TEXT", help="kept in the meeting's history")
    p.set_defaults(func=cmd_book)

    p = sub.add_parser("reschedule", help="move a meeting to another time")
    p.add_argument("meeting", type=int, metavar="MEETING_ID")
    p.add_argument("--start", required=True, type=iso_time, metavar="ISO")
    p.add_argument("--override", action="store_true", help="set aside the deadline and the caps")
    p.set_defaults(func=cmd_reschedule)

    p = sub.add_parser(
        "cancel",
        help="cancel a meeting, or a teacher's whole day",
        usage="%(prog)s MEETING_ID [--reason TEXT] | --teacher EMAIL --date DATE [--reason TEXT]",
    )
    p.add_argument("meeting", type=int, nargs="?", metavar="MEETING_ID")
    p.add_argument("--teacher", metavar="EMAIL", help="with --date: every meeting that day")
    p.add_argument(
        "--date", type=iso_date, metavar="DATE", help="the school's local date, e.g. 2027-04-12"
    )
    p.add_argument("--reason", default="", metavar="TEXT", help="told to the families")
    p.set_defaults(func=cmd_cancel, usage_error=p.error)

    p = sub.add_parser("waitlist", help="families waiting for a teacher, in order")
    p.add_argument("--teacher", metavar="EMAIL")
    p.add_argument("--period", metavar="ID")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_waitlist)


def cmd_book(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    decision = staff.book(
        app.db,
        app.config,
        guardian=args.guardian,
        teacher=args.teacher,
        start=in_zone(args.start, app.config.tz),
        student=args.student,
        override=args.override,
        note=args.note,
        now=app.now(),
        video=video_provider(app.config),
    )
    print(f"booked: {_line(decision, app.config.tz)}")
    if decision.overrides:
        print(f"staff override recorded: {', '.join(decision.overrides)}")
    for follow in decision.then:
        print(f"superseded: {_line(follow, app.config.tz)}")
    deliver(app)
    return 0


def cmd_reschedule(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    decision = staff.reschedule(
        app.db,
        app.config,
        args.meeting,
        in_zone(args.start, app.config.tz),
        override=args.override,
        now=app.now(),
        video=video_provider(app.config),
    )
    print(f"moved: {_line(decision, app.config.tz)}")
    if decision.overrides:
        print(f"staff override recorded: {', '.join(decision.overrides)}")
    deliver(app)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    bulk = args.teacher is not None or args.date is not None
    if args.meeting is not None and bulk:
        args.usage_error("give either MEETING_ID or --teacher and --date, not both")
    if args.meeting is None and not (args.teacher and args.date):
        args.usage_error("give MEETING_ID, or --teacher EMAIL and --date DATE")
    app = App.from_args(args)
    tz = app.config.tz
    video = video_provider(app.config)
    if args.meeting is not None:
        decision = staff.cancel(
            app.db, app.config, args.meeting, reason=args.reason, now=app.now(), video=video
        )
        print(f"cancelled: {_line(decision, tz)}")
        deliver(app)
        return 0
    day = args.date
    result = staff.cancel_day(
        app.db,
        app.config,
        teacher=args.teacher,
        day=day,
        reason=args.reason,
        now=app.now(),
        video=video,
    )
    for decision in result.cancelled:
        print(f"cancelled: {_line(decision, tz)}")
    for meeting_id, why in result.left:
        print(f"left: meeting {meeting_id}: {why}")
    print(
        f"cancelled {len(result.cancelled)} meetings of {args.teacher} on {day}"
        + (f"; {len(result.left)} left as they were" if result.left else "")
    )
    if result.cancelled:
        print("note: those times are bookable again unless the teacher's calendar shows them busy")
        deliver(app)
    return 0


def cmd_waitlist(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    with app.db.read() as session:
        rows = waitlist(session, app.config, teacher_email=args.teacher, period_id=args.period)
    if args.format == "json":
        sys.stdout.write(output.to_json([r.as_json() for r in rows]))
    else:
        table = [{**r.as_json(), "since": r.since} for r in rows]
        sys.stdout.write(output.to_table(table, WAITLIST_COLUMNS))
    return 0


def iso_time(text: str) -> datetime:
    """An ISO 8601 time from the command line (argparse ``type``: a bad one is a usage
    error, exit 2); naive when it names no UTC offset (:func:`in_zone` gives it the
    school's)."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2027-04-12T15:30)"
        ) from None


def in_zone(moment: datetime, tz: ZoneInfo) -> datetime:
    """``moment``; without a UTC offset, in the school's zone."""
    return moment.replace(tzinfo=tz) if moment.tzinfo is None else moment


def iso_date(text: str) -> date:
    """A date from the command line (argparse ``type``: a bad one is a usage error)."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (e.g. 2027-04-12)") from None


def _line(decision: Decision, tz: ZoneInfo) -> str:
    meeting = decision.after or decision.before
    assert meeting is not None
    return _meeting(meeting, tz)


def _meeting(m: MeetingView, tz: ZoneInfo) -> str:
    start, end = m.start.astimezone(tz), m.end.astimezone(tz)
    guardians = ", ".join(p.email for p in m.parties)
    students = ",".join(s.student_id for s in m.students)
    return (
        f"meeting {m.id} {start:%Y-%m-%d %H:%M}-{end:%H:%M} {m.teacher.email} with {guardians}"
        f" ({students}): {m.state}"
    )
