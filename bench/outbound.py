"""Outbound mail benchmark: delivering the outbox must cost little more than sending the bytes.

``outbound_over_raw``: a school with 2,000 proposed meetings, made by the real ``invite``
path on a SQLite file, so 2,000 invitation emails wait in the outbox (the families'
notification emails are set aside as already sent).  Ours is the time the real delivery
path takes for them — what ``ptm-sync outbox flush`` runs,
:class:`ptm_sync.app.outbox.dispatch.Dispatcher` (the SMTP server's worker, beside the calendar
accounts' ones): claim due rows, send each over one reused SMTP connection, record it as
done, renew the leases — into a local aiosmtpd sink that accepts and counts.  The
floor is ``smtplib`` sending the very same 2,000 messages to the same sink over one
connection, ``sendmail`` per message, with no bookkeeping at all.  The figure is the ratio
of throughputs, floor time over our time.  Target: >= 0.5.  (``invite`` stores its emails
rendered; the answers to parents' messages are stored as letters and rendered when they
are delivered, which keeps the booking transaction short — ``bench/inbound.py`` — and
costs this path about 2 ms per such email.)

Run from the repository root: ``.venv/bin/python bench/outbound.py [--quick]``.
"""

from __future__ import annotations

import argparse
import smtplib
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import Figure, run, say
from _school import NOW, Email, School, pending_emails, school
from aiosmtpd.controller import Controller
from sqlalchemy import func, select, update

from ptm_sync.adapters.store import Outbox
from ptm_sync.app import outbox
from ptm_sync.app.outbox.dispatch import Dispatcher
from ptm_sync.app.sync import Connectors
from ptm_sync.demo.embedded import free_port

SENT_AT = NOW + timedelta(minutes=5)
INVITATIONS = Outbox.key.like("email:<invitation.%")


class CountingSink:
    """aiosmtpd handler that accepts every message and counts messages and bytes."""

    def __init__(self) -> None:
        self.messages = 0
        self.octets = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.messages += 1
            self.octets += len(envelope.original_content or b"")
        return "250 2.0.0 OK: queued"


def only_invitations_pending(made: School) -> None:
    """The families' notification emails count as sent: only the invitations remain."""
    with made.db.write() as session:
        session.execute(
            update(Outbox)
            .where(Outbox.state == outbox.PENDING, ~INVITATIONS)
            .values(state=outbox.DONE, done_at=NOW)
        )


def reset_invitations(made: School) -> None:
    """Every invitation pending again, as ``invite`` left it (between timed runs)."""
    with made.db.write() as session:
        session.execute(
            update(Outbox)
            .where(INVITATIONS)
            .values(state=outbox.PENDING, attempts=0, claimed_until=None, done_at=None)
        )


def ours(made: School, sink: CountingSink, expected: int) -> float:
    """The outbox delivers every pending invitation (one SMTP connection, QUIT included)."""
    reset_invitations(made)
    before = sink.messages
    connectors = Connectors(made.config)
    began = time.perf_counter()
    try:
        report = Dispatcher(made.db, made.config, connectors, lambda: SENT_AT).flush()
    finally:
        connectors.close()
    elapsed = time.perf_counter() - began
    # Checked outside the timing: everything went out once and is recorded as done.
    assert (report.delivered, report.retried, report.dead) == (expected, 0, 0), report
    assert sink.messages - before == expected, (sink.messages, before)
    with made.db.read() as session:
        done = session.scalar(select(func.count()).where(INVITATIONS, Outbox.state == outbox.DONE))
    assert done == expected, done
    return elapsed


def floor(emails: list[Email], port: int, sink: CountingSink) -> float:
    """The same bytes with smtplib over one connection, ``sendmail`` per message."""
    before = sink.messages
    began = time.perf_counter()
    connection = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        for mail in emails:
            connection.sendmail(mail.sender, list(mail.to), mail.raw)
    finally:
        connection.quit()
    elapsed = time.perf_counter() - began
    assert sink.messages - before == len(emails), (sink.messages, before)
    return elapsed


def outbound_over_raw(options: argparse.Namespace) -> Figure:
    messages = 200 if options.quick else 2000
    repeat = options.repeat or 3
    sink = CountingSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10.0)
    controller.start()
    try:
        with tempfile.TemporaryDirectory(prefix="ptm-bench-outbound-") as temp:
            say(f"outbound_over_raw: setting up {messages} proposed meetings (invite) ...")
            began = time.perf_counter()
            made = school(Path(temp), messages, smtp_port=port)
            only_invitations_pending(made)
            emails = pending_emails(made.db)
            assert len(emails) == messages, len(emails)
            size = sum(len(m.raw) for m in emails) / len(emails)
            say(
                f"  {len(emails)} invitations of {size / 1024:.1f} KiB on average, to an "
                f"aiosmtpd sink on 127.0.0.1:{port}; set up in {time.perf_counter() - began:.1f} s;"
                f" best of {repeat}"
            )
            best_ours = best_floor = float("inf")
            for _ in range(max(1, repeat)):
                best_floor = min(best_floor, floor(emails, port, sink))
                best_ours = min(best_ours, ours(made, sink, messages))
            made.db.dispose()
    finally:
        controller.stop()
    say(
        f"  ours  (outbox flush: claim, send, mark done): {best_ours:8.3f} s  "
        f"{messages / best_ours:8.0f} messages/s"
    )
    say(
        f"  floor (smtplib sendmail, same bytes):         {best_floor:8.3f} s  "
        f"{messages / best_floor:8.0f} messages/s"
    )
    say(f"  the sink accepted {sink.messages} messages, {sink.octets / 1048576:.1f} MiB in all")
    return Figure("outbound_over_raw", best_floor / best_ours, ">=", 0.5)


if __name__ == "__main__":
    raise SystemExit(run(__doc__, [outbound_over_raw]))
