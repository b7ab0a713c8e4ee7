"""Leader locks: one replica polls at a time on PostgreSQL; SQLite always grants."""

from __future__ import annotations

from ptm_sync.adapters.store import Database
from ptm_sync.adapters.store.locks import lock_key, poller_lock


def test_only_one_replica_holds_a_poller_lock(postgres_url: str) -> None:
    first, second = Database(postgres_url), Database(postgres_url)
    try:
        with poller_lock(first, "sync") as mine:
            assert mine
            with poller_lock(second, "sync") as theirs:
                assert not theirs
            with poller_lock(second, "imap") as other_job:
                assert other_job  # locks are per poller
        with poller_lock(second, "sync") as theirs:
            assert theirs  # released when the first replica's turn ended
    finally:
        first.dispose()
        second.dispose()


def test_sqlite_always_grants(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    with poller_lock(db, "sync") as a, poller_lock(db, "sync") as b:
        assert a and b
    db.dispose()


def test_lock_keys_are_stable_and_distinct() -> None:
    assert lock_key("sync") == lock_key("sync")
    assert len({lock_key(n) for n in ("sync", "imap", "expiry")}) == 3
    assert -(2**63) <= lock_key("sync") < 2**63
