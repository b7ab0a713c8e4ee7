"""Engine, sessions and migrations.

SQLite is opened in WAL mode with ``synchronous=FULL`` (the booking ledger must survive a
power cut), foreign keys on, and a busy timeout; write transactions start with
``BEGIN IMMEDIATE`` so two writers queue at the start instead of failing at commit.
PostgreSQL is reached through ``postgresql+psycopg://``.

Both engines are made with ``hide_parameters=True``: a statement's parameters (a guardian's
name, an address, a mail body) never appear in an exception's text, a log line or a
traceback.  A new SQLite database file is created mode 0600 before SQLite opens it (its
``-wal``/``-shm`` files take that mode from it), in a folder that must exist.

:func:`database_outage` tells an outage (connection lost or refused, server shutting down,
``database is locked`` after the busy timeout, a disk I/O error) from a bug, and says it in
one line that names the database with its password masked and carries no SQL.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from ptm_sync.adapters.files.filemodes import create_private
from ptm_sync.core.errors import StoreError, UserError
from ptm_sync.ops.redact import mask_url

MIGRATIONS = Path(__file__).with_name("migrations")
_WRITE = "ptm_write"


def _sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL; None in memory or for a ``file:`` URI."""
    path = url.removeprefix("sqlite:///")
    if not path or path == ":memory:" or path.startswith("file:") or path == url:
        return None
    return Path(path)


def _sqlite_setup(engine: Engine, url: str) -> None:
    database = _sqlite_file(url)

    @event.listens_for(engine, "do_connect")
    def _private_file(*_: Any) -> None:
        # A missing database file is created mode 0600 before SQLite opens it (SQLite would
        # create it by the umask); its -wal and -shm files take their mode from it.
        if database is not None:
            with contextlib.suppress(OSError):  # no folder, no permission: SQLite says so
                create_private(database)

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
    """The URL with its password hidden, even when SQLAlchemy cannot read it (masked as
    written: SQLAlchemy's own rendering cuts a password with a raw ``@`` in two)."""
    return mask_url(url)


#: The attribute :class:`Database` sets on a failed statement's exception: which database.
_WHERE = "ptm_database"
#: SQLite's words for "cannot be used right now", as opposed to a wrong statement.
_SQLITE_OUTAGES = (
    "database is locked",
    "database table is locked",
    "disk i/o error",
    "unable to open database file",
    "database or disk is full",
)

