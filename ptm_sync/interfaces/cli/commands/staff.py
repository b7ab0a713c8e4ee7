"""`book`, `reschedule`, `cancel`, `late` and `waitlist`: staff acting for families
(DESIGN §7).

Times without a UTC offset are in the school's zone; a date is the school's local date.
A refusal is one line on stderr with the reason and up to three free times, exit code 1.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from ptm_sync.app.channels import staff
from ptm_sync.app.channels.late import run_late
from ptm_sync.app.context import App
from ptm_sync.app.read.records import waitlist
from ptm_sync.app.services import video_provider
from ptm_sync.core.booking.late import MAX_MINUTES as MAX_LATE_MINUTES
from ptm_sync.core.booking.values import Decision, MeetingView
from ptm_sync.interfaces.cli import output
from ptm_sync.interfaces.cli.commands.common import deliver

WAITLIST_COLUMNS = ["teacher", "guardian", "students", "position", "since"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("book", help="staff booking for a guardian (phone, paper form)")
    p.add_argument("--guardian", required=True, metavar="EMAIL", help="the guardian's address")
    p.add_argument("--teacher", required=True, metavar="EMAIL", help="the teacher's address")
    p.add_argument(
        "--start",
        required=True,
        type=iso_time,
        metavar="ISO",
        help="the slot's start, e.g. 2027-04-12T15:30 (school's zone without an offset)",
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
    p.add_argument("meeting", type=int, metavar="MEETING_ID", help="the meeting's id")
    p.add_argument(
        "--start",
        required=True,
        type=iso_time,
        metavar="ISO",
        help="the new start, e.g. 2027-04-12T15:30 (school's zone without an offset)",
    )
    p.add_argument("--override", action="store_true", help="set aside the deadline and the caps")
    p.set_defaults(func=cmd_reschedule)

    p = sub.add_parser(
        "cancel",
        help="cancel a meeting, or a teacher's whole day",
        usage="%(prog)s MEETING_ID [--reason TEXT] | --teacher EMAIL --date DATE [--reason TEXT]",
    )
    p.add_argument("meeting", type=int, nargs="?", metavar="MEETING_ID", help="one meeting's id")
    p.add_argument("--teacher", metavar="EMAIL", help="with --date: every meeting that day")
    p.add_argument(
        "--date", type=iso_date, metavar="DATE", help="the school's local date, e.g. 2027-04-12"
    )
    p.add_argument("--reason", default="", metavar="TEXT", help="told to the families")
    p.set_defaults(func=cmd_cancel, usage_error=p.error)

    p = sub.add_parser(
        "late",
        help="a teacher runs N minutes late: their later meetings that day move",
        description="A teacher runs N minutes late from a time on: their confirmed meetings "
        "that day that have not started yet move by N minutes where they can (the families "
        "get a calendar update); a meeting that cannot move, and every one before it, stays "
        "and its family is told by email. No meeting moves to another day.",
    )
    p.add_argument("--teacher", required=True, metavar="EMAIL", help="the teacher's address")
    p.add_argument(
        "--minutes",
        required=True,
        type=late_minutes,
        metavar="N",
        help=f"how many minutes late, 1 to {MAX_LATE_MINUTES}",
    )
    p.add_argument(
        "--from",
        dest="since",
        type=clock_or_iso,
        metavar="TIME",
        help="HH:MM today in the school's zone, or an ISO time (default: now)",
    )
    p.set_defaults(func=cmd_late)

    p = sub.add_parser("waitlist", help="families waiting for a teacher, in order")
    p.add_argument("--teacher", metavar="EMAIL", help="one teacher (default: every teacher)")
    p.add_argument("--period", metavar="ID", help="one period (default: every period)")
    p.add_argument("--format", choices=["table", "json"], default="table", help="output format")
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
    proposed = waiting = 0
    for decision in result.cancelled:
        print(f"cancelled: {_line(decision, tz)}")
        cancelled = decision.before.id if decision.before is not None else None
        instead = result.replacements.get(cancelled) if cancelled is not None else None
        if instead is not None:
            proposed += 1
            print(f"  proposed instead: {_meeting(instead, tz)}")
        elif decision.waitlist is not None:
            waiting += 1
            print("  no other time free: the family is on the teacher's waiting list")
        elif decision.left:
            print("  left the roster (roster import --replace): no replacement, no waiting list")
    for meeting_id, why in result.left:
        print(f"left: meeting {meeting_id}: {why}")
    print(
        f"cancelled {len(result.cancelled)} meetings of {args.teacher} on {day}"
        + (f"; {len(result.left)} left as they were" if result.left else "")
    )
    if result.cancelled:
        print(
            f"{proposed} replacement time{'s' if proposed != 1 else ''} proposed, "
            f"{waiting} on the waiting list; {result.notices} "
            f"guardian{'s' if result.notices != 1 else ''} sent the day's notice"
        )
    if result.cancelled:
        print("note: those times are bookable again unless the teacher's calendar shows them busy")
        deliver(app)
    return 0


def cmd_late(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    tz, now = app.config.tz, app.now()
    since = when_from(args.since, now, tz)
    result = run_late(
        app.db,
        app.config,
        teacher=args.teacher,
        minutes=args.minutes,
        since=since,
        now=now,
        video=video_provider(app.config),
    )
    local = f"{since.astimezone(tz):%Y-%m-%d %H:%M}"
    started = result.started
    if not result.decisions and not result.left:
        if started:
            print(
                f"nothing to move: the {_meetings(started)} of {args.teacher} from {local} "
                f"that day {'has' if started == 1 else 'have all'} started"
            )
        else:
            print(
                f"no confirmed meetings of {args.teacher} from {local} that day: nothing to change"
            )
        return 0
    for decision in result.decisions:
        print(_late_line(decision, tz))
    for meeting_id, why in result.left:
        print(f"left: meeting {meeting_id}: {why}")
    moved, told = len(result.moved), len(result.told)
    print(
        f"{args.teacher} runs {args.minutes} minutes late from {local}: "
        f"{moved} meeting{'s' if moved != 1 else ''} moved, "
        f"{told} stay{'s' if told == 1 else ''}"
        + (f" (the famil{'y' if told == 1 else 'ies'} told)" if told else "")
        + (f"; {_meetings(started)} already started, left as they are" if started else "")
    )
    deliver(app)
    return 0


def _meetings(count: int) -> str:
    return f"{count} meeting{'s' if count != 1 else ''}"


def _late_line(decision: Decision, tz: ZoneInfo) -> str:
    before, after = decision.before, decision.after
    assert before is not None and after is not None
    if before.slot == after.slot:
        return f"told: {_meeting(after, tz)}: stays, the family is told the teacher runs late"
    old, new = before.start.astimezone(tz), after.start.astimezone(tz)
    return (
        f"moved: {_meeting(after, tz)} (from {old:%H:%M}-{before.end.astimezone(tz):%H:%M} "
        f"to {new:%H:%M}-{after.end.astimezone(tz):%H:%M})"
    )


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


def late_minutes(text: str) -> int:
    """How late a teacher runs: a whole number of minutes from 1 to
    :data:`MAX_LATE_MINUTES` (argparse ``type``: anything else is a usage error, exit 2;
    a teacher later than that cancels the evening instead)."""
    try:
        minutes = int(text.strip())
    except ValueError:
        minutes = 0
    if minutes <= 0:
        raise argparse.ArgumentTypeError(f"not a positive number of minutes: {text!r} (e.g. 10)")
    if minutes > MAX_LATE_MINUTES:
        raise argparse.ArgumentTypeError(
            f"{minutes} minutes is more than {MAX_LATE_MINUTES}: a teacher that late should "
            "cancel the evening (cancel --teacher EMAIL --date DATE)"
        )
    return minutes


_CLOCK = re.compile(r"\d{1,2}:\d{2}")


def clock_or_iso(text: str) -> time | datetime:
    """``HH:MM`` (a clock time, today in the school's zone: :func:`when_from`) or an ISO
    8601 time (argparse ``type``: anything else is a usage error, exit 2)."""
    text = text.strip()
    try:
        if _CLOCK.fullmatch(text):
            return time.fromisoformat(text.zfill(5))
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not HH:MM or an ISO 8601 time: {text!r} (e.g. 15:15 or 2027-04-12T15:15)"
        ) from None


def when_from(given: time | datetime | None, now: datetime, tz: ZoneInfo) -> datetime:
    """The moment ``--from`` names (aware): a clock time is today's in the school's zone
    (today: ``now``'s date there); a time without an offset is in the school's zone;
    nothing is ``now``."""
    if given is None:
        return now
    if isinstance(given, datetime):
        return in_zone(given, tz)
    return datetime.combine(now.astimezone(tz).date(), given, tzinfo=tz)


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
