"""A reminder that waited in the outbox is never sent once its meeting has started, nor
after the meeting was cancelled or moved (DESIGN §3, §6: "reminders (dropped once the
meeting has started)").

The mail server refuses the family for a while (451, try later) when `jobs run remind`
queues the reminders; `outbox flush` runs when it takes mail again.  What is decided at
delivery: the reminder is finished without being sent, its row is done with the reason, and
nothing counts as a failure.  Radicale holds the calendars, aiosmtpd receives; the
commands' clock is set with ``PTM_SYNC_NOW``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ptm_sync.adapters.store import Database, Outbox
from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import at, ptm_sync
from tests.support.mailservers import SmtpSink
from tests.support.school import TZ, School, calendar_part, parse, plain_body, to_address

pytestmark = [pytest.mark.radicale, pytest.mark.slow]

ALAN, GRACE = "alan@lincoln.example.org", "grace@lincoln.example.org"
PAT, MARIA = "pat@example.net", "maria@example.org"
#: What the family's mail server answers while it is away for a while.
TRY_LATER = "451 4.3.2 Mailbox busy, try again later"


@pytest.fixture
def school(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> tuple[School, SmtpSink]:
    sink = smtp_sink(mode="plain")
    s = School(tmp_path, radicale_server, sink.port)
    s.setup()
    return s, sink


def local(s: School, clock: str) -> datetime:
    return datetime.combine(s.day, time.fromisoformat(clock), tzinfo=TZ)


def book(s: School, guardian: str, teacher: str, clock: str) -> dict[str, Any]:
    done = s.run(
        "book", "--guardian", guardian, "--teacher", teacher, "--start", f"{s.day}T{clock}"
    )
    meeting_id = int(done.out.split("meeting ", 1)[1].split()[0])
    return next(m for m in s.meetings() if m["id"] == meeting_id)


def command(s: School, moment: datetime, *args: str) -> list[str]:
    """``ptm-sync ARGS`` as if it were ``moment``; its output lines (it must succeed)."""
    done = ptm_sync(s.config, *args, env=at(moment))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout.splitlines()


def reminders(sink: SmtpSink, since: int = 0) -> list[bytes]:
    return [
        m.raw
        for m in sink.received[since:]
        if str(parse(m.raw)["Message-ID"]).startswith("<reminder.")
    ]


def reminder_rows(s: School) -> list[tuple[str, str]]:
    """(state, last_error) of every reminder in the outbox, oldest first."""
    db = Database(f"sqlite:///{s.folder / 'ptm.db'}")
    try:
        with db.read() as session:
            rows = session.execute(
                select(Outbox.state, Outbox.last_error)
                .where(Outbox.key.like("email:<reminder.%"))
                .order_by(Outbox.id)
            ).all()
    finally:
        db.dispose()
    return [(str(state), str(error)) for state, error in rows]


def outbox_left(s: School, moment: datetime) -> list[dict[str, Any]]:
    """`outbox --format json`: what waits, retries or is dead-lettered."""
    rows: list[dict[str, Any]] = json.loads(
        "\n".join(command(s, moment, "outbox", "--format", "json"))
    )
    return rows


def test_a_reminder_that_waited_past_the_start_is_never_sent(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    soon = book(s, PAT, GRACE, "15:30")
    later = book(s, MARIA, ALAN, "16:45")
    sink.refuse(PAT, TRY_LATER)
    sink.refuse(MARIA, TRY_LATER)

    out = command(s, local(s, "15:05"), "jobs", "run", "remind")
    assert out[0] == "remind: 2 reminders queued"
    assert out[1].startswith("delivered 0; ")  # each waits (retried, or left for later)
    assert reminders(sink) == []

    # The mail server takes mail again at 15:40: Grace's 15:30 meeting has started, its
    # reminder is dropped; Alan's at 16:45 is still to come and is reminded.
    sink.handler.refusals.clear()
    done = ptm_sync(s.config, "outbox", "flush", "-v", env=at(local(s, "15:40")))
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    # The log says so, naming no family.
    assert "(email) not sent: dropped: the meeting has started" in done.stderr
    assert PAT not in done.stderr and "Pat" not in done.stderr
    assert out[0] == "delivered 1; 0 will be retried; 0 failed; 1 dropped as no longer wanted"
    assert any(
        line.strip().startswith("email:<reminder.")
        and line.endswith(": dropped: the meeting has started")
        for line in out[1:]
    ), out
    [sent] = reminders(sink)
    assert to_address(sent) == MARIA
    assert "16:45–17:00 (Eastern Time)" in plain_body(sent)
    # Finished, not failed: nothing waits or is dead-lettered, the reason is kept.
    rows = reminder_rows(s)
    assert [state for state, _ in rows] == ["done", "done"]
    assert [e for _, e in rows if e.startswith("dropped")] == ["dropped: the meeting has started"]
    assert outbox_left(s, local(s, "15:41")) == []
    assert {m["id"]: m["state"] for m in s.meetings()} == {
        soon["id"]: "confirmed",
        later["id"]: "confirmed",
    }
    # Flushed again much later: nothing more.
    assert command(s, local(s, "18:50"), "outbox", "flush")[0] == (
        "delivered 0; 0 will be retried; 0 failed"
    )
    assert len(reminders(sink)) == 1


def test_a_reminder_of_a_meeting_cancelled_before_the_flush_is_not_sent_the_cancel_is(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    meeting = book(s, PAT, GRACE, "16:30")
    before = len(sink.received)
    sink.refuse(PAT, TRY_LATER)
    out = command(s, local(s, "15:05"), "jobs", "run", "remind")
    assert out[0] == "remind: 1 reminder queued"
    assert out[1] == "delivered 0; 1 will be retried; 0 failed"

    # Staff cancel it at once, the reminder not due for another try yet (backoff): the
    # CANCEL waits behind it (one meeting's emails go in order), or for Pat's server.
    out = command(s, local(s, "15:05:10"), "cancel", str(meeting["id"]), "--reason", "ill")
    assert "dropped" not in out[-1]
    assert [state for state, _ in reminder_rows(s)] == ["pending"]
    assert sink.received[before:] == []

    # The mail server takes mail again: the reminder is dropped, the CANCEL goes.
    sink.handler.refusals.clear()
    out = command(s, local(s, "15:20"), "outbox", "flush")
    assert out[0] == "delivered 1; 0 will be retried; 0 failed; 1 dropped as no longer wanted"
    assert any(line.endswith(": dropped: the meeting was cancelled") for line in out[1:]), out
    assert reminders(sink, before) == []
    [cancel] = [m.raw for m in sink.received[before:]]
    assert to_address(cancel) == PAT
    event = calendar_part(cancel)
    assert str(event["METHOD"]) == "CANCEL"
    [vevent] = event.walk("VEVENT")
    assert str(vevent["UID"]) == meeting["uid"]
    assert int(vevent["SEQUENCE"]) == meeting["sequence"] + 1
    assert reminder_rows(s) == [("done", "dropped: the meeting was cancelled")]
    assert outbox_left(s, local(s, "15:21")) == []


def test_a_reminder_of_a_meeting_moved_meanwhile_is_dropped_and_the_new_time_reminded(
    school: tuple[School, SmtpSink],
) -> None:
    s, sink = school
    meeting = book(s, PAT, GRACE, "16:00")
    sink.refuse(PAT, TRY_LATER)
    command(s, local(s, "15:05"), "jobs", "run", "remind")
    out = command(
        s, local(s, "15:10"), "reschedule", str(meeting["id"]), "--start", f"{s.day}T16:30"
    )
    # Delivered: the teacher's event moved; retried: the update to Pat.
    assert out[-1] == "delivered 1; 1 will be retried; 0 failed; 1 dropped as no longer wanted"
    assert reminder_rows(s) == [
        ("done", "dropped: the meeting was moved (its new time is reminded on its own)")
    ]

    sink.handler.refusals.clear()
    out = command(s, local(s, "15:15"), "outbox", "flush")
    assert out[0] == "delivered 1; 0 will be retried; 0 failed"
    assert reminders(sink) == []  # the old time's reminder names a wrong time: dropped
    [update] = [m.raw for m in sink.received if to_address(m.raw) == PAT][-1:]
    assert str(calendar_part(update)["METHOD"]) == "REQUEST"

    # The new time gets its own reminder.
    assert command(s, local(s, "15:20"), "jobs", "run", "remind")[0] == (
        "remind: 1 reminder queued"
    )
    [sent] = reminders(sink)
    assert "16:30–16:45 (Eastern Time)" in plain_body(sent)


def test_a_feedback_request_that_waited_past_the_purge_is_not_sent(
    school: tuple[School, SmtpSink],
) -> None:
    """The meeting's personal data went (`purge --before`) while its feedback request
    waited for the family's mail server: the request is dropped, never sent."""
    s, sink = school
    meeting = book(s, PAT, GRACE, "15:30")
    before = len(sink.received)
    sink.refuse(PAT, TRY_LATER)
    command(s, local(s, "15:45"), "jobs", "run", "complete")
    out = command(s, local(s, "15:50"), "jobs", "run", "feedback")
    assert out[0] == "feedback: 1 feedback request queued"
    next_morning = local(s, "09:00") + timedelta(days=1)
    command(s, next_morning, "purge", "--before", str(next_morning.date()))
    assert "personal data purged" in s.run("meetings", "show", str(meeting["id"])).out

    sink.handler.refusals.clear()
    out = command(s, next_morning + timedelta(minutes=5), "outbox", "flush")
    assert out[0] == "delivered 0; 0 will be retried; 0 failed; 1 dropped as no longer wanted"
    assert any(
        line.strip().startswith("email:<feedback_request.")
        and line.endswith(": dropped: the meeting's personal data was purged")
        for line in out[1:]
    ), out
    assert sink.received[before:] == []
    assert outbox_left(s, next_morning + timedelta(minutes=6)) == []
