"""Outbox leases name their owner: a restart resumes a dead process's rows at once.

A row claimed by a process that is known dead (same host, no such process, or its pid now
belongs to a process started at another time) is due again at once; a live owner's rows and
another host's rows stay leased until the lease runs out; a working owner renews its leases.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psutil
import pytest
from sqlalchemy import select

from ptm_sync.adapters.store import Database, Outbox
from ptm_sync.app import outbox
from ptm_sync.app.outbox.leases import Owner

T0 = datetime(2027, 3, 20, 12, 0, tzinfo=UTC)
HERE = socket.gethostname()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """Another process on this host, alive until the test ends (or kills it)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def _owner_of(process: subprocess.Popen[bytes]) -> Owner:
    return Owner(HERE, process.pid, round(psutil.Process(process.pid).create_time(), 2))


def _rows(db: Database, count: int) -> None:
    with db.write() as s:
        for n in range(count):
            outbox.enqueue(s, key=f"k{n}", kind=outbox.EMAIL, payload={"n": n}, now=T0)


def _claimed_by(db: Database) -> set[str | None]:
    with db.read() as s:
        return set(s.scalars(select(Outbox.claimed_by)))


def test_a_restart_takes_over_at_once_the_rows_of_a_process_that_died(
    db: Database, sleeper: subprocess.Popen[bytes]
) -> None:
    _rows(db, 3)
    dead = _owner_of(sleeper)
    assert len(outbox.claim_batch(db, now=T0, owner=dead).rows) == 3
    sleeper.kill()  # kill -9: nothing of it runs any more
    sleeper.wait()
    claimed = outbox.claim_batch(db, now=T0 + timedelta(seconds=1))
    assert [r.key for r in claimed.rows] == ["k0", "k1", "k2"]
    assert claimed.resumed == 3
    assert _claimed_by(db) == {outbox.this_process().token}


def test_a_pid_now_held_by_a_process_started_at_another_time_is_a_dead_owner(
    db: Database, sleeper: subprocess.Popen[bytes]
) -> None:
    _rows(db, 2)
    alive = _owner_of(sleeper)
    reused = Owner(HERE, alive.pid, alive.started - 3600)  # an older process had that pid
    outbox.claim_batch(db, now=T0, owner=reused)
    claimed = outbox.claim_batch(db, now=T0)
    assert (len(claimed.rows), claimed.resumed) == (2, 2)


def test_a_live_owner_keeps_its_rows_until_its_lease_runs_out(
    db: Database, sleeper: subprocess.Popen[bytes]
) -> None:
    _rows(db, 2)
    outbox.claim_batch(db, now=T0, owner=_owner_of(sleeper))
    assert outbox.claim_batch(db, now=T0 + outbox.LEASE - timedelta(seconds=1)).rows == []
    later = outbox.claim_batch(db, now=T0 + outbox.LEASE)
    assert (len(later.rows), later.resumed) == (2, 0)  # an expired lease, not a takeover


def test_another_hosts_lease_is_taken_only_when_it_runs_out(db: Database) -> None:
    _rows(db, 1)
    # pid 1 here runs, but the owner is elsewhere: we cannot know whether it runs.
    elsewhere = Owner("replica-2.example", 999_999, 1.0)
    assert not elsewhere.known_dead(outbox.this_process())
    outbox.claim_batch(db, now=T0, owner=elsewhere)
    assert outbox.claim_batch(db, now=T0 + outbox.LEASE - timedelta(seconds=1)).rows == []
    assert len(outbox.claim_batch(db, now=T0 + outbox.LEASE).rows) == 1


def test_a_working_owner_renews_its_leases(db: Database, sleeper: subprocess.Popen[bytes]) -> None:
    _rows(db, 2)
    worker = _owner_of(sleeper)
    outbox.claim_batch(db, now=T0, owner=worker)
    beat = T0 + outbox.HEARTBEAT
    assert outbox.renew(db, now=beat, owner=worker) == 2
    # Past the first lease, the renewed one still holds the rows.
    assert outbox.claim_batch(db, now=T0 + outbox.LEASE).rows == []
    assert len(outbox.claim_batch(db, now=beat + outbox.LEASE).rows) == 2


def test_an_unreadable_owner_is_never_taken_for_dead(db: Database) -> None:
    _rows(db, 1)
    with db.write() as s:
        row = s.scalars(select(Outbox)).one()
        row.claimed_until, row.claimed_by = T0 + outbox.LEASE, "not a token"
    assert outbox.claim_batch(db, now=T0).rows == []


def test_owner_tokens_read_back(sleeper: subprocess.Popen[bytes]) -> None:
    owner = _owner_of(sleeper)
    assert Owner.parse(owner.token) == owner
    assert Owner.parse("host.with/slash/12/3.5") == Owner("host.with/slash", 12, 3.5)
    assert Owner.parse("garbage") is None
    assert not owner.known_dead(outbox.this_process())
    assert not outbox.this_process().known_dead(outbox.this_process())


def test_a_killed_process_not_yet_reaped_is_dead(sleeper: subprocess.Popen[bytes]) -> None:
    owner = _owner_of(sleeper)
    assert not owner.known_dead(outbox.this_process())
    os.kill(sleeper.pid, signal.SIGKILL)  # a zombie until its parent waits for it
    zombie = psutil.Process(sleeper.pid)
    deadline = time.monotonic() + 10  # a hang guard: the kernel needs a moment
    while zombie.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
        time.sleep(0.01)
    assert owner.known_dead(outbox.this_process())
