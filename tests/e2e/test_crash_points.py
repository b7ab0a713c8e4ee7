"""Crash points (DESIGN §9, issue 7 item 8): the real command line killed at every point.

One school per database (SQLite, PostgreSQL) on Radicale, an aiosmtpd sink and Dovecot.  The
walk takes each crash point in turn: it runs the command that passes the point with
``PTM_CRASH_AT`` set, checks that the process died *there* (exit 137 and the point's line on
stderr), checks what the dead process left behind, runs the command again without the
variable, and then proves:

* nothing is lost: every outbox row is done, every email the database holds reached the
  sink, every reply changed its meeting exactly once;
* at most the one item in flight is repeated: each crash adds at most one email received
  twice (emails are told apart by their fixed Message-ID), and no email arrives three times;
* the teacher's calendar (Radicale) holds exactly the confirmed meetings, at their times,
  one event each, where the database says; and the last calendar message each guardian
  received for a meeting says what the database says of it (REQUEST CONFIRMED, REQUEST
  TENTATIVE or CANCEL).
"""

from __future__ import annotations

import email
import email.policy
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from icalendar import Calendar
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from connectors.base import CalendarRef, Horizon
from connectors.caldav import CalDAVConnector
from ptm_sync.adapters.store import Database, Inbound, Meeting, MeetingGuardian, Outbox
from ptm_sync.app import outbox
from ptm_sync.app.booking.apply import CREATING
from ptm_sync.core.booking.notices import email_of
from ptm_sync.demo import parents
from ptm_sync.ops.crashpoints import EXIT_CODE, POINTS, VARIABLE
from tests.support.caldav_servers import EmbeddedCalDAV, account_for
from tests.support.cli import ptm_sync, toml_value
from tests.support.mailservers import Mailbox, SmtpSink
from tests.support.school import TZ, ImapSchool, School, now_utc

pytestmark = [pytest.mark.radicale, pytest.mark.dovecot, pytest.mark.slow]


@dataclass
class CrashSchool(School):
    """The CLI school of :mod:`tests.support.school` on the database ``database_url``."""

    database_url: str = ""

    def write(self) -> None:
        super().write()
        text = self.config.read_text()
        url = f"url = {toml_value(self.database_url)}"
        self.config.write_text(text.replace('url = "sqlite:///ptm.db"', url))


