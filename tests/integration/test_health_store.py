"""/healthz tells the truth (DESIGN §7): 200 ``ok`` only when all is well, else 503 naming
what is degraded — calendars never synced or failing (a count per account, no names),
the school events feed, dead letters, the IMAP server and delivery destinations.

The store is filled with the rows a school's service leaves behind and read through the
site as the web server serves it (on SQLite and on PostgreSQL).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ptm_sync.adapters.store import (
    Calendar,
    Database,
    Inbound,
    Outbox,
    SchoolFeed,
    Teacher,
)
from ptm_sync.app.read.health import read_state
from ptm_sync.config import settings as config_mod
from ptm_sync.interfaces.web.pages import Site
from ptm_sync.ops.metrics import ProcessMetrics
from tests.support.factories import make_guardian, make_meeting, make_period

CONFIG_TEXT = """
[school]
name = "S"
timezone = "Europe/Berlin"
contact = "office@s.test"
[[accounts]]
id = "m365"
type = "caldav"
url = "http://127.0.0.1:9/"
[[accounts]]
id = "google"
type = "caldav"
url = "http://127.0.0.1:9/"
[[periods]]
id = "p"
title = "P"
windows = ["2030-03-05T16:00/17:00"]
"""
IMAP = """
[mail]
organizer = "conferences@s.test"
[mail.imap]
host = "127.0.0.1"
port = 1143
username = "u"
password = "p"
ssl = true
"""
NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


def teacher(s: Any, key: str, account: str, *, synced: bool, error: str | None = None) -> int:
    row = Teacher(
        email=f"{key}@s.test",
        name=f"Teacher {key}",
        key=key,
        account=account,
        calendar=key,
        room="",
        booking_address="",
    )
    s.add(row)
    s.flush()
    if synced or error:
        s.add(
            Calendar(
                teacher_id=row.id,
                account=account,
                url=key,
                synced_at=NOW - timedelta(minutes=5) if synced else None,
                error=error,
            )
        )
    return row.id


def site(db: Database, *, imap: bool = False, process: ProcessMetrics | None = None) -> Site:
    config = config_mod.parse(CONFIG_TEXT + (IMAP if imap else ""))
    return Site(config, db, lambda: NOW, process=process or ProcessMetrics())


def health(s: Site) -> tuple[int, dict[str, Any]]:
    response = s.handle("/healthz")
    assert response.content_type == "application/json"
    body: dict[str, Any] = json.loads(response.body)
    return response.status, body


Fill = Callable[[Any], None]


def fill(db: Database, *steps: Fill) -> None:
    with db.write() as s:
        for step in steps:
            step(s)


def all_synced(s: Any) -> None:
    teacher(s, "ada", "m365", synced=True)
    teacher(s, "alan", "google", synced=True)


def test_all_well_is_200_ok(db: Database) -> None:
    fill(db, all_synced)
    status, body = health(site(db))
    assert status == 200
    assert body["status"] == "ok" and "problems" not in body
    assert body["teachers"] == 2 and body["database"] == "ok"


def test_calendars_never_synced_and_failing_are_counted_per_account_without_names(
    db: Database,
) -> None:
    def school(s: Any) -> None:
        all_synced(s)
        for key in ("grace", "isaac", "marie"):
            teacher(s, key, "m365", synced=False, error="404 Not Found" if key != "marie" else None)
        teacher(s, "emmy", "google", synced=True, error="503 Service Unavailable")

    fill(db, school)
    status, body = health(site(db))
    assert status == 503 and body["status"] == "degraded"
    # A calendar whose every read failed is failing (someone must act), not "never synced".
    assert body["problems"] == [
        "1 calendar failing on account 'google' "
        "(1 read before: last busy times kept; see `ptm-sync check`)",
        "1 calendar never synced on account 'm365' "
        "(those teachers offer no slots; see `ptm-sync check`)",
        "2 calendars failing on account 'm365' "
        "(2 never read: no slots offered; see `ptm-sync check`)",
    ]
    text = json.dumps(body)
    assert "@s.test" not in text and "Teacher" not in text  # counts, not names


def test_a_failing_school_events_feed_is_named_by_account(db: Database) -> None:
    def feed(s: Any) -> None:
        all_synced(s)
        s.add(SchoolFeed(account="google", url="https://x.test/feed.ics", error="timed out"))

    fill(db, feed)
    status, body = health(site(db))
    assert status == 503
    assert body["problems"] == ["the school events feed of account 'google' is failing"]


def outbox_row(s: Any, key: str, kind: str, state: str, created: datetime) -> None:
    s.add(
        Outbox(
            key=key,
            kind=kind,
            payload="{}",
            state=state,
            next_attempt_at=created,
            created_at=created,
        )
    )


def test_dead_letters_are_counted_and_waiting_rows_are_no_problem(db: Database) -> None:
    def rows(s: Any) -> None:
        all_synced(s)
        outbox_row(s, "a", "email", "dead", NOW)
        outbox_row(s, "b", "calendar", "dead", NOW)
        outbox_row(s, "c", "email", "pending", NOW)
        outbox_row(s, "d", "email", "done", NOW)

    fill(db, rows)
    status, body = health(site(db))
    assert status == 503
    assert body["problems"] == [
        "2 outbox rows dead-lettered (see `ptm-sync outbox`; `ptm-sync outbox retry ID` requeues)"
    ]


def test_the_imap_server_is_degraded_only_once_this_process_failed_to_reach_it(
    db: Database,
) -> None:
    fill(db, all_synced)
    process = ProcessMetrics()
    assert health(site(db, imap=True, process=process))[0] == 200  # never tried: no claim
    process.imap_connected(False)
    status, body = health(site(db, imap=True, process=process))
    assert status == 503
    assert body["problems"] == [
        "mail unreachable: IMAP server 127.0.0.1:1143 (the inbox watch cannot connect or log in)"
    ]
    process.imap_connected(True)
    assert health(site(db, imap=True, process=process))[0] == 200


def test_a_delivery_destination_that_cannot_be_reached_is_named(db: Database) -> None:
    fill(db, all_synced)
    process = ProcessMetrics()
    process.destination_reached("SMTP server 127.0.0.1:2525", False)
    process.destination_reached("calendar account 'm365'", True)
    status, body = health(site(db, process=process))
    assert status == 503
    assert body["problems"] == [
        "SMTP server 127.0.0.1:2525 unreachable: the last delivery could not connect"
    ]


def test_an_answer_is_reused_for_a_few_seconds(db: Database) -> None:
    """A probe every second costs the database one read per cache period, not one each."""
    fill(db, all_synced)
    s = site(db)
    first = s.handle("/healthz")
    fill(db, lambda session: outbox_row(session, "x", "email", "dead", NOW))
    assert s.handle("/healthz") is first  # reused: the dead letter shows after the cache
    assert health(site(db))[0] == 503  # a fresh site (no cache) sees it


def test_the_store_state_counts_what_metrics_export(db: Database) -> None:
    def rows(s: Any) -> None:
        ada = teacher(s, "ada", "m365", synced=True)
        teacher(s, "alan", "m365", synced=False)
        make_period(s)
        guardian = make_guardian(s, "g@family.test")
        for i, state in enumerate(["proposed", "proposed", "confirmed", "cancelled"]):
            start = NOW + timedelta(hours=i)
            make_meeting(s, teacher=ada, guardian=guardian, start=start, state=state, now=NOW)
        for i, outcome in enumerate(["applied", "quarantined", "quarantined", "duplicate"]):
            s.add(Inbound(digest=f"d{i}", received_at=NOW, outcome=outcome))
        outbox_row(s, "old", "email", "pending", NOW - timedelta(minutes=10))
        outbox_row(s, "new", "email", "pending", NOW - timedelta(minutes=1))
        outbox_row(s, "dead", "calendar", "dead", NOW)

    fill(db, rows)
    with db.read() as session:
        state = read_state(session)
    assert state.meetings == {"proposed": 2, "confirmed": 1, "cancelled": 1}
    assert state.quarantined == 2
    assert state.accounts["m365"].teachers == 2 and state.accounts["m365"].never_synced == 1
    assert state.accounts["m365"].oldest_sync == NOW - timedelta(minutes=5)
    email = state.outbox["email"]
    assert (email.waiting, email.dead, email.oldest_waiting) == (
        2,
        0,
        NOW - timedelta(minutes=10),
    )
    assert (state.outbox["calendar"].waiting, state.outbox["calendar"].dead) == (0, 1)


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_no_problem_line_or_metric_carries_a_guardians_address(db: Database, path: str) -> None:
    def rows(s: Any) -> None:
        teacher(s, "ada", "m365", synced=False)
        s.add(Inbound(digest="q", received_at=NOW, outcome="quarantined", sender="pat@family.test"))

    fill(db, rows)
    response = site(db).handle(path)
    assert b"family.test" not in response.body and b"ada@" not in response.body
