"""Leader locks for pollers when several replicas share one PostgreSQL database.

A poller (calendar sync, IMAP watcher, hold expiry) runs on one replica at a time: it takes a
session-level advisory lock and skips its turn when another replica holds it (DESIGN §6).
Correctness never depends on this — every job is safe to run twice — it only saves work and
requests.  SQLite serves one host, so the lock is always granted there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from ptm_sync.adapters.store.db import Database


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock``."""
    digest = hashlib.sha256(f"ptm-sync:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def poller_lock(db: Database, name: str) -> Iterator[bool]:
    """Yield True when this process may run poller ``name`` now, False to skip."""
    if db.dialect != "postgresql":
        yield True
        return
    key = lock_key(name)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        try:
            yield held
        finally:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