def _message(raw: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def _calendar(raw: bytes) -> Calendar | None:
    for part in _message(raw).walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return Calendar.from_ical(payload)
    return None


def _path(href: str) -> str:
    return urlsplit(href).path


@dataclass
class Walk:
    """The school, its servers and what the walk allows: one repeat per delivery crash."""

    school: CrashSchool
    sink: SmtpSink
    caldav: EmbeddedCalDAV
    mailbox: Mailbox
    db: Database
    repeats_allowed: int = 0

    # --- running the command line ---------------------------------------------------------

    def crash(self, point: str, *args: str, stdin: bytes | None = None) -> None:
        """Run ``ptm-sync ARGS`` with ``PTM_CRASH_AT=point``; it must die at that point."""
        done = ptm_sync(self.school.config, *args, env={VARIABLE: point}, stdin=stdin, process=True)
        name = point.partition(":")[0]
        assert done.returncode == EXIT_CODE, (
            f"{args} with {VARIABLE}={point} ended {done.returncode}, not at the point:\n"
            f"{done.stdout}\n{done.stderr}"
        )
        assert f"crash point {name}" in done.stderr
        assert "Traceback" not in done.stderr

    def run(self, *args: str, stdin: bytes | None = None) -> str:
        return self.school.run(*args, stdin=stdin).out

    def flush_after_crash(self) -> None:
        """`outbox flush` as a restart after a dead flush runs it: the dead process's
        claims are retaken at once (its owner is known dead, item 3), and it says so when
        there were any."""
        claimed = self.claimed()
        out = self.run("outbox", "flush")
        if claimed:
            assert "left unfinished by a stopped ptm-sync process" in out, out
        assert self.claimed() == 0

    def claimed(self) -> int:
        """Pending rows still under a claim."""
        with self.db.read() as session:
            return len(
                session.scalars(
                    select(Outbox.id).where(
                        Outbox.state == outbox.PENDING, Outbox.claimed_until.is_not(None)
                    )
                ).all()
            )

    # --- reading the three sides ------------------------------------------------------------

    def meetings(self) -> dict[str, dict[str, Any]]:
        """Every meeting by UID: state, sequence, times, remote href, guardians' emails."""
        with self.db.read() as session:
            rows = session.scalars(
                select(Meeting).options(
                    selectinload(Meeting.guardians).selectinload(MeetingGuardian.guardian)
                )
            ).all()
            return {
                m.uid: {
                    "id": m.id,
                    "state": m.state,
                    "sequence": m.sequence,
                    "start": m.start,
                    "end": m.end,
                    "href": m.remote_href,
                    "guardians": sorted(g.guardian.email for g in m.guardians),
                }
                for m in rows
            }

    def pending(self) -> int:
        with self.db.read() as session:
            return int(
                session.scalar(
                    select(func.count()).select_from(Outbox).where(Outbox.state != outbox.DONE)
                )
                or 0
            )

    def inbound_count(self) -> int:
        with self.db.read() as session:
            return int(session.scalar(select(func.count()).select_from(Inbound)) or 0)

    def calendar_events(self) -> list[tuple[str, str, datetime]]:
        """(UID, href path, start) of every event in every teacher's calendar."""
        start = datetime.now(UTC) - timedelta(days=1)
        connector = CalDAVConnector(
            account_for(self.caldav), TZ, Horizon(start, start + timedelta(days=60))
        )
        found = []
        try:
            for url in self.school.calendars.values():
                for change in connector.changes(CalendarRef("dav", url), None).changed:
                    for event in Calendar.from_ical(change.ics).events:
                        found.append((str(event["UID"]), _path(change.href), event.start))
        finally:
            connector.close()
        return found

    def invitation(self, uid: str) -> bytes:
        """The newest REQUEST the sink received for meeting ``uid``."""
        for mail in reversed(self.sink.received):
            cal = _calendar(mail.raw)
            if (
                cal is not None
                and str(cal.get("METHOD")) == "REQUEST"
                and str(cal.events[0]["UID"]) == uid
            ):
                return mail.raw
        raise AssertionError(f"no REQUEST received for {uid}")

    def reply(self, uid: str, partstat: str, client: str = "thunderbird") -> bytes:
        return parents.reply(client, self.invitation(uid), partstat, tz=TZ, now=now_utc())

    # --- the invariants -------------------------------------------------------------------

    def check(self, step: str) -> None:
        """Nothing lost, at most one repeat per crash, calendar and mailboxes as the DB says."""
        with self.db.read() as session:
            rows = session.scalars(select(Outbox).order_by(Outbox.id)).all()
            left = [(r.id, r.kind, r.state, r.last_error[:80]) for r in rows if r.state != "done"]
            expected = {
                str(_message(email_of(json.loads(r.payload)))["Message-ID"])
                for r in rows
                if r.kind == outbox.EMAIL
            }
        assert not left, f"{step}: outbox rows not delivered: {left}"

        got = Counter(str(_message(m.raw)["Message-ID"]) for m in self.sink.received)
        assert set(got) == expected, (
            f"{step}: lost {expected - set(got)}; sent but not in the outbox {set(got) - expected}"
        )
        twice = {mid: n for mid, n in got.items() if n > 1}
        assert all(n == 2 for n in twice.values()), f"{step}: sent more than twice: {twice}"
        assert len(twice) <= self.repeats_allowed, (
            f"{step}: {len(twice)} emails repeated after {self.repeats_allowed} delivery crashes"
        )

        meetings = self.meetings()
        self._check_mailboxes(step, meetings)
        self._check_calendar(step, meetings)

    def _check_mailboxes(self, step: str, meetings: dict[str, dict[str, Any]]) -> None:
        last: dict[tuple[str, str], Calendar] = {}
        for mail in self.sink.received:
            cal = _calendar(mail.raw)
            if cal is None or not cal.events:
                continue
            for rcpt in mail.rcpt_tos:
                last[(str(cal.events[0]["UID"]), rcpt.lower())] = cal
        for uid, m in meetings.items():
            for guardian in m["guardians"]:
                cal = last.get((uid, guardian))
                assert cal is not None, f"{step}: {guardian} never heard of meeting {m['id']}"
                method, event = str(cal["METHOD"]), cal.events[0]
                seen = (method, str(event.get("STATUS", "")))
                if m["state"] in ("confirmed", "proposed"):
                    status = "CONFIRMED" if m["state"] == "confirmed" else "TENTATIVE"
                    assert seen == ("REQUEST", status), f"{step}: meeting {m['id']} {m['state']}"
                    assert int(event["SEQUENCE"]) == m["sequence"]
                    assert event.start == m["start"]
                else:
                    assert method == "CANCEL", f"{step}: meeting {m['id']} is {m['state']}"

    def _check_calendar(self, step: str, meetings: dict[str, dict[str, Any]]) -> None:
        events = self.calendar_events()
        uids = [uid for uid, _, _ in events]
        assert len(uids) == len(set(uids)), f"{step}: an event written twice: {sorted(uids)}"
        confirmed = {uid for uid, m in meetings.items() if m["state"] == "confirmed"}
        assert set(uids) == confirmed, f"{step}: calendar {sorted(uids)} vs DB {sorted(confirmed)}"
        for uid, href, start in events:
            m = meetings[uid]
            assert start == m["start"], f"{step}: meeting {m['id']} at another time"
            assert m["href"] not in (None, CREATING), f"{step}: href of {m['id']} not recorded"
            assert _path(m["href"]) == href, f"{step}: meeting {m['id']} recorded elsewhere"
        for uid, m in meetings.items():
            if uid not in confirmed:
                assert m["href"] is None, f"{step}: meeting {m['id']} keeps a removed event"


@pytest.fixture
def walk(
    db_url: str,
    radicale_server: EmbeddedCalDAV,
    imap_school: Callable[..., ImapSchool],
) -> Iterator[Walk]:
    school, sink, mailbox = imap_school(kind=CrashSchool, database_url=db_url)
    assert isinstance(school, CrashSchool)
    db = Database(db_url)
    try:
        yield Walk(school, sink, radicale_server, mailbox, db)
    finally:
        db.dispose()


def test_every_crash_point_is_walked_and_loses_nothing(walk: Walk) -> None:
    walked: set[str] = set()
    walk.run("invite")  # 6 proposals to 3 guardians, sent at once
    walk.check("invite")
    uids = [uid for uid, _ in sorted(walk.meetings().items(), key=lambda kv: kv[1]["id"])]
    assert len(uids) == 6

    # after-decide: the reply was decided and written, never committed.  The MTA saw the
    # pipe fail and delivers the same message again.
    reply = walk.reply(uids[0], "ACCEPTED", client="outlook")
    walk.crash("after-decide", "mail", "deliver", stdin=reply)
    walked.add("after-decide")
    assert walk.meetings()[uids[0]]["state"] == "proposed" and walk.inbound_count() == 0
    assert walk.run("mail", "deliver", stdin=reply).strip() == "applied (accepted)"
    walk.run("outbox", "flush")
    walk.check("after-decide")

    # after-commit: the decision is kept; the message delivered again is a duplicate.
    reply = walk.reply(uids[1], "ACCEPTED", client="gmail")
    walk.crash("after-commit", "mail", "deliver", stdin=reply)
    walked.add("after-commit")
    assert walk.meetings()[uids[1]]["state"] == "confirmed" and walk.inbound_count() == 2
    assert walk.run("mail", "deliver", stdin=reply).strip() == "duplicate (already processed)"
    walk.run("outbox", "flush")
    walk.check("after-commit")

    # after-send (second email of the flush): the first was marked done, the second is the
    # one in flight.  A decline also proposes the next best time (a new meeting).
    assert walk.run("mail", "deliver", stdin=walk.reply(uids[2], "ACCEPTED")).strip() == (
        "applied (accepted)"
    )
    declined = walk.reply(uids[3], "DECLINED", client="apple")
    assert walk.run("mail", "deliver", stdin=declined).strip() == "applied (declined)"
    walk.crash("after-send:2", "outbox", "flush")
    walked.add("after-send")
    walk.repeats_allowed += 1
    assert walk.pending() > 0
    walk.flush_after_crash()
    walk.check("after-send")
    reproposed = [u for u, m in walk.meetings().items() if u not in uids]
    assert len(reproposed) == 1

    # before-mark-done: the first row of the flush (email or calendar) delivered, not marked.
    assert walk.run("mail", "deliver", stdin=walk.reply(uids[4], "ACCEPTED")).strip() == (
        "applied (accepted)"
    )
    walk.crash("before-mark-done", "outbox", "flush")
    walked.add("before-mark-done")
    walk.repeats_allowed += 1
    walk.flush_after_crash()
    walk.check("before-mark-done")

    # mid-calendar-write on a create: the server took the event, its href was not kept.
    new = reproposed[0]
    assert walk.run("mail", "deliver", stdin=walk.reply(new, "ACCEPTED")).strip() == (
        "applied (accepted)"
    )
    walk.crash("mid-calendar-write", "outbox", "flush")
    walked.add("mid-calendar-write")
    walk.repeats_allowed += 1  # the confirmation may have gone out before the calendar row
    assert walk.meetings()[new]["href"] == CREATING
    assert new in {uid for uid, _, _ in walk.calendar_events()}
    walk.flush_after_crash()
    walk.check("mid-calendar-write (create)")

    # mid-imap-flag: a batch of two replies over IMAP (an accept, and a decline of a
    # confirmed meeting, which cancels it and removes its event) committed, not flagged.
    accepted = walk.mailbox.append(walk.reply(uids[5], "ACCEPTED", client="apple"))
    cancelled = walk.mailbox.append(walk.reply(uids[0], "DECLINED", client="proton"))
    walk.crash("mid-imap-flag", "mail", "fetch")
    walked.add("mid-imap-flag")
    states = walk.meetings()
    assert (states[uids[5]]["state"], states[uids[0]]["state"]) == ("confirmed", "cancelled")
    for uid in (accepted, cancelled):
        assert "$PtmProcessed" not in walk.mailbox.flags(uid)
    out = walk.run("mail", "fetch")
    assert out.count("duplicate (already processed)") == 2 and "2 messages processed" in out
    for uid in (accepted, cancelled):
        assert "$PtmProcessed" in walk.mailbox.flags(uid)
    walk.run("outbox", "flush")
    walk.check("mid-imap-flag")

    assert walked == set(POINTS)
    # Every reply changed its meeting once: the history holds no transition twice.
    final = walk.meetings()
    assert final[uids[0]]["state"] == "cancelled" and final[uids[3]]["state"] == "declined"
    assert {final[u]["state"] for u in (uids[1], uids[2], uids[4], uids[5], new)} == {"confirmed"}


def test_a_crash_between_a_calendar_update_and_its_etag_is_reconciled(walk: Walk) -> None:
    walk.run("invite")
    uid = min(walk.meetings().items(), key=lambda kv: kv[1]["id"])[0]
    assert walk.run("mail", "deliver", stdin=walk.reply(uid, "ACCEPTED")).strip() == (
        "applied (accepted)"
    )
    walk.run("outbox", "flush")
    walk.check("accepted")

    # Staff move the confirmed meeting; `reschedule` sends at once and dies after the PUT
    # of the new time, before its ETag is recorded.
    moved = walk.meetings()[uid]
    teacher = next(m for m in walk.school.meetings() if m["uid"] == uid)["teacher"]
    free = json.loads(walk.run("slots", "--teacher", teacher, "--format", "json"))
    # The first free time the family's other meetings leave room for (a refused move
    # changes nothing and exits 1).
    for slot in reversed(free):
        args = ("reschedule", str(moved["id"]), "--start", slot["start"])
        done = ptm_sync(
            walk.school.config, *args, env={VARIABLE: "mid-calendar-write"}, process=True
        )
        if done.returncode != 1:
            break
    assert done.returncode == EXIT_CODE and "crash point mid-calendar-write" in done.stderr
    walk.repeats_allowed += 1  # the update email may have gone out before the calendar row
    assert walk.meetings()[uid]["start"] == datetime.fromisoformat(slot["start"])
    assert walk.meetings()[uid]["start"] in {s for u, _, s in walk.calendar_events() if u == uid}
    walk.flush_after_crash()
    walk.check("mid-calendar-write (update)")
