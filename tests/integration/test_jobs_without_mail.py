"""A school that only publishes availability (no [mail]): the daemon's jobs have nothing to
decide and say nothing (a newcomer's review of issue 14 saw the hold-expiry job fail with a
traceback every minute)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from ptm_sync.adapters.store import Database
from ptm_sync.adapters.video.providers import provider_for
from ptm_sync.app.services import expire_holds
from ptm_sync.config.settings import parse


def test_expiring_holds_without_mail_does_nothing_and_raises_nothing(tmp_path: Path) -> None:
    config = parse(
        f"""
[school]
name = "Lincoln High"
timezone = "America/New_York"
contact = "office@lincoln.example.org"
[database]
url = "sqlite:///{tmp_path / "ptm.db"}"
[[periods]]
id = "spring"
title = "Spring conferences"
windows = ["2027-04-13T15:00/17:00"]
"""
    )
    db = Database(config.database.url)
    db.migrate()
    try:
        now = datetime(2027, 4, 1, tzinfo=UTC)
        assert expire_holds(db, config, now=now, video=provider_for(config.video)) == 0
    finally:
        db.dispose()
