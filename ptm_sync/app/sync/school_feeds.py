"""The feeds that block everyone (the school events calendar): each is read into
``school_busy`` once for the whole school, not into any teacher's busy time."""

from __future__ import annotations

import logging
from contextlib import suppress
from datetime import datetime

from connectors.base import CalendarRef, Capability
from ptm_sync.adapters.store import Database, SchoolBusy, SchoolFeed
from ptm_sync.app.sync.accounts import Connectors
from ptm_sync.app.sync.result import SyncResult
from ptm_sync.config.settings import Config
from ptm_sync.core.errors import PtmError, SyncTokenInvalid
from ptm_sync.core.ical import busy as busy_mod

# The pass's one logger, named as before the split (the daemon's log, REPORTED_BY_COMMANDS).
log = logging.getLogger("ptm_sync.app.sync")


def sync_school_feeds(
    db: Database, config: Config, connectors: Connectors, now: datetime
) -> list[SyncResult]:
    """Read each feed that blocks everyone (the school events calendar) into school_busy."""
    results = []
    span = connectors.horizon
    for account in config.accounts:
        name = f"school events ({account.id})"
        try:
            connector = connectors.get(account.id)
            if Capability.BLOCKS_EVERYONE not in connector.capabilities:
                continue
            with db.read() as session:
                row = session.get(SchoolFeed, account.id)
                token = row.sync_token if row is not None and row.url == account.url else None
            ref = CalendarRef(account.id, account.url)
            try:
                changes = connector.changes(ref, token)
            except SyncTokenInvalid:
                changes = connector.changes(ref, None)
            count = 0
            with db.write() as session:
                row = session.get(SchoolFeed, account.id)
                if row is None:
                    row = SchoolFeed(account=account.id, url=account.url)
                    session.add(row)
                if changes.full or row.url != account.url:
                    row.url = account.url
                    row.busy.clear()
                    for remote in changes.changed:
                        try:
                            spans = busy_mod.busy_times(remote.ics, span.start, span.end, config.tz)
                        except PtmError as exc:
                            log.warning(
                                "ignoring unreadable event in %s (%s)", name, type(exc).__name__
                            )
                            continue
                        row.busy.extend(
                            SchoolBusy(start=b.start, end=b.end, tentative=b.tentative)
                            for b in spans
                        )
                        count += len(spans)
                else:
                    count = len(row.busy)
                row.sync_token, row.synced_at, row.error = changes.token, now, None
            results.append(
                SyncResult(name, changed=len(changes.changed), full=changes.full, busy=count)
            )
        except PtmError as exc:
            log.warning("sync of %s failed: %s", name, exc)
            with suppress(PtmError), db.write() as session:
                row = session.get(SchoolFeed, account.id)
                if row is not None:
                    row.error = str(exc)[:2000]
            results.append(SyncResult(name, error=str(exc)))
    return results
