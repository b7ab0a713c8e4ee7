"""`mail deliver`, `mail fetch`, `quarantine`, `quarantine show` and `quarantine release`."""

from __future__ import annotations

import argparse
import sys
from typing import BinaryIO

from sqlalchemy import select

from ptm_sync.adapters.store import Inbound
from ptm_sync.app.channels.replies import process, reprocess
from ptm_sync.app.channels.reply_reading import input_limits
from ptm_sync.app.context import App
from ptm_sync.app.read.records import NO_CALENDAR_PART, InboundRecord, inbound_record
from ptm_sync.app.services import fetch_mail, video_provider
from ptm_sync.core.errors import UserError
from ptm_sync.interfaces.cli import output
from ptm_sync.interfaces.cli.commands.common import deliver
from ptm_sync.interfaces.cli.exits import handle_error

QUARANTINE_COLUMNS = ["id", "received_at", "message_id", "sender", "reason"]
#: Longest cell of the `quarantine` table: longer values (a sender's 100 KB Message-ID)
#: are cut with an ellipsis; `quarantine show` and `--format json` give them whole.
QUARANTINE_CELL_WIDTH = 80
#: Longest calendar line `quarantine show` prints whole (a refused line may be megabytes).
SHOWN_LINE_WIDTH = 1000
_CHUNK = 1 << 20


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("mail", help="inbound mail")
    mail_sub = p.add_subparsers(dest="mail_command", metavar="ACTION", required=True)
    d = mail_sub.add_parser("deliver", help="process one message read from stdin (MTA pipe)")
    d.set_defaults(func=cmd_deliver)
    f = mail_sub.add_parser("fetch", help="one pass over the IMAP inbox")
    f.set_defaults(func=cmd_fetch)

    q = sub.add_parser("quarantine", help="inbound messages that changed nothing, and why")
    q.add_argument("--format", choices=["table", "json"], default="table")
    q.set_defaults(func=cmd_quarantine)
    actions = q.add_subparsers(dest="quarantine_command", metavar="ACTION")
    show = actions.add_parser("show", help="one message: reason, sender, calendar part")
    show.add_argument("id", type=int, metavar="ID", help="its id in `quarantine`")
    show.set_defaults(func=cmd_quarantine_show)
    release = actions.add_parser(
        "release", help="process a quarantined message again, after its cause was fixed"
    )
    release.add_argument("id", type=int, metavar="ID", help="its id in `quarantine`")
    release.set_defaults(func=cmd_quarantine_release)


def cmd_deliver(args: argparse.Namespace) -> int:
    """Process one message from stdin, as an MTA pipe calls it.

    A message we read is never bounced: a usable or unusable message exits 0 (the latter
    lands in quarantine).  When we cannot process it at all — config broken, database
    down — the exit code is EX_TEMPFAIL so the MTA keeps it and retries, instead of
    returning the parent's reply to them as undeliverable.  A message over ``[mail]
    max_message_bytes`` is read only that far (the rest is drained) and quarantined
    (``too-large``).
    """
    try:
        app = App.from_args(args)
        raw = read_message(sys.stdin.buffer, input_limits(app.config).max_message_bytes)
        outcome = process(app.db, app.config, raw, now=app.now(), video=video_provider(app.config))
    except Exception as exc:  # noqa: BLE001 - anything: defer, never bounce
        return handle_error(exc, deferred=True)  # one line, EX_TEMPFAIL
    print(outcome)
    return 0


def read_message(stream: BinaryIO, limit: int) -> bytes:
    """At most ``limit`` + 1 bytes of ``stream`` (one more tells a message is too large);
    the rest is read and dropped, as an MTA pipe expects its message taken whole."""
    kept = stream.read(limit + 1)
    while stream.read(_CHUNK):
        pass
    return kept


def cmd_fetch(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    outcomes = fetch_mail(app.db, app.config, clock=app.now, video=video_provider(app.config))
    for outcome in outcomes:
        print(outcome)
    print(f"{len(outcomes)} messages processed")
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    tz = app.config.tz
    with app.db.read() as session:
        found = session.scalars(
            select(Inbound).where(Inbound.outcome == "quarantined").order_by(Inbound.id)
        ).all()
    rows = [
        {
            "id": r.id,
            "received_at": r.received_at.astimezone(tz),
            "message_id": r.message_id,
            "sender": r.sender,
            "reason": r.reason,
        }
        for r in found
    ]
    if args.format == "json":
        sys.stdout.write(output.to_json(rows))
    else:
        sys.stdout.write(output.to_table(rows, QUARANTINE_COLUMNS, max_width=QUARANTINE_CELL_WIDTH))
    return 0


def cmd_quarantine_show(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    with app.db.read() as session:
        record = inbound_record(session, app.config, args.id, input_limits(app.config))
    sys.stdout.write(_inbound_text(record))
    return 0


def cmd_quarantine_release(args: argparse.Namespace) -> int:
    app = App.from_args(args)
    outcome = reprocess(
        app.db, app.config, args.id, now=app.now(), video=video_provider(app.config)
    )
    print(outcome)
    if outcome.outcome == "quarantined":
        raise UserError(f"inbound message {args.id} is still in quarantine: {outcome.reason}")
    deliver(app)
    return 0


def _inbound_text(r: InboundRecord) -> str:
    lines = [f"inbound message {r.id}: {r.outcome}" + (f" ({r.reason})" if r.reason else "")]
    if r.explanation:
        lines.append(f"why:        {r.explanation}")
    lines += [
        f"received:   {r.received_at:%Y-%m-%d %H:%M:%S %Z}",
        f"sender:     {r.sender or '(none)'}",
        f"message-id: {r.message_id or '(none)'}",
    ]
    if r.subject:
        lines.append(f"subject:    {r.subject}")
    if r.meeting_id is not None:
        lines.append(f"meeting:    {r.meeting_id}")
    lines.append("")
    if r.calendar is None and r.missing == NO_CALENDAR_PART:
        lines.append(f"no calendar part: {r.missing}")
    elif r.calendar is None:
        lines.append(f"calendar part not shown: {r.missing}")
    else:
        shown = r.calendar.replace("\r\n", "\n").rstrip("\n").split("\n")
        lines += ["calendar part:", *(_shown_line(line) for line in shown)]
    return "\n".join(lines) + "\n"


def _shown_line(line: str) -> str:
    if len(line) <= SHOWN_LINE_WIDTH:
        return line
    return f"{line[:SHOWN_LINE_WIDTH]}… (cut: {len(line) - SHOWN_LINE_WIDTH} more characters)"