#: What PostgreSQL says at connect time about a mistake in the URL (not an outage): the
#: error carries no SQLSTATE then, only libpq's words.
_POSTGRES_USER_ERRORS = (
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during (``__cause__``/``__context__``)."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found and len(found) < 20:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def _is_outage(error: BaseException) -> bool:
    if isinstance(error, DBAPIError):
        if error.connection_invalidated or isinstance(error, InterfaceError):
            return True
        if isinstance(error, OperationalError):
            return error.orig is None or _is_outage(error.orig)
        return False
    if isinstance(error, DisconnectionError | PoolTimeout):
        return True
    module = type(error).__module__
    if module.startswith("psycopg"):
        # psycopg's OperationalError covers lost and refused connections, an administrator's
        # shutdown (57P01), serialization failures and deadlocks: all worth a later retry;
        # but also a refused login or a missing database, which the user must fix.
        names = {cls.__name__ for cls in type(error).__mro__}
        if not names & {"OperationalError", "InterfaceError"}:
            return False
        sqlstate = getattr(error, "sqlstate", None) or ""
        text = str(error).lower()
        return not (
            sqlstate.startswith("28")
            or sqlstate == "3D000"
            or any(words in text for words in _POSTGRES_USER_ERRORS)
        )
    if module == "sqlite3" and type(error).__name__ == "OperationalError":
        text = str(error).lower()
        return any(words in text for words in _SQLITE_OUTAGES)
    return False


def database_outage(exc: BaseException) -> str | None:
    """One line saying the database cannot be reached now, or None when ``exc`` is no outage.

    Looks through the chain of ``exc`` (an outage may surface as a later error, e.g. a
    rollback refused after the connection died).  The line names the database (password
    masked) and what happened (the driver's first line), never a statement or parameters:
    ``database postgresql+psycopg://ptm:***@db/ptm is unavailable: server closed the
    connection unexpectedly``.
    """
    chain = _chain(exc)
    failure = next((e for e in chain if _is_outage(e)), None)
    if failure is None:
        return None
    where = next((getattr(e, _WHERE) for e in chain if hasattr(e, _WHERE)), None)
    cause = failure.orig if isinstance(failure, DBAPIError) and failure.orig else failure
    name = f"database {where}" if where else "the database"
    return f"{name} is unavailable: {safe_error_text(cause)}"


def safe_traceback(exc: BaseException) -> str:
    """``exc``'s traceback as :func:`traceback.format_exception` gives it, with the text of
    every database error in its chain cut to :func:`safe_error_text`.

    PostgreSQL puts the offending row's values in its message (``DETAIL: Key (email)=(…)``)
    and SQLAlchemy adds the statement: the frames stay, for debugging; the data goes.
    """
    formatted = "".join(traceback.format_exception(exc))
    for error in _chain(exc):
        if isinstance(error, DBAPIError) or _from_driver(error):
            full = str(error)
            if full:
                formatted = formatted.replace(full, safe_error_text(error))
    return mask_url(formatted)


def _from_driver(error: BaseException) -> bool:
    module = type(error).__module__
    return module == "sqlite3" or module.startswith("psycopg")


def safe_error_text(error: BaseException | None) -> str:
    """A driver error's first line, safe to print: no SQL, no parameters, no values.

    Drivers add the statement, parameters and ``DETAIL: Key (email)=(…)`` after the first
    line; PostgreSQL's data errors (SQLSTATE class 22) quote the offending value in it,
    so for those only the error's name and code are given.
    """
    if error is None:
        return "unknown error"
    if isinstance(error, DBAPIError) and error.orig is not None:
        error = error.orig
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith("22"):
        return f"{type(error).__name__} (SQLSTATE {sqlstate})"
    lines = str(error).strip().splitlines()
    return mask_url(lines[0][:200]) if lines else type(error).__name__


class Database:
    """One database: a read session factory, a write session factory, migrations."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        authority = url.partition("://")[2].partition("/")[0]
        if authority.count("@") > 1:
            # SQLAlchemy splits user:password@host at the first "@": the rest of the
            # password would be taken for the host name (and printed in its errors).
            raise UserError(
                f"database.url: cannot use {_masked(url)}: its password holds a raw '@'; "
                "write it percent-encoded, as %40"
            )
        try:
            if url.startswith("sqlite"):
                self._prepare_sqlite_path(url)
                engine = create_engine(
                    url, echo=echo, hide_parameters=True, connect_args={"timeout": 30}
                )
                _sqlite_setup(engine, url)
            else:
                engine = create_engine(url, echo=echo, hide_parameters=True, pool_pre_ping=True)
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise UserError(f"database.url: cannot use {_masked(url)}: {exc}") from None
        except ImportError as exc:  # a dialect whose driver is not installed
            hint = (
                "install ptm-sync[postgres]"
                if (exc.name or "").startswith("psycopg")
                else "ptm-sync runs on sqlite:/// and postgresql+psycopg://"
            )
            raise UserError(
                f"database.url: cannot use {_masked(url)}: its driver is not installed "
                f"({exc.name or exc}); {hint}"
            ) from None
        self.engine = engine
        where = self.safe_url

        @event.listens_for(engine, "handle_error")
        def _name_the_database(context: ExceptionContext) -> None:
            # Which database failed, for the one line an outage prints (database_outage).
            for error in (context.sqlalchemy_exception, context.original_exception):
                if error is not None:
                    setattr(error, _WHERE, where)

        self._writer = engine.execution_options(**{_WRITE: True})
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(self._writer, expire_on_commit=False)

    @staticmethod
    def _prepare_sqlite_path(url: str) -> None:
        """Refuse a missing folder (the database file itself is made at first connect)."""
        path = _sqlite_file(url)
        if path is not None and not path.parent.exists():
            raise UserError(f"database.url: folder {path.parent} does not exist")

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
            error = StoreError(f"cannot migrate database {self.safe_url}: {safe_error_text(exc)}")
            error.retryable = _is_outage(exc)
            raise error from None

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
        return _masked(self.url)

    def dispose(self) -> None:
        self.engine.dispose()
