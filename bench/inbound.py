"""Inbound mail benchmark: deciding on parents' replies must cost little more than reading them.

``inbound_over_floor``: a school with 2,000 proposed meetings, made by the real ``invite``
path on a SQLite file (WAL, ``synchronous=FULL``, as the store opens it).  Each invitation
in the outbox gets the reply a parent's client would send (Outlook, Gmail, Apple Mail,
Thunderbird, Proton shapes; mostly ACCEPTED, some DECLINED).  Ours is the time
:func:`ptm_sync.app.channels.replies.process` — what ``ptm-sync mail deliver`` runs — takes for all
of them: read the message, match the meeting, check the sender, confirm or decline, enqueue
the confirmation email and the calendar write, record the message, commit durably.  The
floor is what any correct service must do at least: parse the same messages with ``email``
and ``icalendar`` (find the calendar part, ``Calendar.from_ical``) plus one bare durable
single-row commit each on a SQLite file with the same pragmas.  The figure is the ratio of
throughputs, floor time over our time.  Target: >= 0.5.

Run from the repository root: ``.venv/bin/python bench/inbound.py [--quick]``.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import random
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from _common import Figure, run, say
from _school import NOW, School, pending_emails, school
from icalendar import Calendar
from sqlalchemy import func, select

from ptm_sync.adapters.store import Database, Meeting
from ptm_sync.app.channels.replies import process
from ptm_sync.core.booking.decide import APPLIED
from ptm_sync.demo import parents

CLIENTS = tuple(parents.CLIENTS)  # outlook, gmail, apple, thunderbird, proton
DECLINED_SHARE = 0.15
REPLIED_AT = NOW + timedelta(hours=3)
SEED = 20270322
_CALENDAR_TYPES = ("text/calendar", "application/ics")


@dataclass(frozen=True, slots=True)
class Workload:
    school: School
    replies: list[bytes]
    answers: Counter[str]  # partstat -> how many
    clients: Counter[str]  # client -> how many


def workload(folder: Path, messages: int, seed: int = SEED) -> Workload:
    """The school and one reply per invitation, client and answer chosen at random (seeded)."""
    made = school(folder, messages)
    rng = random.Random(seed)
    replies: list[bytes] = []
    answers: Counter[str] = Counter()
    clients: Counter[str] = Counter()
    for n, invitation in enumerate(pending_emails(made.db)):
        client = rng.choice(CLIENTS)
        partstat = "DECLINED" if rng.random() < DECLINED_SHARE else "ACCEPTED"
        sent = REPLIED_AT + timedelta(seconds=n)
        replies.append(parents.reply(client, invitation.raw, partstat, tz=made.config.tz, now=sent))
        answers[partstat] += 1
        clients[client] += 1
    made.db.dispose()  # checkpoints the WAL: the file alone is the snapshot
    return Workload(made, replies, answers, clients)


def ours(work: Workload, snapshot: Path) -> tuple[float, Counter[str]]:
    """Every reply through ``process`` on a fresh copy of the school's database."""
    target = work.school.database_file
    for suffix in ("-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(snapshot, target)
    config, video = work.school.config, work.school.video
    db = Database(config.database.url)
    db.ping()  # the connection is opened before the clock starts, as in a running daemon
    outcomes: Counter[str] = Counter()
    began = time.perf_counter()
    for raw in work.replies:
        outcome = process(db, config, raw, now=REPLIED_AT, video=video)
        outcomes[f"{outcome.outcome} ({outcome.reason})"] += 1
    elapsed = time.perf_counter() - began
    with db.read() as session:
        states = Counter(
            dict(session.execute(select(Meeting.state, func.count()).group_by(Meeting.state)).all())
        )
    db.dispose()
    # Checked outside the timing: every reply was a decision, and the decisions stuck.
    expected = {"confirmed": work.answers["ACCEPTED"], "declined": work.answers["DECLINED"]}
    assert sum(n for o, n in outcomes.items() if o.startswith(APPLIED)) == len(work.replies), (
        outcomes
    )
    assert {k: states[k] for k in expected} == expected, states
    return elapsed, outcomes


def parsed_uid(raw: bytes) -> str:
    """The floor's reading of one message: ``email`` parses it, ``icalendar`` its first
    calendar part; the event's UID."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    for part in message.walk():
        if part.get_content_type() in _CALENDAR_TYPES:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            calendar = Calendar.from_ical(payload)
            return str(calendar.events[0]["UID"])
    raise AssertionError("a message of the workload without a calendar part")


def floor(replies: list[bytes], folder: Path) -> float:
    """Parse each message with ``email`` + ``icalendar`` and commit one row durably."""
    path = folder / "floor.db"
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE t (uid TEXT)")
    began = time.perf_counter()
    for raw in replies:
        uid = parsed_uid(raw)
        connection.execute("BEGIN")
        connection.execute("INSERT INTO t VALUES (?)", (uid,))
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - began
    connection.close()
    return elapsed


def inbound_over_floor(options: argparse.Namespace) -> Figure:
    messages = 200 if options.quick else 2000
    repeat = options.repeat or (3 if options.quick else 2)
    with tempfile.TemporaryDirectory(prefix="ptm-bench-inbound-") as temp:
        folder = Path(temp)
        say(f"inbound_over_floor: setting up {messages} proposed meetings (invite) ...")
        began = time.perf_counter()
        work = workload(folder, messages)
        snapshot = folder / "snapshot.db"
        shutil.copyfile(work.school.database_file, snapshot)
        shown = ", ".join(f"{k} {v}" for k, v in sorted(work.clients.items()))
        say(
            f"  {len(work.replies)} replies ({work.answers['ACCEPTED']} accepted, "
            f"{work.answers['DECLINED']} declined; {shown}), "
            f"set up in {time.perf_counter() - began:.1f} s; best of {repeat}"
        )
        best_ours = best_floor = float("inf")
        outcomes: Counter[str] = Counter()
        for _ in range(max(1, repeat)):
            best_floor = min(best_floor, floor(work.replies, folder))
            elapsed, outcomes = ours(work, snapshot)
            best_ours = min(best_ours, elapsed)
    count = len(work.replies)
    say(f"  outcomes: {', '.join(f'{k}: {v}' for k, v in sorted(outcomes.items()))}")
    say(
        f"  ours  (process: read, decide, enqueue, commit): {best_ours:8.3f} s  "
        f"{count / best_ours:8.0f} decisions/s"
    )
    say(
        f"  floor (email+icalendar parse, 1-row commit):    {best_floor:8.3f} s  "
        f"{count / best_floor:8.0f} messages/s"
    )
    return Figure("inbound_over_floor", best_floor / best_ours, ">=", 0.5)


if __name__ == "__main__":
    raise SystemExit(run(__doc__, [inbound_over_floor]))
