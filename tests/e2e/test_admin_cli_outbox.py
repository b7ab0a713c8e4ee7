"""`outbox`, `outbox retry` and `invite` with the mail server down, as an administrator
meets them (DESIGN §7): real Radicale, a real SMTP sink (aiosmtpd) or a port where nothing
listens, SQLite, the command line as a process."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.mailservers import SmtpSink
from tests.support.school import TZ, School
from tests.support.servers import free_port

pytestmark = pytest.mark.radicale

OUTBOX_KEYS = {"id", "kind", "meeting", "state", "attempts", "next_attempt_at", "last_error"}


def outbox_rows(school: School) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = school.run("outbox", "--format", "json", fast=True).json()
    assert all(set(row) == OUTBOX_KEYS for row in rows), rows
    return rows


def test_invite_with_the_mail_server_down_says_nothing_was_sent_and_the_holds_run(
    tmp_path: Path, radicale_server: EmbeddedCalDAV
) -> None:
    school = School(tmp_path, radicale_server, free_port())  # nothing listens there
    school.setup()
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    invited = school.run("invite")
    after = datetime.now(UTC)
    out = invited.out
    assert "proposed 6 meetings to 3 guardians" in out
    assert "nothing was sent yet: 9 emails to families wait in the outbox" in out
    assert "`ptm-sync outbox flush` sends them when the mail server answers" in out
    # One line for the failure (the reason once), none on stderr, no library repr.
    assert out.count("Connection refused") + out.count("connection refused") == 1, out
    assert invited.err == ""
    assert "0x" not in out and "object at" not in out
    # The holds started at the invitation (hold_hours = 48), and the note says so and
    # until when, in the school's zone.
    hold = next(line for line in out.splitlines() if line.startswith("note: the proposed"))
    assert "held from now, not from when the invitations are sent" in hold
    found = re.search(r"the holds end (\d{4}-\d\d-\d\d \d\d:\d\d) ", hold)
    assert found, hold
    ends = datetime.fromisoformat(found[1]).replace(tzinfo=TZ)
    assert before + timedelta(hours=48) <= ends <= after + timedelta(hours=48)
    rows = outbox_rows(school)
    assert len([r for r in rows if r["kind"] == "email"]) == 9
    assert {r["state"] for r in rows if r["kind"] == "email"} <= {"waiting", "retrying"}


def test_retry_all_sends_what_waited_for_a_server_that_is_back(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> None:
    sink = smtp_sink(mode="plain")
    sink.refuse("sam@example.com", "550 5.1.1 No such user")
    school = School(tmp_path, radicale_server, sink.port)
    school.setup()
    school.run("invite", fast=True)
    dead = [r for r in outbox_rows(school) if r["state"] == "dead"]
    assert len(dead) == 2
    sink.handler.refusals.clear()
    requeued = school.run("outbox", "retry", "--all", fast=True)
    assert requeued.out.startswith("2 outbox rows requeued: due now")
    before = len(sink.received)
    school.run("outbox", "flush", fast=True)
    assert len(sink.received) == before + 2 and outbox_rows(school) == []
    neither = school.run("outbox", "retry", check=False)
    assert neither.code == 2  # an id or --all


def test_outbox_lists_dead_letters_and_retry_requeues_one(
    tmp_path: Path, radicale_server: EmbeddedCalDAV, smtp_sink: Callable[..., SmtpSink]
) -> None:
    sink = smtp_sink(mode="plain")
    sink.refuse("sam@example.com", "550 5.1.1 No such user")
    school = School(tmp_path, radicale_server, sink.port)
    school.setup()
    school.run("invite", fast=True)
    rows = outbox_rows(school)
    # Only what was not delivered: Sam's notification and invitation, given up at once.
    assert [r["state"] for r in rows] == ["dead", "dead"], rows
    assert all(r["attempts"] == 1 and "550" in str(r["last_error"]) for r in rows)
    sams = {m["id"] for m in school.meetings() if m["guardian"] == "sam@example.com"}
    assert {r["meeting"] for r in rows} == {None} | sams  # the notification has no meeting

    table = school.run("outbox", fast=True).out.splitlines()
    assert table[0].split() == [
        "id",
        "kind",
        "meeting",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error",
    ]
    assert len(table) == 2 + len(rows)  # header, rule, one line per row

    sink.handler.refusals.clear()  # the office fixed Sam's address on the mail server
    invitation = next(r for r in rows if r["meeting"] is not None)
    done = school.run("outbox", "retry", str(invitation["id"]))
    assert done.out.startswith(f"outbox row {invitation['id']} (email of meeting ")
    again = {r["id"]: r for r in outbox_rows(school)}
    assert again[invitation["id"]]["state"] == "waiting"
    assert again[invitation["id"]]["attempts"] == 0
    assert again[invitation["id"]]["last_error"] == ""
    before = len(sink.received)
    school.run("outbox", "flush", fast=True)
    assert len(sink.received) == before + 1
    assert [r["id"] for r in outbox_rows(school)] == [
        r["id"] for r in rows if r["id"] != invitation["id"]
    ]
    # A row that was delivered, or none at all: one line, exit 1, nothing changed.
    delivered = school.run("outbox", "retry", str(invitation["id"]), check=False)
    assert delivered.code == 1
    assert delivered.err.splitlines() == [
        f"ptm-sync: outbox row {invitation['id']} was delivered already: nothing to retry"
    ]
    unknown = school.run("outbox", "retry", "9999", check=False, fast=True)
    assert (unknown.code, unknown.err) == (
        1,
        "ptm-sync: no outbox row 9999 (see `ptm-sync outbox`)\n",
    )
