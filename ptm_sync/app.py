"""What every command needs: the loaded config and the opened, migrated database."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ptm_sync import config as config_mod
from ptm_sync.config import Config
from ptm_sync.store import Database


@dataclass
class App:
    config: Config
    _db: Database | None = field(default=None, repr=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> App:
        return cls(config_mod.load(getattr(args, "config", None)))

    @property
    def db(self) -> Database:
        """The database, migrated to the newest schema on first use."""
        if self._db is None:
            db = Database(self.config.database.url)
            db.migrate()
            self._db = db
        return self._db

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
