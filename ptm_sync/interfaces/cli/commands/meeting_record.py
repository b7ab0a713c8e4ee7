"""`meetings show ID`, `meetings mark ID --no-show|--attended [--reason TEXT]` and
`meetings note ID TEXT` (DESIGN §7): one meeting's record, as staff read and keep it.

Registered under `meetings` by :mod:`ptm_sync.interfaces.cli.commands.booking`.  A refused
mark is one line on stderr with the core's reason, exit code 1 (a correction of
``completed`` ↔ ``no_show`` without ``--reason`` names the option); an empty note is a usage
error (exit 2).  Notes and feedback are shown here and nowhere a family looks.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from ptm_sync.app.channels import marks
from ptm_sync.app.context import App
from ptm_sync.app.read.records import MeetingRecord, Remark, Transition, meeting_record
from ptm_sync.app.services import video_provider
from ptm_sync.core.booking.decide import DUPLICATE
from ptm_sync.core.errors import UserError
from ptm_sync.interfaces.cli import output

HISTORY_COLUMNS = ["when", "actor", "change", "time", "reason", "message"]

#: A note's author when the operating system names no user.
STAFF = "staff"


def register(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `show`, `mark` and `note` to the `meetings` command's actions."""
    show = actions.add_parser("show", help="one meeting's whole history, notes and feedback")
    show.add_argument("id", type=int, metavar="ID", help="the meeting's id (see `meetings`)")
    show.set_defaults(func=cmd_meetings_show)

    mark = actions.add_parser(
        "mark",
        help="staff mark what happened: the family came, or did not",
        description="A confirmed meeting that has started becomes completed (--attended) or "
        "no_show (--no-show). Correcting completed <-> no_show needs --reason.",
    )
    mark.add_argument("id", type=int, metavar="ID", help="the meeting's id (see `meetings`)")
    which = mark.add_mutually_exclusive_group(required=True)
    which.add_argument("--no-show", action="store_true", help="the family did not come")
    which.add_argument("--attended", action="store_true", help="the family came")
    mark.add_argument("--reason", default="", metavar="TEXT", help="kept in the history")
    mark.set_defaults(func=cmd_meetings_mark)

    note = actions.add_parser(
        "note",
        help="a staff-only note on a meeting (never shown to the family or in a calendar)",
        description="Attach a note to a meeting (preparation, outcome). Notes are shown only "
        "in `meetings show`, never to a family or in a calendar.",
    )
    note.add_argument("id", type=int, metavar="ID", help="the meeting's id (see `meetings`)")
    note.add_argument("text", nargs="+", metavar="TEXT", help="the note")
    note.set_defaults(func=cmd_meetings_note, usage_error=note.error)


def cmd_meetings_show(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    with app.db.read() as session:
        record = meeting_record(session, app.config, args.id)
    sys.stdout.write(meeting_text(record))
    return 0


def cmd_meetings_mark(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    try:
        decision = marks.mark(
            app.db,
            app.config,
            args.id,
            attended=args.attended,
            reason=args.reason,
            now=app.now(),
            video=video_provider(app.config),
        )
    except marks.ReasonNeeded as exc:
        raise UserError(f"{exc} (give it with --reason TEXT)") from None
    meeting = decision.after or decision.before
    assert meeting is not None
    if decision.outcome == DUPLICATE:
        print(f"meeting {args.id} is {meeting.state} already: nothing changed")
    else:
        print(f"marked: meeting {args.id} is {meeting.state}")
    return 0


def cmd_meetings_note(args: argparse.Namespace) -> int:
    text = " ".join(args.text).strip()
    if not text:
        args.usage_error("the note is empty")
    app = App.from_args(args)
    note_id = marks.add_note(app.db, args.id, text, author=_author(), now=app.now())
    print(f"note {note_id} kept on meeting {args.id} (staff only: `ptm-sync meetings show`)")
    return 0


def _author() -> str:
    """Who writes the note: the operating system's user name, else "staff"."""
    try:
        return getpass.getuser() or STAFF
    except (OSError, KeyError):  # no user name in the environment nor the password file
        return STAFF


def meeting_text(m: MeetingRecord) -> str:
    """`meetings show`: the meeting, its history, then its notes and feedback."""
    students = ", ".join(m.students)
    head = [
        f"meeting {m.id} ({m.period}): {m.teacher} with {', '.join(m.guardians)}"
        + (f" about {students}" if students else ""),
        f"{m.start:%a %Y-%m-%d %H:%M}-{m.end:%H:%M} {m.start:%Z}: {m.state}, "
        f"sequence {m.sequence}, {m.origin}",
        f"uid {m.uid}",
    ]
    if m.purged_at is not None:
        head.append(
            f"personal data purged {m.purged_at:%Y-%m-%d %H:%M %Z}: notes, feedback, messages "
            "and reasons were deleted; the states and times are kept"
        )
    head.append("")
    rows = [
        {
            "when": t.at,
            "actor": t.actor,
            "change": f"{t.from_state or 'new'} -> {t.to_state}",
            "time": _moved(t),
            "reason": t.reason,
            "message": f"#{t.inbound_id} {t.message_id}".strip() if t.inbound_id else "",
        }
        for t in m.history
    ]
    text = "\n".join(head) + output.to_table(rows, HISTORY_COLUMNS)
    return text + _remarks("Notes", m.notes) + _remarks("Feedback", m.feedback, senders=True)


def _remarks(title: str, remarks: tuple[Remark, ...], *, senders: bool = False) -> str:
    """Notes (by their author) or feedback (``senders``: by the guardian who sent it, name
    and email)."""
    if not remarks:
        return ""
    lines = ["", f"{title}:"]
    for r in remarks:
        by = f" {_sender(r)}" if senders else f" {r.by}" if r.by else ""
        first, *more = r.text.splitlines() or [""]
        lines.append(f"  {r.at:%Y-%m-%d %H:%M}{by}: {first}")
        lines += [f"    {line}" for line in more]
    return "\n".join(lines) + "\n"


def _sender(r: Remark) -> str:
    """Who sent a feedback: ``Name <email>``; said so when not known."""
    if not r.by:
        return "(sender unknown)"
    return f"{r.by_name} <{r.by}>" if r.by_name else f"<{r.by}>"


def _moved(t: Transition) -> str:
    if t.moved and t.old_start is not None and t.new_start is not None:
        same_day = t.old_start.date() == t.new_start.date()
        new = f"{t.new_start:%H:%M}" if same_day else f"{t.new_start:%Y-%m-%d %H:%M}"
        return f"{t.old_start:%Y-%m-%d %H:%M} -> {new}"
    return f"{t.new_start:%Y-%m-%d %H:%M}" if t.new_start is not None else ""
