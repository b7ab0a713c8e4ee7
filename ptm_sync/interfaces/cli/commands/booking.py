"""`invite`, `meetings`, `outbox`, `outbox flush`, `outbox retry`; `meetings show`, `mark`
and `note` live in :mod:`~ptm_sync.interfaces.cli.commands.meeting_record`.

`meetings` validates its filters: a state that is none (``--state bogus``) is a usage error
naming the states (exit 2); so is ``--retired`` or ``--conflicts`` with ``--state``, or the
two together (each lists confirmed meetings of its own kind: a combination would list
nothing, or a subset nobody asked for); an unknown teacher is an error, as for `slots`
(exit 1).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ptm_sync.adapters.store import (
    Guardian,
    Meeting,
    MeetingGuardian,
    MeetingStudent,
    Student,
    Teacher,
)
from ptm_sync.app import outbox
from ptm_sync.app.channels.offers import InviteResult, invite
from ptm_sync.app.context import App
from ptm_sync.app.read.availability import teachers
from ptm_sync.app.read.conflicts import conflicts
from ptm_sync.app.read.retired import retired_meetings
from ptm_sync.app.services import flush_outbox, send_now, video_provider
from ptm_sync.app.sync import opened
from ptm_sync.core.model import MeetingState
from ptm_sync.interfaces.cli import output
from ptm_sync.interfaces.cli.commands import meeting_record
from ptm_sync.interfaces.cli.commands.common import delivered_line, reported_here
from ptm_sync.ops.failures import plain
from ptm_sync.ops.redact import mask_urls

OUTBOX_COLUMNS = ["id", "kind", "meeting", "state", "attempts", "next_attempt_at", "last_error"]
#: Longest cell of the `outbox` table (an error text can be long); json gives it whole.
OUTBOX_CELL_WIDTH = 80

#: The table shows the first nine; json and csv all of them.
MEETING_COLUMNS = [
    "id",
    "period",
    "teacher",
    "guardian",
    "students",
    "start",
    "end",
    "state",
    "sequence",
    "video_url",
    "location",
    "uid",
    "guardians",
]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("invite", help="plan itineraries and send notifications and invitations")
    p.add_argument("--period", metavar="ID")
    p.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    p.set_defaults(func=cmd_invite)

    p = sub.add_parser("meetings", help="the record of meetings")
    states = [s.value for s in MeetingState]
    p.add_argument(
        "--state",
        metavar="S",
        choices=states,
        help=f"only meetings in this state: {', '.join(states)}",
    )
    p.add_argument("--teacher", metavar="EMAIL")
    p.add_argument(
        "--conflicts",
        action="store_true",
        help="only confirmed meetings not yet over that a busy event of the teacher now overlaps",
    )
    p.add_argument(
        "--retired",
        action="store_true",
        help="only confirmed meetings of families or teachers who left the roster",
    )
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.set_defaults(func=cmd_meetings, usage_error=p.error)
    actions = p.add_subparsers(dest="meetings_command", metavar="ACTION")
    meeting_record.register(actions)

    p = sub.add_parser(
        "outbox", help="emails and calendar writes not delivered yet: waiting, retrying, dead"
    )
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_outbox)
    outbox_sub = p.add_subparsers(dest="outbox_command", metavar="ACTION")
    flush = outbox_sub.add_parser("flush", help="deliver every due email and calendar write now")
    flush.set_defaults(func=cmd_outbox_flush)
    retry = outbox_sub.add_parser(
        "retry", help="try a dead or retrying row again now, its attempts counted afresh"
    )
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", type=int, metavar="ID", nargs="?", help="its id in `outbox`")
    which.add_argument(
        "--all",
        action="store_true",
        help="every dead row and every row waiting to be retried (the server is back)",
    )
    retry.set_defaults(func=cmd_outbox_retry)


def cmd_invite(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    period = app.config.period(args.period)
    tz = app.config.tz
    now = app.now()
    result = invite(
        app.db,
        app.config,
        period,
        now=now,
        video=video_provider(app.config),
        dry_run=args.dry_run,
    )
    rows = [
        {
            "start": p.slot.start.astimezone(tz),
            "end": p.slot.end.astimezone(tz),
            "teacher": p.need.teacher,
            "guardian": ", ".join(p.need.guardians),
            "students": list(p.need.students),
        }
        for p in result.plan.proposals
    ]
    if args.dry_run:
        print(f"plan for {period.id} (dry run: nothing changed)")
        sys.stdout.write(output.to_table(rows, ["start", "end", "teacher", "guardian", "students"]))
    for need, reason in result.plan.unplaced:
        print(f"not placed: {need.guardian} with {need.teacher}: {reason}")
    if args.dry_run:
        print(f"{len(rows)} meetings would be proposed, {len(result.plan.unplaced)} not placed")
        return 0
    print(
        f"proposed {len(result.proposed)} meetings to {result.notified} guardians"
        + (f"; {result.lost_races} slots were taken meanwhile" if result.lost_races else "")
    )
    if not result.proposed:
        return 0
    with reported_here(args):
        report = send_now(app.db, app.config, app.now)
    if report is not None:
        print(delivered_line(report))
    unsent = outbox.unsent_emails(app.db, since=now)
    if unsent:
        for line in unsent_lines(unsent, report, result, app.config.tz):
            print(line)
    return 0


def unsent_lines(
    unsent: int, report: outbox.FlushReport | None, result: InviteResult, tz: ZoneInfo
) -> list[str]:
    """What an administrator must know when the invitations did not go out: nothing reached
    the families yet, where the emails wait, and that the holds did not wait for them."""
    holds = [m.hold_until for m in result.proposed if m.hold_until is not None]
    head = "nothing was sent yet" if report is None or report.delivered == 0 else "not all sent"
    lines = [
        f"{head}: {unsent} email{'s' if unsent != 1 else ''} to families "
        + ("wait" if unsent != 1 else "waits")
        + " in the outbox (`ptm-sync outbox`); the running daemon or `ptm-sync outbox flush` "
        + (
            "sends them when the mail server answers"
            if report is not None
            else "sends them once [mail.smtp] is configured"
        )
    ]
    if report is not None:
        # "key: reason" per failed row; the reasons once each (one server, one line).
        reasons = dict.fromkeys(e.partition(": ")[2] or e for e in report.errors)
        lines += [f"  {mask_urls(plain(reason))}" for reason in reasons]
    if holds:
        lines.append(
            "note: the proposed times are held from now, not from when the invitations are "
            f"sent: the holds end {min(holds).astimezone(tz):%Y-%m-%d %H:%M %Z} whether or not "
            "the families were told, so get the mail out soon (or `ptm-sync cancel` them)"
        )
    return lines


def _filters_that_clash(args: argparse.Namespace) -> str:
    """The filters given together that cannot be combined, named ("": none)."""
    given = [
        option
        for option, value in (
            ("--state", args.state),
            ("--conflicts", args.conflicts),
            ("--retired", args.retired),
        )
        if value
    ]
    return " and ".join(given) if len(given) > 1 else ""


def cmd_meetings(args: argparse.Namespace) -> int:
    together = _filters_that_clash(args)
    if together:
        args.usage_error(
            f"{together} cannot be combined: --conflicts and --retired each list confirmed "
            "meetings of their own kind; give one of them, or --state alone"
        )
    app = App.from_args(args)
    tz = app.config.tz
    with app.db.read() as session:
        query = (
            select(Meeting, Teacher.email, Guardian.email)
            .join(Teacher, Teacher.id == Meeting.teacher_id)
            .join(Guardian, Guardian.id == Meeting.guardian_id)
            .order_by(Meeting.start, Teacher.email)
        )
        if args.state:
            query = query.where(Meeting.state == args.state)
        if args.teacher:
            # An unknown teacher is an error, not "none"; one who left has meetings still.
            teachers(session, args.teacher, retired=True)
            query = query.where(Teacher.email == args.teacher.strip().lower())
        # Meetings over and done are no conflict anyone can act on: today's and later only.
        clashes = conflicts(session, after=app.now()) if args.conflicts else {}
        if args.conflicts:
            query = query.where(Meeting.id.in_(clashes))
        left = retired_meetings(session) if args.retired else {}
        if args.retired:
            query = query.where(Meeting.id.in_(left))
        found = session.execute(query).all()
        students: dict[int, list[str]] = {}
        for meeting_id, student in session.execute(
            select(MeetingStudent.meeting_id, Student.student_id).join(
                Student, Student.id == MeetingStudent.student_id
            )
        ):
            students.setdefault(meeting_id, []).append(student)
        # Every guardian of each meeting, the primary first, then in roster order.
        guardians: dict[int, list[str]] = {}
        for meeting_id, email in session.execute(
            select(MeetingGuardian.meeting_id, Guardian.email)
            .join(Guardian, Guardian.id == MeetingGuardian.guardian_id)
            .join(Meeting, Meeting.id == MeetingGuardian.meeting_id)
            .order_by(
                MeetingGuardian.meeting_id,
                MeetingGuardian.guardian_id != Meeting.guardian_id,
                MeetingGuardian.guardian_id,
            )
        ):
            guardians.setdefault(meeting_id, []).append(email)
    rows = [
        {
            "id": m.id,
            "uid": m.uid,
            "period": m.period_id,
            "teacher": teacher,
            "guardian": guardian,
            "students": sorted(students.get(m.id, [])),
            "start": m.start.astimezone(tz),
            "end": m.end.astimezone(tz),
            "state": m.state,
            "sequence": m.sequence,
            "video_url": m.video_url,
            "location": m.location,
            "guardians": guardians.get(m.id, []),
        }
        for m, teacher, guardian in found
    ]
    columns, shown = MEETING_COLUMNS, MEETING_COLUMNS[:9]
    if args.conflicts:
        # DESIGN §7: the meetings keys plus when the busy event that overlaps it is.
        for row, (m, _, _) in zip(rows, found, strict=True):
            clash = clashes[m.id]
            row["conflict_start"] = clash.start.astimezone(tz)
            row["conflict_end"] = clash.end.astimezone(tz)
        columns = [*MEETING_COLUMNS, "conflict_start", "conflict_end"]
        shown = [*MEETING_COLUMNS[:8], "conflict_start", "conflict_end"]
    if args.retired:
        # Who left the roster: the family (a guardian or student) or the teacher.
        for row, (m, _, _) in zip(rows, found, strict=True):
            row["retired"] = left[m.id].value
        columns, shown = [*columns, "retired"], [*shown, "retired"]
    if args.format == "json":
        sys.stdout.write(output.to_json(rows))
    elif args.format == "csv":
        sys.stdout.write(output.to_csv(rows, columns))
    else:
        sys.stdout.write(output.to_table(rows, shown))
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    """DESIGN §7 `outbox`: the rows not delivered, oldest first; ``last_error`` is the
    failure as the far side gave it (passwords in URLs masked)."""
    app = App.from_args(args)
    tz = app.config.tz
    rows = []
    for item in outbox.undelivered(app.db):
        row = item.as_json()
        at = item.next_attempt_at
        row["next_attempt_at"] = at.astimezone(tz) if at is not None else None
        row["last_error"] = mask_urls(plain(item.last_error))
        if args.format == "table" and item.meeting is None:
            row["meeting"] = ""
        rows.append(row)
    if args.format == "json":
        sys.stdout.write(output.to_json(rows))
    else:
        sys.stdout.write(output.to_table(rows, OUTBOX_COLUMNS, max_width=OUTBOX_CELL_WIDTH))
    return 0


def cmd_outbox_retry(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    if args.all:
        count = outbox.requeue_all(app.db, now=app.now())
        print(
            f"{count} outbox row{'s' if count != 1 else ''} requeued: due now, attempts counted "
            "from 0; `ptm-sync outbox flush` or the running daemon delivers them"
        )
        return 0
    item = outbox.requeue(app.db, args.id, now=app.now())
    what = f"{item.kind}" + (f" of meeting {item.meeting}" if item.meeting is not None else "")
    print(
        f"outbox row {item.id} ({what}) requeued: due now, attempts counted from 0; "
        "`ptm-sync outbox flush` or the running daemon delivers it"
    )
    return 0


def cmd_outbox_flush(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    with opened(app.config) as connectors:
        report = flush_outbox(app.db, app.config, connectors, app.now)
    print(delivered_line(report))
    for error in report.errors:
        print(mask_urls(f"  {plain(error)}"))  # a calendar URL's password
    for note in report.notes:
        print(f"  {note}")
    for line in backlog_lines(report, outbox.backlog(app.db, now=app.now()), app.config.tz):
        print(line)
    return 0


def backlog_lines(report: outbox.FlushReport, backlog: outbox.Backlog, tz: ZoneInfo) -> list[str]:
    """What a flush resumed and what it could not deliver yet, and why: counts and
    destinations only (no addresses, names or message text); times in the school's zone."""
    lines = []
    if report.resumed:
        lines.append(f"resumed {report.resumed} left unfinished by a stopped ptm-sync process")
    for where, count in sorted(report.deferred.items()):
        lines.append(f"not delivered yet: {count} for {where} (unreachable; tried again later)")
    if backlog.held:
        until = _local(backlog.held_until, tz) if backlog.held_until else "?"
        lines.append(
            f"not delivered yet: {backlog.held} being delivered by another running ptm-sync "
            f"(taken over if it stops, at the latest {until})"
        )
    if backlog.retrying:
        at = f", the first at {_local(backlog.retry_at, tz)}" if backlog.retry_at else ""
        lines.append(
            f"not delivered yet: {backlog.retrying} waiting to be retried{at} "
            "(`ptm-sync outbox` shows each one's last error; `outbox retry --all` tries now)"
        )
    return lines


def _local(moment: datetime, tz: ZoneInfo) -> str:
    return f"{moment.astimezone(tz):%Y-%m-%d %H:%M:%S %Z}"
