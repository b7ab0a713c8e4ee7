"""What every command needs: the loaded config and the opened, migrated database."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from ptm_sync.adapters.store import Database
from ptm_sync.config import settings as config_mod
from ptm_sync.config.settings import Config

log = logging.getLogger(__name__)


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
        return datetime.now(UTC)

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
