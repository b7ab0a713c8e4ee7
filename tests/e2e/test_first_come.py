"""First come, first served, proven with separate processes (DESIGN §3, issue 6).

Fifty families ask for the same free slot with one teacher at the same moment, each
through its own ``ptm-sync mail deliver`` process as an MTA would run it: half propose it as
a new time for the meeting they were offered (Outlook's COUNTER), half invite the teacher's
booking address to it (Gmail's REQUEST).  Exactly one wins; every other one is answered with
a decline that offers free alternatives; the slot is booked once; no process fails, prints a
traceback or tells anybody that the database is locked.  On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from ptm_sync.adapters.store import Database, Meeting, Outbox
from ptm_sync.core.booking.notices import email_of
from ptm_sync.core.model import ACTIVE_STATES
from tests.support.booking import ADA, SeededSchool, calendar_of, config_text
from tests.support.booking_address import booking_request

RACERS = 50
#: One long evening: 32 slots of 15 minutes for Ada, enough to offer every family a time.
PERIODS = """
[[periods]]
id = "spring"
title = "Spring conferences"
slot_minutes = 15
gap_minutes = 5
hold_hours = 48
format = "video"
windows = ["2027-04-12T15:00/23:00"]
"""
FAMILIES = [
    (
        f"S{i:02d}",
        f"Kid{i:02d} Family{i:02d}",
        f"parent{i:02d}@example.net",
        f"Parent {i:02d}",
        [ADA],
    )
    for i in range(RACERS)
]
WANTED = 0  # the slot everybody asks for: the first of the evening


def _school(db_url: str, folder: Path) -> tuple[SeededSchool, Path]:
    db = Database(db_url)
    db.migrate()
    school = SeededSchool.create(db, families=FAMILIES, periods=PERIODS)
    text = config_text(periods=PERIODS) + f'\n[database]\nurl = "{db_url}"\n'
    config = folder / "ptm-sync.toml"
    config.write_text(text, encoding="utf-8")
    return school, config


def _messages(school: SeededSchool) -> list[bytes]:
    """Half the families counter-propose the wanted slot for the meeting they were
    offered; the other half invite Ada's booking address to it."""
    raws = []
    for i, (_, _, parent, _, _) in enumerate(FAMILIES):
        if i % 2 == 0:
            offered = school.propose(ADA, parent, slot=1 + i // 2)
            raws.append(school.counter(offered, slot=WANTED))
        else:
            raws.append(booking_request(school, parent, ADA, slot=WANTED, client="gmail"))
    return raws


def _deliver_all(config: Path, raws: list[bytes]) -> list[subprocess.CompletedProcess[bytes]]:
    """Start one `mail deliver` per message, then hand them their messages at once."""
    env = {k: v for k, v in os.environ.items() if k != "PTM_SYNC_CONFIG"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ptm_sync", "--config", str(config), "mail", "deliver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in raws
    ]
    for proc, raw in zip(procs, raws, strict=True):
        assert proc.stdin is not None
        proc.stdin.write(raw)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.stdin = None  # communicate() below only reads
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def _answers(school: SeededSchool) -> list[tuple[str, str, str]]:
    """(METHOD, recipient, text) of every calendar email written after the race."""
    found = []
    with school.db.read() as session:
        for row in session.scalars(
            select(Outbox).where(Outbox.kind == "email").order_by(Outbox.id)
        ):
            data = json.loads(row.payload)
            raw = email_of(data)
            cal = calendar_of(raw)
            if cal is None:
                continue
            event = cal.events[0]
            found.append((str(cal["METHOD"]), data["to"][0], str(event.get("COMMENT", ""))))
    return found


@pytest.mark.slow
def test_fifty_processes_race_for_one_slot_and_exactly_one_wins(
    db_url: str, tmp_path: Path
) -> None:
    school, config = _school(db_url, tmp_path)
    raws = _messages(school)
    invitations = len(_answers(school))

    results = _deliver_all(config, raws)

    failed = [(r.returncode, r.stderr.decode()[-2000:]) for r in results if r.returncode]
    assert failed == [], failed  # each racer's own words when it did not exit 0
    for r in results:
        err = r.stderr.decode()
        assert "Traceback" not in err and "locked" not in err.lower(), err
    outcomes = [r.stdout.decode().strip() for r in results]
    won = [o for o in outcomes if o in ("applied (counter accepted)", "applied (booked)")]
    assert len(won) == 1, outcomes
    wanted = school.slot(WANTED)
    with school.db.read() as session:
        holders = session.scalars(
            select(Meeting).where(
                Meeting.start == wanted.start,
                Meeting.state.in_([s.value for s in ACTIVE_STATES]),
            )
        ).all()
    assert len(holders) == 1
    answers = _answers(school)[invitations:]
    # Every loser is told so, with free times to choose from instead.
    lost = [
        text
        for method, _, text in answers
        if method == "DECLINECOUNTER" or (method == "REPLY" and "cannot accept" in text)
    ]
    assert len(lost) == RACERS - 1
    assert all("These times are free" in text for text in lost)
