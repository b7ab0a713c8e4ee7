"""Engine, sessions and migrations.

SQLite is opened in WAL mode with ``synchronous=FULL`` (the booking ledger must survive a
power cut), foreign keys on, and a busy timeout; write transactions start with
``BEGIN IMMEDIATE`` so two writers queue at the start instead of failing at commit.
PostgreSQL is reached through ``postgresql+psycopg://``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ptm_sync.errors import StoreError, UserError

MIGRATIONS = Path(__file__).with_name("migrations")
_WRITE = "ptm_write"


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(_WRITE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def _masked(url: str) -> str:
    """The URL with its password hidden, even when SQLAlchemy cannot use it."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable URL)"


class Database:
    """One database: a read session factory, a write session factory, migrations."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        try:
            if url.startswith("sqlite"):
                self._prepare_sqlite_path(url)
                engine = create_engine(url, echo=echo, connect_args={"timeout": 30})
                _sqlite_setup(engine)
            else:
                engine = create_engine(url, echo=echo, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise UserError(f"database.url: cannot use {_masked(url)}: {exc}") from None
        self.engine = engine
        self._writer = engine.execution_options(**{_WRITE: True})
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(self._writer, expire_on_commit=False)

    @staticmethod
    def _prepare_sqlite_path(url: str) -> None:
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:" and not path.startswith("file:"):
            parent = Path(path).parent
            if not parent.exists():
                raise UserError(f"database.url: folder {parent} does not exist")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; closed (never committed) at the end.

        Objects loaded in it stay readable afterwards (``expire_on_commit=False``).
        """
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction: committed when the block ends, rolled back on error."""
        with self._write() as session, session.begin():
            yield session

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A write transaction without an ORM session, for a few Core statements.

        Begins and commits like :meth:`write` (``BEGIN IMMEDIATE`` on SQLite) at a fraction
        of a session's cost: for bookkeeping done once per delivered item.
        """
        with self._writer.begin() as connection:
            yield connection

    def _alembic(self) -> AlembicConfig:
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        return cfg

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        cfg = self._alembic()
        try:
            with self.engine.begin() as connection:
                cfg.attributes["connection"] = connection
                command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise StoreError(f"cannot migrate database {self.safe_url}: {exc.orig}") from None

    def is_current(self) -> bool:
        """True when the database is at the newest migration."""
        head = ScriptDirectory.from_config(self._alembic()).get_current_head()
        with self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        return current == head

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()
