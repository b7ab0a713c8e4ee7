"""Three replicas of `ptm-sync run` on one PostgreSQL database (issue 9, item 6).

A burst of parents' replies lands in the shared inbox (Dovecot) while three daemons run on
one database.  The replica watching the inbox is killed with SIGKILL in the middle of the
burst; the other two finish its work.  Afterwards: every reply was decided once, every email
went out once (at most the one the killed replica had in flight twice), every meeting's
event is in its teacher's calendar once, and the inbox watcher ran on one replica at a time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, func, select, text

from ptm_sync.adapters.store import Database, Inbound, Meeting, MeetingHistory
from ptm_sync.adapters.store.locks import lock_key
from ptm_sync.demo import parents
from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.factories import invitations
from tests.support.school import TZ, ImapSchool, now_utc, parse, teacher_events
from tests.support.servers import free_port

pytestmark = [pytest.mark.radicale, pytest.mark.dovecot, pytest.mark.slow]

#: Only stops a hung test; nothing here measures time.
PATIENCE = 90.0
FAMILIES = 12


def _wait(what: str, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.2)
    pytest.fail(f"the replicas never got to: {what}")


def _replica(config: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "PTM_SYNC_CONFIG"}
    return subprocess.Popen(
        [sys.executable, "-m", "ptm_sync", "--config", str(config), "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=config.parent,
        env=env,
    )


def _imap_holder(url: str, replicas: list[subprocess.Popen[str]]) -> list[int]:
    """The OS pids of the replicas holding the IMAP watcher's advisory lock."""
    engine = create_engine(url.split("?")[0])
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT l.classid::bigint, l.objid::bigint, a.client_port FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted"
                )
            ).all()
        key = lock_key("imap") & 0xFFFFFFFFFFFFFFFF  # pg_locks: high and low 32 bits
        ports = {port for high, low, port in rows if (high << 32) | low == key}
    finally:
        engine.dispose()
    holders = []
    for replica in replicas:
        if replica.poll() is not None:
            continue
        mine = {c.laddr.port for c in psutil.Process(replica.pid).net_connections("tcp")}
        if mine & ports:
            holders.append(replica.pid)
    return holders


def test_three_replicas_share_a_burst_and_finish_a_killed_ones_work(
    tmp_path: Path,
    postgres_url: str,
    radicale_server: EmbeddedCalDAV,
    imap_school: Callable[..., ImapSchool],
) -> None:
    families = [
        (f"S{i}", f"Student {i}", f"parent{i}@example.net", f"Parent {i}", [i % 2])
        for i in range(FAMILIES)
    ]
    school, sink, mailbox = imap_school(families=families, setup=False)
    school.write()
    text_ = school.config.read_text().replace('url = "sqlite:///ptm.db"', f'url = "{postgres_url}"')
    school.config.write_text(text_)
    teachers, family_file = tmp_path / "teachers.csv", tmp_path / "families.csv"
    school.run("roster", "import", str(teachers), str(family_file), fast=True)
    school.run("sync", fast=True)
    school.run("invite")
    meetings = school.meetings()
    assert len(meetings) == FAMILIES
    invited = invitations(sink)
    sent_before = len(sink.received)

    configs = []
    for n in range(3):
        folder = tmp_path / f"replica{n}"
        folder.mkdir()
        config = folder / "ptm-sync.toml"
        config.write_text(text_ + f'\n[web]\nlisten = "127.0.0.1:{free_port()}"\n')
        configs.append(config)
    replicas = [_replica(c) for c in configs]
    db = Database(postgres_url)
    try:

        def confirmed() -> int:
            with db.read() as session:
                return (
                    session.scalar(
                        select(func.count())
                        .select_from(Meeting)
                        .where(Meeting.state == "confirmed")
                    )
                    or 0
                )

        _wait("watch the inbox", lambda: len(_imap_holder(postgres_url, replicas)) == 1)
        uids = [m["uid"] for m in meetings]
        replies = [
            parents.reply("gmail", invited[uid], "ACCEPTED", tz=TZ, now=now_utc()) for uid in uids
        ]
        mailbox.append_many(replies[: FAMILIES // 2])
        _wait("decide the first replies", lambda: confirmed() >= 2)
        [watcher] = _imap_holder(postgres_url, replicas)
        victim = next(r for r in replicas if r.pid == watcher)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        mailbox.append_many(replies[FAMILIES // 2 :])
        alive = [r for r in replicas if r is not victim]

        _wait("confirm every meeting", lambda: confirmed() == FAMILIES)
        _wait("send every confirmation", lambda: len(sink.received) - sent_before >= FAMILIES)
        calendars = school.calendars
        _wait(
            "write every teacher's event",
            lambda: (
                sum(len(teacher_events(radicale_server, url)) for url in calendars.values())
                >= FAMILIES
            ),
        )
        # One replica watches the inbox now, the other waits its turn.
        holders = _imap_holder(postgres_url, alive)
        assert len(holders) == 1 and holders[0] in {r.pid for r in alive}
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.send_signal(signal.SIGTERM)
        errors = [r.communicate(timeout=60)[1] for r in replicas]
        db.dispose()

    # Every reply decided once: one inbound row each, one acceptance per meeting.
    after = Database(postgres_url)
    with after.read() as session:
        decided = Counter(session.scalars(select(Inbound.message_id)))
        accepted = Counter(
            session.scalars(
                select(MeetingHistory.meeting_id).where(MeetingHistory.to_state == "confirmed")
            )
        )
    after.dispose()
    assert len(decided) == FAMILIES and set(decided.values()) == {1}, decided
    assert len(accepted) == FAMILIES and set(accepted.values()) == {1}, accepted
    # Every email once, but for at most one the killed replica had in flight.
    ids = Counter(str(parse(m.raw)["Message-ID"]) for m in sink.received[sent_before:])
    twice = [i for i, n in ids.items() if n > 1]
    assert len(twice) <= 1 and max(ids.values()) <= 2, ids
    # Every meeting's event in its teacher's calendar, once.
    events = Counter(
        str(e["UID"])
        for url in school.calendars.values()
        for e in teacher_events(radicale_server, url)
    )
    assert set(events) == set(uids) and set(events.values()) == {1}
    for replica, err in zip(replicas, errors, strict=True):
        if replica is not victim:
            assert "Traceback" not in err, err
