"""`outbox flush` and `ptm-sync run` as processes, with servers that misbehave.

* ``kill -9`` of an `outbox flush` that hangs in the middle of delivery: the next `outbox
  flush` resumes the rows the dead process had claimed at once (not after their lease),
  says so, and nothing is lost or sent twice.
* The daemon with the calendar server frozen: every email still goes out; when the server
  thaws, the calendar catches up; the servers end holding what the database says.

Real Radicale and aiosmtpd behind the fault proxy, SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ptm_sync.adapters.store import Database, Meeting, Outbox
from ptm_sync.app import outbox
from ptm_sync.app.outbox.dispatch import THRESHOLD
from tests.support.booking import PAT, SAM
from tests.support.caldav_servers import EmbeddedCalDAV
from tests.support.cli import toml_value
from tests.support.faultproxy import FaultProxy
from tests.support.mailservers import Mailbox, SmtpSink
from tests.support.school import imap_table
from tests.support.wired import GUARD, Wired, wait_until, wire

pytestmark = pytest.mark.radicale


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PTM_SYNC_CONFIG"}


def _ptm_sync(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ptm_sync", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=config.parent,
        env=_environment(),
    )


def _stop(daemon: subprocess.Popen[str]) -> str:
    """Stop the daemon as systemd does (SIGTERM) and wait for it; its stderr."""
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=GUARD)
    return err


@pytest.fixture
def wired(
    db: Database,
    radicale_server: EmbeddedCalDAV,
    smtp_sink: Callable[..., SmtpSink],
    fault_proxy: Callable[[tuple[str, int]], FaultProxy],
) -> Iterator[Wired]:
    # Processes run on the real clock: the school's outbox is due now.
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    yield wire(db, radicale_server, smtp_sink(), fault_proxy, now=now)


def _held_by(db: Database, pid: int) -> list[Outbox]:
    with db.read() as s:
        rows = s.scalars(select(Outbox).where(Outbox.claimed_by.is_not(None)))
        return [r for r in rows if (r.claimed_by or "").split("/")[-2:-1] == [str(pid)]]


def test_a_restart_resumes_at_once_what_a_killed_flush_had_claimed(
    wired: Wired, db_url: str, tmp_path: Path
) -> None:
    config = wired.config_file(tmp_path, db_url)
    wired.smtp.half_open()  # the first email hangs: the process is killed mid-delivery
    first = _ptm_sync(config, "outbox", "flush")
    try:
        wired.smtp.wait_stalled(1)
        wait_until(
            "the calendar rows delivered",
            lambda: all(r.state == outbox.DONE for r in wired.rows(outbox.CALENDAR)),
        )
    finally:
        first.kill()  # SIGKILL: no clean-up of any kind
        first.communicate()
    held = _held_by(wired.db, first.pid)  # what the dead process had claimed
    assert held and all(r.kind == outbox.EMAIL for r in held)
    wired.smtp.clear()

    second = _ptm_sync(config, "outbox", "flush")
    out, err = second.communicate(timeout=GUARD)
    assert second.returncode == 0, err
    assert f"resumed {len(held)} left unfinished by a stopped ptm-sync process" in out
    assert "not delivered yet" not in out
    assert "Traceback" not in err
    wired.assert_caught_up()


def test_the_daemon_sends_every_email_while_the_calendar_server_is_frozen(
    wired: Wired, db_url: str, tmp_path: Path
) -> None:
    config = wired.config_file(tmp_path, db_url)
    emails = len(wired.rows(outbox.EMAIL))
    wired.caldav.freeze()
    daemon = _ptm_sync(config, "run")
    try:
        wired.caldav.wait_stalled(1)  # the calendar writes (and the sync) hang...
        # ...and the parents' emails go out all the same.
        wait_until("every email sent", lambda: len(wired.sink.received) == emails)
        assert wired.caldav.stalled >= 1
        assert daemon.poll() is None
        wired.caldav.clear()  # the server thaws: the calendar catches up
        wait_until(
            "every row delivered",
            lambda: all(r.state == outbox.DONE for r in wired.rows(outbox.CALENDAR)),
        )
        err = _stop(daemon)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
    wired.assert_caught_up()


def test_a_restarted_daemon_resumes_at_once_what_a_killed_one_had_claimed(
    wired: Wired, db_url: str, tmp_path: Path
) -> None:
    config = wired.config_file(tmp_path, db_url)
    wired.smtp.half_open()
    first = _ptm_sync(config, "run")
    try:
        wired.smtp.wait_stalled(1)
        wait_until("a claim", lambda: bool(_held_by(wired.db, first.pid)))
    finally:
        first.kill()
        first.communicate()
    held = _held_by(wired.db, first.pid)
    wired.smtp.clear()
    emails = len(wired.rows(outbox.EMAIL))
    second = _ptm_sync(config, "run")
    try:
        # Well inside the dead daemon's lease: only a takeover can send these now.
        wait_until("every email sent", lambda: len(wired.sink.received) == emails)
        wait_until(
            "every row delivered",
            lambda: all(r.state == outbox.DONE for r in wired.rows(outbox.CALENDAR)),
        )
        err = _stop(second)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate()
    assert second.returncode == 0, err
    resumed = re.findall(r"resumed (\d+) left unfinished by a stopped ptm-sync process", err)
    assert sum(int(n) for n in resumed) == len(held)  # each destination's worker its own
    assert "Traceback" not in err
    wired.assert_caught_up()


def test_flush_says_what_it_could_not_deliver_and_why_without_personal_data(
    wired: Wired, db_url: str, tmp_path: Path
) -> None:
    config = wired.config_file(tmp_path, db_url)
    calendar_rows = len(wired.rows(outbox.CALENDAR))
    wired.caldav.reset()  # the calendar server refuses every connection
    flush = _ptm_sync(config, "outbox", "flush")
    out, err = flush.communicate(timeout=GUARD)
    assert flush.returncode == 0, err
    untried = calendar_rows - THRESHOLD
    assert (
        f"not delivered yet: {untried} for calendar account 'dav' "
        "(unreachable; tried again later)" in out
    )
    assert f"not delivered yet: {THRESHOLD} waiting to be retried" in out
    assert len(wired.sink.received) == len(wired.rows(outbox.EMAIL))  # the emails all went
    tail = out.split("not delivered yet", 1)[1]
    for private in (PAT, SAM, "Pat", "Sam", "Mia", "Ava", "Leo"):
        assert private not in tail


@pytest.mark.dovecot
def test_the_daemon_delivers_while_the_imap_server_is_frozen_and_reads_replies_after(
    wired: Wired,
    db_url: str,
    tmp_path: Path,
    mailbox: Mailbox,
    fault_proxy: Callable[[tuple[str, int]], FaultProxy],
) -> None:
    imap = mailbox.config()
    proxy = fault_proxy((imap.host, imap.port))
    table = {**imap_table(imap), "host": proxy.host, "port": proxy.port}
    extra = "\n[mail.imap]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())
    config = wired.config_file(tmp_path, db_url, extra)
    emails = len(wired.rows(outbox.EMAIL))
    proxy.freeze()
    daemon = _ptm_sync(config, "run")
    try:
        proxy.wait_stalled(1)  # the inbox watcher hangs on the frozen server...
        # ...and the outbox goes out all the same.
        wait_until("every email sent", lambda: len(wired.sink.received) == emails)
        wait_until(
            "every calendar row delivered",
            lambda: all(r.state == outbox.DONE for r in wired.rows(outbox.CALENDAR)),
        )
        assert proxy.stalled >= 1
        proxy.clear()  # the server thaws: a parent's Accept arriving now is read and applied
        with wired.db.read() as s:
            proposed = s.scalars(select(Meeting).where(Meeting.state == "proposed")).first()
        assert proposed is not None
        mailbox.append(wired.school.reply(proposed, "ACCEPTED"))
        wait_until("the confirmation sent", lambda: len(wired.sink.received) > emails)
        err = _stop(daemon)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, err
    assert "Traceback" not in err
    wired.assert_caught_up()
