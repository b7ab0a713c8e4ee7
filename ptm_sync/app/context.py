"""What every command needs: the loaded config and the opened, migrated database."""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from ptm_sync.adapters.store import Database
from ptm_sync.config import settings as config_mod
from ptm_sync.config.settings import Config
from ptm_sync.core.errors import ConfigError

log = logging.getLogger(__name__)

#: The environment variable that fixes the commands' clock (:meth:`App.now`).
NOW_ENV = "PTM_SYNC_NOW"


@dataclass
class App:
    config: Config
    _db: Database | None = field(default=None, repr=False)
    #: The SQLite database file did not exist before :attr:`db` opened it: it was created
    #: empty (a mistyped path, or a first run before `init`); `check` warns.
    database_created: bool = field(default=False, init=False)
    #: The command fills a new database (``roster import``): its creation is no surprise.
    expect_new_database: bool = field(default=False, init=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> App:
        return cls(config_mod.load(getattr(args, "config", None)))

    @property
    def db(self) -> Database:
        """The database, migrated to the newest schema on first use."""
        if self._db is None:
            path = sqlite_path(self.config.database.url)
            existed = path is None or path.exists()
            db = Database(self.config.database.url)
            db.migrate()
            self._db = db
            self.database_created = not existed
            if self.database_created and not self.expect_new_database:
                # Said by every command, not `check` alone: a mistyped path would otherwise
                # give a quietly empty school (and a daemon serving nothing).
                log.warning(
                    "database: %s did not exist: created it empty (if the school's data is "
                    "elsewhere, fix [database] url)",
                    path,
                )
        return self._db

    @staticmethod
    def now() -> datetime:
        """The time every command decides at (aware, UTC): the clock, or ``$PTM_SYNC_NOW``.

        ``PTM_SYNC_NOW`` (ISO 8601 with a UTC offset, e.g. ``2027-04-10T19:20:00+00:00``)
        sets the clock of the commands for tests and the demo: a reminder, the end of a
        meeting or a purge can then be shown without waiting for the day.  The daemon's
        jobs read the same clock.

        Raises:
            ConfigError: ``PTM_SYNC_NOW`` is set but is no ISO time with an offset.
        """
        fixed = os.environ.get(NOW_ENV, "").strip()
        if not fixed:
            return datetime.now(UTC)
        try:
            moment = datetime.fromisoformat(fixed)
        except ValueError:
            moment = None
        if moment is None or moment.utcoffset() is None:
            raise ConfigError(
                f"${NOW_ENV} must be an ISO 8601 time with a UTC offset, "
                f"e.g. 2027-04-10T19:20:00+00:00 (got {fixed!r})"
            )
        return moment.astimezone(UTC)

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite database URL; None for another database, an in-memory one,
    a ``file:`` URI or a URL that does not parse."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)
